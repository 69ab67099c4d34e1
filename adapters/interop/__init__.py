"""Bridges to other state-machine libraries (pytransitions, both ways)."""
