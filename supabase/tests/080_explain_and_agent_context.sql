-- explain_lead_score and get_agent_context by actor, as PostgREST calls them
-- (an owner, a viewer, an authenticated stranger, anon, service_role), and what
-- explain_lead_score says: the components equal the scorer's, their rule pieces
-- add up to the points (before the cap), the contributions add up to the score,
-- the weights are the ones in force, the WHO segments are the lead's.
begin;
select plan(30);

create temp table ids as
select
  gen_random_uuid() as client_a, gen_random_uuid() as client_b,
  gen_random_uuid() as owner_a, gen_random_uuid() as viewer_a, gen_random_uuid() as owner_b,
  gen_random_uuid() as lead_a1, gen_random_uuid() as lead_a2, gen_random_uuid() as lead_b;
grant select on ids to public;

insert into auth.users (id) select unnest(array[owner_a, viewer_a, owner_b]) from ids;
insert into public.clients (id, name, icp_industries, icp_locations, als_learned_weights)
select client_a, 'Explain A', '{Dental}'::text [], '{US}'::text [],
  '{"data_quality": 0.10, "authority": 0.40, "company_fit": 0.20, "timing": 0.15}'::jsonb from ids
union all select client_b, 'Explain B', '{Legal}', null, null from ids;
insert into public.memberships (user_id, client_id, role, accepted_at)
select owner_a, client_a, 'owner'::public.membership_role, now() from ids
union all select viewer_a, client_a, 'viewer', now() from ids
union all select owner_b, client_b, 'owner', now() from ids;
insert into public.leads (
  id, client_id, title, organization_industry, organization_country, organization_employee_count, email,
  email_verified, phone, linkedin_url, personal_email, organization_is_hiring, organization_latest_funding_date,
  employment_start_date, bounce_count
)
select lead_a1, client_a, 'Vice President of Marketing', 'Dental', 'US', 20, 'a@x.test', true, '+1', 'li', 'p@x.test',
  true, current_date - 100, current_date - 30, 0 from ids
union all select lead_a2, client_a, 'Marketing Intern', 'Retail', 'FR', 3, 'b@x.test', false, null, null, null,
  false, null, null, 2 from ids
union all select lead_b, client_b, 'CEO', 'Legal', null, null, null, null, null, null, null, null, null, null, 0 from ids;

-- A stored WHO pattern with segments of lead A1 (title, industry, size band 3, signals).
insert into public.conversion_patterns (client_id, pattern_type, patterns, sample_size, confidence, computed_at,
  valid_until)
select client_a, 'who', '{"type": "who", "baseline_rate": 0.1,
  "title_rankings": [{"title": "vp marketing", "conversion_rate": 0.3, "lift": 3.0, "sample": 100,
    "conversions": 30, "significance": "above"}, {"title": "ceo", "conversion_rate": 0.2, "sample": 50}],
  "industry_rankings": [{"industry": "Dental", "industry_key": "dental", "conversion_rate": 0.2, "sample": 80}],
  "size_analysis": {"distribution": [{"band": 3, "range": "16-30", "conversion_rate": 0.15, "sample": 60},
                                     {"band": 1, "range": "1-5", "conversion_rate": 0.05, "sample": 60}]},
  "timing_signals": {"segments": {"hiring": [{"signal": "hiring", "flag": true, "sample": 40},
                                             {"signal": "hiring", "flag": false, "sample": 90}],
                                  "new_role": [{"signal": "new_role", "flag": true, "sample": 10},
                                               {"signal": "new_role", "flag": false, "sample": 130}]}}}'::jsonb,
  200, 0.9, now(), now() + interval '7 days' from ids;
insert into public.agent_contexts (client_id, context, prompts, source_patterns, rendered_at)
select client_a, '{"campaign": []}', '{"campaign": "CONVERSION PATTERNS for Explain A"}',
  jsonb_build_object('who', now() - interval '1 day'), now() from ids;

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
create temp table got (name text primary key, value jsonb);
grant all on got to public;

-- ---- the viewer (a member: reads) ----------------------------------------------------
select pg_temp.act_as((select viewer_a from ids));
insert into got select 'a1', public.explain_lead_score((select lead_a1 from ids));
insert into got select 'a2', public.explain_lead_score((select lead_a2 from ids));
select is((select value ->> 'lead_id' from got where name = 'a1'), (select lead_a1::text from ids),
  'viewer: explain_lead_score explains a lead of their client');
select is(
  (select value -> 'context' ->> 'campaign' from (select public.get_agent_context((select client_a from ids)) as value) as x),
  '[]', 'viewer: get_agent_context returns the stored context'
);
select is(
  (public.get_agent_context((select client_a from ids)) ->> 'stale')::boolean, true,
  'viewer: a context rendered from an older pattern is marked stale'
);
select is((select count(*)::integer from public.agent_contexts), 1, 'viewer: the table shows their client''s row');
select throws_ok($$select public.explain_lead_score((select lead_b from ids))$$, '42501', null,
  'viewer: another client''s lead is refused');
select throws_ok($$select public.explain_lead_score(gen_random_uuid())$$, '42501', null,
  'viewer: an unknown lead gets the same answer (no probing)');
select pg_temp.reset_role();

-- What the explanation says (computed by the viewer above).
select is(
  (select jsonb_object_agg(c ->> 'component', (c ->> 'points')::integer)
   from got, jsonb_array_elements(value -> 'components') as x (c) where name = 'a1'),
  (select ci_private.als_snapshot(p) from public.leads as l
   cross join lateral ci_private.als_components(l.email, l.email_verified, l.phone, l.phone_verified, l.linkedin_url,
     l.personal_email, l.title, l.organization_industry, l.organization_employee_count, l.organization_country,
     l.organization_is_hiring, l.organization_latest_funding_date, l.employment_start_date, l.bounce_count,
     l.status::text, '{dental}', null, '{us}', ci_private.als_today()) as p
   where l.id = (select lead_a1 from ids)),
  'components equal the scorer''s'
);
select is(
  (select count(*)::integer from got, jsonb_array_elements(value -> 'components') as x (c)
   where (select coalesce(sum((r ->> 'points')::integer), 0) from jsonb_array_elements(c -> 'rules') as y (r))
     <> (c ->> 'points')::integer and not (c ->> 'capped')::boolean),
  0, 'every uncapped component''s rule pieces add up to its points'
);
select is(
  (select count(*)::integer from got, jsonb_array_elements(value -> 'components') as x (c)
   where (c ->> 'capped')::boolean
     and (select sum((r ->> 'points')::integer) from jsonb_array_elements(c -> 'rules') as y (r))
       <= (c ->> 'points')::integer),
  0, 'a capped component''s pieces exceed its points'
);
select is(
  (select value ->> 'score' from got where name = 'a1')::integer,
  (select least(100, greatest(0, round(15 + sum((c ->> 'contribution')::numeric))))::integer
   from got, jsonb_array_elements(value -> 'components') as x (c) where name = 'a1'),
  'the contributions plus the risk allowance give the score'
);
select is(
  (select value ->> 'score' from got where name = 'a2')::integer,
  (select least(100, greatest(0, round(15 + sum((c ->> 'contribution')::numeric))))::integer
   from got, jsonb_array_elements(value -> 'components') as x (c) where name = 'a2'),
  'the same for a lead with risk'
);
select is((select value ->> 'score' from got where name = 'a1')::integer,
  (select als_score from public.leads where id = (select lead_a1 from ids)),
  'the explained score is the stored score (the lead was scored with the weights in force)');
select is((select value ->> 'weights_source' from got where name = 'a1'), 'learned',
  'the client''s learned weights are the ones in force');
select is(
  (select (c ->> 'weight')::numeric from got, jsonb_array_elements(value -> 'components') as x (c)
   where name = 'a1' and c ->> 'component' = 'authority'),
  0.4000, 'each component carries the weight in force'
);
select is(
  (select c -> 'rules' -> 0 ->> 'rule' from got, jsonb_array_elements(value -> 'components') as x (c)
   where name = 'a1' and c ->> 'component' = 'authority'),
  'title vp marketing: vp', 'the authority rule names the normalised title and its keyword group'
);
select ok(
  (select c -> 'rules' @> '[{"rule": "junior title", "points": 5}, {"rule": "bounced before", "points": 10}]'
   from got, jsonb_array_elements(value -> 'components') as x (c)
   where name = 'a2' and c ->> 'component' = 'risk'),
  'risk names the junior title and the bounce'
);
select is(
  (select jsonb_agg(s ->> 'dimension' || '=' || (s ->> 'value') order by s ->> 'dimension')
   from got, jsonb_array_elements(value -> 'who_segments') as x (s) where name = 'a1'),
  '["company_size=16-30", "hiring=true", "industry=Dental", "new_role=true", "title=vp marketing"]'::jsonb,
  'the WHO segments are the lead''s: title, industry, size band and its signals'
);
select is(
  (select (s ->> 'lift')::numeric from got, jsonb_array_elements(value -> 'who_segments') as x (s)
   where name = 'a1' and s ->> 'dimension' = 'title'),
  3.0, 'each segment carries the pattern''s figures'
);
select is(
  (select jsonb_agg(s ->> 'dimension' || '=' || (s ->> 'value') order by s ->> 'dimension')
   from got, jsonb_array_elements(value -> 'who_segments') as x (s) where name = 'a2'),
  '["company_size=1-5", "hiring=false", "new_role=false"]'::jsonb,
  'a lead outside the ranked titles and industries gets only its size band and signals'
);

-- ---- the stranger (owner of B) --------------------------------------------------------
select pg_temp.act_as((select owner_b from ids));
select throws_ok($$select public.explain_lead_score((select lead_a1 from ids))$$, '42501', null,
  'stranger: no explanation of A''s lead');
select throws_ok($$select public.get_agent_context((select client_a from ids))$$, '42501', null,
  'stranger: no agent context of A');
select is(public.get_agent_context((select client_b from ids)), null, 'stranger: their own client has none yet (null)');
select is((select count(*)::integer from public.agent_contexts), 0, 'stranger: the table hides A''s row');
select is(jsonb_array_length(public.explain_lead_score((select lead_b from ids)) -> 'who_segments'), 0,
  'stranger: their own lead, without a WHO pattern, has no segments');
select pg_temp.reset_role();

-- ---- anon ----------------------------------------------------------------------------
select pg_temp.act_as_anon();
select throws_ok($$select public.explain_lead_score((select lead_a1 from ids))$$, '42501', null,
  'anon: no explanation');
select throws_ok($$select public.get_agent_context((select client_a from ids))$$, '42501', null,
  'anon: no agent context');
select pg_temp.reset_role();

-- ---- service_role ----------------------------------------------------------------------
select pg_temp.act_as_service();
select is((public.explain_lead_score((select lead_b from ids)) ->> 'score')::integer, 50,
  'service_role: explains any lead (CEO 25, Legal in the ICP 10, risk allowance 15)');
select throws_ok($$select public.explain_lead_score(gen_random_uuid())$$, 'P0002', null,
  'service_role: an unknown lead is no_data_found');
select throws_ok($$select public.get_agent_context(gen_random_uuid())$$, 'P0002', null,
  'service_role: an unknown client is no_data_found');
insert into public.agent_contexts (client_id, context) select client_b, '{}' from ids;
select is((public.get_agent_context((select client_b from ids)) ->> 'stale')::boolean, false,
  'service_role writes a context; with no pattern newer than it, it is not stale');
select pg_temp.reset_role();

select * from finish();
rollback;
