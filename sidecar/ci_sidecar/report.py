"""`ci report`: one self-contained HTML page per client with the patterns as charts (spec 6G).

Charts (plotly, with plotly.js inlined: the page opens with no network):
title and industry rankings with their intervals, a day x hour heat map of the booking
rate in local time, the converting-touch distribution and the per-position hazard,
channel sequences, the weight history, the business KPIs per week
(``public.conversion_kpis_weekly``), and the health warnings.

The page records its own health for tests and monitors: once every chart has drawn,
``<body>`` gets ``data-charts-total``, ``data-charts-rendered`` and ``data-errors`` (script
errors and console errors seen while loading).
"""
from __future__ import annotations

import datetime as dt
import html
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import plotly.graph_objects as go
from plotly.offline import get_plotlyjs

from ci_sidecar.client import CiClient, Id, PatternSet
from ci_sidecar.wording import (
    SEQUENCE_TOUCHES,
    lift_text,
    plain_name,
    sequence_estimate,
    significance_words,
    utc_stamp,
)

__all__ = ["ReportData", "load_report_data", "render_report", "write_report"]

DAYS = ("Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday")
WEIGHT_KEYS = ("data_quality", "authority", "company_fit", "timing")


@dataclass
class ReportData:
    client_id: str
    client_name: str
    patterns: PatternSet
    heat: list[tuple[int, int, int, int]] = field(default_factory=list)  # dow, hour, trials, bookings
    weight_history: list[tuple[str, dict[str, float], bool]] = field(default_factory=list)
    kpis: list[dict[str, Any]] = field(default_factory=list)
    generated_at: str = ""


def load_report_data(ci: CiClient, client_id: Id) -> ReportData:
    """Everything the page shows, read through the API and the owner's views."""
    info = ci.client_info(client_id)
    patterns = ci.require_patterns(client_id)
    data = ReportData(str(client_id), info.name, patterns,
                      generated_at=dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"))
    with ci.transaction():
        # The detectors' own per-touch relation (local day and hour in each lead's zone).
        ci.execute("select ci_private.prepare_touches(%s::uuid)", (str(client_id),))
        rows = ci.execute(
            "select local_dow, local_hour, count(*) filter (where booked is not null), "
            "coalesce(sum(booked) filter (where booked is not null), 0) "
            "from pg_temp.ci_touches where local_dow is not null group by 1, 2 order by 1, 2"
        )
    data.heat = [(int(r[0]), int(r[1]), int(r[2]), int(r[3])) for r in rows]
    for entry in reversed(ci.get_pattern_history(client_id, "who", 52)):
        learning = entry.patterns.get("weight_learning")
        if not isinstance(learning, Mapping):
            continue
        applied = bool(learning.get("applied"))
        weights = learning.get("new_weights") if applied else learning.get("old_weights")
        if isinstance(weights, Mapping) and entry.computed_at is not None:
            data.weight_history.append((entry.computed_at.isoformat(),
                                        {k: float(weights.get(k, 0.0)) for k in WEIGHT_KEYS}, applied))
    kpi_rows = ci.execute(
        "select week, leads_contacted, leads_with_outcome, bookings, booking_rate_of_outcomes, avg_days_to_booking "
        "from public.conversion_kpis_weekly where client_id = %s::uuid order by week", (str(client_id),)
    )
    data.kpis = [
        {"week": r[0].date().isoformat() if hasattr(r[0], "date") else str(r[0]), "contacted": int(r[1] or 0),
         "with_outcome": int(r[2] or 0), "bookings": int(r[3] or 0),
         "rate": None if r[4] is None else float(r[4]), "days": None if r[5] is None else float(r[5])}
        for r in kpi_rows
    ]
    return data


# -- charts ----------------------------------------------------------------------------------------

def _items(node: Any) -> list[Mapping[str, Any]]:
    return [x for x in node if isinstance(x, Mapping)] if isinstance(node, list) else []


def _f(value: Any) -> float | None:
    try:
        return None if value is None or isinstance(value, bool) else float(value)
    except (TypeError, ValueError):
        return None


COLORS = {"above": "#1a7f37", "below": "#cf222e", "none": "#6e7781"}


def _layout(fig: go.Figure, title: str, height: int = 420) -> go.Figure:
    fig.update_layout(title=title, height=height, margin={"l": 180, "r": 30, "t": 60, "b": 50},
                      template="plotly_white", showlegend=False)
    return fig


def _ranking_chart(items: list[Mapping[str, Any]], label: str, title: str, baseline: float | None,
                   unit: str) -> go.Figure | None:
    rows = [x for x in items if _f(x.get("conversion_rate")) is not None][:20]
    if not rows:
        return None
    rows = list(reversed(rows))
    names = [f"{x.get(label)} (n={x.get('sample')})" for x in rows]
    rates = [_f(x.get("conversion_rate")) or 0.0 for x in rows]
    lows = [max(r - (_f(x.get("ci_low")) or r), 0.0) for r, x in zip(rates, rows, strict=True)]
    highs = [max((_f(x.get("ci_high")) or r) - r, 0.0) for r, x in zip(rates, rows, strict=True)]
    colors = [COLORS.get(str(x.get("significance")), COLORS["none"]) for x in rows]
    hover = [
        f"{x.get(label)}<br>{x.get('conversions')} of {x.get('sample')} {unit}<br>rate {r:.1%}"
        f"<br>interval {(_f(x.get('ci_low')) or 0):.1%}-{(_f(x.get('ci_high')) or 0):.1%}"
        f"<br>lift {lift_text(x.get('adjusted_lift', x.get('lift')))}<br>{significance_words(x.get('significance'))}"
        for x, r in zip(rows, rates, strict=True)
    ]
    fig = go.Figure(go.Scatter(
        x=rates, y=names, mode="markers", marker={"color": colors, "size": 10},
        error_x={"type": "data", "symmetric": False, "array": highs, "arrayminus": lows},
        hovertext=hover, hoverinfo="text",
    ))
    if baseline is not None:
        fig.add_vline(x=baseline, line_dash="dash", line_color="#0969da",
                      annotation_text=f"client rate {baseline:.1%}")
    fig.update_xaxes(tickformat=".0%", title=f"booking rate per {unit.removesuffix('s')}")
    return _layout(fig, title, max(300, 28 * len(rows) + 120))


def _heatmap(data: ReportData) -> go.Figure | None:
    if not data.heat:
        return None
    z: list[list[float | None]] = [[None] * 24 for _ in range(7)]
    text: list[list[str]] = [[""] * 24 for _ in range(7)]
    for dow, hour, trials, bookings in data.heat:
        if 0 <= dow < 7 and 0 <= hour < 24 and trials > 0:
            z[dow][hour] = bookings / trials
            text[dow][hour] = f"{DAYS[dow]} {hour:02d}:00<br>{bookings} of {trials} touches booked"
    fig = go.Figure(go.Heatmap(z=z, x=[f"{h:02d}" for h in range(24)], y=list(DAYS), text=text,
                               hoverinfo="text", colorscale="Greens", colorbar={"tickformat": ".1%"}))
    fig.update_xaxes(title="local hour (the lead's zone, else the campaign's, else the client's)")
    return _layout(fig, "Booking rate per touch by local day and hour", 380)


def _touch_charts(when: Mapping[str, Any]) -> list[go.Figure]:
    out: list[go.Figure] = []
    dist = when.get("converting_touch_distribution")
    if isinstance(dist, Mapping) and dist:
        keys = sorted(dist, key=lambda k: int("".join(c for c in str(k) if c.isdigit()) or 0))
        fig = go.Figure(go.Bar(x=[str(k).replace("_", " ") for k in keys], y=[_f(dist[k]) for k in keys],
                               marker_color="#0969da"))
        fig.update_yaxes(tickformat=".0%", title="share of bookings")
        out.append(_layout(fig, "Which touch books the meeting (converting-touch distribution)", 360))
    hazard = _items(when.get("touch_position_hazard"))
    if hazard:
        hazard = sorted(hazard, key=lambda x: _f(x.get("position")) or 0)
        rates = [_f(x.get("conversion_rate")) or 0.0 for x in hazard]
        fig = go.Figure(go.Bar(
            x=[f"touch {x.get('position')}" for x in hazard], y=rates,
            marker_color=[COLORS.get(str(x.get("significance")), COLORS["none"]) for x in hazard],
            error_y={"type": "data", "symmetric": False,
                     "array": [max((_f(x.get("ci_high")) or r) - r, 0) for x, r in zip(hazard, rates, strict=True)],
                     "arrayminus": [max(r - (_f(x.get("ci_low")) or r), 0) for x, r in zip(hazard, rates, strict=True)]},
            hovertext=[f"{x.get('conversions')} of {x.get('sample')} touches at this position booked" for x in hazard],
        ))
        fig.update_yaxes(tickformat=".1%", title="share of the touches sent at this position that booked")
        out.append(_layout(fig, "Booking chance of each touch in the sequence, with 95% intervals", 360))
    return out


def _sequences(how: Mapping[str, Any]) -> go.Figure | None:
    items = _items(how.get("sequence_rankings")) or _items(how.get("winning_sequences"))
    rows = [x for x in items if isinstance(x.get("sequence"), list)][:15]
    if not rows:
        return None
    rows = list(reversed(rows))
    labels = [" > ".join(map(str, x.get("sequence") or [])) for x in rows]
    probs = [_f(x.get("booking_probability")) or 0.0 for x in rows]
    fig = go.Figure(go.Bar(
        x=probs, y=labels, orientation="h",
        marker_color=[COLORS.get(str(x.get("significance")), COLORS["none"]) for x in rows],
        hovertext=[f"{sequence_estimate(_f(x.get('booking_probability')), x.get('sample_size'))}<br>"
                   f"per touch along it {(_f(x.get('conversion_rate')) or 0):.1%}: {x.get('conversions')} of "
                   f"{x.get('sample')} {SEQUENCE_TOUCHES}<br>{significance_words(x.get('significance'))}"
                   for x in rows],
    ))
    fig.update_xaxes(tickformat=".0%", title="estimated share of leads that book along the sequence "
                                             "(from the booking rate at each step)")
    return _layout(fig, "Channel sequences (green: interval above the client's rate)", max(320, 30 * len(rows) + 120))


def _weights(data: ReportData) -> go.Figure | None:
    if not data.weight_history:
        return None
    fig = go.Figure()
    x = [w[0] for w in data.weight_history]
    for key in WEIGHT_KEYS:
        fig.add_trace(go.Scatter(x=x, y=[w[1][key] for w in data.weight_history], mode="lines+markers",
                                 name=plain_name(key)))
    fig.update_yaxes(title="weight in force after the refresh")
    fig = _layout(fig, "Lead score weights: how much each part of the score counts, after each refresh", 360)
    fig.update_layout(showlegend=True, margin={"l": 80})
    return fig


def _kpis(data: ReportData) -> go.Figure | None:
    if not data.kpis:
        return None
    weeks = [k["week"] for k in data.kpis]
    fig = go.Figure()
    fig.add_trace(go.Bar(x=weeks, y=[k["bookings"] for k in data.kpis], name="meetings booked", marker_color="#8250df"))
    fig.add_trace(go.Scatter(x=weeks, y=[k["rate"] for k in data.kpis], name="booked / leads with an outcome",
                             yaxis="y2", mode="lines+markers", line={"color": "#1a7f37"}))
    fig = _layout(fig, "Business KPIs per week of first touch", 380)
    fig.update_layout(showlegend=True, margin={"l": 80, "r": 80},
                      yaxis={"title": "meetings booked"},
                      yaxis2={"title": "booking rate", "overlaying": "y", "side": "right", "tickformat": ".0%"})
    return fig


def _warnings(patterns: PatternSet) -> list[str]:
    out: list[str] = []
    for kind in ("who", "what", "when", "how"):
        p = patterns.get(kind)
        if p is None:
            out.append(f"{kind.upper()}: no pattern computed yet.")
            continue
        if p.stale:
            out.append(f"{kind.upper()}: stale (computed {utc_stamp(p.computed_at, seconds=False)}, valid until "
                       f"{utc_stamp(p.valid_until, seconds=False)}).")
        if p.insufficient_data:
            out.append(f"{kind.upper()}: insufficient data ({p.sample_size} outcomes).")
        out.extend(f"{kind.upper()}: {w}" for w in p.health_warnings)
    return out


# -- the page --------------------------------------------------------------------------------------

_HEAD_SCRIPT = """
window.__ciErrors = [];
window.addEventListener('error', function (e) { window.__ciErrors.push(String(e.message || e)); });
(function () {
  var original = console.error;
  console.error = function () {
    window.__ciErrors.push(Array.prototype.join.call(arguments, ' '));
    return original.apply(console, arguments);
  };
})();
"""

_TAIL_SCRIPT = """
(function () {
  var started = Date.now();
  function check() {
    var divs = document.querySelectorAll('.plotly-graph-div');
    var rendered = 0;
    divs.forEach(function (d) { if (d._fullLayout && d.querySelector('svg.main-svg')) { rendered++; } });
    if (rendered < divs.length && Date.now() - started < 8000) { setTimeout(check, 100); return; }
    document.body.setAttribute('data-charts-total', String(divs.length));
    document.body.setAttribute('data-charts-rendered', String(rendered));
    document.body.setAttribute('data-errors', String(window.__ciErrors.length));
    document.body.setAttribute('data-error-text', window.__ciErrors.join(' | '));
    document.body.setAttribute('data-ready', 'true');
  }
  window.addEventListener('load', function () { setTimeout(check, 50); });
})();
"""

_CSS = """
body { font-family: -apple-system, 'Segoe UI', 'DejaVu Sans', sans-serif; margin: 24px auto; max-width: 1200px;
       color: #1f2328; }
h1 { margin-bottom: 4px; } .meta { color: #57606a; margin-top: 0; }
.kpis { display: flex; gap: 16px; flex-wrap: wrap; margin: 16px 0; }
.kpi { border: 1px solid #d0d7de; border-radius: 6px; padding: 8px 16px; min-width: 150px; }
.kpi b { display: block; font-size: 1.4em; }
.warn { background: #fff8c5; border: 1px solid #d4a72c; border-radius: 6px; padding: 8px 16px; }
.ok { background: #dafbe1; border: 1px solid #4ac26b; border-radius: 6px; padding: 8px 16px; }
section { margin: 24px 0; } .none { color: #57606a; font-style: italic; }
"""


def render_report(data: ReportData) -> str:
    """The HTML page (a string; plotly.js inline)."""
    p = data.patterns
    who = p.who.data if p.who else {}
    when = p.when.data if p.when else {}
    how = p.how.data if p.how else {}
    baseline = _f(who.get("baseline_rate"))
    sections: list[tuple[str, go.Figure | None, str]] = [
        ("Titles", _ranking_chart(_items(who.get("title_rankings")), "title",
                                  "Title rankings: booking rate per lead with 95% family-wise intervals", baseline,
                                  "leads"), "No WHO pattern with title rankings yet."),
        ("Industries", _ranking_chart(_items(who.get("industry_rankings")), "industry",
                                      "Industry rankings: booking rate per lead with 95% intervals", baseline,
                                      "leads"), "No WHO pattern with industry rankings yet."),
        ("Local day and hour", _heatmap(data), "No touches with a local time yet."),
    ]
    touch = _touch_charts(when)
    sections += [("Converting touch", touch[0] if touch else None, "No WHEN pattern yet.")]
    if len(touch) > 1:
        sections += [("Booking chance by touch", touch[1], "")]
    sections += [
        ("Channel sequences", _sequences(how), "No HOW pattern with sequences yet."),
        ("Weight history", _weights(data), "No weight decisions recorded yet."),
        ("KPIs over time", _kpis(data), "No contacted leads yet."),
    ]
    parts: list[str] = []
    for i, (name, fig, empty) in enumerate(sections):
        if fig is None:
            parts.append(f"<section><h2>{html.escape(name)}</h2><p class='none'>{html.escape(empty)}</p></section>")
            continue
        div = fig.to_html(full_html=False, include_plotlyjs=False, div_id=f"chart-{i}",
                          config={"displaylogo": False, "responsive": True})
        parts.append(f"<section><h2>{html.escape(name)}</h2>{div}</section>")
    warnings = _warnings(p)
    warn_html = (
        "<div class='warn'><ul>" + "".join(f"<li>{html.escape(w)}</li>" for w in warnings) + "</ul></div>"
        if warnings else "<div class='ok'>No health warnings: every pattern is fresh and has enough data.</div>"
    )
    total_bookings = sum(k["bookings"] for k in data.kpis)
    contacted = sum(k["contacted"] for k in data.kpis)
    kpis = [
        ("leads with an outcome", f"{p.who.sample_size:,}" if p.who else "n/a"),
        ("client booking rate", f"{baseline:.1%}" if baseline is not None else "n/a"),
        ("meetings booked", f"{total_bookings:,}"),
        ("leads contacted", f"{contacted:,}"),
        ("WHO confidence", f"{p.who.confidence:.2f}" if p.who else "n/a"),
    ]
    kpi_html = "<div class='kpis'>" + "".join(
        f"<div class='kpi'>{html.escape(k)}<b>{html.escape(v)}</b></div>" for k, v in kpis) + "</div>"
    computed = next((utc_stamp(x.computed_at, seconds=False) for x in (p.who, p.what, p.when, p.how) if x and x.computed_at), "never")
    title = f"Conversion patterns: {data.client_name}"
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title><style>{_CSS}</style>"
        f"<script>{_HEAD_SCRIPT}</script>"
        f"<script type='text/javascript'>{get_plotlyjs()}</script></head><body>"
        f"<h1>{html.escape(title)}</h1>"
        f"<p class='meta'>client {html.escape(data.client_id)}; patterns computed {html.escape(computed)}; "
        f"page generated {html.escape(data.generated_at)}. Green: the 95% interval lies above the client's rate; "
        "red: below; grey: not distinguishable.</p>"
        f"{kpi_html}<section><h2>Health</h2>{warn_html}</section>"
        + "".join(parts)
        + f"<script id='ci-data' type='application/json'>{html.escape(json.dumps({'client_id': data.client_id}))}"
        f"</script><script>{_TAIL_SCRIPT}</script></body></html>\n"
    )


def write_report(ci: CiClient, client_id: Id, out: Path | str) -> Path:
    """Load, render and write one client's page; returns the path written."""
    path = Path(out)
    if path.is_dir() or path.suffix.lower() not in (".html", ".htm"):
        path.mkdir(parents=True, exist_ok=True)
        path = path / f"ci-report-{client_id}.html"
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_report(load_report_data(ci, client_id)), encoding="utf-8")
    return path


def chart_count(data: ReportData) -> int:
    """How many charts the page will draw (for the tests)."""
    return render_report(data).count("class=\"plotly-graph-div\"")

