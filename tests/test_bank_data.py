"""Real data (issue 14): the UCI bank-marketing set loaded the way a host writes, every WHO and
WHEN/HOW count compared with an independent pandas computation from the CSV, exactly, and the
weight learning run to its held-out comparison.

Loading convention (the host's: leads, one outbound touch per contact, outcomes). Each CSV row of
bank-full.csv is a lead of one client (zone Europe/Lisbon): title = job, industry = education
('unknown' = missing), status converted when y = yes (converted_at one hour after the last
contact) else not_interested. The row's `campaign` contacts are voice touches written as the host
writes them (action 'sent', channel voice), the last on the row's date (day, month; the year
from the file's chronological order: 2008, then a new year each time the month goes back) at
10:00 local, each earlier one two days before the next. `duration` leaks the outcome and is not
read. The data (CC BY 4.0, Moro, Cortez and Rita 2014) is the shared read-only copy at
../shared/data/bank-marketing relative to the repository (CI_SHARED_DIR overrides); the test
skips when it is absent.
"""
from __future__ import annotations

import datetime as dt
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
import pytest

pd = pytest.importorskip("pandas")

pytestmark = [pytest.mark.db, pytest.mark.slow]

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("CI_SHARED_DIR") or ROOT.parent / "shared")
CSV = SHARED / "data" / "bank-marketing" / "bank-full.csv"
ZONE = "Europe/Lisbon"
MONTHS = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
DAYS = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"]


def _frame() -> Any:
    if not CSV.exists():
        pytest.skip(f"bank-marketing data not found at {CSV}")
    df = pd.read_csv(CSV, sep=";")
    month = df["month"].map({m: i + 1 for i, m in enumerate(MONTHS)})
    year = 2008 + (month.diff() < 0).cumsum()
    df["last_date"] = pd.to_datetime({"year": year, "month": month, "day": df["day"]})
    df["converted"] = (df["y"] == "yes").astype(int)
    df["lead_id"] = [uuid.uuid4() for _ in range(len(df))]
    return df


def _touches(df: Any) -> Any:
    """One row per contact: lead, position 1..campaign, local date (last contact - 2 days per step back)."""
    rep = df.loc[df.index.repeat(df["campaign"])].copy()
    rep["position"] = rep.groupby(level=0).cumcount() + 1
    rep["date"] = rep["last_date"] - pd.to_timedelta(2 * (rep["campaign"] - rep["position"]), unit="D")
    rep["booked"] = ((rep["position"] == rep["campaign"]) & (rep["converted"] == 1)).astype(int)
    return rep


@pytest.fixture(scope="module")
def bank(dsn: str) -> dict[str, Any]:
    df = _frame()
    touches = _touches(df)
    zone = ZoneInfo(ZONE)

    def local(date: Any, hour: int) -> dt.datetime:
        return dt.datetime(date.year, date.month, date.day, hour, tzinfo=zone)

    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute(
            "insert into public.clients (name, timezone, icp_industries) values ('issue 14 bank-marketing', %s,"
            " '{tertiary}') returning id", (ZONE,),
        ).fetchone()
        assert row is not None
        client = row[0]

        def lead_rows() -> Iterator[tuple[Any, ...]]:
            for r in df.itertuples(index=False):
                yes = r.converted == 1
                yield (r.lead_id, client, None if r.job == "unknown" else r.job,
                       None if r.education == "unknown" else r.education,
                       "converted" if yes else "not_interested",
                       local(r.last_date, 11) if yes else None)

        with conn.cursor() as cur:
            with cur.copy("copy public.leads (id, client_id, title, organization_industry, status, converted_at)"
                          " from stdin") as copy:
                for lead in lead_rows():
                    copy.write_row(lead)
            with cur.copy("copy public.activities (client_id, lead_id, channel, action, created_at)"
                          " from stdin") as copy:
                for t in touches.itertuples(index=False):
                    copy.write_row((client, t.lead_id, "voice", "sent", local(t.date, 10)))
        conn.execute("select ci_private.backfill_converting_touches(%s)", (client,))
        got = conn.execute(
            "select public.detect_who_patterns(%s), public.detect_when_patterns(%s),"
            " public.detect_how_patterns(%s)", (client, client, client),
        ).fetchone()
    assert got is not None
    return {"df": df, "touches": touches, "who": got[0], "when": got[1], "how": got[2]}


def test_who_counts_equal_pandas(bank: dict[str, Any]) -> None:
    df, who = bank["df"], bank["who"]
    assert who["sample_size"] == len(df) and who["conversions"] == int(df["converted"].sum())
    assert who["min_sample"] == 30
    jobs = df.assign(title=df["job"].where(df["job"] != "unknown"))
    expected = jobs.groupby("title", dropna=False)["converted"].agg(["size", "sum"])
    expected = expected[expected["size"] >= 30]
    got = {(r["sample"], r["conversions"]) for r in who["title_rankings"]}
    assert got == {(int(n), int(c)) for n, c in zip(expected["size"], expected["sum"])}
    missing = [r for r in who["title_rankings"] if r["missing"]]
    assert [(r["sample"], r["conversions"]) for r in missing] == [
        (int((df["job"] == "unknown").sum()), int(df.loc[df["job"] == "unknown", "converted"].sum()))]
    edu = df.groupby("education")["converted"].agg(["size", "sum"])
    got_edu = {("unknown" if r["missing"] else r["industry"]): (r["sample"], r["conversions"])
               for r in who["industry_rankings"]}
    assert got_edu == {k: (int(v["size"]), int(v["sum"])) for k, v in edu.iterrows()}


def test_weight_learning_reaches_its_held_out_comparison(bank: dict[str, Any]) -> None:
    learning = bank["who"]["weight_learning"]
    assert learning["status"] == "fitted", learning["reason"]
    assert learning["auc_current"] is not None and learning["auc_candidate"] is not None
    assert "constant" not in learning["reason"]
    assert {"data_quality", "timing"} <= set(learning["held_components"])
    new = learning["new_weights"]
    assert abs(sum(new.values()) - 0.85) < 1e-6 and all(0.05 <= w <= 0.5 for w in new.values())
    if not learning["applied"]:
        assert any(word in learning["reason"] for word in ("improvement", "reliable", "already")), learning["reason"]


def test_when_counts_equal_pandas(bank: dict[str, Any]) -> None:
    t, when = bank["touches"], bank["when"]
    assert when["metadata"]["trials"] == len(t) and when["metadata"]["bookings"] == int(t["booked"].sum())
    dow = (t["date"].dt.day_of_week + 1) % 7  # pandas Monday = 0 -> Sunday = 0
    by_day = t.groupby(dow)["booked"].agg(["size", "sum"])
    got = {r["day_index"]: (r["sample"], r["conversions"]) for r in when["day_rankings"]}
    assert got == {int(d): (int(v["size"]), int(v["sum"])) for d, v in by_day.iterrows() if v["size"] >= 30}
    assert {r["day"] for r in when["day_rankings"]} <= set(DAYS)
    assert [(r["hour"], r["sample"]) for r in when["hour_rankings"]] == [(10, len(t))]
    pos = t["position"].clip(upper=7)
    by_pos = t.groupby(pos)["booked"].agg(["size", "sum"])
    got_pos = {r["position"]: (r["sample"], r["conversions"]) for r in when["touch_position_hazard"]}
    assert got_pos == {int(p): (int(v["size"]), int(v["sum"])) for p, v in by_pos.iterrows() if v["size"] >= 30}
    # Expected bookings: the day's trials at each position's hazard (one channel here).
    hazard = by_pos["sum"] / by_pos["size"]
    exp_day = (pos.map(hazard)).groupby(dow).sum()
    for r in when["day_rankings"]:
        assert r["expected_bookings"] == pytest.approx(float(exp_day[r["day_index"]]), abs=0.006)
    assert when["metadata"]["bookings_without_prior_touch"] == 0
    assert when["metadata"]["leads"]["converted"] == int(bank["df"]["converted"].sum())


def test_how_counts_equal_pandas(bank: dict[str, Any]) -> None:
    t, how = bank["touches"], bank["how"]
    assert [(r["channel"], r["sample"], r["conversions"]) for r in how["channel_rankings"]] == [
        ("voice", len(t), int(t["booked"].sum()))]
    first = how["first_touch_rankings"][0]
    assert (first["channel"], first["leads"], first["leads_decided"]) == ("voice", len(bank["df"]), len(bank["df"]))
    # One channel: what its positions predict is exactly what it booked.
    assert how["channel_rankings"][0]["adjusted_lift"] == 1.0
    assert how["channel_rankings"][0]["significance"] == "none"
