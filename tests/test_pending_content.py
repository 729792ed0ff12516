"""The content of pending touches: same rows as the released definition, linear whatever the estimates.

Migration 20261201100100 rewrote ci_private.pending_content without joins between its
steps (each distinct derivation input and each distinct snapshot is worked on once, found
by a window instead of a join back). The released body is read from its migration file
and created as pg_temp.pending_content_released; both must return the same rows (as a
multiset) for a client with every kind of content: snapshots shared by many touches,
rendered ones (one per touch), none (derived from subject and preview, some inputs shared),
junk, and touches with nothing at all.

The released body's join-backs were planned as nested loops whenever the statistics had
been gathered with nothing pending (every estimate one row): the first fill of an import
compared every touch with every snapshot. The second test takes the statistics that way,
imports touches with rendered snapshots, and checks that four times the touches cost about
four times the plan's rows (sixteen times when quadratic).
"""
from __future__ import annotations

import re
import uuid
from pathlib import Path
from typing import Any

import psycopg

from .test_plan_robustness import Explained

RELEASED = Path(__file__).resolve().parents[1] / "supabase/migrations/20261201050000_content_off_write_path.sql"

Conn = psycopg.Connection[tuple[Any, ...]]

LEADS_SQL = """
insert into public.leads (id, client_id, first_name, last_name, company, title, organization_industry, status)
select gen_random_uuid(), %(client)s, 'First' || g, 'Last' || g, 'Company ' || (g %% 7), 'Director',
  (array['Dental', 'Legal', 'SaaS'])[1 + g %% 3], 'in_sequence'
from generate_series(1, %(leads)s) as g
"""

# Every kind of content, by the touch's number s and the lead's number g.
TOUCHES_SQL = """
insert into public.activities (client_id, lead_id, channel, action, created_at, subject, content_preview,
  content_snapshot)
select l.client_id, l.id, (array['email', 'linkedin', 'sms'])[1 + s %% 3]::public.channel_type, 'sent',
  timestamptz '2026-05-01' + s * interval '1 day' + g * interval '1 minute',
  case when s in (2, 3) then 'Quick question about ' || l.company end,
  case when s = 2 then 'Hi ' || l.first_name || ', worth 15 minutes to talk about scaling?'
       when s = 3 then 'We help teams like yours.' end,
  case s
    when 0 then jsonb_build_object('subject', 'Template A', 'body', 'Shared body about growth', 'cta', 'book a call')
    when 1 then jsonb_build_object('subject', 'Hi ' || l.first_name, 'body',
      'Rendered for ' || l.first_name || ' ' || l.last_name || ' at ' || l.company, 'pain_points', jsonb_build_array('cost'))
    when 4 then to_jsonb('not an object'::text)
    when 5 then jsonb_build_object('subject', 'Template A', 'body', 'Shared body about growth', 'cta', 'book a call')
  end
from (select l.*, row_number() over (order by l.first_name) as g from public.leads as l where l.client_id = %(client)s) as l
cross join generate_series(0, %(per_lead)s - 1) as s
"""


def released_body() -> str:
    text = RELEASED.read_text()
    match = re.search(
        r"create or replace function ci_private\.pending_content\(p_client_id uuid\).*?\n\$\$;", text, re.DOTALL
    )
    assert match, "the released definition is in its migration"
    return match.group(0).replace("ci_private.pending_content(", "pg_temp.pending_content_released(", 1)


def _client(conn: Conn, leads: int, per_lead: int) -> uuid.UUID:
    client = uuid.uuid4()
    conn.execute("insert into public.clients (id, name) values (%s, 'pending content')", (client,))
    conn.execute(LEADS_SQL, {"client": client, "leads": leads})
    conn.execute(TOUCHES_SQL, {"client": client, "per_lead": per_lead})
    # The kept rows brought up to date (read time): every touch pending.
    conn.execute("select ci_private.sync_lead_touches(%s)", (client,))
    return client


ROWS = "select lead_id, touch_no, touch_id, digest, features::text, label_text from {}(%s)"


def test_same_rows_as_released(tx: Conn) -> None:
    tx.execute(released_body())
    client = _client(tx, 40, 7)
    new = tx.execute(ROWS.format("ci_private.pending_content"), (client,)).fetchall()
    old = tx.execute(ROWS.format("pg_temp.pending_content_released"), (client,)).fetchall()
    assert len(new) == 40 * 7
    assert sorted(map(repr, new)) == sorted(map(repr, old))
    # Every kind took part: shared and rendered keys, derived snapshots, junk, nothing to key.
    digests = [r[3] for r in new]
    assert sum(d is None for d in digests) >= 40, "touches with nothing to key"
    assert len({d for d in digests if d is not None}) > 40, "rendered snapshots"
    derived = tx.execute(
        "select count(*) from ci_private.pending_content(%s) as p where (p.features).derived", (client,)
    ).fetchone()
    junk = tx.execute(
        "select count(*) from ci_private.pending_content(%s) as p where (p.features).junk_reason is not null",
        (client,),
    ).fetchone()
    assert derived is not None and derived[0] >= 80
    assert junk is not None and junk[0] >= 40


def test_first_fill_of_an_import_is_linear(tx: Conn) -> None:
    # Statistics gathered when nothing was pending (this transaction's own view).
    tx.execute("update ci_private.lead_touches set content_key = 0 where content_key is null")
    tx.execute("analyze ci_private.lead_touches")
    explained = Explained(tx)

    def work(leads: int, sql: str) -> float:
        client = _client(tx, leads, 3)
        return explained.work(sql, (client,))

    # The content alone, and the fill that keys it (its update joins the pending touches).
    for sql in ("select count(*) from ci_private.pending_content(%s)", "select ci_private.fill_content_features(%s)"):
        small = work(100, sql)
        large = work(400, sql)
        # Four times the touches: about four times the rows the plans handle (quadratic: sixteen).
        assert large <= 6 * small, (sql, small, large)
