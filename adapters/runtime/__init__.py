"""The runtime shell: one store port, memory and SQLite backends, and the driver.

Everything a deployed service needs to run machines against a real store,
and nothing it does not: no hypothesis, no command line.
"""
