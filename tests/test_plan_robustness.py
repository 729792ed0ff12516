"""Plans that do not depend on luck (issue 15, item 2), at small scale, without timing.

* A bot lead (hundreds of sends to one open lead): the work of each detector, read as
  rows out of auto_explain's EXPLAIN ANALYZE of every statement it runs, grows linearly
  with the bot's touches (quadratic plans, such as HOW's nested loop of its per-position
  rows against its position hazards, fail the ratio), and HOW counts each extra send as
  exactly one more trial.
* A client imported after the last ANALYZE, too small for analyze_stale_tables'
  fifth-changed threshold (everything in one transaction, so neither autovacuum nor the
  statistics counters see it): WHO plans no nested loop over it, and the first refresh
  brings the statistics up to date for it, after which its work is no more than twice
  that of a refresh after ANALYZE.
* A client beside a neighbour with twice its marks: the re-marking reads no unmarked touch of
  another client, and none of its reads of activities is planned for more than ten times what
  it finds (the released body planned half the table).
"""
from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import psycopg

LEADS_SQL = """
insert into public.leads (id, client_id, first_name, last_name, title, organization_industry,
  organization_employee_count, status, converted_at, als_tier, timezone)
select gen_random_uuid(), %(client)s, 'F' || g, 'L' || g,
  (array['Director', 'CEO', 'Manager', 'Engineer'])[1 + g %% 4],
  (array['Dental', 'Legal', 'SaaS'])[1 + g %% 3], 10 + g %% 300,
  (case when g %% 10 = 0 then 'converted' when g %% 10 < 6 then 'unsubscribed' else 'in_sequence' end)::public.lead_status,
  case when g %% 10 = 0 then timestamptz '2026-06-01' + g * interval '1 minute' end,
  (array['hot', 'warm', 'cool', 'cold'])[1 + g %% 4], 'America/New_York'
from generate_series(1, %(leads)s) as g
"""

# Three sends a lead, a day apart, on rotating channels, before any conversion.
TOUCHES_SQL = """
insert into public.activities (client_id, lead_id, channel, action, created_at)
select l.client_id, l.id, (array['email', 'linkedin', 'sms', 'voice'])[1 + (s + h) %% 4]::public.channel_type, 'sent',
  timestamptz '2026-05-01' + (h %% 500) * interval '1 minute' + s * interval '1 day'
from public.leads as l
cross join lateral (select abs(hashtext(l.id::text)) as h) as x
cross join generate_series(0, 2) as s
where l.client_id = %(client)s
"""

BOT_SQL = """
insert into public.activities (client_id, lead_id, channel, action, created_at)
select %(client)s, %(lead)s, (array['email', 'linkedin', 'sms', 'voice'])[1 + g %% 4]::public.channel_type, 'sent',
  timestamptz '2025-01-01' + (g + %(offset)s) * interval '1 hour'
from generate_series(1, %(sends)s) as g
"""

Conn = psycopg.Connection[tuple[Any, ...]]


def _node_work(node: dict[str, Any]) -> float:
    loops = float(node.get("Actual Loops", 1))
    work = float(node.get("Actual Rows", 0)) * loops
    work += float(node.get("Rows Removed by Join Filter", 0)) + float(node.get("Rows Removed by Filter", 0))
    for child in node.get("Plans", []):
        work += _node_work(child)
    return work


def _walk(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield node
    for child in node.get("Plans", []):
        yield from _walk(child)


class Explained:
    """Every statement a call runs, with its plan (auto_explain, as notices)."""

    def __init__(self, conn: Conn) -> None:
        self.conn = conn
        self.plans: list[dict[str, Any]] = []
        self.active = False
        conn.add_notice_handler(self._notice)
        conn.execute("load 'auto_explain'")
        for setting, value in (
            ("auto_explain.log_min_duration", "0"), ("auto_explain.log_analyze", "on"),
            ("auto_explain.log_timing", "off"), ("auto_explain.log_nested_statements", "on"),
            ("auto_explain.log_format", "json"), ("auto_explain.log_level", "notice"),
            ("client_min_messages", "notice"),
        ):
            conn.execute("select set_config(%s, %s, true)", (setting, value))

    def _notice(self, diag: psycopg.errors.Diagnostic) -> None:
        text = diag.message_primary or ""
        if self.active and "plan:" in text:
            self.plans.append(json.loads(text.split("plan:", 1)[1]))

    def run(self, sql: str, params: tuple[Any, ...]) -> list[dict[str, Any]]:
        self.plans = []
        self.active = True
        try:
            self.conn.execute(sql, params)
        finally:
            self.active = False
        return self.plans

    def work(self, sql: str, params: tuple[Any, ...]) -> float:
        # Each statement's own nodes; a statement that calls functions is logged
        # apart from the statements inside them, so nothing is counted twice.
        return sum(_node_work(p["Plan"]) for p in self.run(sql, params))


def _client(conn: Conn, leads: int) -> uuid.UUID:
    client = uuid.uuid4()
    conn.execute("insert into public.clients (id, name) values (%s, 'plan robustness')", (client,))
    conn.execute(LEADS_SQL, {"client": client, "leads": leads})
    conn.execute(TOUCHES_SQL, {"client": client})
    return client


DETECTORS = {
    "reconcile": "select ci_private.reconcile_client_conversions(%s)",
    "who": "select public.detect_who_patterns(%s)",
    "when": "select public.detect_when_patterns(%s)",
    "how": "select public.detect_how_patterns(%s)",
    "refresh": "select public.refresh_conversion_patterns(%s)",
}


def test_bot_lead_adds_linear_work(tx: Conn) -> None:
    client = _client(tx, 150)
    bot = tx.execute(
        "select id from public.leads where client_id = %s and status = 'in_sequence' order by id limit 1", (client,)
    ).fetchone()
    assert bot is not None
    tx.execute("select public.refresh_conversion_patterns(%s)", (client,))
    explained = Explained(tx)

    def measure() -> dict[str, float]:
        return {name: explained.work(sql, (client,)) for name, sql in DETECTORS.items()}

    def trials() -> int:
        row = tx.execute("select public.detect_how_patterns(%s) -> 'metadata' ->> 'trials'", (client,)).fetchone()
        assert row is not None
        return int(row[0])

    base, base_trials = measure(), trials()
    small = 150
    tx.execute(BOT_SQL, {"client": client, "lead": bot[0], "sends": small, "offset": 0})
    with_small, small_trials = measure(), trials()
    tx.execute(BOT_SQL, {"client": client, "lead": bot[0], "sends": 3 * small, "offset": small})
    with_large, large_trials = measure(), trials()

    # An open lead's sends are trials but its last: each extra send is one more trial.
    assert small_trials - base_trials == small
    assert large_trials - base_trials == 4 * small
    # Four times the bot's sends: about four times the extra work (quadratic: sixteen).
    for name in DETECTORS:
        extra_small = with_small[name] - base[name]
        extra_large = with_large[name] - base[name]
        assert extra_large <= 6 * max(extra_small, 50 * small), (name, base[name], with_small[name], with_large[name])


def _estimate(conn: Conn, client: uuid.UUID) -> float:
    row = conn.execute(
        "explain (format json) select 1 from public.leads as l where l.client_id = %s", (client,)
    ).fetchone()
    assert row is not None
    return float(row[0][0]["Plan"]["Plan Rows"])


def _nested_loops(plans: list[dict[str, Any]], predicate: Callable[[dict[str, Any]], bool]) -> list[str]:
    return [
        p.get("Query Text", "")[:80]
        for p in plans
        if predicate(p) and any(n.get("Node Type") == "Nested Loop" for n in _walk(p["Plan"]))
    ]


def test_client_the_statistics_never_saw(tx: Conn) -> None:
    # Statistics taken before the import (in this transaction: they see only what is there).
    for table in ("public.leads", "public.activities", "ci_private.lead_touches"):
        tx.execute(f"analyze {table}")
    client = _client(tx, 1200)
    assert _estimate(tx, client) < 120, "precondition: the statistics do not know the imported client"

    explained = Explained(tx)
    # WHO's whole-client join is planned without nested loops whatever the estimates.
    plans = explained.run("select * from ci_private.who_lead_counts(%s)", (client,))
    assert plans
    assert not _nested_loops(plans, lambda p: "from public.leads as l" in p.get("Query Text", ""))

    # The imported touches' content is computed once, by the first fill (moved off the write
    # path): work of its own, done before the comparison, so that both refreshes do the same work.
    tx.execute("select ci_private.fill_content_features(%s)", (client,))
    first = explained.work(DETECTORS["refresh"], (client,))
    # The first refresh brought the statistics up to date for the client.
    assert _estimate(tx, client) >= 120
    for table in ("public.leads", "public.activities", "ci_private.lead_touches"):
        tx.execute(f"analyze {table}")
    after_analyze = explained.work(DETECTORS["refresh"], (client,))
    assert first <= 2 * after_analyze, (first, after_analyze)


def _activity_scans(plan: dict[str, Any]) -> list[dict[str, Any]]:
    return [n for n in _walk(plan) if n.get("Relation Name") == "activities"]


def _rows_read(node: dict[str, Any]) -> float:
    """Rows a scan node read: its output, filtered-out and rechecked rows, times its loops
    (EXPLAIN reports them per loop)."""
    return (
        float(node.get("Actual Rows", 0)) + float(node.get("Rows Removed by Filter", 0))
        + float(node.get("Rows Removed by Index Recheck", 0))
    ) * float(node.get("Actual Loops", 1))


def test_remark_reads_marks_not_the_host_table(tx: Conn) -> None:
    # A host's activities table holds every client's touches. The re-marking of a client (every
    # refresh's reconciliation) found the marks of its leads, before migration 20261201110400,
    # through `coalesce(led_to_booking, false)`, which the planner estimates at half the table:
    # for a client that is a large part of the table it read every tenant's activities
    # sequentially (0.54-0.63 s of a 3 s refresh at 21,000 leads). Now the plain column gives the
    # planner the true number of marks and it picks a linear plan: the client's leads probed,
    # or the table's marks read.
    client = _client(tx, 5000)  # 15,000 touches, 500 converted leads, a mark each
    neighbour = _client(tx, 10000)  # 30,000 touches, 1,000 marks
    marks = {
        c: tx.execute(
            "select count(*) from public.activities where client_id = %s and led_to_booking", (c,)
        ).fetchone()
        for c in (client, neighbour)
    }
    assert marks[client] == (500,) and marks[neighbour] == (1000,), "precondition: converted leads are marked"
    for table in ("public.leads", "public.activities"):
        tx.execute(f"analyze {table}")
    all_marks = tx.execute("select count(*) from public.activities where led_to_booking").fetchone()
    assert all_marks is not None

    explained = Explained(tx)
    plans = explained.run("select * from ci_private.remark_client(%s)", (client,))
    statement = [p["Plan"] for p in plans if "marked as" in p.get("Query Text", "")]
    assert len(statement) == 1
    scans = _activity_scans(statement[0])
    # No unmarked touch of another client read: its own work (each converted lead's last touch,
    # its marks by client, the marks compared by key: 4 x 500) and at most every mark of the table.
    read = sum(_rows_read(n) for n in scans)
    assert read <= 4 * 500 + all_marks[0], (read, all_marks[0])
    # No read of activities planned for more than ten times what it finds (the previous body's
    # coalesce alone was planned for half the table).
    overestimated = [
        (n.get("Node Type"), n.get("Index Name"), n.get("Plan Rows"), n.get("Actual Rows"))
        for n in scans
        if float(n.get("Plan Rows", 0)) > 10 * float(n.get("Actual Rows", 0)) + 100
    ]
    assert not overestimated, overestimated
