-- plpgsql_check over every PL/pgSQL function of this layer (schemas ci_private
-- and public, not extension members). Trigger functions are checked against
-- each table whose trigger calls them, with the trigger's transition tables.
-- Prints one row per problem.
create extension if not exists plpgsql_check with schema extensions;

with fns as (
  select p.oid, p.oid::regprocedure::text as fn, p.prorettype = 'trigger'::regtype as is_trigger
  from pg_proc as p
  join pg_namespace as n on n.oid = p.pronamespace
  join pg_language as l on l.oid = p.prolang
  where l.lanname = 'plpgsql'
    and n.nspname in ('ci_private', 'public')
    and not exists (
      select 1 from pg_depend as d
      where d.classid = 'pg_proc'::regclass and d.objid = p.oid and d.deptype = 'e'
    )
),
targets as (
  select f.oid, f.fn, coalesce(t.tgrelid, 0) as relid, t.tgoldtable as oldtable, t.tgnewtable as newtable
  from fns as f
  left join pg_trigger as t on f.is_trigger and t.tgfoid = f.oid and not t.tgisinternal
  where not f.is_trigger or t.tgrelid is not null
)
select tg.fn, tg.relid::regclass as on_table, r.lineno, r.level, r.message
from targets as tg
cross join lateral extensions.plpgsql_check_function_tb(
  tg.oid, tg.relid::regclass, fatal_errors => false, other_warnings => false,
  extra_warnings => false, performance_warnings => false,
  oldtable => tg.oldtable, newtable => tg.newtable
) as r
where r.level in ('error', 'warning')
order by 1, 2, 3;
