"""What the benchmarks share: the database to run on, one measured figure, timing with memory.

Each bench script under scripts/bench/ imports this module (they run as scripts, so the
directory is on sys.path). Nothing here asserts: benchmarks print figures and ratios.
"""
from __future__ import annotations

import os
import statistics
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from benchmem import Footprint

ROOT = Path(__file__).resolve().parents[2]


def default_dsn() -> str:
    """$DATABASE_URL, else the embedded database of scripts/db.sh (its CI_DB_PORT included)."""
    url = os.environ.get("DATABASE_URL")
    if url:
        return url
    out = subprocess.run(["bash", str(ROOT / "scripts" / "db.sh"), "url"], check=True, capture_output=True, text=True)
    return out.stdout.strip()


@dataclass
class Measure:
    """One figure measured several times: seconds of each run and the backend's peak private memory."""

    name: str
    seconds: list[float] = field(default_factory=list)
    peak_mb: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    @property
    def fastest(self) -> float:
        return min(self.seconds)

    def as_json(self, reference: float | None) -> dict[str, Any]:
        return {
            "name": self.name, "seconds": self.seconds, "median_s": self.median, "min_s": self.fastest,
            "x_reference": None if not reference else self.median / reference,
            "peak_backend_mb": max(self.peak_mb) if self.peak_mb else None,
        }


def timed(conn: psycopg.Connection[Any], measure: Measure, work: Callable[[], object]) -> None:
    """Run work once, adding its wall time and the backend's peak memory to measure."""
    with Footprint(conn) as fp:
        t0 = time.perf_counter()
        work()
        measure.seconds.append(time.perf_counter() - t0)
    if fp.peak_mb is not None:
        measure.peak_mb.append(fp.peak_mb)


def layer_triggers(conn: psycopg.Connection[Any], tables: tuple[str, ...] = ("leads", "activities")) -> list[tuple[str, str]]:
    """The layer's own triggers (named *_ci_*) on the given tables of the host, as (table, trigger), ordered."""
    rows = conn.execute(
        r"""select c.relname, t.tgname from pg_trigger as t join pg_class as c on c.oid = t.tgrelid
            where c.relnamespace = 'public'::regnamespace and c.relname = any(%s)
              and not t.tgisinternal and t.tgname like '%%\_ci\_%%' order by 1, 2""",
        (list(tables),),
    ).fetchall()
    return [(str(r[0]), str(r[1])) for r in rows]


def layer_indexes(conn: psycopg.Connection[Any], tables: tuple[str, ...] = ("leads", "activities")) -> list[str]:
    """The layer's own indexes on the given tables of the host (named *_ci_*, none backing a
    constraint), as names ready for DROP INDEX, ordered."""
    rows = conn.execute(
        r"""select i.indexrelid::regclass::text from pg_index as i join pg_class as c on c.oid = i.indrelid
            join pg_class as x on x.oid = i.indexrelid
            where c.relnamespace = 'public'::regnamespace and c.relname = any(%s)
              and x.relname like '%%\_ci\_%%'
              and not exists (select 1 from pg_constraint as k where k.conindid = i.indexrelid)
            order by 1""",
        (list(tables),),
    ).fetchall()
    return [str(r[0]) for r in rows]
