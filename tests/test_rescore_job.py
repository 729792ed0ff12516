"""The rescore job: a large client queued after an ICP change is rescored by ci_jobs.rescore_pending.

The procedure commits each batch, so it is called outside a transaction (autocommit), as
pg_cron calls it. The inline limit is lowered for the test (restored after), so that a
client of 30 leads counts as large and is queued instead of rescored by the host's UPDATE.
"""
from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import psycopg
import pytest

pytestmark = pytest.mark.db

Conn = psycopg.Connection[tuple[object, ...]]


@pytest.fixture()
def large_client(conn: Conn, set_rescore_inline_max: Callable[[int], None]) -> Iterator[uuid.UUID]:
    set_rescore_inline_max(10)
    client = uuid.uuid4()
    conn.execute("insert into public.clients (id, name, icp_industries) values (%s, 'rescore job', '{software}')",
                 (client,))
    conn.execute(
        "insert into public.leads (client_id, email, email_verified, title, organization_industry, "
        "organization_employee_count, status) "
        "select %s, 'p' || g || '@example.com', true, 'CEO', "
        "(array['software', 'retail'])[1 + g %% 2], 20, 'in_sequence' from generate_series(1, 30) as g",
        (client,))
    try:
        yield client
    finally:
        conn.execute("delete from ci_private.als_rescore_queue where client_id = %s", (client,))
        conn.execute("delete from public.leads where client_id = %s", (client,))
        conn.execute("delete from public.clients where id = %s", (client,))


def fit_by_industry(conn: Conn, client: uuid.UUID) -> dict[str, set[int]]:
    rows = conn.execute("select organization_industry, als_company_fit from public.leads where client_id = %s",
                        (client,)).fetchall()
    out: dict[str, set[int]] = {}
    for industry, fit in rows:
        out.setdefault(str(industry), set()).add(int(str(fit)))
    return out


def queued(conn: Conn, client: uuid.UUID) -> bool:
    return conn.execute("select exists (select 1 from ci_private.als_rescore_queue where client_id = %s)",
                        (client,)).fetchone() == (True,)


def test_an_icp_change_of_a_large_client_is_rescored_by_the_job_in_batches(conn: Conn,
                                                                            large_client: uuid.UUID) -> None:
    before = fit_by_industry(conn, large_client)
    assert before["software"] != before["retail"]
    conn.execute("update public.clients set icp_industries = '{retail}' where id = %s", (large_client,))
    assert queued(conn, large_client), "a client over the inline limit is queued, not rescored in the UPDATE"
    assert fit_by_industry(conn, large_client) == before

    conn.execute("call ci_jobs.rescore_pending(7)")  # 30 leads in batches of 7: five transactions
    assert not queued(conn, large_client)
    after = fit_by_industry(conn, large_client)
    assert after["retail"] == before["software"] and after["software"] == before["retail"]
    # Exactly what a rescore of the whole client gives: a second one changes nothing.
    snapshot = "select id, als_score, als_tier, als_components from public.leads where client_id = %s order by id"
    rows = conn.execute(snapshot, (large_client,)).fetchall()
    with conn.transaction(force_rollback=True):
        conn.execute("select ci_private.rescore_leads(%s)", (large_client,))
        assert conn.execute(snapshot, (large_client,)).fetchall() == rows


def test_a_client_whose_queue_row_is_locked_is_left_to_its_refresh(conn: Conn, dsn: str,
                                                                   large_client: uuid.UUID) -> None:
    conn.execute("update public.clients set icp_industries = '{retail}' where id = %s", (large_client,))
    before = fit_by_industry(conn, large_client)
    with psycopg.connect(dsn) as holder:  # a refresh working off the client holds its queue row
        holder.execute("select 1 from ci_private.als_rescore_queue where client_id = %s for update", (large_client,))
        conn.execute("set lock_timeout = '5s'")  # waiting would fail here instead of hanging
        conn.execute("call ci_jobs.rescore_pending()")
        conn.execute("reset lock_timeout")
        assert fit_by_industry(conn, large_client) == before, "skipped, not waited for"
        holder.rollback()
    assert queued(conn, large_client)
    conn.execute("call ci_jobs.rescore_pending()")
    assert not queued(conn, large_client)


def test_the_job_skips_a_lead_a_host_holds_and_keeps_the_client_queued(conn: Conn, dsn: str,
                                                                      large_client: uuid.UUID) -> None:
    # Review of 0.6.0 (migration 20261201111100): the job waited for a lead a host transaction held,
    # holding the queue row the host's own ICP change (or a refresh) then waited for: deadlocks that
    # rolled back the host's write. It now skips the held lead and keeps the client queued.
    conn.execute("update public.clients set icp_industries = '{retail}' where id = %s", (large_client,))
    held = conn.execute("select min(id::text)::uuid from public.leads where client_id = %s and "
                        "organization_industry = 'software'", (large_client,)).fetchone()
    assert held is not None
    with psycopg.connect(dsn) as holder:
        holder.execute("update public.leads set first_name = 'held' where id = %s", (held[0],))
        conn.execute("set lock_timeout = '5s'")  # waiting would fail here instead of hanging
        conn.execute("call ci_jobs.rescore_pending(7)")
        conn.execute("reset lock_timeout")
        holder.rollback()
    fits = fit_by_industry(conn, large_client)
    assert len(fits["retail"]) == 1 and len(fits["software"]) == 2, "every lead rescored but the held one"
    assert queued(conn, large_client), "kept queued for the held lead"
    conn.execute("call ci_jobs.rescore_pending(7)")
    assert not queued(conn, large_client)
    assert len(fit_by_industry(conn, large_client)["software"]) == 1


def test_the_job_is_scheduled_and_its_history_trimmed(conn: Conn) -> None:
    if conn.execute("select to_regclass('cron.job') is not null").fetchone() != (True,):
        pytest.skip("pg_cron is not installed in this database")
    assert conn.execute("select command from cron.job where jobname = 'ci-rescore-pending'").fetchone() == (
        "call ci_jobs.rescore_pending()",)
    body = conn.execute("select prosrc from pg_proc where oid = 'ci_private.trim_cron_run_details'::regproc"
                        ).fetchone()
    assert body is not None and "ci-rescore-pending" in str(body[0])
