"""Upgrading from every earlier release gives a fresh install's schema and loses no data.

A release is the files `supabase/released.sha256` lists up to its last version
(`supabase/releases.txt`). The test
pushes them (with the real Supabase CLI, through scripts/migrate.sh) into a scratch
database, writes history the way a host does (plain inserts and status changes, then
a refresh through the public API), pushes the current migrations on top, and checks:
  - every table, column, constraint, index, trigger, policy, function (by its body's
    md5, result, language, volatility, security, settings, grants, owner), enum value,
    schema and default privilege equals what a fresh install of the current migrations
    has;
  - every row that existed before still exists (by primary key), the host's own
    columns of its rows are unchanged, and the append-only history is unchanged.
With no migration newer than the release, the upgrade is a no-op and the check still
runs: it proves the release files alone build the same schema as the repository.
"""
from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from psycopg import sql

from tests.test_migrations import (
    HOST_COLUMNS,
    Conn,
    ScratchDb,
    ScratchFactory,
    catalog_snapshot,
    connect,
    user_snapshot_schemas,
    vanished,
)
from tests.test_releases import released

pytestmark = pytest.mark.db

ROOT = Path(__file__).resolve().parent.parent

# Columns of host tables that the layer computes (scores): an upgrade may recompute them.
DERIVED_HOST_COLUMNS = frozenset({
    "als_score", "als_tier", "als_data_quality", "als_authority", "als_company_fit", "als_timing", "als_risk",
    "updated_at",
})

HISTORY_SQL = """
insert into public.clients (id, name, icp_industries, timezone)
select ('00000000-0000-4000-8000-00000000000' || c)::uuid, 'Upgrade client ' || c, array['Dental'], 'Europe/Berlin'
from generate_series(1, 2) as c;

insert into public.leads (id, client_id, title, organization_industry, organization_employee_count,
                          email, email_verified, status, created_at)
select ('10000000-0000-4000-8000-' || lpad((c * 1000 + i)::text, 12, '0'))::uuid,
       ('00000000-0000-4000-8000-00000000000' || c)::uuid,
       (array['CEO', 'VP Marketing', 'Office Manager', 'Intern'])[1 + i % 4],
       (array['Dental', 'Legal', 'Retail'])[1 + i % 3],
       5 + i % 300, 'lead' || i || '@example.test', i % 2 = 0, 'in_sequence',
       timestamptz '2026-09-01 09:00+00' + i * interval '1 hour'
from generate_series(1, 2) as c, generate_series(1, 150) as i;

insert into public.activities (client_id, lead_id, channel, action, subject, created_at)
select l.client_id, l.id, (array['email', 'linkedin', 'email', 'sms'])[k]::public.channel_type,
       'sent', 'Question about {company} ' || k, l.created_at + k * interval '2 days'
from public.leads as l, generate_series(1, 4) as k;

-- Bookings by both paths, failures, open leads.
insert into public.activities (client_id, lead_id, channel, action, created_at)
select l.client_id, l.id, 'email', 'meeting_booked', l.created_at + interval '5 days'
from public.leads as l where right(l.id::text, 2)::int % 7 = 0;
update public.leads set status = 'converted'
where right(id::text, 2)::int % 11 = 0 and status <> 'converted';
update public.leads set status = 'unsubscribed'
where right(id::text, 2)::int % 3 = 0 and status <> 'converted';
update public.leads set status = 'bounced', bounce_count = 1
where right(id::text, 2)::int % 5 = 1 and status <> 'converted';
"""


def migrate_from(db: ScratchDb, workdir: Path) -> str:
    """scripts/migrate.sh on db, pushing the supabase/migrations found under workdir."""
    proc = subprocess.run(
        ["bash", str(ROOT / "scripts" / "migrate.sh"), db.url],
        cwd=ROOT, capture_output=True, text=True, timeout=900, check=False,
        env={**os.environ, "CI_MIGRATIONS_ROOT": str(workdir)},
    )
    output = proc.stdout + proc.stderr
    if proc.returncode != 0:
        pytest.fail(f"scripts/migrate.sh from {workdir} failed on {db.name}:\n{output}")
    return output


def primary_keys(conn: Conn) -> dict[str, frozenset[str]]:
    """Every row of every table with a primary key, as the key's text, per table (cron excluded)."""
    tables = conn.execute(
        """
        select n.nspname, c.relname, pg_get_constraintdef(co.oid)
        from pg_constraint as co
        join pg_class as c on c.oid = co.conrelid
        join pg_namespace as n on n.oid = c.relnamespace
        where co.contype = 'p' and n.nspname = any(%s)
        """,
        (user_snapshot_schemas(conn),),
    ).fetchall()
    out: dict[str, frozenset[str]] = {}
    for schema, table, definition in tables:
        columns = str(definition).removeprefix("PRIMARY KEY (").removesuffix(")")
        cols = [c.strip().strip('"') for c in columns.split(",")]
        query = sql.SQL("select row({})::text from {}").format(
            sql.SQL(", ").join(sql.Identifier(c) for c in cols), sql.Identifier(str(schema), str(table))
        )
        out[f"{schema}.{table}"] = frozenset(str(r[0]) for r in conn.execute(query).fetchall())
    return out


def host_rows(conn: Conn) -> dict[str, frozenset[str]]:
    """The host's own columns of every host row (the layer's derived scores left out)."""
    out: dict[str, frozenset[str]] = {}
    for table, cols in sorted(HOST_COLUMNS.items()):
        kept = sorted(cols - DERIVED_HOST_COLUMNS)
        query = sql.SQL("select row_to_json(x)::text from (select {} from {}) as x").format(
            sql.SQL(", ").join(sql.Identifier(c) for c in kept), sql.Identifier("public", table)
        )
        out[table] = frozenset(str(r[0]) for r in conn.execute(query).fetchall())
    history = conn.execute(
        "select row_to_json(h)::text from public.conversion_pattern_history as h"
    ).fetchall()
    out["conversion_pattern_history"] = frozenset(str(r[0]) for r in history)
    return out


@pytest.fixture(scope="module")
def scratch(dsn: str) -> Iterator[ScratchFactory]:
    factory = ScratchFactory(dsn)
    try:
        yield factory
    finally:
        factory.drop_all()


def releases() -> list[tuple[str, str]]:
    """(release, last migration version it includes), oldest first (supabase/releases.txt)."""
    out = []
    for line in (ROOT / "supabase" / "releases.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, last = line.split()
            out.append((name, last))
    return out


def test_releases_cover_the_manifest() -> None:
    listed = sorted(p.name.split("_", 1)[0] for _, p in released())
    assert releases(), "no release recorded"
    assert releases()[-1][1] == listed[-1], "the last release must end at the manifest's last file"
    assert [last for _, last in releases()] == sorted(last for _, last in releases())
    assert all(last in listed for _, last in releases())


@pytest.fixture(scope="module", params=[name for name, _ in releases()])
def release_root(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding exactly one release's migrations (those of the manifest up to its last
    version), checked against the manifest."""
    last = dict(releases())[request.param]
    root = tmp_path_factory.mktemp(f"release-{request.param}")
    target = root / "supabase" / "migrations"
    target.mkdir(parents=True)
    for _digest, path in released():
        if path.name.split("_", 1)[0] <= last:
            shutil.copy2(path, target / path.name)
    check = subprocess.run(
        ["sha256sum", "--check", "--quiet", "--strict", str(ROOT / "supabase" / "released.sha256")],
        cwd=ROOT, capture_output=True, text=True, check=False,
    )
    assert check.returncode == 0, check.stdout + check.stderr
    return root


def test_upgrade_from_previous_release_equals_fresh_install(
    scratch: ScratchFactory, release_root: Path
) -> None:
    fresh = scratch.create("fresh")
    migrate_from(fresh, ROOT)

    old = scratch.create("upgrade")
    migrate_from(old, release_root)
    with connect(old) as conn:
        conn.execute(HISTORY_SQL)
        for (client,) in conn.execute("select id from public.clients order by id").fetchall():
            result = conn.execute("select public.refresh_conversion_patterns(%s)", (client,)).fetchone()
            assert result is not None and result[0]["status"] == "ok", result
        keys_before = primary_keys(conn)
        rows_before = host_rows(conn)
        booked = conn.execute("select count(*) from public.leads where status = 'converted'").fetchone()
        assert booked is not None and booked[0] > 20, "the history must hold bookings"
        assert len(rows_before["conversion_pattern_history"]) == 8

    output = migrate_from(old, ROOT)
    new_files = sorted({p.name for p in (ROOT / "supabase" / "migrations").glob("*.sql")}
                       - {p.name for p in (release_root / "supabase" / "migrations").glob("*.sql")})
    for name in new_files:
        assert f"Applying migration {name}" in output, f"{name} was not applied by the upgrade:\n{output}"

    with connect(old) as upgraded, connect(fresh) as installed:
        schemas = user_snapshot_schemas(installed)
        assert user_snapshot_schemas(upgraded) == schemas
        want = catalog_snapshot(installed, schemas)
        got = catalog_snapshot(upgraded, schemas)
        assert vanished(want, got) == {}, "a fresh install has objects the upgrade lacks or differ"
        assert vanished(got, want) == {}, "the upgrade has objects a fresh install lacks or differ"

        keys_after = primary_keys(upgraded)
        for table, keys in keys_before.items():
            lost = keys - keys_after.get(table, frozenset())
            assert not lost, f"{table} lost {len(lost)} rows in the upgrade, e.g. {sorted(lost)[:3]}"
        rows_after = host_rows(upgraded)
        for table, rows in rows_before.items():
            changed = rows - rows_after[table]
            assert not changed, f"{table}: {len(changed)} rows changed in the upgrade, e.g. {sorted(changed)[:1]}"
