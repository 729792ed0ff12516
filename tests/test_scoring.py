"""The lead score (ALS) on the real database, against an independent oracle.

The oracle below re-states contract section 4 in Python (exact fractions, its
own date arithmetic, a hand-written table of title authorities), and random
leads, edge values included, must score the same through the trigger and
through the set-based rescore, under the default and under learned weights.
Also: generated data is scored consistently, unrelated bulk updates do not
rescore, and a batch of absurd rows scores without an error.
"""
from __future__ import annotations

import calendar
import datetime as dt
import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import psycopg
import pytest
from psycopg.types.json import Jsonb

from ci_sidecar.generator import Effects, GeneratorConfig, generate

pytestmark = pytest.mark.db

Conn = psycopg.Connection[Any]

# Hand-written authority (and junior-title risk) of the titles the random leads use.
TITLES: dict[str | None, tuple[int, int]] = {
    None: (0, 0), "": (0, 0), "--": (0, 0),
    "CEO": (25, 0), "Chief Executive Officer": (25, 0), "Owner": (25, 0), "Co-founder": (25, 0),
    "President": (22, 0), "Chief of Staff": (22, 0), "CFO": (22, 0),
    "VP": (18, 0), "Vice President of Sales": (18, 0), "vice-president": (18, 0),
    "Director, Sales": (15, 0), "Head of Growth": (15, 0), "Dir. Marketing": (15, 0),
    "Sr. Manager": (10, 0), "Senior Manager, Ops": (10, 0),
    "Office Manager": (7, 0), "Team Lead": (7, 0), "Team Leader": (5, 0),
    "Software Engineer": (5, 0), "Marketing Assistant": (5, 5), "Intern": (5, 5),
    "Coordinator": (5, 5), "Assistant to the CEO": (25, 5), "Headhunter": (5, 0),
}
ICP_INDUSTRIES = ["Dental", " legal "]
ICP_SIZES = ["11-50", "201+"]
ICP_LOCATIONS = ["US", "uk"]
DEFAULTS = {"data_quality": Fraction(20, 100), "authority": Fraction(25, 100), "company_fit": Fraction(25, 100),
            "timing": Fraction(15, 100)}


def months_before(day: dt.date, months: int) -> dt.date:
    """PostgreSQL's date - interval 'n months': same day n months earlier, clamped to the month's end."""
    total = day.year * 12 + (day.month - 1) - months
    year, month = divmod(total, 12)
    last = calendar.monthrange(year, month + 1)[1]
    return dt.date(year, month + 1, min(day.day, last))


def nonblank(value: str | None) -> bool:
    return value is not None and value.strip() != ""


@dataclass
class Lead:
    title: str | None
    email: str | None
    email_verified: bool | None
    phone: str | None
    phone_verified: bool | None
    linkedin_url: str | None
    personal_email: str | None
    industry: str | None
    employees: int | None
    country: str | None
    hiring: bool | None
    funded: dt.date | None
    started: dt.date | None
    bounces: int | None
    status: str

    def oracle(self, as_of: dt.date, sizes: list[tuple[int, int | None]] | None,
               weights: dict[str, Fraction]) -> tuple[int, int, int, int, int, int, str]:
        dq = 0
        if nonblank(self.email):
            dq += 8 if self.email_verified else 4
        if nonblank(self.phone):
            dq += 6 if self.phone_verified else 3
        dq += 4 if nonblank(self.linkedin_url) else 0
        dq += 2 if nonblank(self.personal_email) else 0
        authority, junior = TITLES[self.title]
        fit = 10 if (self.industry or "").strip().lower() in {i.strip().lower() for i in ICP_INDUSTRIES} else 0
        n = self.employees
        if n is not None and n > 0:
            if sizes is not None:
                fit += 8 if any(lo <= n and (hi is None or n <= hi) for lo, hi in sizes) else 0
            else:
                fit += 8 if 5 <= n <= 50 else 5 if 51 <= n <= 200 else 3 if 1 <= n <= 4 else 0
        fit += 7 if (self.country or "").strip().lower() in {c.lower() for c in ICP_LOCATIONS} else 0
        timing = 0
        if self.started is not None and self.started <= as_of:
            timing += 6 if self.started > months_before(as_of, 6) else 3 if self.started > months_before(as_of, 12) else 0
        timing += 5 if self.hiring else 0
        if self.funded is not None and self.funded <= as_of:
            timing += 4 if self.funded >= months_before(as_of, 12) else 2 if self.funded >= months_before(as_of, 24) else 0
        risk = (15 if self.status == "unsubscribed" else 0) \
            + (10 if (self.bounces or 0) > 0 or self.status == "bounced" else 0) + junior
        dq, fit, timing, risk = min(dq, 20), min(fit, 25), min(timing, 15), min(risk, 15)
        raw = 100 * (Fraction(dq, 20) * weights["data_quality"] + Fraction(authority, 25) * weights["authority"]
                     + Fraction(fit, 25) * weights["company_fit"] + Fraction(timing, 15) * weights["timing"]) \
            + 15 * (1 - Fraction(risk, 15))
        raw = min(max(raw, Fraction(0)), Fraction(100))
        score = int(raw + Fraction(1, 2))  # half up (raw >= 0)
        tier = "hot" if score >= 85 else "warm" if score >= 60 else "cool" if score >= 35 \
            else "cold" if score >= 20 else "dead"
        return dq, authority, fit, timing, risk, score, tier


def random_leads(rng: random.Random, as_of: dt.date, n: int) -> Iterator[Lead]:
    edges = [None, as_of, as_of + dt.timedelta(days=1), months_before(as_of, 6),
             months_before(as_of, 6) + dt.timedelta(days=1), months_before(as_of, 12),
             months_before(as_of, 12) + dt.timedelta(days=1), months_before(as_of, 24),
             months_before(as_of, 24) - dt.timedelta(days=1), dt.date(1900, 1, 1), dt.date(9999, 12, 31)]

    def day() -> dt.date | None:
        return rng.choice(edges) if rng.random() < 0.5 else as_of - dt.timedelta(days=rng.randint(-30, 900))

    for _ in range(n):
        yield Lead(
            title=rng.choice(list(TITLES)),
            email=rng.choice([None, "", "  ", "a@b.example"]), email_verified=rng.choice([None, True, False]),
            phone=rng.choice([None, "", "+1555"]), phone_verified=rng.choice([None, True, False]),
            linkedin_url=rng.choice([None, "", "https://li.example/x"]),
            personal_email=rng.choice([None, "me@home.example"]),
            industry=rng.choice([None, "", "Dental", "DENTAL ", "Legal", "Retail"]),
            employees=rng.choice([None, -5, 0, 1, 4, 5, 10, 11, 50, 51, 200, 201, 5000, 2**31 - 1]),
            country=rng.choice([None, "US", " us", "UK", "DE"]),
            hiring=rng.choice([None, True, False]), funded=day(), started=day(),
            bounces=rng.choice([None, -1, 0, 0, 0, 2]),
            status=rng.choice(["new", "in_sequence", "not_interested", "bounced", "unsubscribed", "dead"]),
        )


def insert_leads(conn: Conn, client: uuid.UUID, leads: list[Lead]) -> None:
    with conn.cursor() as cur:
        cur.executemany(
            "insert into public.leads (client_id, title, email, email_verified, phone, phone_verified, linkedin_url,"
            " personal_email, organization_industry, organization_employee_count, organization_country,"
            " organization_is_hiring, organization_latest_funding_date, employment_start_date, bounce_count, status,"
            " first_name) values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            [(client, x.title, x.email, x.email_verified, x.phone, x.phone_verified, x.linkedin_url, x.personal_email,
              x.industry, x.employees, x.country, x.hiring, x.funded, x.started, x.bounces, x.status, str(i))
             for i, x in enumerate(leads)],
        )


def scored(conn: Conn, client: uuid.UUID) -> list[tuple[Any, ...]]:
    return conn.execute(
        "select als_data_quality, als_authority, als_company_fit, als_timing, als_risk, als_score, als_tier"
        " from public.leads where client_id = %s order by first_name::int", (client,)
    ).fetchall()


def new_client(conn: Conn, learned: dict[str, float] | None = None) -> uuid.UUID:
    client = uuid.uuid4()
    conn.execute(
        "insert into public.clients (id, name, icp_industries, icp_company_sizes, icp_locations, als_learned_weights)"
        " values (%s, 'ALS oracle', %s, %s, %s, %s)",
        (client, ICP_INDUSTRIES, ICP_SIZES, ICP_LOCATIONS, Jsonb(learned) if learned else None),
    )
    return client


@pytest.fixture(autouse=True, scope="module")
def _cleanup(dsn: str) -> Iterator[None]:
    """Remove this module's clients afterwards (other tests refresh every client)."""
    yield
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute("delete from public.clients where name in ('ALS oracle', 'ALS generated 1')")


@pytest.mark.parametrize(
    "learned",
    [None, {"data_quality": 0.1234, "authority": 0.3, "company_fit": 0.2766, "timing": 0.15},
     {"data_quality": 0.05, "authority": 0.5, "company_fit": 0.05, "timing": 0.25}],
    ids=["defaults", "learned", "learned-at-bounds"],
)
def test_trigger_and_rescore_agree_with_the_oracle(conn: Conn, learned: dict[str, float] | None) -> None:
    as_of = conn.execute("select (now() at time zone 'UTC')::date").fetchone()[0]  # type: ignore[index]
    client = new_client(conn, learned)
    leads = list(random_leads(random.Random(17), as_of, 600))
    insert_leads(conn, client, leads)
    weights = {k: Fraction(str(v)) for k, v in learned.items()} if learned else DEFAULTS
    sizes: list[tuple[int, int | None]] = [(11, 50), (201, None)]
    expected = [x.oracle(as_of, sizes, weights) for x in leads]
    assert scored(conn, client) == expected
    # The set-based path gives the same, after the stored scores are spoilt.
    conn.execute("update public.leads set als_score = null, als_tier = null where client_id = %s", (client,))
    count = conn.execute("select public.rescore_client_leads(%s)", (client,)).fetchone()
    assert count == (600,)
    assert scored(conn, client) == expected
    used = conn.execute(
        "select distinct als_weights_used from public.leads where client_id = %s", (client,)).fetchall()
    assert used == [({k: pytest.approx(float(v)) for k, v in weights.items()},)]


def test_icp_without_valid_sizes_uses_the_default_bands(conn: Conn) -> None:
    as_of = conn.execute("select (now() at time zone 'UTC')::date").fetchone()[0]  # type: ignore[index]
    client = new_client(conn)
    conn.execute("update public.clients set icp_company_sizes = '{about fifty,?}' where id = %s", (client,))
    leads = list(random_leads(random.Random(18), as_of, 200))
    insert_leads(conn, client, leads)
    assert scored(conn, client) == [x.oracle(as_of, None, DEFAULTS) for x in leads]


@pytest.fixture(scope="module")
def generated(dsn: str) -> uuid.UUID:
    with psycopg.connect(dsn, autocommit=True) as c:
        return generate(c, GeneratorConfig(seed=31, clients=1, leads_per_client=1500, effects=Effects.planted(),
                                           client_name_prefix="ALS generated")).client_ids[0]


def test_generated_leads_are_scored_consistently(conn: Conn, generated: uuid.UUID) -> None:
    row = conn.execute(
        """
        select
          count(*),
          count(*) filter (where als_score is null or scored_at is null),
          count(*) filter (where als_tier is distinct from ci_private.als_tier(als_score)),
          count(*) filter (where als_components is distinct from jsonb_build_object(
            'data_quality', als_data_quality, 'authority', als_authority, 'company_fit', als_company_fit,
            'timing', als_timing, 'risk', als_risk)),
          count(*) filter (where als_score is distinct from ci_private.als_score(
            als_data_quality, als_authority, als_company_fit, als_timing, als_risk,
            ci_private.als_weight_units(als_weights_used))),
          count(*) filter (where als_weights_used is distinct from ci_private.als_default_weights()),
          count(distinct als_tier)
        from public.leads where client_id = %s
        """,
        (generated,),
    ).fetchone()
    assert row is not None
    total, unscored, bad_tier, bad_snapshot, bad_score, other_weights, tiers = row
    assert total == 1500
    assert (unscored, bad_tier, bad_snapshot, bad_score, other_weights) == (0, 0, 0, 0, 0)
    assert tiers >= 3


def test_bulk_update_of_unrelated_columns_does_not_rescore(conn: Conn, generated: uuid.UUID) -> None:
    conn.execute("update public.leads set scored_at = '2001-01-01' where client_id = %s", (generated,))
    conn.execute(
        "update public.leads set first_name = upper(first_name), company = company || ' Ltd', updated_at = now(),"
        " timezone = 'Europe/Paris' where client_id = %s", (generated,))
    moved = conn.execute(
        "select count(*) from public.leads where client_id = %s and scored_at <> '2001-01-01'", (generated,)
    ).fetchone()
    assert moved == (0,)
    conn.execute("update public.leads set organization_is_hiring = not coalesce(organization_is_hiring, false)"
                 " where client_id = %s", (generated,))
    moved = conn.execute(
        "select count(*) from public.leads where client_id = %s and scored_at <> '2001-01-01'", (generated,)
    ).fetchone()
    assert moved == (1500,)


def test_a_batch_of_absurd_rows_scores_without_error(conn: Conn) -> None:
    client = new_client(conn)
    rows: list[tuple[object, ...]] = [
        (client, "x" * 20000, -(2**31), "9999-12-31", "0001-01-01", -7, "odd \u2603", "  ", None),
        (client, None, None, None, None, None, None, None, None),
        (client, "🚀🚀", 0, "1900-01-01", "2999-01-01", 2**31 - 1, "", "", "DENTAL"),
        (client, "VP", 2**31 - 1, None, "1970-01-01", 0, "Dental", "us", " dental"),
    ]
    with conn.cursor() as cur, cur.copy(
        "copy public.leads (client_id, title, organization_employee_count, organization_latest_funding_date,"
        " employment_start_date, bounce_count, organization_industry, organization_country, personal_email)"
        " from stdin"
    ) as cp:
        for r in rows:
            cp.write_row(r)
    got = conn.execute(
        "select count(*), count(als_score), min(als_score), max(als_score) from public.leads where client_id = %s",
        (client,),
    ).fetchone()
    assert got is not None and got[0] == 4 and got[1] == 4 and 0 <= got[2] <= got[3] <= 100
