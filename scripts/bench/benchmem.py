"""Memory and disk figures of a benchmark's database session.

The benchmarks run next to their database (the embedded default), so the
backend's /proc/<pid>/status is readable: while a statement runs, a thread reads
it every 20 ms and keeps the peak of RssAnon, the backend's private memory (the
hashes and sorts that work_mem allows, local buffers of temporary tables; the
shared buffers are not in it), summed with that of the parallel workers serving
the backend at that moment (processes titled "parallel worker for PID <pid>"). Where /proc cannot be read (a remote database)
the peak is None. Spills to disk are the growth of pg_stat_database.temp_bytes
over the statement (temporary files of sorts and hashes; temporary tables are
not counted there).
"""
from __future__ import annotations

import threading
from pathlib import Path
from types import TracebackType
from typing import Self

import psycopg

__all__ = ["Footprint", "temp_file_bytes"]


def _rss_anon_kb(status: Path) -> int | None:
    """RssAnon of a process's /proc status file, None when it cannot be read."""
    try:
        text = status.read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1])
    return None


class Footprint:
    """Peak private memory (RssAnon) of a connection's backend and its parallel
    workers while in the block,
    and the temporary files written meanwhile. The connection must be in
    autocommit; the statistics queries run outside the block's own work."""

    def __init__(self, conn: psycopg.Connection[tuple[object, ...]]) -> None:
        self._conn = conn
        self._path = Path(f"/proc/{conn.info.backend_pid}/status")
        self._peak_kb: int | None = None
        self._worker_dirs: list[Path] = []
        self._samples = 0
        self._temp_before = 0
        self._temp_after = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _read_kb(self) -> int | None:
        own = _rss_anon_kb(self._path)
        if own is None:
            return None
        # Workers live as long as their query: look them up every 10th sample.
        if self._samples % 10 == 0:
            self._worker_dirs = self._workers()
        self._samples += 1
        return own + sum(_rss_anon_kb(w / "status") or 0 for w in self._worker_dirs)

    def _workers(self) -> list[Path]:
        """The /proc entries of the parallel workers now serving the backend."""
        title = f"parallel worker for PID {self._conn.info.backend_pid}".encode()
        found: list[Path] = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                if title in (entry / "cmdline").read_bytes():
                    found.append(entry)
            except OSError:
                continue
        return found

    def _sample(self) -> None:
        kb = self._read_kb()
        if kb is not None and (self._peak_kb is None or kb > self._peak_kb):
            self._peak_kb = kb

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            self._sample()

    def __enter__(self) -> Self:
        self._temp_before = temp_file_bytes(self._conn)
        self._sample()
        if self._peak_kb is not None:
            self._thread = threading.Thread(target=self._run, daemon=True)
            self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._sample()
        self._temp_after = temp_file_bytes(self._conn)

    @property
    def peak_mb(self) -> float | None:
        return None if self._peak_kb is None else self._peak_kb / 1024

    @property
    def spilled_mb(self) -> float:
        return (self._temp_after - self._temp_before) / 2**20


def temp_file_bytes(conn: psycopg.Connection[tuple[object, ...]]) -> int:
    """Bytes of temporary files written in this database so far (after flushing
    this session's pending statistics). The connection must be in autocommit."""
    conn.execute("select pg_stat_force_next_flush()")
    row = conn.execute(
        "select coalesce(temp_bytes, 0) from pg_stat_database where datname = current_database()"
    ).fetchone()
    return int(str(row[0])) if row else 0
