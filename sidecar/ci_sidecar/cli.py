"""`ci`: the command line of the Conversion Intelligence layer.

    ci patterns CLIENT            stored patterns (summary; --json for all of it)
    ci context CLIENT             the agents' context (--prompt, --store)
    ci explain-score LEAD         why a lead's score is what it is
    ci report CLIENT              one self-contained HTML page with charts
    ci fit-weights CLIENT|--all   the weight fit outside the database (no plpython3u)
    ci watch                      keep every client's agent context current
    ... and one command per API function: history, detect, refresh, score, rescore,
    allocation, apply-weights, reconcile, agent-context.

Human output by default, ``--json`` for machines. Errors are one line on stderr, with
exit codes: 3 connection (bad URL, server down, login refused), 4 unknown client or
lead, 5 client without patterns, 6 caller without access, 7 invalid input, 1 other
(2 is argparse's usage error).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ci_sidecar.client import PATTERN_TYPES, CiClient, Pattern, PatternSet, WeightsResult
from ci_sidecar.context import build_context
from ci_sidecar.errors import EXIT_ERROR, EXIT_INVALID, CiError, InvalidInput
from ci_sidecar.wording import lift_text, plain_name, significance_words, utc_stamp, weight_reason

__all__ = ["build_parser", "context_main", "main"]


def _default(value: Any) -> Any:
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


def _print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, sort_keys=True, default=_default))


def _pct(value: Any) -> str:
    try:
        return f"{float(value):.1%}"
    except (TypeError, ValueError):
        return "n/a"


def _weights_text(weights: Any) -> str:
    """Score weights in words ("data quality 0.18, authority 0.19, ..."), not a Python dict."""
    if not isinstance(weights, dict) or not weights:
        return "no weights"
    parts = []
    for key, value in weights.items():
        try:
            parts.append(f"{plain_name(key)} {float(value):.4f}")
        except (TypeError, ValueError):
            parts.append(f"{plain_name(key)} {value}")
    return "weights " + ", ".join(parts)


def _value_text(value: Any) -> str:
    """A segment's value for people: a flag as yes / no, an identifier in words."""
    if isinstance(value, bool) or str(value) in ("True", "False", "true", "false"):
        return "yes" if str(value).lower() == "true" else "no"
    return plain_name(value)


# -- human renderings ------------------------------------------------------------------------------

def _pattern_line(kind: str, p: Pattern | None) -> str:
    if p is None:
        return f"{kind.upper():<5} none computed"
    state = "stale" if p.stale else "fresh"
    if p.insufficient_data:
        state += ", insufficient data"
    warn = f", {len(p.health_warnings)} health warnings" if p.health_warnings else ""
    return (f"{kind.upper():<5} {p.sample_size:>7,} outcomes  confidence {p.confidence:.2f}  computed "
            f"{p.computed_at:%Y-%m-%d %H:%M} ({state}{warn})" if p.computed_at else
            f"{kind.upper():<5} {p.sample_size:>7,} outcomes  confidence {p.confidence:.2f} ({state}{warn})")


def _human_patterns(ps: PatternSet) -> None:
    for kind in PATTERN_TYPES:
        print(_pattern_line(kind, ps.get(kind)))
    ctx = build_context(ps.raw)
    if ctx.statements:
        print("\nWhat the patterns back (details: ci context CLIENT):")
        for s in ctx.statements:
            print(f"  [{s.source}] {s.render()}")


# -- commands --------------------------------------------------------------------------------------

def _cmd_patterns(ci: CiClient, a: argparse.Namespace) -> Any:
    ps = ci.require_patterns(a.client)
    if a.json:
        return ps.raw if not a.type else ps.raw.get(a.type)
    _human_patterns(ps)
    return None


def _cmd_history(ci: CiClient, a: argparse.Namespace) -> Any:
    rows = ci.get_pattern_history(a.client, a.type, a.limit)
    if a.json:
        return [r.__dict__ for r in rows]
    if not rows:
        print("no history yet")
    for r in rows:
        print(f"{r.computed_at:%Y-%m-%d %H:%M}  {r.pattern_type:<5} {r.sample_size:>7,} outcomes  "
              f"confidence {r.confidence:.2f}" if r.computed_at else f"{r.pattern_type} {r.sample_size}")
    return None


def _cmd_detect(ci: CiClient, a: argparse.Namespace) -> Any:
    p = ci.detect(a.type, a.client)
    if a.json:
        return p.data
    print(_pattern_line(a.type, p) + " (computed now, not stored)")
    ctx = build_context({a.type: p.data}, include_stale=True)
    if ctx.statements:
        print("\nWhat it backs:")
        for s in ctx.statements:
            print(f"  {s.render()}")
    for caveat in ctx.caveats:
        if a.type.upper() in caveat:  # not the other patterns' "No WHO pattern has been computed"
            print(f"  note: {caveat}")
    return None


def _cmd_refresh(ci: CiClient, a: argparse.Namespace) -> Any:
    if a.all:
        r = ci.refresh_all_conversion_patterns()
        if a.json:
            return r.raw
        print(f"refreshed: {r.ok} ok, {r.skipped} skipped, {r.failed} failed")
        for c in r.clients:
            print(f"  {c.get('client_id')}: {c.get('status')}" + (f" ({c['reason']})" if c.get("reason") else ""))
        return None
    if not a.client:
        raise InvalidInput("give a client id or --all")
    s = ci.refresh_conversion_patterns(a.client)
    if a.json:
        return s.raw
    print(f"{s.client_id}: {s.status} at {utc_stamp(s.computed_at)}; weights "
          f"{'applied' if s.weights_applied else 'kept'}: {weight_reason(s.weights.get('reason', ''))}")
    return None


def _cmd_score(ci: CiClient, a: argparse.Namespace) -> Any:
    score = ci.score_lead(a.lead)
    if a.json:
        return {"lead_id": a.lead, "score": score}
    print("lead is deleted: not scored" if score is None else score)
    return None


def _cmd_rescore(ci: CiClient, a: argparse.Namespace) -> Any:
    n = ci.rescore_client_leads(a.client)
    if a.json:
        return {"client_id": a.client, "rescored": n}
    print(f"{n:,} leads rescored")
    return None


def _cmd_allocation(ci: CiClient, a: argparse.Namespace) -> Any:
    r = ci.recommended_channel_allocation(a.client, a.tier)
    if a.json:
        return r.raw
    shares = ", ".join(f"{k} {v}%" for k, v in sorted(r.allocation.items())) or "no channel"
    note = r.raw.get("note")
    print(f"tier {r.tier} (from {r.source}): {shares}" + (f": {note}" if note else ""))
    return None


def _json_arg(text: str, name: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as exc:
        raise InvalidInput(f"{name} is not JSON: {exc}") from None


def _rescore_note(r: WeightsResult) -> str:
    """What applying the weights did to the leads' scores, for a person."""
    if r.rescore_queued:
        return ("leads queued for a rescore (a client over rescore_inline_max, 5,000 leads by default: the rescore "
                "job within 5 minutes, the next refresh, or `ci rescore CLIENT` now)")
    return f"{r.rescored:,} leads rescored"


def _cmd_apply_weights(ci: CiClient, a: argparse.Namespace) -> Any:
    r = ci.apply_learned_weights(a.client, _json_arg(a.weights, "--weights"),
                                 _json_arg(a.metrics, "--metrics") if a.metrics else {})
    if a.json:
        return r.raw
    print(f"applied {_weights_text(r.weights)}; {_rescore_note(r)}" if r.applied else f"not applied: {r.reason}")
    return None


def _cmd_reconcile(ci: CiClient, a: argparse.Namespace) -> Any:
    r = ci.reconcile_conversions(a.client)
    if a.json:
        return r.raw
    print(_reconcile_text(r.raw))
    return None


def _reconcile_text(raw: dict[str, Any]) -> str:
    """reconcile_conversions' counts in words (its JSON with --json)."""
    def n(key: str) -> str:
        value = raw.get(key)
        return f"{value:,}" if isinstance(value, int) else str(value if value is not None else 0)

    return (f"reconciled: {n('leads_converted')} leads set booked, {n('leads_unconverted')} no longer booked, "
            f"{n('leads_retimed')} with their booking time corrected; {n('marks_added')} converting-touch marks "
            f"added, {n('marks_removed')} removed; the kept touch list rebuilt for {n('lead_touches_leads')} leads "
            f"({n('lead_touches_rows')} touches)")


def _cmd_explain(ci: CiClient, a: argparse.Namespace) -> Any:
    e = ci.explain_lead_score(a.lead)
    if a.json:
        return e.raw
    stored = "" if e.stored_score in (None, e.score) else f" (stored score {e.stored_score}: rescore to update)"
    print(f"lead {e.lead_id}: score {e.score} ({e.tier}){stored}; weights {e.weights_source}")
    print(f"  {'component':<14}{'points':>7}{'weight':>8}{'contrib':>9}  rules")
    for c in e.components:
        rules = "; ".join(f"{r} {p:+d}" for r, p in c.rules) or "-"
        if c.capped:
            rules += f" (capped at {c.max})"
        print(f"  {plain_name(c.component):<14}{c.points:>4}/{c.max:<2}{c.weight:>8.4f}{c.contribution:>+9.2f}  "
              f"{rules}")
    print("  score = sum of contributions + 15 (risk allowance), clipped to 0..100 and rounded")
    if e.who_segments:
        print("WHO segments this lead falls in (stored WHO pattern; rate = booked / leads with an outcome, "
              "95% interval, lift = rate / the client's rate):")
        for s in e.who_segments:
            print(f"  {plain_name(s.dimension):<14}{_value_text(s.value):<28} rate {_pct(s.conversion_rate)} "
                  f"[{_pct(s.ci_low)}-{_pct(s.ci_high)}], lift {lift_text(s.lift)}, "
                  f"{significance_words(s.significance)}, {s.sample:,} leads")
    else:
        print("No WHO pattern segments for this lead yet.")
    return None


def _cmd_context(ci: CiClient, a: argparse.Namespace) -> Any:
    if a.stored:
        stored = ci.get_agent_context(a.client)
        if stored is None:
            raise CiError(f"no agent context stored for client {a.client}: run `ci context {a.client} --store` "
                          "or `ci watch`")
        if a.json:
            return stored.raw
        print(stored.prompts.get(a.prompt, "") if a.prompt != "all" else
              "\n\n".join(f"== {k} ==\n{v}" for k, v in sorted(stored.prompts.items())))
        return None
    if a.store:
        from ci_sidecar.watch import render_and_store

        ctx = render_and_store(ci, a.client, include_stale=a.include_stale)
    else:
        info = ci.client_info(a.client)
        ctx = build_context(ci.require_patterns(a.client).raw, client_name=info.name, include_stale=a.include_stale)
    if a.json:
        return {"context": ctx.to_json(), "prompts": ctx.prompts()}
    prompts = ctx.prompts()
    if a.prompt == "all":
        print("\n\n".join(f"== {k} ==\n{prompts[k]}" for k in ("campaign", "sequence", "messaging")))
    else:
        print(prompts[a.prompt])
    return None


def _cmd_agent_context(ci: CiClient, a: argparse.Namespace) -> Any:
    a.stored, a.store, a.include_stale = True, False, False
    return _cmd_context(ci, a)


def _cmd_fit(ci: CiClient, a: argparse.Namespace) -> Any:
    from ci_sidecar.fit import fit_weights

    ids = [c.id for c in ci.clients_with_patterns()] if a.all else list(a.client)
    if not ids:
        raise InvalidInput("give one or more client ids, or --all")
    results = []
    for cid in ids:
        out = fit_weights(ci, cid, apply=not a.dry_run)
        results.append(out.to_json())
        if not a.json:
            d = out.decision
            if out.applied is not None:
                print(f"{cid}: applied {_weights_text(out.applied.weights)} ({_rescore_note(out.applied)}): "
                      f"{weight_reason(d.get('reason', ''))}")
            elif out.proposed:
                print(f"{cid}: would apply {_weights_text(d.get('new_weights'))} (dry run): "
                      f"{weight_reason(d.get('reason', ''))}")
            else:
                print(f"{cid}: kept {_weights_text(d.get('old_weights'))}: {weight_reason(d.get('reason', ''))}")
    return results if a.json else None


def _cmd_watch(ci: CiClient, a: argparse.Namespace) -> Any:
    from ci_sidecar.watch import WatchOptions, watch

    ci.close()  # watch opens (and re-opens) its own connection
    stats = watch(WatchOptions(dsn=a.dsn, fit=a.fit_weights, once=a.once, timeout=a.timeout, catch_up=a.catch_up,
                               include_stale=a.include_stale, clients=list(a.client or [])))
    if a.json:
        return {"rendered": stats.rendered, "fitted": stats.fitted, "errors": stats.errors,
                "connects": stats.connects, "notifications": stats.notifications}
    return None


def _cmd_report(ci: CiClient, a: argparse.Namespace) -> Any:
    from ci_sidecar.report import write_report

    path = write_report(ci, a.client, Path(a.out) if a.out else Path.cwd() / f"ci-report-{a.client}.html")
    if a.json:
        return {"client_id": a.client, "path": str(path.resolve())}
    print(f"report written to {path.resolve()}")
    return None


# -- the parser ------------------------------------------------------------------------------------

Handler = Callable[[CiClient, argparse.Namespace], Any]


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--dsn", default=os.environ.get("DATABASE_URL"),
                        help="database URL (default: $DATABASE_URL)")
    who = common.add_mutually_exclusive_group()
    who.add_argument("--as-user", metavar="USER_ID",
                     help="act as this signed-in user (role authenticated, JWT sub), as over RPC")
    who.add_argument("--as-role", choices=("service_role", "anon"), help="act as this API role")
    common.add_argument("--json", action="store_true", help="machine-readable JSON on stdout")

    parser = argparse.ArgumentParser(
        prog="ci", description="Conversion Intelligence: patterns, agent context, weights, reports.",
        epilog="Exit codes: 3 connection, 4 unknown client/lead, 5 no patterns, 6 no access, 7 invalid input.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, handler: Handler, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, parents=[common], help=help_text, description=help_text)
        p.set_defaults(handler=handler)
        return p

    p = add("patterns", _cmd_patterns, "the client's stored patterns (get_conversion_patterns)")
    p.add_argument("client", help="client id (uuid)")
    p.add_argument("--type", choices=PATTERN_TYPES, help="only this pattern (with --json)")

    p = add("history", _cmd_history, "pattern history, newest first (get_pattern_history)")
    p.add_argument("client")
    p.add_argument("--type", choices=PATTERN_TYPES)
    p.add_argument("--limit", type=int, default=52)

    p = add("detect", _cmd_detect, "compute one pattern now, store nothing (detect_*_patterns)")
    p.add_argument("type", choices=PATTERN_TYPES)
    p.add_argument("client")

    p = add("refresh", _cmd_refresh, "compute and store a client's patterns (refresh_conversion_patterns)")
    p.add_argument("client", nargs="?")
    p.add_argument("--all", action="store_true", help="every client (refresh_all_conversion_patterns)")

    p = add("score", _cmd_score, "rescore one lead now (score_lead)")
    p.add_argument("lead", help="lead id")

    p = add("rescore", _cmd_rescore, "rescore every lead of a client (rescore_client_leads)")
    p.add_argument("client")

    p = add("allocation", _cmd_allocation, "channel shares for a tier (recommended_channel_allocation)")
    p.add_argument("client")
    p.add_argument("tier", choices=("hot", "warm", "cool", "cold", "dead"))

    p = add("apply-weights", _cmd_apply_weights, "apply weights fitted elsewhere (apply_learned_weights)")
    p.add_argument("client")
    p.add_argument("--weights", required=True, help='JSON: {"data_quality": .., "authority": .., ...}')
    p.add_argument("--metrics", help="JSON recorded with them")

    p = add("reconcile", _cmd_reconcile, "re-derive conversions and marks (reconcile_conversions)")
    p.add_argument("client")

    p = add("explain-score", _cmd_explain, "why a lead's score is what it is (explain_lead_score)")
    p.add_argument("lead")

    p = add("context", _cmd_context, "the campaign agents' context for a client (spec 5.2-5.4)")
    p.add_argument("client")
    p.add_argument("--prompt", choices=("campaign", "sequence", "messaging", "all"), default="campaign",
                   help="which agent's prompt text (default: campaign)")
    p.add_argument("--store", action="store_true", help="also write it to public.agent_contexts")
    p.add_argument("--stored", action="store_true", help="read the stored one (get_agent_context)")
    p.add_argument("--include-stale", action="store_true", help="use stale patterns too, flagged")

    p = add("agent-context", _cmd_agent_context, "the stored agent context (get_agent_context)")
    p.add_argument("client")
    p.add_argument("--prompt", choices=("campaign", "sequence", "messaging", "all"), default="all")

    p = add("fit-weights", _cmd_fit, "fit the lead score's (ALS) component weights here and apply them (for servers without "
                                     "plpython3u)")
    p.add_argument("client", nargs="*")
    p.add_argument("--all", action="store_true", help="every client with patterns")
    p.add_argument("--dry-run", action="store_true", help="decide, apply nothing")

    p = add("watch", _cmd_watch, "render each refreshed client's agent context into the database")
    p.add_argument("--fit-weights", action="store_true", help="fit the weights after each refresh first")
    p.add_argument("--once", action="store_true", help="stop after the first refresh handled")
    p.add_argument("--timeout", type=float, help="stop after so many seconds")
    p.add_argument("--catch-up", action="store_true", help="first render every client whose context is behind")
    p.add_argument("--client", action="append", help="only this client (repeatable)")
    p.add_argument("--include-stale", action="store_true")

    p = add("report", _cmd_report, "write one self-contained HTML report with charts")
    p.add_argument("client")
    p.add_argument("--out", help="file or directory (default: ./ci-report-CLIENT.html)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        ci = CiClient.connect(args.dsn, as_user=args.as_user, as_role=args.as_role)
        try:
            result = args.handler(ci, args)
        finally:
            ci.close()
        if result is not None:
            _print_json(result)
        return 0
    except CiError as exc:
        print(f"ci: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except ValueError as exc:  # a malformed --as-user id
        print(f"ci: error: {exc}", file=sys.stderr)
        return EXIT_INVALID
    except KeyboardInterrupt:
        return EXIT_ERROR


def context_main(argv: Sequence[str] | None = None) -> int:
    """ci-context CLIENT: kept for compatibility, same as `ci context CLIENT`."""
    return main(["context", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    raise SystemExit(main())
