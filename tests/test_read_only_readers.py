"""The layer's readers in a read-only transaction (a PostgREST GET, a hot standby, BEGIN READ ONLY).

WHO brings the kept per-lead touches up to date before it reads them. A read-only transaction cannot
write them, so there WHO takes each lead's first touch from the activities instead (migration
20261201110200): the same answer as a read-write call, whatever the kept rows missed (sends since the
last read, an import never read, a merge). WHAT, WHEN and HOW build temporary tables, which a
read-only transaction cannot create: they refuse with SQLSTATE 25006 and a hint that says what to do.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg import errors

from ci_sidecar.generator import GeneratorConfig, generate

pytestmark = pytest.mark.db

Conn = psycopg.Connection[tuple[object, ...]]


def delete_client(c: Conn, client: uuid.UUID) -> None:
    c.execute("delete from public.activities where client_id = %s", (client,))
    c.execute("delete from public.leads where client_id = %s", (client,))
    c.execute("delete from public.clients where id = %s", (client,))


@pytest.fixture(scope="module")
def client(dsn: str) -> Iterator[uuid.UUID]:
    """A generated, refreshed client; deleted afterwards."""
    with psycopg.connect(dsn, autocommit=True) as c:
        cid = uuid.UUID(str(generate(c, GeneratorConfig(seed=131, clients=1, leads_per_client=300,
                                                         client_name_prefix="read-only readers")).client_ids[0]))
        c.execute("select public.refresh_conversion_patterns(%s)", (cid,))
        yield cid
        delete_client(c, cid)


def who(conn: Conn, client: uuid.UUID) -> dict[str, Any]:
    row = conn.execute("select public.detect_who_patterns(%s)", (client,)).fetchone()
    assert row is not None and isinstance(row[0], dict)
    return {k: v for k, v in row[0].items() if k != "computed_at"}


def kept_rows(conn: Conn, client: uuid.UUID) -> int:
    row = conn.execute("select count(*) from ci_private.lead_touches where client_id = %s", (client,)).fetchone()
    assert row is not None
    return int(str(row[0]))


def who_read_only(dsn: str, client: uuid.UUID) -> tuple[dict[str, Any], int]:
    """WHO in a read-only transaction, and the kept rows it left (it writes none)."""
    with psycopg.connect(dsn) as ro:
        ro.read_only = True
        got = who(ro, client)
        kept = kept_rows(ro, client)
        ro.rollback()
    return got, kept


def test_who_after_a_send_in_a_read_only_transaction(dsn: str, client: uuid.UUID) -> None:
    with psycopg.connect(dsn, autocommit=True) as c:
        before = who(c, client)
        kept = kept_rows(c, client)
        lead = uuid.uuid4()
        c.execute("insert into public.leads (id, client_id, email, title, organization_industry, status) "
                  "values (%s, %s, 'ro@example.com', 'VP Sales', 'software', 'dead')", (lead, client))
        # The lead's first send, committed: the kept rows do not have it yet.
        c.execute("insert into public.activities (client_id, lead_id, channel, action, created_at, subject) "
                  "values (%s, %s, 'email', 'sent', now() - interval '1 day', 'First touch')", (client, lead))
    got, kept_after = who_read_only(dsn, client)  # failed with "cannot execute DELETE ..." before
    assert kept_after == kept
    with psycopg.connect(dsn, autocommit=True) as c:
        after = who(c, client)  # read-write: brings the kept rows up to date
        assert kept_rows(c, client) == kept + 1
    assert after["sample_size"] == before["sample_size"] + 1
    assert got == after


def test_who_of_an_import_never_read_in_a_read_only_transaction(dsn: str) -> None:
    """Leads and sends written straight in (an import): no kept rows yet, WHO still counts them."""
    cid = uuid.uuid4()
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute("insert into public.clients (id, name, icp_industries) values (%s, 'read-only import', '{software}')",
                  (cid,))
        try:
            c.execute(
                "insert into public.leads (client_id, email, title, organization_industry, organization_employee_count, "
                "status) select %s, 'i' || g || '@example.com', (array['CEO', 'VP Sales', 'Manager', 'Intern'])[1 + g %% 4], "
                "(array['software', 'retail', 'fintech'])[1 + g %% 3], 10 + g, "
                "(array['converted', 'dead', 'not_interested', 'in_sequence', 'dead'])[1 + g %% 5]::public.lead_status "
                "from generate_series(1, 300) as g", (cid,))
            c.execute(
                "insert into public.activities (client_id, lead_id, channel, action, created_at) "
                "select l.client_id, l.id, (array['email', 'linkedin', 'sms'])[1 + n %% 3]::public.channel_type, 'sent', "
                "timestamptz '2026-09-01' + (n * 2 + length(l.email)) * interval '1 day' "
                "from public.leads as l cross join generate_series(1, 3) as n "
                "where l.client_id = %s and l.email not like '%%7@example.com'", (cid,))
            got, kept = who_read_only(dsn, cid)
            assert kept == 0
            want = who(c, cid)
            assert want["sample_size"] > 200
            assert got == want
        finally:
            delete_client(c, cid)


def test_who_after_a_merge_in_a_read_only_transaction(dsn: str, client: uuid.UUID) -> None:
    """A merge moves a lead's sends to another lead (insert, then delete): read-only WHO sees them where they are."""
    with psycopg.connect(dsn, autocommit=True) as c:
        who(c, client)  # kept rows up to date
        row = c.execute(
            "select l.id from public.leads as l where l.client_id = %s and l.status = 'dead' and l.deleted_at is null "
            "and exists (select 1 from public.activities as a where a.lead_id = l.id and a.action = 'sent') "
            "order by l.id limit 1", (client,)).fetchone()
        assert row is not None
        loser = row[0]
        winner = uuid.uuid4()
        c.execute("insert into public.leads (id, client_id, email, title, organization_industry, status) "
                  "values (%s, %s, 'merged@example.com', 'CEO', 'software', 'dead')", (winner, client))
        # Merged as many hosts do it: the sends copied to the winner, then deleted from the loser.
        c.execute("insert into public.activities (client_id, lead_id, channel, action, created_at, subject) "
                  "select client_id, %s, channel, action, created_at, subject from public.activities "
                  "where lead_id = %s", (winner, loser))
        c.execute("delete from public.activities where lead_id = %s", (loser,))
        c.execute("update public.leads set deleted_at = now() where id = %s", (loser,))
    got, _ = who_read_only(dsn, client)
    with psycopg.connect(dsn, autocommit=True) as c:
        want = who(c, client)
    assert got == want


@pytest.mark.parametrize("detector", ["detect_what_patterns", "detect_when_patterns", "detect_how_patterns"])
def test_touch_detectors_refuse_a_read_only_transaction_with_a_clear_error(
        dsn: str, client: uuid.UUID, detector: str) -> None:
    with psycopg.connect(dsn) as ro:
        ro.read_only = True
        with pytest.raises(errors.ReadOnlySqlTransaction) as caught:
            ro.execute(f"select public.{detector}(%s)", (client,))
        diag = caught.value.diag
        assert diag.message_primary is not None and "read-only transaction" in diag.message_primary
        assert diag.message_hint is not None and "POST, not GET" in diag.message_hint
    with psycopg.connect(dsn, autocommit=True) as c:  # read-write: it runs
        row = c.execute(f"select public.{detector}(%s)", (client,)).fetchone()
        assert row is not None and isinstance(row[0], dict) and row[0]["type"] in ("what", "when", "how")
