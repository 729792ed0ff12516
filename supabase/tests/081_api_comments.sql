-- The API reference lives in the catalog too: every public API function of the layer
-- has a COMMENT (shape, who may call, errors), and get_agent_context /
-- explain_lead_score are granted to members and service_role only.
begin;
select plan(3);

select is_empty(
  $$select p.oid::regprocedure::text
    from pg_catalog.pg_proc as p
    where p.pronamespace = 'public'::regnamespace
      and p.prokind = 'f'
      -- the host's id default (created only where the host lacks it), not part of the API
      and p.proname <> 'uuid_generate_v7'
      and not exists (
        select 1 from pg_catalog.pg_depend as d
        where d.classid = 'pg_catalog.pg_proc'::regclass and d.objid = p.oid and d.deptype = 'e'
      )
      and coalesce(pg_catalog.obj_description(p.oid, 'pg_proc'), '') = ''$$,
  'every public function has a COMMENT'
);
select ok(
  has_function_privilege('authenticated', 'public.get_agent_context(uuid)', 'execute')
  and has_function_privilege('service_role', 'public.get_agent_context(uuid)', 'execute')
  and not has_function_privilege('anon', 'public.get_agent_context(uuid)', 'execute'),
  'get_agent_context: authenticated and service_role, not anon'
);
select ok(
  has_function_privilege('authenticated', 'public.explain_lead_score(uuid)', 'execute')
  and not has_function_privilege('anon', 'public.explain_lead_score(uuid)', 'execute'),
  'explain_lead_score: authenticated, not anon'
);

select * from finish();
rollback;
