"""The layer's readers in a read-only transaction (a PostgREST GET, a hot standby, BEGIN READ ONLY).

WHO brings the kept per-lead touches up to date before it reads them; in a read-only transaction it
cannot write them, so it reads them as the last read-write statement left them (migration
20261201110200). WHAT, WHEN and HOW build temporary tables, which a read-only transaction cannot
create: they refuse with SQLSTATE 25006 and a hint that says what to do instead.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg import errors

from ci_sidecar.generator import GeneratorConfig, generate

Conn = psycopg.Connection[tuple[object, ...]]


@pytest.fixture(scope="module")
def client(dsn: str) -> Iterator[tuple[uuid.UUID, uuid.UUID]]:
    """A refreshed client and one of its leads nobody has contacted yet; deleted afterwards."""
    with psycopg.connect(dsn, autocommit=True) as c:
        cid = uuid.UUID(str(generate(c, GeneratorConfig(seed=131, clients=1, leads_per_client=300,
                                                         client_name_prefix="read-only readers")).client_ids[0]))
        c.execute("select public.refresh_conversion_patterns(%s)", (cid,))
        lead = uuid.uuid4()
        c.execute("insert into public.leads (id, client_id, email, title, organization_industry, status) "
                  "values (%s, %s, 'ro@example.com', 'VP Sales', 'software', 'dead')", (lead, cid))
        yield cid, lead
        c.execute("delete from public.activities where client_id = %s", (cid,))
        c.execute("delete from public.leads where client_id = %s", (cid,))
        c.execute("delete from public.clients where id = %s", (cid,))


def who(conn: Conn, client: uuid.UUID) -> dict[str, Any]:
    row = conn.execute("select public.detect_who_patterns(%s)", (client,)).fetchone()
    assert row is not None and isinstance(row[0], dict)
    return {k: v for k, v in row[0].items() if k != "computed_at"}


def kept_rows(conn: Conn, client: uuid.UUID) -> int:
    row = conn.execute("select count(*) from ci_private.lead_touches where client_id = %s", (client,)).fetchone()
    assert row is not None
    return int(str(row[0]))


def test_who_reads_the_kept_rows_as_they_stand_in_a_read_only_transaction(dsn: str, client: tuple[uuid.UUID, uuid.UUID]) -> None:
    cid, lead = client
    with psycopg.connect(dsn, autocommit=True) as c:
        before = who(c, cid)
        kept = kept_rows(c, cid)
        # The lead's first send, committed: the kept rows do not have it yet.
        c.execute("insert into public.activities (client_id, lead_id, channel, action, created_at, subject) "
                  "values (%s, %s, 'email', 'sent', now() - interval '1 day', 'First touch')", (cid, lead))
    with psycopg.connect(dsn) as ro:
        ro.read_only = True
        got = who(ro, cid)  # failed with "cannot execute DELETE in a read-only transaction" before
        assert kept_rows(ro, cid) == kept
        ro.rollback()
    assert got == before
    with psycopg.connect(dsn, autocommit=True) as c:
        after = who(c, cid)  # read-write: the send is picked up
        assert kept_rows(c, cid) == kept + 1
    assert after["sample_size"] == before["sample_size"] + 1


@pytest.mark.parametrize("detector", ["detect_what_patterns", "detect_when_patterns", "detect_how_patterns"])
def test_touch_detectors_refuse_a_read_only_transaction_with_a_clear_error(
        dsn: str, client: tuple[uuid.UUID, uuid.UUID], detector: str) -> None:
    cid, _ = client
    with psycopg.connect(dsn) as ro:
        ro.read_only = True
        with pytest.raises(errors.ReadOnlySqlTransaction) as caught:
            ro.execute(f"select public.{detector}(%s)", (cid,))
        diag = caught.value.diag
        assert diag.message_primary is not None and "read-only transaction" in diag.message_primary
        assert diag.message_hint is not None and "POST, not GET" in diag.message_hint
    with psycopg.connect(dsn, autocommit=True) as c:  # read-write: it runs
        row = c.execute(f"select public.{detector}(%s)", (cid,)).fetchone()
        assert row is not None and row[0]["type"] in ("what", "when", "how")
