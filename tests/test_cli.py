"""The `ci` command line against the embedded database: every subcommand, its JSON, its errors.

One generated client (planted effects) is refreshed once for the module; each test runs
`python -m ci_sidecar.cli` as a user would, and checks the output against the database.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import psycopg
import pytest

from ci_sidecar.demo import learned_summary, refresh_and_report
from ci_sidecar.generator import Effects, GeneratorConfig, generate
from ci_sidecar.wording import weight_reason

pytestmark = pytest.mark.db

Conn = psycopg.Connection[tuple[Any, ...]]


def run_ci(dsn: str, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, DATABASE_URL=dsn)
    return subprocess.run([sys.executable, "-m", "ci_sidecar.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env=env, check=False)


def ci_json(dsn: str, *args: str) -> Any:
    proc = run_ci(dsn, *args, "--json")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


@pytest.fixture(scope="module")
def client(dsn: str) -> str:
    with psycopg.connect(dsn, autocommit=True) as c:
        cid = generate(c, GeneratorConfig(seed=61, clients=1, leads_per_client=1200, effects=Effects.planted(),
                                          client_name_prefix="CLI client")).client_ids[0]
        c.execute("select public.refresh_conversion_patterns(%s)", (cid,))
    return str(cid)


@pytest.fixture(scope="module")
def member(dsn: str, client: str) -> str:
    user = uuid.uuid4()
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute("insert into auth.users (id) values (%s)", (user,))
        c.execute("insert into public.memberships (user_id, client_id, role, accepted_at) "
                  "values (%s, %s, 'viewer', now())", (user, client))
    return str(user)


def a_lead(conn: Conn, client: str) -> str:
    row = conn.execute("select id::text from public.leads where client_id = %s and deleted_at is null "
                       "and title is not null order by id limit 1", (client,)).fetchone()
    assert row is not None
    return str(row[0])


# -- help and errors -------------------------------------------------------------------------------

COMMANDS: Sequence[str] = (
    "patterns", "history", "detect", "refresh", "score", "rescore", "allocation", "apply-weights", "reconcile",
    "explain-score", "context", "agent-context", "fit-weights", "watch", "report",
)


def test_help_everywhere() -> None:
    top = subprocess.run([sys.executable, "-m", "ci_sidecar.cli", "--help"], capture_output=True, text=True,
                         check=False)
    assert top.returncode == 0
    for command in COMMANDS:
        assert command in top.stdout
        proc = subprocess.run([sys.executable, "-m", "ci_sidecar.cli", command, "--help"], capture_output=True,
                              text=True, check=False)
        assert proc.returncode == 0, command
        assert "--json" in proc.stdout and "--dsn" in proc.stdout, command


@pytest.mark.parametrize(("args", "code", "text"), [
    (("--dsn", "not a url"), 3, "cannot connect"),
    (("--dsn", "postgresql://postgres@127.0.0.1:1/postgres"), 3, "cannot connect"),
])
def test_bad_url_is_one_line_and_exit_3(dsn: str, client: str, args: tuple[str, ...], code: int, text: str) -> None:
    proc = run_ci(dsn, "patterns", client, *args)
    assert proc.returncode == code
    assert proc.stderr.count("\n") == 1 and text in proc.stderr and "Traceback" not in proc.stderr


def test_unknown_client_exit_4_no_patterns_exit_5_no_access_exit_6_invalid_exit_7(
    dsn: str, conn: Conn, client: str
) -> None:
    unknown = run_ci(dsn, "patterns", str(uuid.uuid4()))
    assert unknown.returncode == 4 and "unknown client" in unknown.stderr

    bare = uuid.uuid4()
    conn.execute("insert into public.clients (id, name) values (%s, 'CLI bare')", (bare,))
    for command in (("patterns", str(bare)), ("context", str(bare)), ("report", str(bare))):
        proc = run_ci(dsn, *command)
        assert proc.returncode == 5, (command, proc.stderr)
        assert "no stored patterns" in proc.stderr

    stranger = run_ci(dsn, "patterns", client, "--as-user", str(uuid.uuid4()))
    assert stranger.returncode == 6 and "not authorized" in stranger.stderr
    anon = run_ci(dsn, "explain-score", a_lead(conn, client), "--as-role", "anon")
    assert anon.returncode == 6

    for args in (("patterns", "nope"), ("allocation", client, "warm", "--as-user", "nope")):
        proc = run_ci(dsn, *args)
        assert proc.returncode == 7, (args, proc.stderr)
    bad_weights = run_ci(dsn, "apply-weights", client, "--weights", '{"data_quality": 0.9}')
    assert bad_weights.returncode == 7 and "weights must have exactly the keys" in bad_weights.stderr
    for proc in (unknown, stranger, anon, bad_weights):
        assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("ci: error: ")


# -- one test per API command ----------------------------------------------------------------------

def test_patterns_history_detect(dsn: str, conn: Conn, client: str, member: str) -> None:
    stored = conn.execute("select public.get_conversion_patterns(%s)", (client,)).fetchone()
    assert stored is not None
    got = ci_json(dsn, "patterns", client, "--as-user", member)
    assert got["who"]["sample_size"] == stored[0]["who"]["sample_size"]
    assert set(got) == {"who", "what", "when", "how"}
    human = run_ci(dsn, "patterns", client)
    assert human.returncode == 0 and "WHO" in human.stdout and "outcomes" in human.stdout

    history = ci_json(dsn, "history", client, "--type", "who", "--limit", "1")
    assert len(history) == 1 and history[0]["pattern_type"] == "who"

    detected = ci_json(dsn, "detect", "when", client)
    assert detected["type"] == "when" and detected["sample_size"] == stored[0]["when"]["sample_size"]


def test_refresh_score_rescore_allocation(dsn: str, conn: Conn, client: str) -> None:
    before = conn.execute("select count(*) from public.conversion_pattern_history where client_id = %s",
                          (client,)).fetchone()
    refreshed = ci_json(dsn, "refresh", client)
    assert refreshed["status"] == "ok"
    after = conn.execute("select count(*) from public.conversion_pattern_history where client_id = %s",
                         (client,)).fetchone()
    assert before is not None and after is not None and after[0] == before[0] + 4

    lead = a_lead(conn, client)
    conn.execute("update public.leads set als_score = -1 where id = %s", (lead,))
    scored = ci_json(dsn, "score", lead)
    row = conn.execute("select als_score from public.leads where id = %s", (lead,)).fetchone()
    assert row is not None and scored["score"] == row[0] >= 0

    count = conn.execute("select count(*) from public.leads where client_id = %s and deleted_at is null",
                         (client,)).fetchone()
    assert count is not None and ci_json(dsn, "rescore", client)["rescored"] == count[0]

    allocation = ci_json(dsn, "allocation", client, "warm")
    assert sum(allocation["allocation"].values()) == 100


def test_allocation_text_gives_the_policys_note(dsn: str, client: str) -> None:
    """The dead tier has no channel; the text says why (the JSON's note), not "tier dead (from policy): "."""
    note = ci_json(dsn, "allocation", client, "dead")["note"]
    proc = run_ci(dsn, "allocation", client, "dead")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"tier dead (from policy): no channel: {note}"
    assert note == "dead leads get no outreach"


def test_refresh_all_as_member_is_refused(dsn: str, client: str, member: str) -> None:
    proc = run_ci(dsn, "refresh", "--all", "--as-user", member)
    assert proc.returncode == 6


def test_apply_weights_applies_and_records(dsn: str, conn: Conn) -> None:
    with psycopg.connect(dsn, autocommit=True) as c:
        cid = generate(c, GeneratorConfig(seed=62, clients=1, leads_per_client=100,
                                          client_name_prefix="CLI weights")).client_ids[0]
    weights = {"data_quality": 0.15, "authority": 0.30, "company_fit": 0.25, "timing": 0.15}
    got = ci_json(dsn, "apply-weights", str(cid), "--weights", json.dumps(weights), "--metrics", '{"n": 100}')
    assert got["applied"] is True and got["rescored"] > 0
    row = conn.execute("select als_learned_weights from public.clients where id = %s", (cid,)).fetchone()
    assert row is not None and {k: float(v) for k, v in row[0].items()} == weights


def test_apply_weights_to_a_large_client_queues_its_rescore(dsn: str, conn: Conn,
                                                            set_rescore_inline_max: Callable[[int], None]) -> None:
    """Over rescore_inline_max leads the weights are applied and the leads queued, not rescored in the call."""
    cid = generate(conn, GeneratorConfig(seed=64, clients=1, leads_per_client=30,
                                         client_name_prefix="CLI weights large")).client_ids[0]
    set_rescore_inline_max(10)
    try:
        weights = {"data_quality": 0.10, "authority": 0.35, "company_fit": 0.25, "timing": 0.15}
        proc = run_ci(dsn, "apply-weights", str(cid), "--weights", json.dumps(weights))
        assert proc.returncode == 0, proc.stderr
        assert "leads queued for a rescore" in proc.stdout
        queued = conn.execute("select count(*) from ci_private.als_rescore_queue where client_id = %s",
                              (cid,)).fetchone()
        assert queued == (1,)
    finally:
        conn.execute("delete from ci_private.als_rescore_queue where client_id = %s", (cid,))


def test_reconcile(dsn: str, conn: Conn, client: str) -> None:
    exists = conn.execute("select to_regprocedure('public.reconcile_conversions(uuid)') is not null").fetchone()
    proc = run_ci(dsn, "reconcile", client, "--json")
    if exists and exists[0]:
        assert proc.returncode == 0, proc.stderr
        assert isinstance(json.loads(proc.stdout), dict)
    else:  # added by another branch; until then the call says what is missing, in one line
        assert proc.returncode == 1 and "reconcile_conversions" in proc.stderr
        assert proc.stderr.count("\n") == 1


def test_explain_score(dsn: str, conn: Conn, client: str, member: str) -> None:
    lead = a_lead(conn, client)
    got = ci_json(dsn, "explain-score", lead, "--as-user", member)
    stored = conn.execute("select als_score, als_components from public.leads where id = %s", (lead,)).fetchone()
    assert stored is not None
    assert got["score"] == stored[0]
    assert {c["component"]: c["points"] for c in got["components"]} == stored[1]
    human = run_ci(dsn, "explain-score", lead)
    assert human.returncode == 0
    assert f"score {stored[0]}" in human.stdout and "authority" in human.stdout and "WHO segments" in human.stdout
    # In words: no column names, no Python True/False, no bare "none", lifts with two decimals.
    out = human.stdout
    assert "data quality" in out and "company fit" in out
    for raw in ("data_quality", "company_fit", "company_size", "new_role", " True ", " False ", ", none,", "n="):
        assert raw not in out, raw
    lifts = [word for line in out.splitlines() for word in line.replace(",", " ").split()
             if word.endswith("x") and word[:-1].replace(".", "").isdigit()]
    assert lifts and all(len(w.split(".")[1]) == 3 for w in lifts), lifts  # "0.60x", never "0.6"


def test_reconcile_refresh_fit_and_detect_speak_words(dsn: str, client: str) -> None:
    """No raw JSON, Python dicts or microseconds in the human texts; `ci detect` says what it found."""
    reconciled = run_ci(dsn, "reconcile", client)
    assert reconciled.returncode == 0, reconciled.stderr
    assert reconciled.stdout.startswith("reconciled: ") and "{" not in reconciled.stdout
    assert "converting-touch marks added" in reconciled.stdout
    refreshed = run_ci(dsn, "refresh", client)
    assert refreshed.returncode == 0, refreshed.stderr
    stamp = refreshed.stdout.split(" at ", 1)[1].split(";", 1)[0]
    assert len(stamp) == len("2026-12-01 19:40:20 UTC") and stamp.endswith(" UTC"), stamp
    fitted = run_ci(dsn, "fit-weights", client, "--dry-run")
    assert fitted.returncode == 0, fitted.stderr
    assert "{'" not in fitted.stdout and "data_quality" not in fitted.stdout and "data quality 0." in fitted.stdout
    detected = run_ci(dsn, "detect", "when", client)
    assert detected.returncode == 0, detected.stderr
    lines = detected.stdout.strip().splitlines()
    assert len(lines) > 1 and ("What it backs:" in lines or any("note: WHEN" in line for line in lines))
    assert "No WHO pattern" not in detected.stdout


def test_context_store_and_agent_context(dsn: str, conn: Conn, client: str, member: str) -> None:
    text = run_ci(dsn, "context", client, "--prompt", "all")
    assert text.returncode == 0
    for head in ("== campaign ==", "== sequence ==", "== messaging ==", "CONVERSION PATTERNS for CLI client"):
        assert head in text.stdout
    assert text.stdout == run_ci(dsn, "context", client, "--prompt", "all").stdout  # deterministic

    stored = ci_json(dsn, "context", client, "--store")
    read = ci_json(dsn, "agent-context", client, "--as-user", member)
    assert read["client_id"] == client and read["stale"] is False
    assert read["prompts"] == stored["prompts"]
    assert set(read["source_patterns"]) == {"who", "what", "when", "how"}


# -- fit-weights -----------------------------------------------------------------------------------

def _in_db_decision(conn: Conn, client: str) -> dict[str, Any]:
    row = conn.execute("select public.detect_who_patterns(%s) -> 'weight_learning'", (client,)).fetchone()
    assert row is not None
    return dict(row[0])


COMPARED = ("applied", "reason", "n", "conversions", "new_weights", "auc_current", "auc_candidate", "auc_gain")


def test_fit_weights_gives_the_in_database_decision(dsn: str, conn: Conn, client: str) -> None:
    in_db = _in_db_decision(conn, client)
    [sidecar] = ci_json(dsn, "fit-weights", client, "--dry-run")
    decision = sidecar["decision"]
    assert {k: decision.get(k) for k in COMPARED} == {k: in_db.get(k) for k in COMPARED}
    assert sidecar["applied"] is None
    # The JSON keeps the fit's reason; the text a person reads says it in plain words.
    text = run_ci(dsn, "fit-weights", client, "--dry-run")
    assert text.returncode == 0, text.stderr
    assert weight_reason(in_db["reason"]) in text.stdout
    assert " x SE " not in text.stdout and "held-out AUC" not in text.stdout


NOT_RELIABLE = "improvement not reliable: AUC gain 0.0109 < 2.5 x SE 0.0045"


def test_weight_reasons_are_said_in_plain_words_with_their_numbers() -> None:
    said = weight_reason(NOT_RELIABLE)
    assert said == ("the learned weights did not rank booked leads clearly better than the current ones (on leads "
                    "held out of the fit the ranking quality, AUC, rose by 0.0109: less than 2.5 standard errors, "
                    "2.5 x 0.0045 = 0.01125, so the gain may be chance)")
    applied = weight_reason("held-out AUC 0.5587 -> 0.5690 over 5 folds; step of at most 0.05")
    assert applied == ("the learned weights ranked booked leads better than the current ones on leads held out of "
                       "the fit (ranking quality, AUC, 0.5587 -> 0.5690, averaged over 5 rounds, each holding out a "
                       "different part of the leads); each weight moved by at most 0.05")
    assert "0.0010" in weight_reason("no out-of-sample improvement: AUC gain 0.0010 < 0.003")
    assert weight_reason("insufficient data: 12 outcomes") == "insufficient data: 12 outcomes"  # unknown: as is
    assert weight_reason(None) == ""
    # The demo's summary line, wrapped, says the same.
    demo = " ".join(" ".join(learned_summary({"who": {"weight_learning": {"applied": False,
                                                                          "reason": NOT_RELIABLE}}})).split())
    assert "score weights kept the current weights: the learned weights did not rank booked leads clearly" in demo
    assert "less than 2.5 standard errors, 2.5 x 0.0045 = 0.01125" in demo and " x SE " not in demo


def test_fit_weights_applies_through_apply_learned_weights(dsn: str, conn: Conn) -> None:
    with psycopg.connect(dsn, autocommit=True) as c:
        cid = str(generate(c, GeneratorConfig(seed=63, clients=1, leads_per_client=2500, effects=Effects.planted(),
                                              client_name_prefix="CLI fit")).client_ids[0])
    in_db = _in_db_decision(conn, cid)
    [out] = ci_json(dsn, "fit-weights", cid)
    assert out["decision"]["applied"] == in_db["applied"]
    row = conn.execute("select als_learned_weights from public.clients where id = %s", (cid,)).fetchone()
    assert row is not None
    if in_db["applied"]:
        assert out["applied"]["applied"] is True
        assert {k: float(v) for k, v in row[0].items()} == {k: float(v) for k, v in in_db["new_weights"].items()}
    else:
        assert out["applied"] is None and row[0] is None


def test_demo_says_a_sequences_booking_share_is_an_estimate() -> None:
    """booking_probability is built from each step's booking rate: the demo says so, and what sample_size counts."""
    how = {"winning_sequences": [{"sequence": ["linkedin", "linkedin", "email", "voice", "email", "email"],
                                  "booking_probability": 0.1957, "sample_size": 168, "conversions": 46,
                                  "sample": 1550, "significance": "above"}]}
    text = " ".join(" ".join(learned_summary({"how": how})).split())
    assert ("sequences linkedin > linkedin > email > voice > email > email: an estimated 19.6% of leads book along "
            "it, from the booking rate at each step; 168 leads went down the whole sequence") in text
    assert "of leads sent down it book" not in text


def test_demo_report_explains_its_terms(conn: Conn, client: str, capsys: pytest.CaptureFixture[str]) -> None:
    """The demo's refresh report names no jargon it does not explain (it said "family-wise interval", "ALS"
    and "confidence 1.00" with no word on what they are)."""
    refresh_and_report(conn, [client])
    out = " ".join(capsys.readouterr().out.split())
    assert "confidence 1.00" in out or "confidence 0." in out
    assert "Confidence: from 0 to 1, how much data backs the patterns" in out
    assert "widened for the number of segments compared at once" in out
    for jargon in ("family-wise", "ALS", "folds", "led_to_booking", "deleted_at"):
        assert jargon not in out, jargon

