"""The imperative shell: serialisation, the CLI and (later) stores and drivers.

Everything that touches files, terminals, clocks or pydantic lives here; the
kernel below stays pure.
"""
