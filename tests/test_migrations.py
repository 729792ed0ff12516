"""The migrations, applied with the real Supabase CLI exactly as scripts/migrate.sh does.

Each case gets a scratch database on the cluster under test (random name,
dropped at the end):
  (a) an empty database: everything applies, the contract's objects exist;
  (b) a database that already holds the host application's schema
      (tests/fixtures/host_schema.sql): afterwards every host object is exactly
      as it was (catalog snapshot before/after: columns with types and
      defaults, constraints, indexes, policies, triggers, functions, grants,
      enum values, rows) and only the contract's additions are new;
  (c) a database without plpython3u (ci.disable_plpython = 'on', as hosted
      Supabase): the migrations still apply;
  (d) running the migrations a second time applies nothing and changes nothing;
      neither does re-running every migration file's SQL by hand.
Scratch databases are not cron.database_name, so they also prove the migrations
apply without pg_cron.
"""
from __future__ import annotations

import re
import secrets
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

pytestmark = pytest.mark.db

ROOT = Path(__file__).resolve().parent.parent
MIGRATIONS = sorted((ROOT / "supabase" / "migrations").glob("*.sql"))
HOST_SCHEMA = ROOT / "tests" / "fixtures" / "host_schema.sql"

HOST_TABLES = ("clients", "memberships", "campaigns", "leads", "activities")
HOST_ENUMS = ("public.membership_role", "public.lead_status", "public.channel_type")
API_ROLES = ("anon", "authenticated", "service_role")

# Contract section 2: the host's columns and the ones this layer adds.
HOST_COLUMNS: dict[str, frozenset[str]] = {
    "clients": frozenset({
        "id", "name", "icp_industries", "icp_company_sizes", "icp_locations", "icp_titles",
        "created_at", "updated_at", "deleted_at"
    }),
    "memberships": frozenset({
        "id", "user_id", "client_id", "role", "accepted_at", "deleted_at"
    }),
    "campaigns": frozenset({
        "id", "client_id", "name", "timezone", "allocation_email", "allocation_sms",
        "allocation_linkedin", "allocation_voice", "allocation_mail", "created_at", "deleted_at"
    }),
    "leads": frozenset({
        "id", "client_id", "campaign_id", "email", "phone", "first_name", "last_name", "title",
        "company", "domain", "linkedin_url", "personal_email", "email_verified", "phone_verified",
        "organization_industry", "organization_employee_count", "organization_country",
        "organization_is_hiring", "organization_latest_funding_date", "employment_start_date",
        "bounce_count", "status", "als_score", "als_tier", "als_data_quality", "als_authority",
        "als_company_fit", "als_timing", "als_risk", "created_at", "updated_at", "deleted_at"
    }),
    "activities": frozenset({
        "id", "client_id", "campaign_id", "lead_id", "channel", "action", "sequence_step", "subject",
        "content_preview", "metadata", "created_at"
    }),
}
ADDED_COLUMNS: frozenset[tuple[str, str]] = frozenset(
    [("public.clients", c) for c in ("timezone", "als_learned_weights", "als_weights_updated_at",
                                      "conversion_sample_count")]
    + [("public.leads", c) for c in ("timezone", "converted_at", "als_components", "als_weights_used",
                                     "scored_at")]
    + [("public.activities", c) for c in ("led_to_booking", "content_snapshot")]
    # The layer's own: each touch's snapshot read once, and keyed (README, "Deploying").
    + [("public.activities", c) for c in ("content_features", "content_key")]
)
LEAD_STATUS = ("new", "enriched", "scored", "in_sequence", "converted", "unsubscribed", "bounced",
               "not_interested", "dead")
CONVERTING_TOUCH_TRIGGERS = frozenset({
    ("public.leads", "leads_ci_conversion_time_ins"),
    ("public.leads", "leads_ci_conversion_time_upd"),
    ("public.leads", "leads_ci_mark_converting_touch"),
    # Bookings are seen by the activities' statement triggers (issue 13: inserts,
    # updates and deletes alike); the former row trigger on inserts is gone.
    ("public.activities", "activities_ci_lead_touches_ins"),
    ("public.activities", "activities_ci_lead_touches_upd"),
    ("public.activities", "activities_ci_lead_touches_del"),
})

Conn = psycopg.Connection[tuple[Any, ...]]
Snapshot = dict[str, frozenset[tuple[str, ...]]]


@dataclass(frozen=True)
class ScratchDb:
    """A database of its own on the cluster under test."""

    name: str
    url: str


@dataclass(frozen=True)
class MigrateRun:
    """What one run of scripts/migrate.sh did."""

    applied: int
    output: str


@dataclass(frozen=True)
class HostCase:
    """The host database before and after the migrations."""

    db: ScratchDb
    before: Snapshot
    after: Snapshot
    run: MigrateRun


# --- scratch databases --------------------------------------------------------------------------

def _url_for(dsn: str, dbname: str) -> str:
    """The URL of another database on the same server (the Supabase CLI wants a URL)."""
    params = conninfo_to_dict(dsn)
    user = quote(str(params.get("user") or "postgres"), safe="")
    password = params.get("password")
    auth = f"{user}:{quote(str(password), safe='')}" if password else user
    host = params.get("host") or "127.0.0.1"
    port = params.get("port") or "5432"
    return f"postgresql://{auth}@{host}:{port}/{dbname}?sslmode=disable"


class ScratchFactory:
    """Creates scratch databases and drops every one of them at the end."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.created: list[str] = []

    def create(self, label: str) -> ScratchDb:
        name = f"ci_test_{label}_{secrets.token_hex(4)}"
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("create database {} template template0").format(sql.Identifier(name)))
        self.created.append(name)
        return ScratchDb(name, _url_for(self.dsn, name))

    def drop_all(self) -> None:
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            for name in self.created:
                conn.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name)))
        self.created.clear()


@pytest.fixture(scope="module")
def scratch(dsn: str) -> Iterator[ScratchFactory]:
    factory = ScratchFactory(dsn)
    try:
        yield factory
    finally:
        factory.drop_all()


def migrate(db: ScratchDb) -> MigrateRun:
    """Apply the migrations as a user does: scripts/migrate.sh <url> (supabase db push)."""
    proc = subprocess.run(
        ["bash", str(ROOT / "scripts" / "migrate.sh"), db.url],
        cwd=ROOT, capture_output=True, text=True, timeout=600, check=False,
    )
    output = proc.stdout + proc.stderr
    if proc.returncode != 0:
        pytest.fail(f"scripts/migrate.sh failed on {db.name}:\n{output}")
    applied = len(re.findall(r"^\s*Applying migration ", output, flags=re.MULTILINE))
    return MigrateRun(applied, output)


def run_psql_file(db: ScratchDb, path: Path, single_transaction: bool = False) -> None:
    """Run one SQL file with psql, stopping at the first error."""
    cmd = ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", db.url, "-f", str(path)]
    if single_transaction:
        cmd.insert(1, "-1")
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
    if proc.returncode != 0:
        pytest.fail(f"psql -f {path.name} failed on {db.name}:\n{proc.stdout}{proc.stderr}")


def connect(db: ScratchDb) -> Conn:
    return psycopg.connect(db.url, autocommit=True)


# --- catalog snapshots --------------------------------------------------------------------------

_SNAPSHOT_QUERIES: dict[str, str] = {
    "column": """
        select n.nspname || '.' || c.relname, a.attname, format_type(a.atttypid, a.atttypmod),
               coalesce(pg_get_expr(d.adbin, d.adrelid), ''), a.attnotnull::text,
               a.attidentity::text, a.attgenerated::text
        from pg_attribute as a
        join pg_class as c on c.oid = a.attrelid
        join pg_namespace as n on n.oid = c.relnamespace
        left join pg_attrdef as d on d.adrelid = a.attrelid and d.adnum = a.attnum
        where n.nspname = any(%(schemas)s) and c.relkind in ('r', 'p', 'v', 'm', 'f')
          and a.attnum > 0 and not a.attisdropped""",
    "constraint": """
        select n.nspname || '.' || c.relname, co.conname, pg_get_constraintdef(co.oid)
        from pg_constraint as co
        join pg_class as c on c.oid = co.conrelid
        join pg_namespace as n on n.oid = c.relnamespace
        where n.nspname = any(%(schemas)s)""",
    "index": """
        select schemaname || '.' || tablename, indexname, indexdef
        from pg_indexes where schemaname = any(%(schemas)s)""",
    "trigger": """
        select n.nspname || '.' || c.relname, t.tgname, pg_get_triggerdef(t.oid), t.tgenabled::text
        from pg_trigger as t
        join pg_class as c on c.oid = t.tgrelid
        join pg_namespace as n on n.oid = c.relnamespace
        where n.nspname = any(%(schemas)s) and not t.tgisinternal""",
    "policy": """
        select schemaname || '.' || tablename, policyname, permissive, roles::text, cmd,
               coalesce(qual, ''), coalesce(with_check, '')
        from pg_policies where schemaname = any(%(schemas)s)""",
    "relation": """
        select n.nspname || '.' || c.relname, c.relkind::text, c.relrowsecurity::text,
               c.relforcerowsecurity::text, (select coalesce(string_agg(x::text, ',' order by x::text), '') from unnest(c.relacl) as x), c.relowner::regrole::text
        from pg_class as c
        join pg_namespace as n on n.oid = c.relnamespace
        where n.nspname = any(%(schemas)s) and c.relkind in ('r', 'p', 'v', 'm', 'S', 'f')""",
    "function": """
        select n.nspname || '.' || p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ')',
               pg_get_function_result(p.oid), l.lanname, p.provolatile::text, p.prosecdef::text,
               coalesce(array_to_string(p.proconfig, ','), ''), md5(p.prosrc), (select coalesce(string_agg(x::text, ',' order by x::text), '') from unnest(p.proacl) as x),
               p.proowner::regrole::text
        from pg_proc as p
        join pg_namespace as n on n.oid = p.pronamespace
        join pg_language as l on l.oid = p.prolang
        where n.nspname = any(%(schemas)s)""",
    "enum": """
        select t.typnamespace::regnamespace::text || '.' || t.typname, e.enumlabel,
               (row_number() over (partition by t.oid order by e.enumsortorder))::text
        from pg_enum as e
        join pg_type as t on t.oid = e.enumtypid
        where t.typnamespace::regnamespace::text = any(%(schemas)s)""",
    "schema": """
        select nspname, (select coalesce(string_agg(x::text, ',' order by x::text), '') from unnest(nspacl) as x), nspowner::regrole::text
        from pg_namespace where nspname = any(%(schemas)s)""",
    "default_acl": """
        select coalesce(defaclrole::regrole::text, ''), coalesce(defaclnamespace::regnamespace::text, ''),
               defaclobjtype::text,
               (select string_agg(x::text, ',' order by x::text) from unnest(defaclacl) as x)
        from pg_default_acl
        where defaclnamespace = 0 or defaclnamespace::regnamespace::text = any(%(schemas)s)""",
    "extension": "select extname, extnamespace::regnamespace::text, extversion from pg_extension",
    "role": """
        select rolname, rolsuper::text, rolinherit::text, rolcanlogin::text, rolbypassrls::text
        from pg_roles where rolname = any(%(roles)s)""",
    "role_member": """
        select r.rolname, m.rolname, am.admin_option::text
        from pg_auth_members as am
        join pg_roles as r on r.oid = am.roleid
        join pg_roles as m on m.oid = am.member
        where r.rolname = any(%(roles)s)""",
}


# ACLs are compared as sorted lists of items: a revoke and re-grant may reorder them.


def _as_text(row: tuple[Any, ...]) -> tuple[str, ...]:
    return tuple("" if v is None else str(v) for v in row)


def user_schemas(conn: Conn) -> list[str]:
    rows = conn.execute(
        "select nspname from pg_namespace where nspname !~ '^pg_' and nspname <> 'information_schema'"
    ).fetchall()
    return sorted(str(r[0]) for r in rows)


def catalog_snapshot(conn: Conn, schemas: list[str]) -> Snapshot:
    """Definitions of every object in the given schemas (plus roles, extensions), as text tuples."""
    params = {"schemas": schemas, "roles": [*API_ROLES, "authenticator"]}
    return {
        kind: frozenset(_as_text(r) for r in conn.execute(query, params).fetchall())
        for kind, query in _SNAPSHOT_QUERIES.items()
    }


def rows_snapshot(conn: Conn, columns: dict[str, list[str]]) -> Snapshot:
    """Every row of the given tables, restricted to the given columns, as JSON text."""
    out: dict[str, frozenset[tuple[str, ...]]] = {}
    for table, cols in sorted(columns.items()):
        schema, name = table.split(".", 1)
        query = sql.SQL("select row_to_json(x)::text from (select {} from {}) as x").format(
            sql.SQL(", ").join(sql.Identifier(c) for c in cols), sql.Identifier(schema, name)
        )
        out[f"rows:{table}"] = frozenset((table, str(r[0])) for r in conn.execute(query).fetchall())
    return out


def table_columns(snapshot: Snapshot, tables: list[str]) -> dict[str, list[str]]:
    cols: dict[str, list[str]] = {t: [] for t in tables}
    for item in snapshot["column"]:
        if item[0] in cols:
            cols[item[0]].append(item[1])
    return {t: sorted(c) for t, c in cols.items()}


def full_snapshot(conn: Conn) -> Snapshot:
    """Catalog of every user schema plus every row of every table (for 'nothing changed')."""
    snap = catalog_snapshot(conn, user_snapshot_schemas(conn))
    tables = sorted(i[0] for i in snap["relation"] if i[1] in ("r", "p"))
    return {**snap, **rows_snapshot(conn, table_columns(snap, tables))}


def user_snapshot_schemas(conn: Conn) -> list[str]:
    # pg_cron's schema is cluster bookkeeping (job run times), not a migration's output.
    return [s for s in user_schemas(conn) if s != "cron"]


def host_snapshot(conn: Conn, row_columns: dict[str, list[str]] | None = None) -> Snapshot:
    """The host's objects: public, auth, extensions, roles, and the host tables' rows
    (restricted to row_columns, by default every column the tables have now)."""
    snap = catalog_snapshot(conn, ["public", "auth", "extensions"])
    tables = [f"public.{t}" for t in HOST_TABLES] + ["auth.users"]
    return {**snap, **rows_snapshot(conn, row_columns or table_columns(snap, tables))}


def vanished(before: Snapshot, after: Snapshot) -> dict[str, list[tuple[str, ...]]]:
    """Items of `before` that are missing or different in `after`."""
    return {k: sorted(before[k] - after.get(k, frozenset())) for k in before if before[k] - after.get(k, frozenset())}


def new_items(before: Snapshot, after: Snapshot, kind: str) -> set[tuple[str, ...]]:
    return set(after[kind] - before[kind])


# --- contract checks ------------------------------------------------------------------------------

def assert_contract_present(conn: Conn) -> None:
    """The objects that contract sections 1-3 promise, wherever the migrations ran."""
    for table, host_cols in HOST_COLUMNS.items():
        cols = {
            str(r[0]) for r in conn.execute(
                "select column_name from information_schema.columns where table_schema = 'public' "
                "and table_name = %s", (table,)
            ).fetchall()
        }
        wanted = host_cols | {c for t, c in ADDED_COLUMNS if t == f"public.{table}"}
        assert wanted <= cols, f"public.{table} lacks {sorted(wanted - cols)}"
    labels = [str(r[0]) for r in conn.execute(
        "select e.enumlabel from pg_enum as e where e.enumtypid = 'public.lead_status'::regtype "
        "order by e.enumsortorder"
    ).fetchall()]
    assert set(LEAD_STATUS) <= set(labels), labels
    row = conn.execute(
        "select count(*) from pg_class where oid in "
        "('public.conversion_patterns'::regclass, 'public.conversion_pattern_history'::regclass) "
        "and relrowsecurity"
    ).fetchone()
    assert row is not None and row[0] == 2, "pattern tables missing or without row-level security"
    for fn in ("auth.uid()", "auth.role()", "auth.jwt()", "public.uuid_generate_v7()",
               "ci_private.is_outbound_action(text)", "ci_private.is_conversion_action(text)",
               "ci_private.backfill_converting_touches(uuid)", "ci_private.assert_client_access(uuid,boolean)"):
        found = conn.execute("select to_regprocedure(%s)", (fn,)).fetchone()
        assert found is not None and found[0] is not None, f"{fn} missing"
    found = conn.execute("select to_regclass('auth.users')").fetchone()
    assert found is not None and found[0] is not None
    roles = {str(r[0]) for r in conn.execute(
        "select rolname from pg_roles where rolname = any(%s)", (list(API_ROLES),)
    ).fetchall()}
    assert roles == set(API_ROLES)
    triggers = {(f"public.{r[0]}", str(r[1])) for r in conn.execute(
        "select c.relname, t.tgname from pg_trigger as t join pg_class as c on c.oid = t.tgrelid "
        "where not t.tgisinternal and c.relnamespace = 'public'::regnamespace"
    ).fetchall()}
    assert CONVERTING_TOUCH_TRIGGERS <= triggers, sorted(CONVERTING_TOUCH_TRIGGERS - triggers)


def extensions(conn: Conn) -> set[str]:
    return {str(r[0]) for r in conn.execute("select extname from pg_extension").fetchall()}


def applied_versions(conn: Conn) -> list[str]:
    return [str(r[0]) for r in conn.execute(
        "select version from supabase_migrations.schema_migrations order by version"
    ).fetchall()]


def migration_versions() -> list[str]:
    return [p.name.split("_", 1)[0] for p in MIGRATIONS]


def assert_all_applied(db: ScratchDb, run: MigrateRun) -> None:
    """This run applied every migration file, each recorded in the CLI's history."""
    with connect(db) as conn:
        versions = applied_versions(conn)
    assert run.applied == len(versions), run.output
    assert set(migration_versions()) <= set(versions), run.output


# --- fixtures: one empty and one host database, migrated once per module ----------------------------

@pytest.fixture(scope="module")
def empty_db(scratch: ScratchFactory) -> tuple[ScratchDb, MigrateRun]:
    db = scratch.create("empty")
    return db, migrate(db)


@pytest.fixture(scope="module")
def host_case(scratch: ScratchFactory) -> HostCase:
    db = scratch.create("host")
    run_psql_file(db, HOST_SCHEMA)
    with connect(db) as conn:
        before = host_snapshot(conn)
    run = migrate(db)
    host_columns = table_columns(before, [f"public.{t}" for t in HOST_TABLES] + ["auth.users"])
    with connect(db) as conn:
        after = host_snapshot(conn, host_columns)
    return HostCase(db, before, after, run)


# --- (a) empty database -------------------------------------------------------------------------------

def test_empty_database_gets_everything(empty_db: tuple[ScratchDb, MigrateRun]) -> None:
    db, run = empty_db
    assert_all_applied(db, run)
    with connect(db) as conn:
        assert_contract_present(conn)
        # The host tables were created by the layer, recorded, and secured.
        created = {str(r[0]) for r in conn.execute(
            "select table_name from ci_private.layer_created_tables"
        ).fetchall()}
        assert created == set(HOST_TABLES)
        unsecured = conn.execute(
            "select relname from pg_class where relnamespace = 'public'::regnamespace "
            "and relname = any(%s) and not relrowsecurity", (list(HOST_TABLES),)
        ).fetchall()
        assert unsecured == []
        # Not cron.database_name: the migrations applied without pg_cron.
        assert "pg_cron" not in extensions(conn)


# --- (b) host database ----------------------------------------------------------------------------

def test_host_objects_unchanged(host_case: HostCase) -> None:
    assert_all_applied(host_case.db, host_case.run)
    changed = vanished(host_case.before, host_case.after)
    assert changed == {}, f"host objects changed or dropped by the migrations: {changed}"


def test_host_gets_only_the_contracts_additions(host_case: HostCase) -> None:
    before, after = host_case.before, host_case.after
    host_tables = {f"public.{t}" for t in HOST_TABLES} | {"auth.users"}

    new_columns = {(i[0], i[1]) for i in new_items(before, after, "column") if i[0] in host_tables}
    assert new_columns == set(ADDED_COLUMNS)

    new_enum_values = {(i[0], i[1]) for i in new_items(before, after, "enum") if i[0] in HOST_ENUMS}
    assert new_enum_values == {("public.lead_status", "not_interested"), ("public.lead_status", "dead")}

    # The host secures its own tables: no policies, constraints or grants added to them.
    for kind in ("policy", "constraint"):
        added = {i for i in new_items(before, after, kind) if i[0] in host_tables}
        assert added == set(), f"{kind} added to host tables: {added}"
    assert {i for i in new_items(before, after, "function") if i[0].startswith("auth.")} == set()

    new_triggers = {(i[0], i[1]) for i in new_items(before, after, "trigger") if i[0] in host_tables}
    assert CONVERTING_TOUCH_TRIGGERS <= new_triggers

    with connect(host_case.db) as conn:
        assert_contract_present(conn)
        created = conn.execute("select count(*) from ci_private.layer_created_tables").fetchone()
        assert created is not None and created[0] == 0, "the layer claims to have created a host table"
        # GoTrue's auth.uid() is the one in force, not the layer's fallback.
        body = conn.execute("select prosrc from pg_proc where oid = 'auth.uid()'::regprocedure").fetchone()
        assert body is not None and "nullif(\n    coalesce(" in str(body[0])


def test_layer_works_on_the_host_schema(host_case: HostCase) -> None:
    """The converting touch on the host's own tables, with the host's trigger and extra columns."""
    with connect(host_case.db) as conn:
        client = "c0000000-0000-4000-8000-000000000001"
        # Bob (in_sequence, one 'sent' touch) books through a status change.
        conn.execute("update public.leads set status = 'converted' where id = '1e000000-0000-4000-8000-000000000002'")
        marked = conn.execute(
            "select id::text from public.activities where led_to_booking order by id"
        ).fetchall()
        assert marked == [("ac000000-0000-4000-8000-000000000004",)]
        # Ann was converted before the layer existed: the backfill gives her the
        # time of her meeting_booked activity and marks her 'sent' touch.
        changed = conn.execute("select ci_private.backfill_converting_touches(%s)", (client,)).fetchone()
        ann = conn.execute(
            "select converted_at, updated_at > '2026-02-01 15:00+00' from public.leads "
            "where id = '1e000000-0000-4000-8000-000000000001'"
        ).fetchone()
        assert ann is not None
        assert str(ann[0]) == "2026-02-01 15:00:00+00:00"
        assert ann[1] is True, "the host's updated_at trigger no longer runs"
        marked = conn.execute(
            "select id::text from public.activities where led_to_booking order by id"
        ).fetchall()
        assert marked == [("ac000000-0000-4000-8000-000000000001",), ("ac000000-0000-4000-8000-000000000004",)]
        assert changed is not None and changed[0] == 1, "the backfill must count the mark it set on Ann's touch"
        # A booking written the host's way, with its extra column, converts too.
        conn.execute(
            "insert into public.activities (client_id, lead_id, channel, action, created_at, external_id) "
            "values (%s, '1e000000-0000-4000-8000-000000000003', 'email', 'meeting_booked', "
            "'2026-03-01 10:00+00', 'cal-123')", (client,)
        )
        cy = conn.execute(
            "select status::text, converted_at from public.leads where id = '1e000000-0000-4000-8000-000000000003'"
        ).fetchone()
        assert cy is not None and cy[0] == "converted" and str(cy[1]) == "2026-03-01 10:00:00+00:00"


def test_snapshot_sees_host_changes(scratch: ScratchFactory) -> None:
    """The unchanged-host check has teeth: each kind of change to a host object shows."""
    db = scratch.create("teeth")
    run_psql_file(db, HOST_SCHEMA)
    with connect(db) as conn:
        before = host_snapshot(conn)
        for change in (
            "alter table public.leads alter column source set default 'csv'",
            "alter table public.clients alter column plan drop not null",
            "drop index public.leads_status_idx",
            "alter policy \"Members can view leads\" on public.leads using (true)",
            "alter table public.leads disable trigger leads_updated_at",
            "alter table public.campaigns drop constraint campaigns_allocation_sum",
            "grant select on public.leads to anon",
            "alter table public.activities disable row level security",
            "alter type public.channel_type add value 'fax'",
            "create or replace function auth.uid() returns uuid language sql stable as $$ select null::uuid $$",
            "revoke usage on schema auth from anon",
            "update public.leads set title = 'CEO' where email = 'ann@dental.test'",
        ):
            conn.execute(change)
        after = host_snapshot(conn, table_columns(before, [f"public.{t}" for t in HOST_TABLES] + ["auth.users"]))
    changed = vanished(before, after)
    assert set(changed) == {
        "column", "index", "policy", "trigger", "constraint", "relation", "function", "schema", "rows:public.leads"
    }
    assert new_items(before, after, "enum") == {("public.channel_type", "fax", "6")}


# --- (c) no plpython3u (hosted Supabase) -----------------------------------------------------------

def test_applies_without_plpython(scratch: ScratchFactory) -> None:
    db = scratch.create("noplpy")
    run_psql_file(db, HOST_SCHEMA)
    with psycopg.connect(scratch.dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("alter database {} set ci.disable_plpython = 'on'").format(sql.Identifier(db.name)))
    run = migrate(db)
    assert_all_applied(db, run)
    with connect(db) as conn:
        assert "plpython3u" not in extensions(conn)
        assert "pg_cron" not in extensions(conn)
        python_functions = conn.execute(
            "select p.oid::regprocedure::text from pg_proc as p join pg_language as l on l.oid = p.prolang "
            "where l.lanname like 'plpython%'"
        ).fetchall()
        assert python_functions == []
        assert_contract_present(conn)


# --- (d) twice ------------------------------------------------------------------------------------

@pytest.mark.parametrize("case", ["empty", "host"])
def test_second_run_changes_nothing(
    case: str, empty_db: tuple[ScratchDb, MigrateRun], host_case: HostCase
) -> None:
    db = empty_db[0] if case == "empty" else host_case.db
    with connect(db) as conn:
        before = full_snapshot(conn)
    run = migrate(db)
    assert run.applied == 0, run.output
    with connect(db) as conn:
        after = full_snapshot(conn)
    assert vanished(before, after) == {}
    assert vanished(after, before) == {}


def test_rerunning_every_migration_file_changes_nothing(empty_db: tuple[ScratchDb, MigrateRun]) -> None:
    """Each file re-run by hand (one transaction each, as db push does): every object is
    created only when absent, so a half-migrated or re-applied database ends the same."""
    db = empty_db[0]
    with connect(db) as conn:
        before = full_snapshot(conn)
    for path in MIGRATIONS:
        run_psql_file(db, path, single_transaction=True)
    with connect(db) as conn:
        after = full_snapshot(conn)
    assert vanished(before, after) == {}
    assert vanished(after, before) == {}
