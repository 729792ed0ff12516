"""Reconciliation (issue 13): what the triggers cannot see, the refresh puts right.

A send committed concurrently with the conversion: session 2 inserts a touch
and has not committed, session 1 converts the lead, session 2 commits. Neither
transaction's trigger saw the other's row, so the mark is on the wrong touch;
the next refresh reconciles first, moves it, and records the correction in its
result, the run's detail and every stored pattern's metadata.
"""
from __future__ import annotations

import threading
import uuid
from typing import Any

import psycopg
import pytest

pytestmark = pytest.mark.db

Conn = psycopg.Connection[Any]


def _marked(conn: Conn, lead: uuid.UUID) -> list[str]:
    rows = conn.execute(
        "select channel::text from public.activities where lead_id = %s and led_to_booking order by id", (lead,)
    ).fetchall()
    return [r[0] for r in rows]


def test_concurrent_send_is_reconciled_by_refresh(dsn: str) -> None:
    client, lead = uuid.uuid4(), uuid.uuid4()
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("insert into public.clients (id, name) values (%s, 'concurrent send')", (client,))
        conn.execute("insert into public.leads (id, client_id, status) values (%s, %s, 'in_sequence')", (lead, client))
        conn.execute(
            "insert into public.activities (client_id, lead_id, channel, action, created_at)"
            " values (%s, %s, 'email', 'sent', '2026-09-01 10:00+00')",
            (client, lead),
        )
        try:
            with psycopg.connect(dsn) as session2:
                session2.execute(
                    "insert into public.activities (client_id, lead_id, channel, action, created_at)"
                    " values (%s, %s, 'sms', 'sent', '2026-09-01 11:00+00')",
                    (client, lead),
                )
                errors: list[psycopg.Error] = []

                def session1() -> None:
                    try:
                        with psycopg.connect(dsn, autocommit=True) as s1:
                            s1.execute(
                                "update public.leads set status = 'converted', converted_at = '2026-09-01 12:00+00'"
                                " where id = %s",
                                (lead,),
                            )
                    except psycopg.Error as exc:  # pragma: no cover - reported below
                        errors.append(exc)

                worker = threading.Thread(target=session1)
                worker.start()
                worker.join(0.5)
                session2.commit()
                worker.join(30)
                assert not worker.is_alive() and not errors, errors

            # Neither trigger saw the other's row: the 10:00 email is marked, not the 11:00 SMS.
            assert _marked(conn, lead) == ["email"]

            result = conn.execute("select public.refresh_conversion_patterns(%s)", (client,)).fetchone()
            assert result is not None
            reconciled = result[0]["reconciled"]
            assert reconciled["marks_added"] == 1 and reconciled["marks_removed"] == 1, reconciled
            assert _marked(conn, lead) == ["sms"]
            kept = conn.execute(
                "select led_to_booking from ci_private.lead_touches where lead_id = %s order by touch_no", (lead,)
            ).fetchall()
            assert [k[0] for k in kept] == [False, True]

            detail = conn.execute(
                "select detail -> 'reconciled' from public.conversion_refresh_runs where client_id = %s", (client,)
            ).fetchone()
            assert detail is not None and detail[0] == reconciled
            for pattern_type, metadata in conn.execute(
                "select pattern_type, patterns -> 'metadata' from public.conversion_patterns where client_id = %s",
                (client,),
            ):
                assert metadata["reconciled"] == reconciled, pattern_type
                # The detector's own metadata is kept beside it (merged, not replaced).
                if pattern_type in ("what", "when", "how"):
                    assert len(metadata) > 1, (pattern_type, metadata)

            again = conn.execute("select public.reconcile_conversions(%s)", (client,)).fetchone()
            assert again is not None
            assert {k: v for k, v in again[0].items() if k != "client_id" and v} == {}
        finally:
            conn.execute("delete from public.clients where id = %s", (client,))
