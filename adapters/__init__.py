"""The imperative shell, in four groups; the kernel below stays pure.

* `statewright.adapters.runtime` -- the store port, its memory and SQLite
  backends, and the driver that commits model steps with compare-and-swap.
  It never imports the test harnesses (nor hypothesis).
* `statewright.adapters.cli` -- the ``statewright`` command and presentation:
  spec loading, text and JSON reports, diagrams.
* `statewright.adapters.interop` -- bridges to other libraries (pytransitions).
* `statewright.adapters.testing` -- hypothesis suites generated from specs,
  refinement of the real shell against the model, the pytest plugin.
"""
