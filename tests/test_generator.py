"""The data generator writes consistent, deterministic history (real database)."""
from __future__ import annotations

from typing import Any

import psycopg
import pytest

from ci_sidecar.demo import summary_lines, summary_rows
from ci_sidecar.generator import PLANTED, Effects, GeneratorConfig, generate

pytestmark = pytest.mark.db

Conn = psycopg.Connection[Any]


def _fingerprint(conn: Conn, client_id: object) -> list[tuple[Any, ...]]:
    """What a client's history looks like, independent of ids."""
    return conn.execute(
        """
        select l.title, l.status::text, l.organization_employee_count, l.timezone,
               count(a.id), count(a.id) filter (where a.led_to_booking),
               min(a.created_at), max(a.created_at)
        from public.leads as l
        left join public.activities as a on a.lead_id = l.id
        where l.client_id = %s
        group by l.id
        order by l.email
        """,
        (client_id,),
    ).fetchall()


@pytest.fixture(scope="module")
def planted(dsn: str) -> dict[str, Any]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        res = generate(conn, GeneratorConfig(seed=11, clients=1, leads_per_client=800))
        return {"client_id": res.client_ids[0], "result": res}


def test_same_seed_same_history_fresh_ids(conn: Conn, planted: dict[str, Any]) -> None:
    again = generate(conn, GeneratorConfig(seed=11, clients=1, leads_per_client=800))
    assert again.client_ids[0] != planted["client_id"]
    assert _fingerprint(conn, again.client_ids[0]) == _fingerprint(conn, planted["client_id"])


def test_every_booked_lead_with_a_prior_touch_has_exactly_one_mark(conn: Conn, planted: dict[str, Any]) -> None:
    rows = conn.execute(
        """
        select l.id,
               count(a.id) filter (where a.led_to_booking) as marks,
               count(a.id) filter (where ci_private.is_outbound_action(a.action)
                                   and a.created_at <= l.converted_at) as before,
               l.deleted_at is not null as deleted
        from public.leads as l
        left join public.activities as a on a.lead_id = l.id
        where l.client_id = %s and l.status = 'converted'
        group by l.id
        """,
        (planted["client_id"],),
    ).fetchall()
    assert len(rows) > 30
    # A soft-deleted lead carries no mark (soft-deleted rows are ignored everywhere).
    assert all(marks == (1 if before and not deleted else 0) for _, marks, before, deleted in rows)


def test_the_summary_counts_the_marks_present_not_the_backfills_changes(conn: Conn, planted: dict[str, Any]) -> None:
    """The triggers mark the touches while they are copied, so the backfill changes none: the summary's
    "N converting touches marked" is the marks in place (it printed "0 converting touches marked")."""
    row = conn.execute("select count(*) from public.activities where client_id = %s and led_to_booking",
                       (planted["client_id"],)).fetchone()
    assert row is not None and row[0] > 30
    assert planted["result"].clients[0].marks == row[0]
    said: list[str] = []
    res = generate(conn, GeneratorConfig(seed=12, clients=1, leads_per_client=200, progress=said.append))
    present = conn.execute("select count(*) from public.activities where client_id = %s and led_to_booking",
                           (res.client_ids[0],)).fetchone()
    assert present is not None and present[0] > 0 and res.clients[0].marks == present[0]
    assert any(f": {present[0]:,} converting touches marked (" in line for line in said)


def test_both_conversion_paths_and_all_outcomes_occur(conn: Conn, planted: dict[str, Any]) -> None:
    cid = planted["client_id"]
    booked_by_activity = conn.execute(
        "select count(*) from public.activities where client_id = %s and action = 'meeting_booked'", (cid,)
    ).fetchone()
    assert booked_by_activity and booked_by_activity[0] > 5
    statuses = {r[0] for r in conn.execute(
        "select distinct status::text from public.leads where client_id = %s", (cid,)
    ).fetchall()}
    assert {"converted", "in_sequence", "not_interested", "dead", "unsubscribed"} <= statuses
    actions = {r[0] for r in conn.execute(
        "select distinct action from public.activities where client_id = %s", (cid,)
    ).fetchall()}
    assert {"sent", "email_sent", "opened", "meeting_booked"} <= actions


def test_touches_are_sent_in_local_business_hours_across_zones(conn: Conn, planted: dict[str, Any]) -> None:
    rows = conn.execute(
        """
        select date_part('hour', a.created_at at time zone coalesce(l.timezone, c.timezone, k.timezone)) as h,
               date_part('hour', a.created_at at time zone 'UTC') as utc_h,
               coalesce(l.timezone, c.timezone, k.timezone) as zone
        from public.activities as a
        join public.leads as l on l.id = a.lead_id
        left join public.campaigns as c on c.id = l.campaign_id
        join public.clients as k on k.id = l.client_id
        where a.client_id = %s and ci_private.is_outbound_action(a.action)
        """,
        (planted["client_id"],),
    ).fetchall()
    assert all(7 <= h <= 18 for h, _, _ in rows)
    assert len({z for _, _, z in rows}) >= 6
    # In UTC the same sends spread over most of the day.
    assert len({u for _, u, _ in rows}) >= 18


def test_planted_title_converts_more_and_no_effects_does_not(dsn: str) -> None:
    titles = PLANTED["title"]["raw"]

    def rates(effects: Effects) -> tuple[float, float]:
        with psycopg.connect(dsn, autocommit=True) as c:
            res = generate(c, GeneratorConfig(seed=5, clients=1, leads_per_client=3000, effects=effects))
            row = c.execute(
                """
                select avg(ci_private.lead_outcome(status::text)) filter (where title = any(%s)),
                       avg(ci_private.lead_outcome(status::text)) filter (where not title = any(%s))
                from public.leads where client_id = %s
                """,
                (titles, titles, res.client_ids[0]),
            ).fetchone()
            assert row is not None
            return float(row[0]), float(row[1])

    with_effect, rest = rates(Effects.only("title"))
    assert with_effect > 2 * rest
    none_title, none_rest = rates(Effects.none())
    assert abs(none_title - none_rest) < 0.06


def test_soft_deleted_leads_are_said_where_the_counts_are_printed(conn: Conn) -> None:
    """The demo's "2,500 leads copied" and its per-client table (which leaves soft-deleted leads out)
    reconcile: both name the soft-deleted leads."""
    said: list[str] = []
    res = generate(conn, GeneratorConfig(seed=13, clients=1, leads_per_client=400, deleted_share=0.05,
                                         client_name_prefix="Soft-deleted", progress=said.append))
    cid = res.client_ids[0]
    row = conn.execute("select count(*) filter (where deleted_at is not null), count(*) filter "
                       "(where deleted_at is null) from public.leads where client_id = %s", (cid,)).fetchone()
    assert row is not None
    deleted, in_use = int(row[0]), int(row[1])
    assert deleted > 5 and deleted + in_use == 400
    assert res.clients[0].deleted == res.deleted == deleted
    copied = next(line for line in said if "leads copied" in line)
    assert f"400 leads copied ({deleted} soft-deleted, ignored; " in copied

    lines = summary_lines(summary_rows(conn, [cid]))
    assert lines[0].split() == ["client", "leads", "deleted", "booked", "failed", "open", "book", "rate", "touches",
                                "marked"]
    assert lines[1].split()[2:4] == [str(in_use), str(deleted)]
    assert any("soft-deleted" in line and "deleted in the CRM" in line for line in lines)
    # The legend says what the columns mean in words, not by the database's column names.
    assert not any("deleted_at" in line or "led_to_booking" in line for line in lines)
