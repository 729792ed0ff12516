"""The weekly refresh on the real database: isolation of failures, history, concurrency, pg_cron."""
from __future__ import annotations

import datetime as dt
import threading
import time
import uuid
from typing import Any

import psycopg
import pytest

from ci_sidecar.generator import Effects, GeneratorConfig, generate

pytestmark = pytest.mark.db

Conn = psycopg.Connection[Any]


@pytest.fixture(scope="module")
def world(dsn: str) -> dict[str, Any]:
    """Two healthy clients, one with poisoned data, one whose refresh is made to fail."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        healthy = generate(conn, GeneratorConfig(seed=21, clients=2, leads_per_client=700,
                                                 client_name_prefix="Refresh healthy")).client_ids
        poisoned = generate(conn, GeneratorConfig(seed=22, clients=1, leads_per_client=700, junk_share=0.05,
                                                  effects=Effects.none(),
                                                  client_name_prefix="Refresh poisoned")).client_ids[0]
        faulty = generate(conn, GeneratorConfig(seed=23, clients=1, leads_per_client=700,
                                                client_name_prefix="Refresh faulty")).client_ids[0]
        tiny = uuid.uuid4()
        conn.execute("insert into public.clients (id, name) values (%s, 'Refresh tiny')", (tiny,))
        # Poison: invalid and missing time zones, null and absurd attributes.
        conn.execute(
            """
            update public.leads set timezone = case when random() < 0.5 then 'Mars/Olympus_Mons' else '' end,
                   title = null, organization_employee_count = -40, organization_industry = repeat('x', 5000)
            where client_id = %s and id in (select id from public.leads where client_id = %s limit 200)
            """,
            (poisoned, poisoned),
        )
        conn.execute("update public.clients set timezone = 'Not/AZone' where id = %s", (poisoned,))
        conn.execute(
            "update public.activities set content_snapshot = '\"just a string\"' where client_id = %s and id in "
            "(select id from public.activities where client_id = %s limit 50)",
            (poisoned, poisoned),
        )
    return {"healthy": healthy, "poisoned": poisoned, "faulty": faulty, "tiny": tiny}


def _fail_refresh_of(conn: Conn, client_id: uuid.UUID) -> None:
    """Fault injection: storing any pattern of this client raises."""
    conn.execute(
        f"""
        create or replace function public.ci_test_fail_patterns() returns trigger language plpgsql
        set search_path = '' as $$
        begin
          if new.client_id = '{client_id}'::uuid then
            raise exception 'injected failure for %', new.client_id;
          end if;
          return new;
        end $$
        """
    )
    conn.execute(
        "create trigger ci_test_fail before insert or update on public.conversion_patterns "
        "for each row execute function public.ci_test_fail_patterns()"
    )


def _unfail(conn: Conn) -> None:
    conn.execute("drop trigger if exists ci_test_fail on public.conversion_patterns")
    conn.execute("drop function if exists public.ci_test_fail_patterns()")


def _history_count(conn: Conn, client_id: uuid.UUID) -> int:
    row = conn.execute("select count(*) from public.conversion_pattern_history where client_id = %s",
                       (client_id,)).fetchone()
    assert row is not None
    return int(row[0])


def test_refresh_all_isolates_a_failing_client(conn: Conn, world: dict[str, Any]) -> None:
    _fail_refresh_of(conn, world["faulty"])
    try:
        row = conn.execute("select public.refresh_all_conversion_patterns()").fetchone()
    finally:
        _unfail(conn)
    assert row is not None
    by_client = {uuid.UUID(r["client_id"]): r for r in row[0]["clients"]}
    for cid in world["healthy"]:
        assert by_client[cid]["status"] == "ok"
        stored = conn.execute(
            "select count(*), min(computed_at) > now() - interval '10 minutes' "
            "from public.conversion_patterns where client_id = %s", (cid,)
        ).fetchone()
        assert stored == (4, True)
    assert by_client[world["faulty"]]["status"] == "failed"
    assert "injected failure" in by_client[world["faulty"]]["reason"]
    assert by_client[world["tiny"]]["status"] == "skipped"
    # Poisoned data is skipped and counted inside the detectors, never fatal.
    assert by_client[world["poisoned"]]["status"] in ("ok", "skipped")
    # The failing client's partial work is rolled back: nothing stored for it.
    stored = conn.execute("select count(*) from public.conversion_patterns where client_id = %s",
                          (world["faulty"],)).fetchone()
    assert stored == (0,)
    run = conn.execute(
        "select status, detail ->> 'reason' from public.conversion_refresh_runs where client_id = %s "
        "order by started_at desc limit 1", (world["faulty"],)
    ).fetchone()
    assert run is not None and run[0] == "failed" and "injected failure" in run[1]


def test_history_only_grows(conn: Conn, world: dict[str, Any]) -> None:
    cid = world["healthy"][0]
    before = _history_count(conn, cid)
    conn.execute("select public.refresh_conversion_patterns(%s)", (cid,))
    conn.execute("select public.refresh_conversion_patterns(%s)", (cid,))
    assert _history_count(conn, cid) == before + 8
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute("delete from public.conversion_pattern_history where client_id = %s", (cid,))
    assert _history_count(conn, cid) == before + 8


def test_concurrent_refreshes_leave_one_consistent_result(dsn: str, world: dict[str, Any]) -> None:
    cid = world["healthy"][1]
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)

    def refresh() -> None:
        try:
            with psycopg.connect(dsn, autocommit=True) as c:
                barrier.wait()
                c.execute("select public.refresh_conversion_patterns(%s)", (cid,))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    with psycopg.connect(dsn, autocommit=True) as conn:
        before = _history_count(conn, cid)
        threads = [threading.Thread(target=refresh) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors
        assert _history_count(conn, cid) == before + 8
        # The stored row of each type is the newest history row of that type.
        mismatched = conn.execute(
            """
            select cp.pattern_type from public.conversion_patterns as cp
            where cp.client_id = %s
              and cp.computed_at <> (select max(h.computed_at) from public.conversion_pattern_history as h
                                     where h.client_id = cp.client_id and h.pattern_type = cp.pattern_type)
            """,
            (cid,),
        ).fetchall()
        assert mismatched == []
        distinct = conn.execute(
            "select count(distinct computed_at) from public.conversion_patterns where client_id = %s", (cid,)
        ).fetchone()
        assert distinct == (1,)


def test_refresh_announces_itself(dsn: str, world: dict[str, Any]) -> None:
    cid = world["healthy"][0]
    with psycopg.connect(dsn, autocommit=True) as listener, psycopg.connect(dsn, autocommit=True) as conn:
        listener.execute("listen conversion_patterns_refreshed")
        conn.execute("select public.refresh_conversion_patterns(%s)", (cid,))
        got = [n.payload for n in listener.notifies(timeout=5, stop_after=1)]
    assert got and str(cid) in got[0]


def _stop_running(conn: Conn, jobid: int) -> None:
    """Stop a run of the job still in progress after unschedule (it refreshes every client of
    the test database, for minutes, applying learned weights to other tests' clients and
    writing beside their teardown), and close its batch so that no later CALL resumes it. The
    run's backend is read from pg_cron's own record of it (job_pid)."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        pids = [r[0] for r in conn.execute(
            "select job_pid from cron.job_run_details where jobid = %s and job_pid is not null "
            "and status in ('starting', 'running', 'sending', 'connecting')", (jobid,)).fetchall()]
        alive = [p for p in pids if conn.execute(
            "select exists (select 1 from pg_stat_activity where pid = %s)", (p,)).fetchone() == (True,)]
        if not alive:
            break
        for pid in alive:
            conn.execute("select pg_cancel_backend(%s)", (pid,))
        time.sleep(1)
    conn.execute("update ci_private.refresh_batches set finished_at = now() where finished_at is null")


def test_cron_job_exists_once_and_runs_the_refresh(conn: Conn, world: dict[str, Any]) -> None:
    jobs = conn.execute(
        "select schedule, command from cron.job where jobname = 'ci-weekly-refresh'"
    ).fetchall()
    assert len(jobs) == 1
    schedule, command = jobs[0]
    setting = conn.execute("select value from ci_private.settings where key = 'refresh_cron'").fetchone()
    assert setting == (schedule,)
    assert conn.execute(
        "select count(*) from cron.job where jobname = 'ci-trim-cron-run-details'"
    ).fetchone() == (1,)
    # Re-scheduling from the settings never duplicates the jobs.
    conn.execute("select ci_private.schedule_jobs()")
    assert conn.execute("select count(*) from cron.job where jobname like 'ci-%%'").fetchone() == (4,)

    # Trigger it: the same command, run by pg_cron itself, on a job that fires once: at the next
    # minute (cron.timezone, UTC here) of this day of this month. Not every minute: pg_cron 1.4's
    # launcher kept running an every-minute job for the rest of the suite after cron.unschedule
    # (seen: 21 runs in 20 minutes), refreshing every client beside other tests' writes.
    cid = world["healthy"][0]
    before = _history_count(conn, cid)
    at = conn.execute(
        "select date_trunc('minute', now() at time zone 'UTC') "
        "+ case when extract(second from now()) >= 45 then interval '2 min' else interval '1 min' end"
    ).fetchone()
    assert at is not None
    when = at[0]
    assert isinstance(when, dt.datetime)
    job = conn.execute("select cron.schedule('ci-test-trigger', %s, %s)",
                       (f"{when.minute} {when.hour} {when.day} {when.month} *", command)).fetchone()
    assert job is not None
    try:
        # pg_cron reports each statement of the command as it goes, so wait for
        # the effect itself: this client's patterns stored again.
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and _history_count(conn, cid) < before + 4:
            time.sleep(2)
    finally:
        conn.execute("select cron.unschedule('ci-test-trigger')")
        _stop_running(conn, int(str(job[0])))
    assert _history_count(conn, cid) >= before + 4, "pg_cron did not run the refresh within 180 s"
    ran = conn.execute(
        "select count(*) from cron.job_run_details where jobid = %s", (job[0],)
    ).fetchone()
    assert ran is not None and ran[0] >= 1
