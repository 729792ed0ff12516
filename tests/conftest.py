"""Shared fixtures: the database URL and connections to the real database.

Database tests run against the embedded cluster (scripts/db.sh) or DATABASE_URL;
they never mock the database. Each test gets its own clients (random ids), so
tests do not see each other's data.
"""
from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest

ROOT = Path(__file__).resolve().parent.parent


def _embedded_url() -> str:
    out = subprocess.run(
        ["bash", str(ROOT / "scripts" / "db.sh"), "url"], check=True, capture_output=True, text=True
    )
    return out.stdout.strip()


@pytest.fixture(scope="session")
def dsn() -> str:
    """Connection URL of the database under test."""
    url = os.environ.get("DATABASE_URL") or _embedded_url()
    try:
        with psycopg.connect(url, connect_timeout=5) as conn:
            conn.execute("select 1")
    except psycopg.OperationalError as exc:  # pragma: no cover - environment problem
        pytest.fail(f"database not reachable at {url}: run scripts/db.sh start ({exc})")
    return url


@pytest.fixture()
def conn(dsn: str) -> Iterator[psycopg.Connection[tuple[object, ...]]]:
    """An autocommit connection as the database owner."""
    with psycopg.connect(dsn, autocommit=True) as connection:
        yield connection


@pytest.fixture()
def tx(dsn: str) -> Iterator[psycopg.Connection[tuple[object, ...]]]:
    """One transaction, rolled back: nothing the test writes is ever seen by others."""
    with psycopg.connect(dsn) as connection:
        try:
            yield connection
        finally:
            connection.rollback()


@pytest.fixture()
def set_rescore_inline_max(conn: psycopg.Connection[tuple[object, ...]]) -> Iterator[Callable[[int], None]]:
    """Sets the setting rescore_inline_max for one test (a client over it is queued, not rescored in the
    statement that changed its ICP or weights); the value it had is restored afterwards."""
    old = conn.execute("select value from ci_private.settings where key = 'rescore_inline_max'").fetchone()

    def set_value(value: int) -> None:
        conn.execute("update ci_private.settings set value = %s where key = 'rescore_inline_max'", (str(value),))

    try:
        yield set_value
    finally:
        conn.execute("update ci_private.settings set value = %s where key = 'rescore_inline_max'",
                     (str(old[0]) if old else "5000",))


@pytest.fixture()
def waits_on_a_lock(conn: psycopg.Connection[tuple[object, ...]]) -> Callable[[int], bool]:
    """Waits (up to 10 s) until the backend `pid` waits on a lock (pg_stat_activity's wait_event_type
    'Lock', a row or a transaction); returns whether it does. For tests that hold a race open."""

    def wait(pid: int) -> bool:
        deadline = time.monotonic() + 10
        while True:
            row = conn.execute("select wait_event_type from pg_stat_activity where pid = %s", (pid,)).fetchone()
            if row is not None and row[0] == "Lock":
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.02)

    return wait
