"""``statewright inspect``: the instances and event logs in a SQLite store, decoded through the right machines.

The machines come from ``--spec TARGET`` (repeatable), else from the
project's specs, else from the bundled ones. A record naming a machine none of
them has is reported as ``unknown machine 'order': load its spec with --spec``
-- not as damage -- and its log is still shown. The file is probed read-only
first, so a file that is not a statewright store is an error, never changed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
from pathlib import Path
from typing import Any, TextIO

from statewright.adapters.cli.errors import UsageError
from statewright.adapters.cli.targets import Loader, machines_of
from statewright.adapters.runtime.store import Catalog, Corrupt, StoreError
from statewright.kernel.machine import Machine

__all__ = ["UnknownMachine", "inspect_command"]

EXIT_OK, EXIT_DAMAGED = 0, 1
SQLITE_HEADER = b"SQLite format 3\x00"


class UnknownMachine(Corrupt):
    """A record names a machine the inspecting catalog does not have (a missing ``--spec``, not damage)."""

    def __init__(self, machine: str, key: str) -> None:
        super().__init__(f"unknown machine {machine!r}: load its spec with --spec", key=key)
        self.machine = machine


class _Catalog(Catalog):
    """A catalog that tells an unknown machine apart from a record that does not decode."""

    def load(self, machine: str, text: str, *, key: str) -> Any:
        if machine not in self.machines:
            raise UnknownMachine(machine, key)
        return super().load(machine, text, key=key)


def _machines(loader: Loader, specs: list[str]) -> dict[str, Machine[Any]]:
    from statewright.specs import REGISTRY

    if not specs and loader.project is None:
        return dict(REGISTRY.machines)
    targets = loader.select(specs, everything=not specs)
    out: dict[str, Machine[Any]] = {}
    for t in targets:
        for m in machines_of(t.spec()):
            out.setdefault(m.name, m)
    return out


def _probe(db: Path) -> None:
    """Refuse what is not a statewright store, without writing to it."""
    if not db.is_file():
        raise UsageError(f"no database at {db}")
    try:
        with db.open("rb") as f:
            header = f.read(len(SQLITE_HEADER))
    except OSError as exc:
        raise UsageError(f"cannot read {db}: {exc.strerror or exc}") from None
    if header != SQLITE_HEADER:
        raise UsageError(f"{db} is not a SQLite database")
    try:
        raw = sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True)
        try:
            found = raw.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'instances'").fetchone()
        finally:
            raw.close()
    except sqlite3.Error as exc:
        raise UsageError(f"cannot read {db}: {exc}") from None
    if found is None:
        raise UsageError(f"{db} is a SQLite database but not a statewright store (it has no instances table)")


def inspect_command(args: argparse.Namespace, loader: Loader, out: TextIO) -> int:
    """Print each instance and its log; exit 1 when a record is damaged."""
    from statewright.adapters.runtime.sqlite import SqliteStore
    from statewright.adapters.runtime.serialize import value_json
    from statewright.machines.input import INPUT, authorize_seed

    _probe(args.db)
    machines = _machines(loader, args.spec)
    authorize = {"input": authorize_seed} if machines.get("input") is INPUT else {}
    catalog = _Catalog(machines, authorize)

    async def show() -> int:
        try:
            store = await SqliteStore.open(args.db, catalog)
        except (StoreError, sqlite3.Error) as exc:
            raise UsageError(f"cannot open {args.db}: {exc}") from None
        damaged = 0
        try:
            keys = await store.keys()
            for key in args.key:
                if key not in keys:
                    raise UsageError(f"no instance {key!r} in {args.db} (instances: {', '.join(keys) or 'none'})")
            for key in args.key or keys:
                try:
                    record = await store.load(key)
                except UnknownMachine as exc:
                    print(f"{key}: {exc}", file=out)
                except Corrupt as exc:
                    damaged += 1
                    print(f"{key}: CORRUPT -- {exc}", file=out)
                    continue
                else:
                    phase = catalog.machine(record.machine).phase_of(record.state).name
                    print(f"{key}: {record.machine} {phase} (version {record.version})", file=out)
                try:
                    events = await store.read_log(key)
                except Corrupt as exc:
                    damaged += 1
                    print(f"  CORRUPT -- {exc}", file=out)
                    continue
                for event in events:
                    mark = " [terminal]" if event.terminal else ""
                    data = json.dumps(value_json(event.data), sort_keys=True)
                    print(f"  {event.seq:>3} {event.kind:<10} {data}{mark}", file=out)
        finally:
            await store.close()
        return EXIT_DAMAGED if damaged else EXIT_OK

    return asyncio.run(show())
