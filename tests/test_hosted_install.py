"""The migrations deployed onto a database shaped like hosted Supabase.

scripts/hosted_db.sh builds a second cluster whose superuser is supabase_admin, where
`postgres` is NOSUPERUSER (CREATEDB CREATEROLE REPLICATION BYPASSRLS, pg_monitor), pg_cron
is preloaded and created in pg_catalog by the superuser with Supabase's grants, Supabase's
default privileges hand every new table and function in public to anon, authenticated
and service_role, and plpython3u, though installed on this machine, cannot be created
by postgres (tests/fixtures/hosted_supabase.sql). The migrations are deployed there as
postgres with scripts/migrate.sh, data is generated with ci-generate, and the scheduled
refresh runs: the weight fit there is the sidecar's, and the WHO pattern says so.

The cluster listens on CI_HOSTED_DB_PORT (else the embedded port + 1000), is rebuilt
for this module and stopped at its end.
"""
from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

pytestmark = pytest.mark.db

ROOT = Path(__file__).resolve().parent.parent
HOSTED = ROOT / "scripts" / "hosted_db.sh"


def _hosted(*args: str) -> str:
    proc = subprocess.run(["bash", str(HOSTED), *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=300, check=False)
    if proc.returncode != 0:
        pytest.fail(f"scripts/hosted_db.sh {' '.join(args)} failed:\n{proc.stdout}{proc.stderr}")
    return proc.stdout.strip()


@pytest.fixture(scope="module")
def hosted() -> Iterator[dict[str, str]]:
    """A fresh hosted-shaped cluster with the migrations deployed as postgres and two generated clients."""
    _hosted("reset")
    try:
        url, admin = _hosted("url"), _hosted("admin-url")
        proc = subprocess.run(["bash", str(ROOT / "scripts" / "migrate.sh"), url], cwd=ROOT,
                              capture_output=True, text=True, timeout=600, check=False)
        output = proc.stdout + proc.stderr
        if proc.returncode != 0:
            pytest.fail(f"the migrations failed on the hosted-shaped database:\n{output}")
        gen = subprocess.run(
            [str(Path(sys.executable).parent / "ci-generate"), "--dsn", url, "--clients", "2",
             "--leads-per-client", "400", "--seed", "17", "--name-prefix", "Hosted client"],
            cwd=ROOT, capture_output=True, text=True, timeout=600, check=False,
        )
        if gen.returncode != 0:
            pytest.fail(f"ci-generate failed on the hosted-shaped database:\n{gen.stdout}{gen.stderr}")
        yield {"url": url, "admin": admin, "migrate_output": output}
    finally:
        _hosted("stop")


def test_the_database_is_shaped_like_hosted_supabase(hosted: dict[str, str]) -> None:
    with psycopg.connect(hosted["url"], autocommit=True) as conn:
        role = conn.execute(
            "select rolsuper, rolcreaterole, rolbypassrls from pg_roles where rolname = current_user"
        ).fetchone()
        assert role == (False, True, True)
        cron = conn.execute("select extnamespace::regnamespace::text from pg_extension where extname = 'pg_cron'")
        assert cron.fetchone() == ("pg_catalog",)
        assert conn.execute("select count(*) from pg_available_extensions where name = 'plpython3u'"
                            ).fetchone() == (1,), "plpython3u must be installed for this to be the hard case"
        # The superuser-only case the migrations must not need.
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("create extension plpython3u")


def test_every_migration_applied_as_postgres(hosted: dict[str, str]) -> None:
    migrations = sorted(p.name.split("_", 1)[0] for p in (ROOT / "supabase" / "migrations").glob("*.sql"))
    with psycopg.connect(hosted["url"], autocommit=True) as conn:
        applied = [str(r[0]) for r in conn.execute(
            "select version from supabase_migrations.schema_migrations order by version").fetchall()]
        assert applied == migrations, hosted["migrate_output"]
        assert conn.execute("select count(*) from pg_extension where extname = 'plpython3u'").fetchone() == (0,)
        owners = conn.execute(
            "select distinct proowner::regrole::text from pg_proc where pronamespace = 'ci_private'::regnamespace"
        ).fetchall()
        assert owners == [("postgres",)]
        jobs = conn.execute("select jobname, command, username from cron.job order by jobname").fetchall()
        assert jobs == [
            ("ci-refresh-time-limit", "call ci_jobs.enforce_refresh_time_limit()", "postgres"),
            ("ci-rescore-pending", "call ci_jobs.rescore_pending()", "postgres"),
            ("ci-trim-cron-run-details", "select ci_private.trim_cron_run_details()", "postgres"),
            ("ci-weekly-refresh", "call ci_jobs.run_scheduled_refresh()", "postgres"),
        ]


def test_the_scheduled_refresh_runs_and_says_the_fit_is_the_sidecars(hosted: dict[str, str]) -> None:
    with psycopg.connect(hosted["url"], autocommit=True) as conn:
        conn.execute("call ci_jobs.run_scheduled_refresh()")
        rows = conn.execute(
            "select bc.status, count(*) from ci_private.refresh_batch_clients as bc group by 1"
        ).fetchall()
        assert rows == [("ok", 2)]
        finished = conn.execute("select count(*) from ci_private.refresh_batches where finished_at is null")
        assert finished.fetchone() == (0,)
        patterns = conn.execute(
            "select count(*), count(distinct client_id) from public.conversion_patterns").fetchone()
        assert patterns == (8, 2)
        learning = conn.execute(
            "select patterns -> 'weight_learning' from public.conversion_patterns where pattern_type = 'who'"
        ).fetchall()
        for (wl,) in learning:
            assert wl["applied"] is False
            assert "sidecar" in wl["reason"], wl
        # The RPC as service_role too.
        conn.execute("set role service_role")
        summary = conn.execute("select public.refresh_all_conversion_patterns()").fetchone()
        conn.execute("reset role")
    assert summary is not None and summary[0]["ok"] == 2, summary


def test_sidecar_weights_and_history_rules_hold_under_hosted_defaults(hosted: dict[str, str]) -> None:
    """Supabase's default privileges gave service_role every privilege on the history: none is left
    that could rewrite it, and the sidecar's path for the weights works."""
    with psycopg.connect(hosted["url"], autocommit=True) as conn:
        client = conn.execute("select id from public.clients order by id limit 1").fetchone()
        assert client is not None
        conn.execute("set role service_role")
        result: Any = conn.execute(
            "select public.apply_learned_weights(%s, %s, %s)",
            (client[0], '{"data_quality": 0.2, "authority": 0.3, "company_fit": 0.2, "timing": 0.15}',
             '{"n": 300, "conversions": 30, "confidence": 0.9, "status": "fitted"}'),
        ).fetchone()
        assert result is not None and result[0]["applied"] is True
        for statement in ("truncate public.conversion_pattern_history",
                          "delete from public.conversion_pattern_history",
                          "update public.conversion_pattern_history set sample_size = 0"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement)
        conn.execute("reset role")
        # The migration role itself cannot truncate it either (the statement trigger).
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("truncate public.conversion_pattern_history")
        recorded = conn.execute(
            "select count(*) from public.conversion_weight_applications where client_id = %s", (client[0],)
        ).fetchone()
        assert recorded == (1,)


def test_catalog_and_privilege_checks_pass_on_hosted(hosted: dict[str, str]) -> None:
    """The pgTAP catalog and privilege files, run on the hosted-shaped database as postgres."""
    with psycopg.connect(hosted["admin"], autocommit=True) as admin:
        admin.execute("create extension if not exists pgtap with schema extensions")
    files = [str(ROOT / "supabase" / "tests" / "050_security_catalog.sql"),
             *sorted(str(p) for p in (ROOT / "supabase" / "tests").glob("09*.sql"))]
    params = psycopg.conninfo.conninfo_to_dict(hosted["url"])
    env = {**os.environ, "PGHOST": str(params["host"]), "PGPORT": str(params["port"]),
           "PGUSER": str(params["user"]), "PGPASSWORD": str(params["password"]),
           "PGDATABASE": str(params["dbname"]), "PGOPTIONS": "-c search_path=public,extensions"}
    proc = subprocess.run(["pg_prove", "--ext", ".sql", *files], capture_output=True, text=True,
                          env=env, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
