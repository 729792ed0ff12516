"""`ci watch` and `ci report` against the embedded database, and `ci fit-weights` on a
database without plpython3u (as hosted Supabase).

* watch: writes the context of a refreshed client (--once), reconnects after its
  connection is killed (and catches up on what it missed), stops cleanly on SIGTERM,
  and with --fit-weights fits before rendering;
* report: the page opens in headless Chromium (Debian's package) with no network,
  every chart draws, no script or console error, and a screenshot is produced;
* fit-weights without plpython3u: the weights the in-database fit gives on the same data.
"""
from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from ci_sidecar.generator import Effects, GeneratorConfig, generate, planned_client_ids
from ci_sidecar.wording import weight_reason

pytestmark = pytest.mark.db

ROOT = Path(__file__).resolve().parent.parent
Conn = psycopg.Connection[tuple[Any, ...]]
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--no-first-run", "--disable-component-update", "--disable-sync")


def ci_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "ci_sidecar.cli", *args]


@pytest.fixture(scope="module")
def client(dsn: str) -> str:
    with psycopg.connect(dsn, autocommit=True) as c:
        cid = generate(c, GeneratorConfig(seed=71, clients=1, leads_per_client=1000, effects=Effects.planted(),
                                          client_name_prefix="Watch client")).client_ids[0]
        c.execute("select public.refresh_conversion_patterns(%s)", (cid,))
    return str(cid)


def rendered_at(conn: Conn, client: str) -> Any:
    row = conn.execute("select rendered_at from public.agent_contexts where client_id = %s", (client,)).fetchone()
    return None if row is None else row[0]


def wait_for_listener(conn: Conn, deadline: float = 30, not_pid: int | None = None) -> int:
    """The backend of ci watch once it listens (after a reconnect: a new backend, whatever it runs)."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if not_pid is None:
            row = conn.execute("select pid from pg_stat_activity where application_name = 'ci watch' "
                               "and query ilike 'listen%%' order by backend_start desc limit 1").fetchone()
        else:
            row = conn.execute("select pid from pg_stat_activity where application_name = 'ci watch' "
                               "and pid <> %s order by backend_start desc limit 1", (not_pid,)).fetchone()
        if row:
            return int(row[0])
        time.sleep(0.2)
    raise AssertionError("ci watch never started listening")


def start_watch(dsn: str, *args: str) -> subprocess.Popen[str]:
    env = dict(os.environ, DATABASE_URL=dsn)
    return subprocess.Popen(ci_cmd("watch", *args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env)


# -- watch -----------------------------------------------------------------------------------------

def test_watch_once_writes_the_refreshed_clients_context(dsn: str, conn: Conn, client: str) -> None:
    conn.execute("delete from public.agent_contexts where client_id = %s", (client,))
    proc = start_watch(dsn, "--once", "--timeout", "120", "--client", client, "--json")
    try:
        wait_for_listener(conn)
        conn.execute("select public.refresh_conversion_patterns(%s)", (client,))
        out, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    stats = json.loads(out)
    assert stats["rendered"] == [client] and stats["errors"] == []
    got = conn.execute("select public.get_agent_context(%s)", (client,)).fetchone()
    assert got is not None and got[0]["stale"] is False
    assert "CONVERSION PATTERNS for Watch client" in got[0]["prompts"]["campaign"]


def test_watch_reconnects_catches_up_and_stops_on_sigterm(dsn: str, conn: Conn, client: str) -> None:
    proc = start_watch(dsn, "--timeout", "120", "--client", client, "--json")
    try:
        pid = wait_for_listener(conn)
        before = rendered_at(conn, client)
        conn.execute("select pg_terminate_backend(%s)", (pid,))
        # A refresh while the watch is away: its notification is lost, the catch-up renders it.
        conn.execute("select public.refresh_conversion_patterns(%s)", (client,))
        new_pid = wait_for_listener(conn, not_pid=pid)
        assert new_pid != pid
        end = time.monotonic() + 60
        while time.monotonic() < end and rendered_at(conn, client) == before:
            time.sleep(0.2)
        assert rendered_at(conn, client) != before
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    stats = json.loads(out)
    assert stats["connects"] >= 2
    assert "connection lost" in err and "reconnected" in err and "stopped:" in err


def test_watch_fits_weights_first_when_asked(dsn: str, conn: Conn, client: str) -> None:
    proc = start_watch(dsn, "--once", "--fit-weights", "--timeout", "120", "--client", client, "--json")
    try:
        wait_for_listener(conn)
        conn.execute("select public.refresh_conversion_patterns(%s)", (client,))
        out, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    stats = json.loads(out)
    assert len(stats["fitted"]) == 1 and stats["fitted"][0]["client_id"] == client
    assert stats["fitted"][0]["decision"]["source"] == "sidecar"
    # Its log line gives the decision's reason in plain words, not the fit's "AUC gain < 2.5 x SE".
    assert weight_reason(stats["fitted"][0]["decision"]["reason"]) in err
    assert " x SE " not in err and "held-out AUC" not in err


def test_watch_with_a_bad_url_fails_fast() -> None:
    proc = subprocess.run(ci_cmd("watch", "--dsn", "postgresql://postgres@127.0.0.1:1/x", "--timeout", "30"),
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 3 and "cannot connect" in proc.stderr


# -- report ----------------------------------------------------------------------------------------

def test_report_renders_every_chart_in_headless_chromium(dsn: str, client: str, tmp_path: Path) -> None:
    chromium = shutil.which("chromium")
    assert chromium, "chromium is missing: run scripts/setup.sh"
    env = dict(os.environ, DATABASE_URL=dsn)
    proc = subprocess.run(ci_cmd("report", client, "--out", str(tmp_path), "--json"), capture_output=True,
                          text=True, env=env, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    page = Path(json.loads(proc.stdout)["path"])
    html = page.read_text(encoding="utf-8")
    assert "https://" not in re.sub(r"<script[^>]*>.*?</script>", "", html, flags=re.DOTALL)  # no external resource
    assert "<script src=" not in html
    charts = html.count('class="plotly-graph-div"')
    assert charts >= 7

    with tempfile.TemporaryDirectory() as profile:
        dom = subprocess.run(
            [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--virtual-time-budget=20000",
             "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=180, check=False,
        )
    body = re.search(r"<body[^>]*>", dom.stdout)
    assert body, dom.stderr[-2000:]
    attrs = dict(re.findall(r'(data-[a-z-]+)="([^"]*)"', body.group(0)))
    assert attrs.get("data-ready") == "true", attrs
    assert attrs["data-charts-total"] == str(charts)
    assert attrs["data-charts-rendered"] == str(charts)
    assert attrs["data-errors"] == "0", attrs.get("data-error-text")

    shot = tmp_path / "report.png"
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run(
            [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--virtual-time-budget=20000",
             "--window-size=1280,3000", f"--screenshot={shot}", page.as_uri()],
            capture_output=True, text=True, timeout=180, check=False,
        )
    assert shot.exists() and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000


def test_report_texts_say_what_the_figures_are() -> None:
    """The sequence chart says its share is an estimate and what its counts count; no "Position hazard"
    heading, no raw significance, timestamps without microseconds."""
    import datetime as dt

    from ci_sidecar.report import _sequences, _touch_charts
    from ci_sidecar.wording import utc_stamp

    seq = {"sequence": ["linkedin", "email"], "booking_probability": 0.1957, "sample_size": 168, "conversions": 46,
           "sample": 1550, "conversion_rate": 0.0297, "significance": "none"}
    fig = _sequences({"sequence_rankings": [seq]})
    assert fig is not None
    hover = fig.data[0].hovertext[0]
    assert hover == ("an estimated 19.6% of leads book along it, from the booking rate at each step; 168 leads went "
                     "down the whole sequence<br>per touch along it 3.0%: 46 of 1550 touches sent along it booked"
                     "<br>no clear difference from the client's rate")
    assert "touch exposures" not in hover
    charts = _touch_charts({"touch_position_hazard": [{"position": 1, "conversion_rate": 0.02, "sample": 900,
                                                       "conversions": 18, "significance": "none"}]})
    assert all("hazard" not in str(c.layout.title.text).lower() for c in charts)
    stamp = utc_stamp(dt.datetime(2026, 12, 1, 19, 40, 20, 292580, tzinfo=dt.UTC), seconds=False)
    assert stamp == "2026-12-01 19:40 UTC"


# -- fit-weights without plpython3u ---------------------------------------------------------------

def _url_for(dsn: str, dbname: str) -> str:
    params = conninfo_to_dict(dsn)
    user = quote(str(params.get("user") or "postgres"), safe="")
    password = params.get("password")
    auth = f"{user}:{quote(str(password), safe='')}" if password else user
    return f"postgresql://{auth}@{params.get('host') or '127.0.0.1'}:{params.get('port') or '5432'}/{dbname}" \
           "?sslmode=disable"


@pytest.fixture(scope="module")
def no_plpython_db(dsn: str) -> Iterator[str]:
    name = f"ci_test_nopy_fit_{secrets.token_hex(4)}"
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute(sql.SQL("create database {} template template0").format(sql.Identifier(name)))
        c.execute(sql.SQL("alter database {} set ci.disable_plpython = 'on'").format(sql.Identifier(name)))
    url = _url_for(dsn, name)
    try:
        proc = subprocess.run(["bash", str(ROOT / "scripts" / "migrate.sh"), url], cwd=ROOT, capture_output=True,
                              text=True, timeout=900, check=False)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        yield url
    finally:
        with psycopg.connect(dsn, autocommit=True) as c:
            c.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name)))


def test_fit_weights_without_plpython_gives_the_in_database_weights(dsn: str, no_plpython_db: str) -> None:
    # Fixed ids (a fold is a hash of the lead id); a data set whose fit applies new weights. In the
    # embedded database the client is reused when a previous run left it.
    cfg = GeneratorConfig(seed=42, clients=1, leads_per_client=2500, effects=Effects.planted(),
                          client_name_prefix="No plpython fit", id_salt=16016)
    [cid] = planned_client_ids(cfg)
    with psycopg.connect(dsn, autocommit=True) as c:
        if c.execute("select 1 from public.clients where id = %s", (cid,)).fetchone() is None:
            generate(c, cfg)
        # Other tests refresh every client (refresh_all): start from the default weights, as the
        # fresh database below does.
        c.execute("update public.clients set als_learned_weights = null where id = %s", (cid,))
        row = c.execute("select public.detect_who_patterns(%s) -> 'weight_learning'", (cid,)).fetchone()
        assert row is not None
        in_db = row[0]
    with psycopg.connect(no_plpython_db, autocommit=True) as c:
        assert c.execute("select ci_private.als_fit_available()").fetchone() == (False,)
        assert generate(c, cfg).client_ids == [cid]
        refreshed = c.execute("select public.refresh_conversion_patterns(%s)", (cid,)).fetchone()
        assert refreshed is not None and refreshed[0]["weights"]["applied"] is False  # left to the sidecar

    env = dict(os.environ, DATABASE_URL=no_plpython_db)
    proc = subprocess.run(ci_cmd("fit-weights", str(cid), "--json"), capture_output=True, text=True, env=env,
                          timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    [out] = json.loads(proc.stdout)
    for key in ("applied", "reason", "n", "conversions", "new_weights", "auc_gain"):
        assert out["decision"][key] == in_db[key], key
    assert in_db["applied"] is True, "the planted effects should let the fit apply new weights"
    with psycopg.connect(no_plpython_db, autocommit=True) as c:
        row = c.execute("select als_learned_weights, (select count(distinct als_weights_used) from public.leads "
                        "where client_id = %s and deleted_at is null) from public.clients where id = %s", (cid, cid)).fetchone()
    assert row is not None
    assert {k: float(v) for k, v in row[0].items()} == {k: float(v) for k, v in in_db["new_weights"].items()}
    assert row[1] == 1  # every (non-deleted) lead rescored with them
