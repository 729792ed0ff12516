"""The refresh benchmark (scripts/bench/bench_refresh.py) runs end to end at a tiny size.

CI runs it only this small: figures at this size mean nothing, but every measurement
runs, the JSON holds each figure the README quotes, and the two alternative designs
(pandas on fetched rows, DuckDB fed through COPY) count the same groups, so the
comparison at full size compares equal work.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.db

ROOT = Path(__file__).resolve().parent.parent


def test_bench_refresh_tiny(dsn: str, tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "bench" / "bench_refresh.py"), "--leads", "300", "--runs", "1",
         "--writes", "20", "--bot-touches", "500", "--dsn", dsn, "--json", str(out)],
        capture_output=True, text=True, timeout=600, check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads(out.read_text())
    names = {m["name"] for m in report["measures"]}
    assert {"sorted pass (reference)", "refresh_conversion_patterns", "detect_who_patterns", "detect_what_patterns",
            "detect_when_patterns", "detect_how_patterns", "seed design: fetch + pandas",
            "DuckDB via COPY"} == names
    assert all(m["median_s"] > 0 for m in report["measures"])
    assert set(report["writes"]) == {"single send", "single send with snapshot", "bulk insert", "status to converted",
                                     "bulk COPY of history"}
    for w in report["writes"].values():
        assert w["with_layer_s"] > 0 and w["triggers_off_s"] > 0 and w["layer_off_s"] > 0
    assert set(report["goals"]) == {"refresh_x_sorted_pass", "pandas_x_refresh", "duckdb_x_refresh",
                                    "first_refresh_x_after_analyze", "bot_lead_adds_s"}
    assert len(report["goal_table"]) == 9 and all(isinstance(g["met"], bool) for g in report["goal_table"])
    assert report["client"]["realistic_shapes"] is True
    assert set(report["bot_lead"]) == {"refresh_conversion_patterns", "detect_who_patterns", "detect_what_patterns",
                                       "detect_when_patterns", "detect_how_patterns"}
    rows = report["analysis_rows"]
    assert rows["pandas"] == rows["duckdb"], "the two alternative designs must count the same groups"
    assert rows["pandas"]["converting"] > 0
    assert "refresh / sorted pass" in proc.stdout
