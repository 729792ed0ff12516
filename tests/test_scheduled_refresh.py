"""The scheduled refresh keeps its work: ci_jobs.run_scheduled_refresh() commits each client.

A scratch database of its own (migrated as a user does) with three generated clients, so
that a run covers exactly them. The job is cancelled (pg_cancel_backend from another
connection) while it waits on the second client, whose refresh lock a third connection
holds (the refresh's own advisory lock); the first client's new patterns must be stored and
every outcome recorded; the next CALL completes the rest. The same cancellation of the one-
transaction RPC, refresh_all_conversion_patterns(), keeps nothing: the mechanism matters.
"""
from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from ci_sidecar.generator import GeneratorConfig, generate
from tests.test_migrations import ScratchDb, ScratchFactory, migrate

pytestmark = pytest.mark.db

Conn = psycopg.Connection[Any]
LOCK_SQL = "select pg_advisory_xact_lock(hashtext('ci_refresh'), hashtext(%s::text))"


@pytest.fixture(scope="module")
def db(dsn: str) -> Iterator[tuple[ScratchDb, list[uuid.UUID]]]:
    factory = ScratchFactory(dsn)
    try:
        scratch = factory.create("sched")
        migrate(scratch)
        with psycopg.connect(scratch.url, autocommit=True) as conn:
            clients = generate(conn, GeneratorConfig(seed=61, clients=3, leads_per_client=300,
                                                     client_name_prefix="Scheduled")).client_ids
        yield scratch, sorted(clients)
    finally:
        factory.drop_all()


def _pattern_times(conn: Conn) -> dict[uuid.UUID, Any]:
    rows = conn.execute("select client_id, max(computed_at) from public.conversion_patterns group by 1").fetchall()
    return {r[0]: r[1] for r in rows}


def _history(conn: Conn) -> dict[uuid.UUID, int]:
    rows = conn.execute("select client_id, count(*) from public.conversion_pattern_history group by 1").fetchall()
    return {r[0]: int(r[1]) for r in rows}


def _cancel_while_waiting(url: str, statement: str, params: tuple[Any, ...], blocked: uuid.UUID) -> BaseException | None:
    """Run `statement` in a thread while `blocked`'s refresh lock is held elsewhere; cancel it once
    it waits for that lock. Returns what the statement raised."""
    outcome: dict[str, BaseException | None] = {"error": None}
    with psycopg.connect(url) as holder, psycopg.connect(url, autocommit=True) as job, \
            psycopg.connect(url, autocommit=True) as operator:
        holder.execute(LOCK_SQL, (blocked,))
        pid = job.info.backend_pid

        def run() -> None:
            try:
                job.execute(statement, params)
            except BaseException as exc:  # noqa: BLE001 - reported to the test
                outcome["error"] = exc

        thread = threading.Thread(target=run)
        thread.start()
        deadline = time.monotonic() + 240
        waiting = False
        while time.monotonic() < deadline and thread.is_alive():
            row = operator.execute(
                "select wait_event_type = 'Lock' and wait_event = 'advisory' from pg_stat_activity where pid = %s",
                (pid,),
            ).fetchone()
            if row is not None and row[0]:
                waiting = True
                break
            time.sleep(0.1)
        assert waiting, "the job never waited on the held client"
        operator.execute("select pg_cancel_backend(%s)", (pid,))
        thread.join(60)
        assert not thread.is_alive()
        holder.rollback()
    return outcome["error"]


def test_cancelled_run_keeps_earlier_clients_and_the_next_call_completes_it(
    db: tuple[ScratchDb, list[uuid.UUID]]
) -> None:
    scratch, (first, second, third) = db
    with psycopg.connect(scratch.url, autocommit=True) as conn:
        before = _history(conn)
        started = conn.execute("select clock_timestamp()").fetchone()
        assert started is not None
    # A generous per-client wait: the cancel, not the wait limit, ends it.
    error = _cancel_while_waiting(scratch.url, "call ci_jobs.run_scheduled_refresh(%s)", ("10min",), second)
    assert isinstance(error, psycopg.errors.QueryCanceled), error

    with psycopg.connect(scratch.url, autocommit=True) as conn:
        times = _pattern_times(conn)
        # The first client's new patterns are stored; the others have none yet.
        assert first in times and times[first] > started[0]
        assert second not in times and third not in times
        assert _history(conn).get(first, 0) == before.get(first, 0) + 4
        batch = conn.execute(
            "select id, finished_at, calls from ci_private.refresh_batches order by started_at desc limit 1"
        ).fetchone()
        assert batch is not None and batch[1] is None and batch[2] == 1
        statuses: dict[uuid.UUID, str] = dict(conn.execute(
            "select client_id, status from ci_private.refresh_batch_clients where batch_id = %s", (batch[0],)
        ).fetchall())
        assert statuses == {first: "ok", second: "cancelled", third: "pending"}
        runs = conn.execute(
            "select client_id, status, detail ->> 'status' from public.conversion_refresh_runs order by started_at"
        ).fetchall()
        assert (first, "ok", None) in runs
        assert (second, "failed", "cancelled") in runs

        # The next call resumes the same run: the second and third clients, not the first again.
        conn.execute("call ci_jobs.run_scheduled_refresh()")
        statuses = dict(conn.execute(
            "select client_id, status from ci_private.refresh_batch_clients where batch_id = %s", (batch[0],)
        ).fetchall())
        assert statuses == {first: "ok", second: "ok", third: "ok"}
        done = conn.execute("select finished_at is not null, calls from ci_private.refresh_batches where id = %s",
                            (batch[0],)).fetchone()
        assert done == (True, 2)
        after = _history(conn)
        assert after[first] == before.get(first, 0) + 4, "the resumed run redid a client already done"
        assert after[second] == before.get(second, 0) + 4
        assert after[third] == before.get(third, 0) + 4


def test_busy_client_is_skipped_quickly_and_recorded(db: tuple[ScratchDb, list[uuid.UUID]]) -> None:
    scratch, (first, second, third) = db
    with psycopg.connect(scratch.url) as holder, psycopg.connect(scratch.url, autocommit=True) as conn:
        holder.execute(LOCK_SQL, (third,))
        t0 = time.monotonic()
        conn.execute("call ci_jobs.run_scheduled_refresh(%s)", ("1s",))
        elapsed = time.monotonic() - t0
        holder.rollback()
        batch = conn.execute(
            "select id, finished_at is not null from ci_private.refresh_batches order by started_at desc limit 1"
        ).fetchone()
        assert batch is not None and batch[1] is True, "a busy client is done for this run"
        statuses: dict[uuid.UUID, str] = dict(conn.execute(
            "select client_id, status from ci_private.refresh_batch_clients where batch_id = %s", (batch[0],)
        ).fetchall())
        assert statuses == {first: "ok", second: "ok", third: "busy"}
        last = conn.execute(
            "select status, detail ->> 'status' from public.conversion_refresh_runs where client_id = %s "
            "order by started_at desc limit 1", (third,)
        ).fetchone()
        assert last == ("skipped", "busy")
    print(f"run with one busy client (1 s lock wait): {elapsed:.1f} s")


def test_the_one_transaction_rpc_loses_everything_when_cancelled(db: tuple[ScratchDb, list[uuid.UUID]]) -> None:
    """The contrast that shows the procedure's mechanism matters: the same cancellation of the
    RPC (one transaction) rolls back the first client's refresh and its records."""
    scratch, (_first, second, _third) = db
    with psycopg.connect(scratch.url, autocommit=True) as conn:
        before = _history(conn)
        runs_before = conn.execute("select count(*) from public.conversion_refresh_runs").fetchone()
        conn.execute("update ci_private.settings set value = '10min' where key = 'refresh_lock_wait'")
    try:
        error = _cancel_while_waiting(scratch.url, "select public.refresh_all_conversion_patterns()", (), second)
    finally:
        with psycopg.connect(scratch.url, autocommit=True) as conn:
            conn.execute("update ci_private.settings set value = '30s' where key = 'refresh_lock_wait'")
    assert isinstance(error, psycopg.errors.QueryCanceled), error
    with psycopg.connect(scratch.url, autocommit=True) as conn:
        assert _history(conn) == before
        assert conn.execute("select count(*) from public.conversion_refresh_runs").fetchone() == runs_before


def test_a_client_over_its_time_limit_is_stopped_recorded_and_the_run_goes_on(
    db: tuple[ScratchDb, list[uuid.UUID]]
) -> None:
    """The watchdog (ci_jobs.enforce_refresh_time_limit, every minute under pg_cron) cancels a client
    that ran past refresh_client_time_limit; the run records it as failed and refreshes the next."""
    scratch, (first, second, third) = db
    with psycopg.connect(scratch.url, autocommit=True) as conn:
        # Fault injection: storing any pattern of the second client takes 3 s.
        conn.execute(
            f"""
            create or replace function public.ci_test_slow_patterns() returns trigger language plpgsql
            set search_path = '' as $$
            begin
              if new.client_id = '{second}'::uuid then perform pg_catalog.pg_sleep(3); end if;
              return new;
            end $$
            """
        )
        conn.execute("create trigger ci_test_slow before insert or update on public.conversion_patterns "
                     "for each row execute function public.ci_test_slow_patterns()")
    outcome: dict[str, BaseException | None] = {"error": None}
    try:
        with psycopg.connect(scratch.url, autocommit=True) as job, \
                psycopg.connect(scratch.url, autocommit=True) as watchdog:

            def run() -> None:
                try:
                    job.execute("call ci_jobs.run_scheduled_refresh()")
                except BaseException as exc:  # noqa: BLE001 - reported to the test
                    outcome["error"] = exc

            thread = threading.Thread(target=run)
            thread.start()
            deadline = time.monotonic() + 240
            over = False
            while time.monotonic() < deadline and thread.is_alive():
                row = watchdog.execute(
                    "select clock_timestamp() - started_at > interval '1.5 seconds' "
                    "from ci_private.refresh_batch_clients where client_id = %s and status = 'running'",
                    (second,),
                ).fetchone()
                if row is not None and row[0]:
                    over = True
                    break
                time.sleep(0.1)
            assert over, "the second client never ran past the limit"
            watchdog.execute("call ci_jobs.enforce_refresh_time_limit(%s)", ("1 second",))
            thread.join(120)
            assert not thread.is_alive()
    finally:
        with psycopg.connect(scratch.url, autocommit=True) as conn:
            conn.execute("drop trigger if exists ci_test_slow on public.conversion_patterns")
            conn.execute("drop function if exists public.ci_test_slow_patterns()")
    assert outcome["error"] is None, outcome["error"]
    with psycopg.connect(scratch.url, autocommit=True) as conn:
        batch = conn.execute(
            "select id, finished_at is not null from ci_private.refresh_batches order by started_at desc limit 1"
        ).fetchone()
        assert batch is not None and batch[1] is True
        rows = conn.execute(
            "select client_id, status, detail ->> 'reason', timed_out_at is not null "
            "from ci_private.refresh_batch_clients where batch_id = %s", (batch[0],)
        ).fetchall()
        by_client = {r[0]: r[1:] for r in rows}
        assert by_client[first][0] == "ok" and by_client[third][0] == "ok"
        assert by_client[second][0] == "failed" and by_client[second][2] is True
        assert str(by_client[second][1]).startswith("time limit"), by_client[second]
        last = conn.execute(
            "select status, detail ->> 'reason' from public.conversion_refresh_runs where client_id = %s "
            "order by started_at desc limit 1", (second,)
        ).fetchone()
        assert last is not None and last[0] == "failed" and str(last[1]).startswith("time limit")
