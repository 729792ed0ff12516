"""The whole-client reconciliation derives exactly what the per-lead derivation derives.

Migration 20261201100200 reads a whole client set-based (ci_private.derive_client_conversions
and ci_private.remark_client) instead of passing every lead id to derive_conversions. Hypothesis
draws messy states written with the layer's triggers off, as a host's bulk load or a restore
leaves them: leads converted or not, with converted_at null, finite or infinite, deleted or
not, with or without a status path (ci_private.lead_conversion_status) and an un-conversion
time; activities of every kind (sends, bookings, others) at shared, finite and infinite
times, marked true, false or null, some filed under another client. Both derivations run on
the same state (each rolled back to a savepoint) and must leave the same leads, the same
marks and the same status paths, and return the same counts.
"""
from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

Conn = psycopg.Connection[tuple[Any, ...]]

# A small pool of times, so that ties (a booking at converted_at, sends at the same time) occur.
TIMES = [None, "-infinity", "infinity", "2026-03-01 10:00+00", "2026-03-02 10:00+00", "2026-03-03 10:00+00",
         "2026-03-03 10:00:00.000001+00", "2026-03-05 09:00+00"]
FINITE_TIMES = TIMES[3:]
STATUSES = ["converted", "converted", "in_sequence", "dead", "new"]
ACTIONS = ["sent", "email_sent", "sms_sent", "meeting_booked", "converted", "opened", "send_failed"]

activity = st.fixed_dictionaries({
    "action": st.sampled_from(ACTIONS),
    "at": st.sampled_from(["-infinity", "infinity"] + FINITE_TIMES),
    "mark": st.sampled_from([None, True, False]),
    "elsewhere": st.sampled_from([False, False, False, True]),
})
lead = st.fixed_dictionaries({
    "status": st.sampled_from(STATUSES),
    "converted_at": st.sampled_from(TIMES),
    "updated_at": st.sampled_from(FINITE_TIMES),
    "deleted": st.sampled_from([False, False, True]),
    "path": st.one_of(st.none(), st.tuples(st.sampled_from([None] + FINITE_TIMES), st.sampled_from([None] + FINITE_TIMES))),
    "activities": st.lists(activity, max_size=6),
})


@pytest.fixture(scope="module")
def tx(dsn: str) -> Iterator[Conn]:
    """One transaction for the module, the layer's triggers off in it; rolled back."""
    with psycopg.connect(dsn) as connection:
        connection.execute("alter table public.leads disable trigger user")
        connection.execute("alter table public.activities disable trigger user")
        try:
            yield connection
        finally:
            connection.rollback()


def _state(conn: Conn, client: uuid.UUID, other: uuid.UUID) -> tuple[Any, ...]:
    leads = conn.execute(
        "select id, status::text, converted_at::text from public.leads where client_id = %s order by id", (client,)
    ).fetchall()
    marks = conn.execute(
        "select id, led_to_booking from public.activities where client_id = any(%s) order by id", ([client, other],)
    ).fetchall()
    paths = conn.execute(
        "select lead_id, status_converted_at::text, unconverted_at::text from ci_private.lead_conversion_status"
        " where client_id = %s order by lead_id", (client,)
    ).fetchall()
    return leads, marks, paths


@settings(max_examples=150, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(leads=st.lists(lead, min_size=1, max_size=5))
def test_whole_client_equals_per_lead(tx: Conn, leads: list[dict[str, Any]]) -> None:
    tx.execute("savepoint example")
    try:
        client, other = uuid.uuid4(), uuid.uuid4()
        tx.execute("insert into public.clients (id, name) values (%s, 'whole client'), (%s, 'other')", (client, other))
        for spec in leads:
            lead_id = uuid.uuid4()
            tx.execute(
                "insert into public.leads (id, client_id, first_name, status, converted_at, updated_at, deleted_at)"
                " values (%s, %s, 'x', %s::public.lead_status, %s::timestamptz, %s::timestamptz,"
                " case when %s then timestamptz '2026-04-01' end)",
                (lead_id, client, spec["status"], spec["converted_at"], spec["updated_at"], spec["deleted"]),
            )
            if spec["path"] is not None:
                tx.execute(
                    "insert into ci_private.lead_conversion_status (lead_id, client_id, status_converted_at,"
                    " unconverted_at) values (%s, %s, %s::timestamptz, %s::timestamptz)",
                    (lead_id, client, spec["path"][0], spec["path"][1]),
                )
            for act in spec["activities"]:
                tx.execute(
                    "insert into public.activities (client_id, lead_id, channel, action, created_at, led_to_booking)"
                    " values (%s, %s, 'email', %s, %s::timestamptz, %s)",
                    (other if act["elsewhere"] else client, lead_id, act["action"], act["at"], act["mark"]),
                )
        tx.execute("savepoint derive")
        released = tx.execute(
            "select ci_private.derive_conversions("
            " array(select id from public.leads where client_id = %s), false, %s)", (client, client)
        ).fetchone()
        released_state = _state(tx, client, other)
        tx.execute("rollback to savepoint derive")
        whole = tx.execute("select ci_private.derive_client_conversions(%s)", (client,)).fetchone()
        whole_state = _state(tx, client, other)
        assert whole_state == released_state
        assert whole == released
        # A soft-deleted lead carries no mark (contract: ignored everywhere; migration 20261201110900).
        stale = tx.execute(
            "select count(*) from public.activities as a join public.leads as l on l.id = a.lead_id"
            " where l.client_id = %s and l.deleted_at is not null and a.led_to_booking", (client,)).fetchone()
        assert stale == (0,)
        # Derived once, nothing is left to correct.
        again = tx.execute("select ci_private.derive_client_conversions(%s)", (client,)).fetchone()
        assert again is not None and not any(again[0].values()), again
    finally:
        tx.execute("rollback to savepoint example")
