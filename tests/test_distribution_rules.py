"""The schema rules that distributing the layer by client needs (docs/scaling.md).

Citus distributes a table by one column; every primary key and unique constraint of a
distributed table must contain it, a foreign key between distributed tables must include
it, and a function is delegated to the node holding a client by one of its arguments.
The layer is distributed by `client_id`. These checks keep the rules true as the schema
grows: a new table or public function that breaks them fails here until it follows them,
or is listed below (and in docs/scaling.md) with the change that distribution needs.
"""
from __future__ import annotations

from typing import Any

import psycopg
import pytest

pytestmark = pytest.mark.db

Conn = psycopg.Connection[tuple[Any, ...]]

HOST_TABLES = {"public.clients", "public.memberships", "public.campaigns", "public.leads", "public.activities"}

# Reference tables (no client; a copy on every node).
REFERENCE_TABLES = {"ci_private.settings", "ci_private.timezone_names", "ci_private.layer_created_tables",
                    # One row per scheduled run (its clients are in refresh_batch_clients).
                    "ci_private.refresh_batches"}

# Unique keys without client_id, each with the change docs/scaling.md names.
KNOWN_EXCEPTIONS = {
    ("public.conversion_patterns", "PRIMARY KEY (id)"),
    ("public.conversion_pattern_history", "PRIMARY KEY (id)"),
    ("public.conversion_refresh_runs", "PRIMARY KEY (id)"),
    ("ci_private.content_keys", "PRIMARY KEY (key)"),
    # Defaults (client_id null) and overrides in one table: split for distribution.
    ("public.conversion_keywords", "PRIMARY KEY (id)"),
    ("public.conversion_weight_applications", "PRIMARY KEY (id)"),
    # Keyed by lead: becomes (client_id, lead_id) with the host's leads key.
    ("ci_private.lead_conversion_status", "PRIMARY KEY (lead_id)"),
}
# Foreign keys to a tenant table without client_id, each with the change docs/scaling.md names.
KNOWN_FK_EXCEPTIONS = {("ci_private.lead_conversion_status", "public.leads")}


def layer_tables(conn: Conn) -> list[tuple[str, bool]]:
    """(table, has client_id) for every table of the layer (host tables and cron excluded)."""
    rows = conn.execute(
        """
        select c.oid::regclass::text,
               exists (select 1 from pg_attribute as a
                       where a.attrelid = c.oid and a.attname = 'client_id' and not a.attisdropped)
        from pg_class as c
        where c.relnamespace in ('public'::regnamespace, 'ci_private'::regnamespace)
          and c.relkind in ('r', 'p')
        """
    ).fetchall()
    out = []
    for name, has_client in rows:
        qualified = str(name) if "." in str(name) else f"public.{name}"
        if qualified not in HOST_TABLES:
            out.append((qualified, bool(has_client)))
    return sorted(out)


def test_every_layer_table_is_tenant_or_reference(conn: Conn) -> None:
    for table, has_client in layer_tables(conn):
        assert has_client or table in REFERENCE_TABLES, (
            f"{table} has no client_id: distribute it by client or list it as a reference table in docs/scaling.md"
        )


def test_unique_keys_contain_client_id(conn: Conn) -> None:
    violations = set()
    for table, has_client in layer_tables(conn):
        if not has_client:
            continue
        for (definition, columns) in conn.execute(
            """
            select pg_get_constraintdef(co.oid), array(select a.attname::text from unnest(co.conkey) as k
                                                      join pg_attribute as a on a.attrelid = co.conrelid
                                                       and a.attnum = k)
            from pg_constraint as co where co.conrelid = %s::regclass and co.contype in ('p', 'u')
            """,
            (table,),
        ).fetchall():
            if "client_id" not in columns:
                violations.add((table, str(definition)))
        for (index,) in conn.execute(
            """
            select pg_get_indexdef(i.indexrelid) from pg_index as i
            where i.indrelid = %s::regclass and i.indisunique
              and not exists (select 1 from pg_constraint as co where co.conindid = i.indexrelid)
              and not exists (select 1 from pg_attribute as a
                              where a.attrelid = i.indrelid and a.attname = 'client_id'
                                and a.attnum = any(i.indkey::int2[]))
            """,
            (table,),
        ).fetchall():
            violations.add((table, str(index)))
    new = violations - KNOWN_EXCEPTIONS
    assert not new, f"unique keys without client_id (docs/scaling.md): {sorted(new)}"


def test_foreign_keys_between_tenant_tables_carry_the_client(conn: Conn) -> None:
    """A layer table may reference clients(id) (co-located by it) or a reference table;
    a reference to another tenant table must include client_id on both sides."""
    tables = dict(layer_tables(conn))
    for table in tables:
        for target, columns in conn.execute(
            """
            select co.confrelid::regclass::text,
                   array(select a.attname::text from unnest(co.conkey) as k
                         join pg_attribute as a on a.attrelid = co.conrelid and a.attnum = k)
            from pg_constraint as co where co.conrelid = %s::regclass and co.contype = 'f'
            """,
            (table,),
        ).fetchall():
            target_name = str(target) if "." in str(target) else f"public.{target}"
            if target_name == "public.clients" or target_name in REFERENCE_TABLES:
                continue
            if (table, target_name) in KNOWN_FK_EXCEPTIONS:
                continue
            assert "client_id" in columns, f"{table} references {target_name} without client_id"


def test_client_functions_take_the_client_first(conn: Conn) -> None:
    """Each public function with a client argument has it first, named p_client_id: the
    argument Citus delegates the call by."""
    rows = conn.execute(
        """
        select p.oid::regprocedure::text, p.proargnames
        from pg_proc as p
        where p.pronamespace = 'public'::regnamespace and 'p_client_id' = any(p.proargnames)
        """
    ).fetchall()
    assert rows, "no public function takes a client"
    for signature, names in rows:
        assert names[0] == "p_client_id", f"{signature}: the client must be the first argument"
