-- The catalog keeps the layer's security promises, whatever a later migration adds:
-- every security definer function has a fixed, empty search_path; anon can execute
-- nothing of the layer; every table of tenant data has row-level security; anon can
-- read no table; the internal schema is not reachable by anon. And the
-- operations rules (issue 17): no function of ci_private is executable by PUBLIC;
-- the pattern history refuses TRUNCATE (trigger, always) and no API role holds
-- TRUNCATE, UPDATE or DELETE on it; the pattern table has no index beyond its
-- keys; the keyword table has one read policy.
begin;
select plan(12);

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

select is_empty(
  $$select p.oid::regprocedure::text from pg_catalog.pg_proc as p
    where p.pronamespace = 'ci_private'::regnamespace
      and exists (select 1 from pg_catalog.aclexplode(p.proacl) as a where a.grantee = 0)$$,
  'no function of ci_private has an EXECUTE grant to PUBLIC'
);

select ok(
  exists (
    select 1 from pg_catalog.pg_trigger as t
    where t.tgrelid = 'public.conversion_pattern_history'::regclass and t.tgenabled = 'A'
      and (t.tgtype & 32) <> 0 and not t.tgisinternal
  )
  and not exists (
    select 1 from pg_catalog.pg_roles as r
    where r.rolname in ('anon', 'authenticated', 'service_role')
      and (has_table_privilege(r.oid, 'public.conversion_pattern_history', 'truncate')
        or has_table_privilege(r.oid, 'public.conversion_pattern_history', 'update')
        or has_table_privilege(r.oid, 'public.conversion_pattern_history', 'delete'))
  ),
  'the pattern history refuses TRUNCATE always, and no API role may truncate, update or delete it'
);

select set_eq(
  $$select c.relname::text from pg_catalog.pg_index as i join pg_catalog.pg_class as c on c.oid = i.indexrelid
    where i.indrelid = 'public.conversion_patterns'::regclass$$,
  array['conversion_patterns_pkey', 'unique_client_pattern_type'],
  'the pattern table has only its primary key and its (client, type) key as indexes'
);

select is(
  (select count(*)::integer from pg_catalog.pg_policies
    where schemaname = 'public' and tablename = 'conversion_keywords' and cmd in ('SELECT', 'ALL')
      and 'authenticated' = any(roles)),
  1,
  'the keyword table has one read policy for authenticated'
);

select ok(
  not has_schema_privilege('anon', 'ci_jobs', 'usage')
  and not has_schema_privilege('authenticated', 'ci_jobs', 'usage')
  and not has_schema_privilege('service_role', 'ci_jobs', 'usage'),
  'the scheduled job''s schema is reachable by its owner only'
);

select * from finish();
rollback;
