-- The catalog keeps the layer's security promises, whatever a later migration adds:
-- every security definer function has a fixed, empty search_path; anon can execute
-- nothing of the layer; every table of tenant data has row-level security; anon can
-- read no table; the internal schema is not reachable by anon.
begin;
select plan(7);

create temp view layer_functions as
select p.oid, p.oid::regprocedure::text as sig, p.prosecdef, p.proconfig, n.nspname
from pg_catalog.pg_proc as p
join pg_catalog.pg_namespace as n on n.oid = p.pronamespace
where n.nspname in ('public', 'ci_private')
  and not exists (
    select 1 from pg_catalog.pg_depend as d
    where d.classid = 'pg_catalog.pg_proc'::regclass and d.objid = p.oid and d.deptype = 'e'
  );

select is_empty(
  $$select sig from layer_functions
    where prosecdef and not coalesce(proconfig @> array['search_path=""'], false)$$,
  'every security definer function sets search_path to empty'
);

select is_empty(
  $$select sig from layer_functions where has_function_privilege('anon', oid, 'execute')$$,
  'anon can execute no function of the layer'
);

select is_empty(
  $$select sig from layer_functions
    where prosecdef and nspname = 'ci_private' and has_function_privilege('public', oid, 'execute')$$,
  'no security definer helper is executable by PUBLIC'
);

select is_empty(
  $$select c.relname from pg_catalog.pg_class as c
    where c.relnamespace = 'public'::regnamespace and c.relkind in ('r', 'p')
      and not c.relrowsecurity
      and not exists (
        select 1 from pg_catalog.pg_depend as d
        where d.classid = 'pg_catalog.pg_class'::regclass and d.objid = c.oid and d.deptype = 'e'
      )$$,
  'every table in public has row-level security'
);

select is_empty(
  $$select c.relname from pg_catalog.pg_class as c
    where c.relnamespace = 'public'::regnamespace and c.relkind in ('r', 'p', 'v', 'm')
      and has_table_privilege('anon', c.oid, 'select')
      and not exists (
        select 1 from pg_catalog.pg_depend as d
        where d.classid = 'pg_catalog.pg_class'::regclass and d.objid = c.oid and d.deptype = 'e'
      )$$,
  'anon can read no table or view in public'
);

select is_empty(
  $$select c.relname from pg_catalog.pg_class as c
    where c.relnamespace = 'public'::regnamespace and c.relkind = 'v'
      and not coalesce(c.reloptions @> array['security_invoker=on'], false)
      and not exists (
        select 1 from pg_catalog.pg_depend as d
        where d.classid = 'pg_catalog.pg_class'::regclass and d.objid = c.oid and d.deptype = 'e'
      )$$,
  'every view in public runs with the caller''s rights (security_invoker)'
);

select ok(
  not has_schema_privilege('anon', 'ci_private', 'usage'),
  'anon cannot reach the internal schema'
);

select * from finish();
rollback;
