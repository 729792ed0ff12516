"""The shared per-touch relation (ci_private.prepare_touches) on generated history.

Also home of the generated clients shared by the WHAT, WHEN and HOW test modules:
each is generated once per test run (module cache below), so the four modules
pay for generation once.
"""
from __future__ import annotations

import datetime as dt
import threading
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
import pytest

from ci_sidecar.generator import Effects, GeneratorConfig, generate

pytestmark = pytest.mark.db

Conn = psycopg.Connection[Any]

PLANTED_SEED = 7
PLANTED_LEADS = 4000
NULL_SEEDS = (101, 102, 103)
NULL_LEADS = 3000


@dataclass(frozen=True)
class ClientSpec:
    seed: int
    leads: int
    effects: Effects
    junk_share: float = 0.0


@dataclass(frozen=True)
class Patterns:
    what: dict[str, Any]
    when: dict[str, Any]
    how: dict[str, Any]


_clients: dict[tuple[str, ClientSpec], uuid.UUID] = {}
_patterns: dict[tuple[str, uuid.UUID], Patterns] = {}


def client_for(dsn: str, spec: ClientSpec) -> uuid.UUID:
    """A generated client for spec, generated once per test run."""
    key = (dsn, spec)
    if key not in _clients:
        cfg = GeneratorConfig(
            seed=spec.seed, clients=1, leads_per_client=spec.leads, effects=spec.effects,
            junk_share=spec.junk_share, client_name_prefix=f"issue 4 seed {spec.seed}",
        )
        with psycopg.connect(dsn, autocommit=True) as conn:
            _clients[key] = generate(conn, cfg).client_ids[0]
    return _clients[key]


def patterns_for(dsn: str, client_id: uuid.UUID) -> Patterns:
    """WHAT, WHEN and HOW of a client, computed once, in one statement (one shared relation)."""
    key = (dsn, client_id)
    if key not in _patterns:
        with psycopg.connect(dsn, autocommit=True) as conn:
            row = conn.execute(
                "select public.detect_what_patterns(%s), public.detect_when_patterns(%s),"
                " public.detect_how_patterns(%s)",
                (client_id, client_id, client_id),
            ).fetchone()
        assert row is not None
        _patterns[key] = Patterns(row[0], row[1], row[2])
    return _patterns[key]


def planted_spec() -> ClientSpec:
    return ClientSpec(PLANTED_SEED, PLANTED_LEADS, Effects.planted(), junk_share=0.01)


def null_specs() -> list[ClientSpec]:
    return [ClientSpec(seed, NULL_LEADS, Effects.none()) for seed in NULL_SEEDS]


def named(values: list[dict[str, Any]]) -> int:
    """How many segments a winners/losers list names."""
    return len(values)


@pytest.fixture(scope="module")
def planted(dsn: str) -> uuid.UUID:
    return client_for(dsn, planted_spec())


def _relation(conn: Conn, client_id: uuid.UUID, sql: str) -> list[tuple[Any, ...]]:
    """Rows of a query over the relation, prepared in the same transaction."""
    with conn.transaction():
        conn.execute("select ci_private.prepare_touches(%s)", (client_id,))
        return conn.execute(sql).fetchall()


def test_local_day_and_hour_are_read_in_the_leads_zone(conn: Conn, planted: uuid.UUID) -> None:
    rows = _relation(
        conn, planted,
        """
        select a.created_at, coalesce(l.timezone, c.timezone, k.timezone, 'UTC'), t.local_dow, t.local_hour
        from pg_temp.ci_touches as t
        join public.activities as a on a.id = t.touch_id
        join public.leads as l on l.id = a.lead_id
        join public.clients as k on k.id = l.client_id
        left join public.campaigns as c on c.id = l.campaign_id
        where t.position is not null
        """,
    )
    assert len(rows) > 10_000
    zones = Counter(zone for _, zone, _, _ in rows)
    assert len(zones) >= 5, "history spread over several time zones"
    for created_at, zone, dow, hour in rows:
        local = created_at.astimezone(ZoneInfo(zone))
        assert (dow, hour) == ((local.isoweekday() % 7), local.hour)


def test_each_lead_counts_only_with_the_touches_it_received(conn: Conn, planted: uuid.UUID) -> None:
    rows = _relation(
        conn, planted,
        """
        select l.lead_id, l.outcome, t.position, t.booked, t.after_conversion,
          exists (select 1 from public.activities as s
                  where s.lead_id = l.lead_id and s.led_to_booking and s.channel = 'mail')
        from pg_temp.ci_touches as t join pg_temp.ci_touch_leads as l on l.lead_no = t.lead_no
        where t.position is not null
        order by l.lead_id, t.position
        """,
    )
    by_lead: dict[uuid.UUID, list[tuple[Any, ...]]] = defaultdict(list)
    for row in rows:
        by_lead[row[0]].append(row)
    seen = Counter[str]()
    for touches in by_lead.values():
        outcome = touches[0][1]
        booked = [t[3] for t in touches if not t[4]]
        if outcome == 1 and touches[0][5]:
            # Its converting touch went out on a channel the detectors skip (junk 'mail').
            seen["converted on a skipped touch"] += 1
            assert booked.count(1) == 0
        elif outcome == 1:
            seen["converted"] += 1
            # Trials up to the converting touch; exactly one success, the last one.
            assert booked.count(1) == 1 and booked[-1] == 1 and set(booked[:-1]) <= {0}
        elif outcome == 0:
            seen["failed"] += 1
            assert booked == [0] * len(touches)
        else:
            seen["open"] += 1
            assert booked[-1] is None and set(booked[:-1]) <= {0}, "the last touch of an open lead is pending"
    assert seen["converted on a skipped touch"] < 10
    assert min(seen["converted"], seen["failed"], seen["open"]) > 50


def test_junk_is_counted_not_fatal(conn: Conn, planted: uuid.UUID) -> None:
    expected = conn.execute(
        """
        select
          count(*) filter (where a.channel = 'mail'),
          count(*) filter (where a.channel <> 'mail' and a.content_snapshot is not null
                           and jsonb_typeof(a.content_snapshot) <> 'object'),
          count(*) filter (where a.channel <> 'mail' and a.content_snapshot ->> 'subject' = ''
                           and a.content_snapshot ->> 'body' = ''),
          count(*) filter (where a.channel <> 'mail' and length(a.content_snapshot ->> 'subject') > 100000),
          count(*) filter (where a.channel <> 'mail' and a.content_snapshot -> 'word_count' = '"many"')
        from public.activities as a join public.leads as l on l.id = a.lead_id
        where a.client_id = %s and l.deleted_at is null and ci_private.is_outbound_action(a.action)
        """,
        (planted,),
    ).fetchone()
    assert expected is not None and min(expected) > 0
    skipped = _relation(conn, planted, "select skipped from pg_temp.ci_touch_meta")[0][0]
    assert skipped["unknown_channel"] == expected[0]
    content = _relation(conn, planted, f"select ci_private.what_patterns('{planted}'::uuid) -> 'skipped'")[0][0]
    assert content["junk_by_reason"] == {
        "not_object": expected[1], "empty": expected[2], "oversized": expected[3], "wrong_type": expected[4],
    }


def test_touches_without_a_snapshot_get_a_derived_one(conn: Conn, planted: uuid.UUID) -> None:
    # Derived when the refresh fills the content (never on the host's write),
    # kept as the touch's content key, not written back into activities.
    conn.execute("select ci_private.fill_content_features(%s)", (planted,))
    row = conn.execute(
        """
        select
          count(*) filter (where (k.features).derived),
          count(*) filter (where (k.features).derived and (k.features).subject like '%%{company}%%'),
          count(*) filter (where k.key is null and t.channel <= 3),
          count(*) filter (where a.content_snapshot ->> 'derived' = 'true')
        from ci_private.lead_touches as t
        inner join public.activities as a on a.id = t.touch_id
        left join ci_private.content_keys as k on k.key = t.content_key
        where t.client_id = %s and a.content_snapshot is null
        """,
        (planted,),
    ).fetchone()
    assert row is not None
    derived, templated, missing, stored = row
    assert derived > 1000, "the host-style touches (no snapshot) got derived ones"
    assert templated > 100, "rendered subjects went back to their {company} template"
    assert missing == 0
    assert stored == 0, "the host's rows are not rewritten"


def test_local_time_is_exact_across_a_dst_change(conn: Conn) -> None:
    client = conn.execute(
        "insert into public.clients (name, timezone) values ('issue 4 dst', 'America/New_York') returning id"
    ).fetchone()
    assert client is not None
    lead = conn.execute(
        "insert into public.leads (client_id, first_name, timezone) values (%s, 'dst', 'Europe/London') returning id",
        (client[0],),
    ).fetchone()
    assert lead is not None
    times = [dt.datetime(2026, 3, 28, 9, 30, tzinfo=dt.UTC), dt.datetime(2026, 3, 30, 9, 30, tzinfo=dt.UTC)]
    for at in times:
        conn.execute(
            "insert into public.activities (client_id, lead_id, channel, action, created_at)"
            " values (%s, %s, 'email', 'sent', %s)",
            (client[0], lead[0], at),
        )
    rows = _relation(conn, client[0], "select local_hour from pg_temp.ci_touches order by position")
    assert [r[0] for r in rows] == [9, 10], "GMT before the change, BST after"


@pytest.mark.parametrize("earlier_touches", [1, 0], ids=["lead with touches", "new lead"])
def test_concurrent_sends_to_one_lead_both_land(dsn: str, conn: Conn, earlier_touches: int) -> None:
    client = conn.execute("insert into public.clients (name) values ('issue 4 concurrent') returning id").fetchone()
    assert client is not None
    lead = conn.execute(
        "insert into public.leads (client_id, first_name) values (%s, 'both') returning id", (client[0],)
    ).fetchone()
    assert lead is not None
    send = (
        "insert into public.activities (client_id, lead_id, channel, action, created_at)"
        " values (%s, %s, %s, 'sent', %s)"
    )
    if earlier_touches:
        conn.execute(send, (client[0], lead[0], "email", dt.datetime(2026, 4, 1, 9, tzinfo=dt.UTC)))

    first = psycopg.connect(dsn)
    second = psycopg.connect(dsn)
    try:
        first.execute(send, (client[0], lead[0], "sms", dt.datetime(2026, 4, 2, 9, tzinfo=dt.UTC)))
        # A send writes no kept row (they are brought up to date when read):
        # the second writer does not wait for the first.
        errors: list[psycopg.Error] = []

        def write_second() -> None:
            try:
                second.execute(send, (client[0], lead[0], "voice", dt.datetime(2026, 4, 3, 9, tzinfo=dt.UTC)))
            except psycopg.Error as exc:  # pragma: no cover - reported below
                errors.append(exc)

        writer = threading.Thread(target=write_second)
        writer.start()
        writer.join(timeout=10)
        assert not writer.is_alive() and not errors, "the second writer does not wait for the first"
        first.commit()
        second.commit()
    finally:
        first.close()
        second.close()

    conn.execute("select ci_private.sync_lead_touches(%s)", (client[0],))
    row = conn.execute(
        "select ci_private.sequence_channels(max(t.sequence_code), count(*)::integer)"
        " from ci_private.lead_touches as t where t.lead_id = %s",
        (lead[0],),
    ).fetchone()
    expected = ["email", "sms", "voice"][1 - earlier_touches:]
    assert row == (expected,), "neither concurrent send is lost"
    in_step = conn.execute("select ci_private.ensure_lead_touches(%s, true)", (client[0],)).fetchone()
    assert in_step == (0,)
