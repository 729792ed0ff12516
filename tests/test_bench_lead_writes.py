"""The lead-write benchmark (scripts/bench/bench_lead_writes.py) runs end to end at a tiny size.

Figures at this size mean nothing; every write and every state of the layer runs, the
JSON holds them, and the layer is left as it was (triggers enabled, indexes in place).
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

pytestmark = pytest.mark.db

ROOT = Path(__file__).resolve().parent.parent

LAYER = r"""
  select
    (select count(*) from pg_trigger as t
     where t.tgrelid in ('public.leads'::regclass, 'public.activities'::regclass)
       and not t.tgisinternal and t.tgname like '%\_ci\_%' and t.tgenabled <> 'D'),
    (select count(*) from pg_indexes
     where schemaname = 'public' and tablename in ('leads', 'activities') and indexname like '%\_ci\_%')
"""


def test_bench_lead_writes_tiny(dsn: str, tmp_path: Path) -> None:
    with psycopg.connect(dsn) as conn:
        layer_before = conn.execute(LAYER).fetchone()
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "bench" / "bench_lead_writes.py"), "--leads", "200", "--runs", "1",
         "--writes", "10", "--each", "--dsn", dsn, "--json", str(out)],
        capture_output=True, text=True, timeout=600, check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads(out.read_text())
    assert set(report["results"]) == {
        "convert", "status (no score change)", "title", "first_name", "send to a converted lead", "booking", "insert",
    }
    for loop, states in report["results"].items():
        assert {"this / on", "this / triggers off", "this / triggers+indexes off"} <= set(states), loop
        assert "this / only leads_ci_mark_converting_touch" in states, loop
        assert all(s["median_s"] > 0 for s in states.values()), loop
    assert "convert (10 statements" in proc.stdout
    with psycopg.connect(dsn) as conn:
        assert conn.execute(LAYER).fetchone() == layer_before, "the bench leaves the layer as it found it"
        left = conn.execute("select count(*) from public.clients where name like 'bench-leads%'").fetchone()
        assert left == (0,), "the generated client is deleted"
