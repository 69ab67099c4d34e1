"""Fixtures for the adapter tests: a throwaway PostgreSQL server, and a fresh database per test.

The server starts only when a test asks for it (``postgres_dsn``), once per
session, and is stopped at the end even when tests fail. Without PostgreSQL
those tests skip with the reason, or fail when ``STATEWRIGHT_REQUIRE_POSTGRES=1``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.adapters import _backends as B
from tests.adapters import _postgres


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[_postgres.Server]:
    """One PostgreSQL server for the whole session, on a Unix socket in a temporary directory."""
    try:
        server = _postgres.start()
    except _postgres.Unavailable as exc:
        if _postgres.required():
            pytest.fail(f"PostgreSQL is required (STATEWRIGHT_REQUIRE_POSTGRES=1): {exc}", pytrace=False)
        pytest.skip(f"no PostgreSQL: {exc}")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def postgres_dsn(postgres_server: _postgres.Server) -> Iterator[str]:
    """The DSN of a new, empty database on the session's server (other processes may open it too).

    The database is dropped after the test (its sessions ended), so a long run does not fill the disk.
    """
    dsn = postgres_server.database()
    yield dsn
    postgres_server.drop(dsn)


@pytest.fixture(params=B.BACKENDS)
def store_at(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The locator of a fresh store for the reliability, cancellation, exactly-once and dispatch-attack tests:
    a SQLite file, or a PostgreSQL database (skipped without one)."""
    return B.locator(str(request.param), tmp_path, request)


QUICK_ON_SQLITE = {"test_dispatch.py", "test_read_side.py", "test_blocking.py"}
"""Suites run on every backend whose PostgreSQL runs join the slow set: `make quick` checks them on memory
and SQLite (under a minute on every save), `make test` on PostgreSQL too."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        if item.path.name in QUICK_ON_SQLITE and "postgres" in params.values():
            item.add_marker(pytest.mark.slow)
