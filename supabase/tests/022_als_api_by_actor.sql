-- score_lead, rescore_client_leads, detect_who_patterns and the scoring trigger
-- by actor, as PostgREST calls them: an owner, a viewer, an authenticated
-- stranger (owner of another client), anon, service_role.
begin;
select plan(29);

create temp table ids as
select
  gen_random_uuid() as client_a, gen_random_uuid() as client_b, gen_random_uuid() as client_empty,
  gen_random_uuid() as owner_a, gen_random_uuid() as viewer_a, gen_random_uuid() as owner_b,
  gen_random_uuid() as lead_a1, gen_random_uuid() as lead_a2, gen_random_uuid() as lead_deleted,
  gen_random_uuid() as lead_b;
grant select on ids to public;

insert into auth.users (id) select unnest(array[owner_a, viewer_a, owner_b]) from ids;
insert into public.clients (id, name, icp_industries, icp_locations)
select client_a, 'ALS API A', '{Dental}'::text [], '{US}'::text [] from ids
union all select client_b, 'ALS API B', '{Legal}', null from ids
union all select client_empty, 'ALS API empty', null, null from ids;
insert into public.memberships (user_id, client_id, role, accepted_at)
select owner_a, client_a, 'owner'::public.membership_role, now() from ids
union all select viewer_a, client_a, 'viewer', now() from ids
union all select owner_b, client_b, 'owner', now() from ids;
insert into public.leads (id, client_id, title, organization_industry, deleted_at)
select lead_a1, client_a, 'CEO', 'Dental', null::timestamptz from ids
union all select lead_a2, client_a, 'Team Lead', 'Retail', null from ids
union all select lead_deleted, client_a, 'Owner', 'Dental', now() from ids
union all select lead_b, client_b, 'CEO', 'Legal', null from ids;
-- Stale scores, to see rescoring happen.
update public.leads set als_score = -1, scored_at = '2001-01-01' where client_id in (select client_a from ids);

create function pg_temp.act_as(p_user uuid) returns void language sql as $$
  select set_config('request.jwt.claims', json_build_object('sub', p_user, 'role', 'authenticated')::text, true);
  set local role authenticated;
$$;
create function pg_temp.act_as_service() returns void language sql as $$
  select set_config('request.jwt.claims', '{"role": "service_role"}', true);
  set local role service_role;
$$;
create function pg_temp.act_as_anon() returns void language sql as $$
  select set_config('request.jwt.claims', '{"role": "anon"}', true);
  set local role anon;
$$;
create function pg_temp.reset_role() returns void language sql as $$
  select set_config('request.jwt.claims', '', true);
  reset role;
$$;

-- ---- the owner ---------------------------------------------------------------------
select pg_temp.act_as((select owner_a from ids));
select is(public.rescore_client_leads((select client_a from ids)), 2,
  'owner: rescore_client_leads rescores the non-deleted leads and returns their count');
select is(public.score_lead((select lead_a1 from ids)), 50, 'owner: score_lead returns the new score (25 + 10 + 15)');
select is(public.score_lead((select lead_deleted from ids)), null, 'owner: a soft-deleted lead is not scored (null)');
select throws_ok(
  $$select public.rescore_client_leads((select client_b from ids))$$, '42501', null,
  'owner: another client cannot be rescored'
);
select throws_ok(
  $$select public.score_lead((select lead_b from ids))$$, '42501', null,
  'owner: another client''s lead cannot be scored'
);
select throws_ok(
  $$select public.score_lead(gen_random_uuid())$$, '42501', null,
  'owner: an unknown lead gets the same answer as another tenant''s (no probing)'
);
select is(
  (public.detect_who_patterns((select client_a from ids)) ->> 'type'), 'who', 'owner: detect_who_patterns reads'
);
select throws_ok(
  $$select public.detect_who_patterns((select client_b from ids))$$, '42501', null,
  'owner: another client''s WHO pattern is refused'
);
-- The trigger runs as the writer: an owner's own insert is scored with the client's ICP.
insert into public.leads (client_id, title, organization_industry, organization_country)
select client_a, 'VP Sales', 'dental', 'US' from ids;
select results_eq(
  $$select als_authority, als_company_fit, als_score from public.leads
    where client_id = (select client_a from ids) and title = 'VP Sales'$$,
  $$values (18, 17, 50)$$,
  'owner: a lead inserted over the API is scored by the trigger with the client''s ICP'
);
select is(
  (select count(*)::integer from ci_private.als_client_context where client_id = (select client_b from ids)), 0,
  'owner: the scoring context of another client is invisible'
);
select throws_ok(
  $$select ci_private.apply_als_weights((select client_a from ids), ci_private.als_default_weights(), '{}')$$,
  '42501', null, 'owner: ci_private.apply_als_weights is not callable (public.apply_learned_weights is)'
);
select pg_temp.reset_role();

-- ---- a viewer ----------------------------------------------------------------------
select pg_temp.act_as((select viewer_a from ids));
select throws_ok(
  $$select public.rescore_client_leads((select client_a from ids))$$, '42501', null,
  'viewer: rescoring needs an owner or admin'
);
select throws_ok(
  $$select public.score_lead((select lead_a1 from ids))$$, '42501', null, 'viewer: score_lead needs an owner or admin'
);
select is(
  (public.detect_who_patterns((select client_a from ids)) ->> 'type'), 'who', 'viewer: detect_who_patterns reads'
);
select pg_temp.reset_role();

-- ---- a stranger (owner of client B) -------------------------------------------------
select pg_temp.act_as((select owner_b from ids));
select throws_ok(
  $$select public.rescore_client_leads((select client_a from ids))$$, '42501', null, 'stranger: no rescoring of A'
);
select throws_ok(
  $$select public.detect_who_patterns((select client_a from ids))$$, '42501', null, 'stranger: no WHO pattern of A'
);
select is(public.rescore_client_leads((select client_b from ids)), 1, 'stranger: their own client is fine');
select pg_temp.reset_role();

-- ---- anon ----------------------------------------------------------------------------
select pg_temp.act_as_anon();
select throws_ok(
  $$select public.rescore_client_leads((select client_a from ids))$$, '42501', null, 'anon: no rescoring'
);
select throws_ok($$select public.score_lead((select lead_a1 from ids))$$, '42501', null, 'anon: no score_lead');
select throws_ok(
  $$select public.detect_who_patterns((select client_a from ids))$$, '42501', null, 'anon: no WHO pattern'
);
select pg_temp.reset_role();

-- ---- service_role ----------------------------------------------------------------------
select pg_temp.act_as_service();
select is(public.rescore_client_leads((select client_a from ids)), 3, 'service_role: rescores any client');
select is(public.rescore_client_leads((select client_empty from ids)), 0, 'service_role: a client without leads: 0');
select throws_ok(
  $$select public.score_lead(gen_random_uuid())$$, 'P0002', null, 'service_role: an unknown lead is an error'
);
select throws_ok(
  $$select public.rescore_client_leads(gen_random_uuid())$$, 'P0002', null, 'service_role: an unknown client too'
);
select is(
  (public.detect_who_patterns((select client_empty from ids)) ->> 'sample_size')::integer, 0,
  'service_role: a client without leads has an empty WHO pattern'
);
select pg_temp.reset_role();

-- After all that: every non-deleted lead of A rescored now, the deleted one left alone.
select results_eq(
  $$select count(*)::integer from public.leads
    where client_id = (select client_a from ids) and deleted_at is null and scored_at = now() and als_score >= 0$$,
  $$values (3)$$,
  'every non-deleted lead of A is scored now'
);
select results_eq(
  $$select als_score, scored_at from public.leads where id = (select lead_deleted from ids)$$,
  $$values (-1, '2001-01-01'::timestamptz)$$,
  'the soft-deleted lead is left alone'
);

-- Privileges.
select ok(
  not has_function_privilege('anon', 'public.rescore_client_leads(uuid)', 'execute')
  and not has_function_privilege('anon', 'public.score_lead(uuid)', 'execute')
  and not has_function_privilege('anon', 'public.detect_who_patterns(uuid)', 'execute'),
  'anon may execute none of the three'
);
select ok(
  has_function_privilege('authenticated', 'public.rescore_client_leads(uuid)', 'execute')
  and has_function_privilege('service_role', 'public.detect_who_patterns(uuid)', 'execute'),
  'authenticated and service_role may'
);

select * from finish();
rollback;
