"""Applying learned weights and the rescore queue take their locks in one order, so they wait, not deadlock.

Small clients are rescored in the call, large ones queued; both are tried.

The refresh's ``rescore_if_pending`` and the job ``ci_jobs.rescore_pending`` lock a client's queue row,
then rescore its leads (and write its scoring context). ``apply_als_weights`` and the weights' trigger
on ``clients`` used to rescore a small client's leads first and remove its queue row last: with a
rescore of the same client under way, each waited for the other (SQLSTATE 40P01, reproduced in a
review). Here the rescore holds the queue row while the weights are applied in another connection;
the application must wait at the queue row, holding no lead, so the rescore finishes and both commit.
"""
from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
from psycopg.types.json import Jsonb

pytestmark = pytest.mark.db

Conn = psycopg.Connection[tuple[object, ...]]
W_IN_FORCE = {"data_quality": 0.10, "authority": 0.40, "company_fit": 0.20, "timing": 0.15}
W_NEW = {"data_quality": 0.12, "authority": 0.38, "company_fit": 0.20, "timing": 0.15}


@pytest.fixture(params=["small", "large"])
def queued_client(request: pytest.FixtureRequest, conn: Conn,
                  set_rescore_inline_max: Callable[[int], None]) -> Iterator[tuple[uuid.UUID, bool]]:
    """A client of 2,000 leads scored with W_IN_FORCE and waiting in the queue; large: rescore_inline_max 10."""
    large = request.param == "large"
    client = uuid.uuid4()
    conn.execute("insert into public.clients (id, name) values (%s, 'apply weights locks')", (client,))
    conn.execute("insert into public.leads (client_id, email, title, organization_industry) "
                 "select %s, 'l' || g || '@example.com', 'VP Sales', 'software' from generate_series(1, 2000) as g",
                 (client,))
    conn.execute("select ci_private.apply_als_weights(%s, %s, '{\"applied\": true}')", (client, Jsonb(W_IN_FORCE)))
    conn.execute("insert into ci_private.als_rescore_queue (client_id) values (%s) on conflict do nothing", (client,))
    if large:
        set_rescore_inline_max(10)
    try:
        yield client, large
    finally:
        conn.execute("delete from public.clients where id = %s", (client,))


@pytest.mark.parametrize("weights", [W_IN_FORCE, W_NEW], ids=["same weights", "new weights (the trigger)"])
def test_applying_weights_waits_for_a_rescore_under_way(dsn: str, conn: Conn, queued_client: tuple[uuid.UUID, bool],
                                                        weights: dict[str, float],
                                                        waits_on_a_lock: Callable[[int], bool]) -> None:
    client, large = queued_client
    outcome: dict[str, Any] = {}
    with psycopg.connect(dsn) as rescore, psycopg.connect(dsn) as apply:
        # The rescore's first step, as rescore_if_pending takes it: the queue row.
        rescore.execute("delete from ci_private.als_rescore_queue where client_id = %s", (client,))
        apply_pid = apply.info.backend_pid

        def run_apply() -> None:
            try:
                row = apply.execute("select ci_private.apply_als_weights(%s, %s, '{\"applied\": true}')",
                                    (client, Jsonb(weights))).fetchone()
                apply.commit()
                outcome["result"] = row[0] if row else None
            except psycopg.Error as exc:  # a deadlock would land here
                apply.rollback()
                outcome["error"] = exc.sqlstate

        worker = threading.Thread(target=run_apply)
        worker.start()
        assert waits_on_a_lock(apply_pid), "the application should wait for the queue row"
        # The rescore's second step: every lead of the client (and its context).
        try:
            rescore.execute("select ci_private.rescore_leads(%s)", (client,))
            rescore.commit()
        except psycopg.Error as exc:
            rescore.rollback()
            outcome["rescore_error"] = exc.sqlstate
        worker.join(30)
    assert "error" not in outcome and "rescore_error" not in outcome, outcome
    carried = conn.execute("select count(*) filter (where als_weights_used = %s), count(*) from public.leads "
                           "where client_id = %s", (Jsonb(weights), client)).fetchone()
    queue = conn.execute("select count(*) from ci_private.als_rescore_queue where client_id = %s", (client,)).fetchone()
    if large and weights != W_IN_FORCE:
        # Rescored by the rescore under way with the weights then committed; the new ones are queued.
        assert carried == (0, 2000) and queue == (1,) and outcome["result"]["rescore_queued"] is True
    else:
        assert carried == (2000, 2000) and queue == (0,)


def test_host_inserts_do_not_wait_for_weights_being_applied(dsn: str, conn: Conn) -> None:
    # Migration 20261201110800: the client's row was read FOR UPDATE, which blocks the foreign-key
    # check (FOR KEY SHARE) of every lead and activity the host inserts for the client until the
    # refresh that applies the weights commits.
    client = uuid.uuid4()
    conn.execute("insert into public.clients (id, name) values (%s, 'apply weights, host inserts')", (client,))
    lead = conn.execute("insert into public.leads (client_id, email, title) values (%s, 'h@example.com', 'CEO') "
                        "returning id", (client,)).fetchone()
    assert lead is not None
    applier = psycopg.connect(dsn)
    host = psycopg.connect(dsn)
    try:
        applier.execute("select ci_private.apply_als_weights(%s, %s, '{\"applied\": true}')", (client, Jsonb(W_NEW)))
        host.execute("set lock_timeout = '3s'")
        host.execute("insert into public.activities (client_id, lead_id, channel, action, created_at) "
                     "values (%s, %s, 'email', 'sent', now())", (client, lead[0]))
        host.execute("insert into public.leads (client_id, email) values (%s, 'h2@example.com')", (client,))
        host.commit()
        applier.commit()
    finally:
        applier.close()
        host.close()
        conn.execute("delete from public.clients where id = %s", (client,))
