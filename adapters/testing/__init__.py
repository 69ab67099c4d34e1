"""Test harnesses built from specs: hypothesis suites, refinement of the shell, the pytest plugin."""
