"""The PL/pgSQL content_features_of equals the released SQL definition it replaced.

Migration 20261201090200 ported ci_private.content_features_of from SQL (not
inlinable: ~410 us a call through the SQL-function executor) to PL/pgSQL
(~40 us) for the refresh's content fill. The released SQL body is read from its
migration file and created as pg_temp.content_features_sql; Hypothesis then
draws snapshots (every field the function reads, with values of every JSON type,
empty, long and oversized strings, extra keys, non-objects) and both functions
must return the same features for each.
"""
from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

RELEASED = Path(__file__).resolve().parents[1] / "supabase/migrations/20261127020250_content_features.sql"
FIELDS = [
    "subject", "body", "pain_points", "pain_points_used", "cta", "cta_used", "angle", "word_count", "char_count",
    "personalization", "personalization_level", "has_company_mention", "has_recent_news", "has_mutual_connection",
    "has_industry_specific", "derived",
]
PERSONALIZATION = ["company_mention", "recent_news", "mutual_connection", "industry_specific"]

Conn = psycopg.Connection[tuple[Any, ...]]


def released_sql_body() -> str:
    text = RELEASED.read_text()
    match = re.search(
        r"create or replace function ci_private\.content_features_of\(p_snapshot jsonb\).*?\n\$\$;", text, re.DOTALL
    )
    assert match, "the released definition is in its migration"
    return match.group(0).replace("ci_private.content_features_of(", "pg_temp.content_features_sql(", 1)


@pytest.fixture(scope="module")
def both(dsn: str) -> Iterator[Conn]:
    with psycopg.connect(dsn) as connection:
        connection.execute(released_sql_body())
        yield connection
        connection.rollback()


scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**40), max_value=2**40),
    st.floats(allow_nan=False, allow_infinity=False, width=32),
    st.text(max_size=40),
    st.sampled_from(["", " ", "true", "false", "Hi {first_name}", "Quick question about Acme", "worth 15 minutes",
                     "a  b   c ", "x" * 999, "y" * 998]),
)
values = st.one_of(
    scalars,
    st.lists(st.one_of(st.text(max_size=12), st.none(), st.integers()), max_size=4),
    st.dictionaries(st.sampled_from(PERSONALIZATION + ["other"]),
                    st.one_of(st.booleans(), st.sampled_from(["true", "false", "yes"]), st.none()), max_size=4),
)
snapshots = st.one_of(
    st.dictionaries(st.sampled_from(FIELDS + ["extra"]), values, max_size=8),
    scalars,
    st.lists(scalars, max_size=2),
)


@settings(max_examples=300, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batch=st.lists(snapshots, min_size=1, max_size=20))
def test_plpgsql_equals_released_sql(both: Conn, batch: list[Any]) -> None:
    rows = both.execute(
        "select s.value, ci_private.content_features_of(s.value)::text, pg_temp.content_features_sql(s.value)::text"
        " from jsonb_array_elements(%s::jsonb) as s",
        (json.dumps(batch),),
    ).fetchall()
    assert len(rows) == len(batch)
    for snapshot, ported, released in rows:
        assert ported == released, snapshot


def test_oversized_body_and_null(both: Conn) -> None:
    big = json.dumps({"subject": "s", "body": "word " * 30000})
    row = both.execute(
        "select ci_private.content_features_of(%s::jsonb)::text, pg_temp.content_features_sql(%s::jsonb)::text,"
        " ci_private.content_features_of(null) is null, pg_temp.content_features_sql(null) is null",
        (big, big),
    ).fetchone()
    assert row is not None
    assert row[0] == row[1]
    assert row[2] and row[3]
