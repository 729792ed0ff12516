-- The WHO detector on small hand-built data: who counts (outcomes only,
-- non-deleted), titles compared normalised, timing judged as of the first
-- outbound touch, the seed's answer for too little data, the weight learning's
-- record (and its absence without PL/Python), writing nothing; and
-- ci_private.apply_als_weights.
begin;
select plan(32);

create temp table ids as select gen_random_uuid() as w, gen_random_uuid() as small, gen_random_uuid() as few;
insert into public.clients (id, name, icp_industries, icp_company_sizes, icp_locations)
select w, 'WHO hand-built', '{Dental}'::text [], '{11-50}'::text [], '{US}'::text [] from ids
union all select small, 'WHO small', null, null, null from ids
union all select few, 'WHO few conversions', null, null, null from ids;

-- n leads of a client: title, status, funded (100 days before the first touch), deleted.
create function pg_temp.leads(
  p_client uuid, p_n integer, p_title text, p_status text, p_funded boolean default false,
  p_deleted boolean default false
) returns void
language sql as $$
  with l as (
    insert into public.leads (
      client_id, title, status, organization_industry, organization_employee_count, organization_country,
      organization_latest_funding_date, deleted_at, created_at
    )
    select p_client, p_title, p_status::public.lead_status, 'Dental', 20, 'US',
      case when p_funded then (now() - interval '700 days')::date end,
      case when p_deleted then now() end, now() - interval '610 days'
    from generate_series(1, p_n)
    returning id, client_id
  )
  -- First outbound touch 600 days ago (host style 'sent'), a second one later.
  insert into public.activities (client_id, lead_id, channel, action, created_at)
  select l.client_id, l.id, 'email', a.action, a.at
  from l
  cross join (values ('sent', now() - interval '600 days'), ('linkedin_sent', now() - interval '590 days'),
    ('opened', now() - interval '605 days')) as a (action, at)
$$;

-- (Issue 14: segments need 30 leads, as in the other detectors, so the
-- segments are 30 and 60 leads.)
select pg_temp.leads((select w from ids), 10, 'VP of Marketing', 'converted', true);
select pg_temp.leads((select w from ids), 10, 'Vice President, Marketing', 'converted', true);
select pg_temp.leads((select w from ids), 5, 'VP of Marketing', 'not_interested', true);
select pg_temp.leads((select w from ids), 5, 'vp,  marketing', 'bounced', true);
select pg_temp.leads((select w from ids), 7, 'Engineer', 'converted');
select pg_temp.leads((select w from ids), 26, 'Engineer', 'dead');
select pg_temp.leads((select w from ids), 27, 'Engineer', 'unsubscribed');
select pg_temp.leads((select w from ids), 5, 'Engineer', 'in_sequence');
select pg_temp.leads((select w from ids), 2, 'Engineer', 'converted', false, true);

create temp table who as select public.detect_who_patterns((select w from ids)) as p;
grant select on who to public;

select is((select (p ->> 'sample_size')::integer from who), 90, 'outcomes only: 90 (open and deleted leads left out)');
select is((select (p ->> 'conversions')::integer from who), 27, '27 conversions');
select is((select (p ->> 'baseline_rate')::numeric from who), 0.3, 'the client''s rate');
select is((select (p ->> 'confidence')::numeric from who), 0.42, 'confidence: the seed''s sigmoid at 90 outcomes');
select is((select p #>> '{title_rankings,0,title}' from who), 'vp marketing', 'titles normalised: the winner');
select is(
  (select (p #>> '{title_rankings,0,sample}')::integer from who), 30,
  '"VP of Marketing", "Vice President, Marketing" and "vp,  marketing" are one title'
);
select is((select (p #>> '{title_rankings,0,conversions}')::integer from who), 20, 'with its 20 conversions');
select is(
  (select (p #>> '{title_rankings,0,conversion_rate}')::numeric from who), 0.6667, 'the raw rate of the title'
);
select ok(
  (select (p #>> '{title_rankings,0,smoothed_rate}')::numeric < 0.6667 from who),
  'the smoothed rate shrinks toward the client''s rate'
);
select is(
  (select jsonb_array_length(p -> 'title_rankings') from who), 2, 'two titles ranked'
);
select is((select p #>> '{industry_rankings,0,industry}' from who), 'Dental', 'the industry, as written');
select is(
  (select p #>> '{size_analysis,sweet_spot,range}' from who), '16-30', 'the size band of all of them'
);
select is(
  (select (p #>> '{timing_signals,segments,funded,0,sample}')::integer from who), 30,
  'funded as of the first touch (funding 100 days before it, 700 days before today)'
);
select is(
  (select (p #>> '{timing_signals,funded_lift}')::numeric from who), 5.71,
  'funded lift = rate with (20/30) / rate without (7/60)'
);
select is((select (p #>> '{timing_signals,hiring_lift}')::numeric from who), 1.0, 'no one hiring: lift 1.0');
select is(
  (select min(als_timing) || '-' || max(als_timing) from public.leads
   where client_id = (select w from ids) and organization_latest_funding_date is not null), '2-2',
  'while the live score judges the same funding as of today: within 24 months, 2 points'
);
select is(
  (select p -> 'recommended_weights' from who), ci_private.als_default_weights(),
  'recommended weights: the weights in force'
);
select is((select (p #>> '{weight_learning,applied}')::boolean from who), false, 'no weights applied');
select ok(
  (select (p #>> '{weight_learning,reason}') ~ 'sample too small|confidence too low|not fitted' from who),
  'and the reason says why'
);

-- Too little data: the seed's answer.
select pg_temp.leads((select small from ids), 10, 'CEO', 'converted');
select pg_temp.leads((select small from ids), 19, 'CEO', 'dead');
select pg_temp.leads((select few from ids), 9, 'CEO', 'converted');
select pg_temp.leads((select few from ids), 40, 'CEO', 'dead');
select results_eq(
  $$select (p ->> 'insufficient_data')::boolean, (p ->> 'confidence')::numeric, p -> 'timing_signals',
      p -> 'title_rankings', p -> 'recommended_weights'
    from (select public.detect_who_patterns((select small from ids)) as p) as x$$,
  $$values (true, 0.0, '{"new_role_lift": 1.0, "hiring_lift": 1.0, "funded_lift": 1.0}'::jsonb, '[]'::jsonb,
    ci_private.als_default_weights())$$,
  '29 outcomes: insufficient data, confidence 0, lifts 1.0, no rankings, the default weights'
);
select ok(
  (select public.detect_who_patterns((select small from ids)) ->> 'reason') ~ '29 outcomes',
  'with the reason'
);
select is(
  (select (public.detect_who_patterns((select few from ids)) ->> 'insufficient_data')::boolean), true,
  '49 outcomes but 9 conversions: insufficient data too'
);

-- It stores nothing; it is volatile, as the other detectors are (it brings the
-- client's kept touches up to date before it reads them).
select is(
  (select count(*)::integer from public.conversion_patterns where client_id = (select w from ids)), 0,
  'detect_who_patterns stores nothing'
);
select is(
  (select provolatile::text from pg_proc where oid = 'public.detect_who_patterns(uuid)'::regprocedure), 'v',
  'detect_who_patterns is volatile'
);

-- Without PL/Python (hosted Supabase) the pattern says so.
do $$
begin
  if ci_private.als_fit_available() then
    alter function ci_private.fit_als_weights(
      integer [], integer [], integer [], integer [], integer [], integer [], integer [], jsonb, double precision, jsonb
    ) rename to fit_als_weights_hidden;
  end if;
end
$$;
select is(
  (select public.detect_who_patterns((select w from ids)) #>> '{weight_learning,reason}'),
  'not fitted in database: use the sidecar',
  'no fit function: the weight learning defers to the sidecar'
);
do $$
begin
  if pg_catalog.to_regproc('ci_private.fit_als_weights_hidden') is not null then
    alter function ci_private.fit_als_weights_hidden(
      integer [], integer [], integer [], integer [], integer [], integer [], integer [], jsonb, double precision, jsonb
    ) rename to fit_als_weights;
  end if;
end
$$;

-- Applying weights.
select is(
  ci_private.apply_als_weights((select w from ids), '{"data_quality": 0.1, "authority": 0.35, "company_fit": 0.25, "timing": 0.15}',
    '{"applied": false, "reason": "no out-of-sample improvement"}') ->> 'applied',
  'false', 'a decision that says not applied is not applied'
);
select is(
  (select als_learned_weights from public.clients where id = (select w from ids)), null, 'and nothing is written'
);
select throws_ok(
  $$select ci_private.apply_als_weights((select w from ids),
    '{"data_quality": 0.1, "authority": 0.35, "company_fit": 0.25, "timing": 0.16}', '{"applied": true}')$$,
  '22023', null, 'invalid weights are refused'
);
select is(
  (ci_private.apply_als_weights((select w from ids),
    '{"data_quality": 0.100004, "authority": 0.349996, "company_fit": 0.25, "timing": 0.15}',
    '{"applied": true, "n": 40}') ->> 'rescored')::integer,
  95, 'valid weights are applied and the 95 non-deleted leads rescored'
);
select results_eq(
  $$select als_learned_weights, als_weights_updated_at = now(), conversion_sample_count
    from public.clients where id = (select w from ids)$$,
  $$values ('{"data_quality": 0.1, "authority": 0.35, "company_fit": 0.25, "timing": 0.15}'::jsonb, true, 40)$$,
  'stored at 4 decimals with when and on how many outcomes'
);
select is(
  (select count(*)::integer from public.leads
   where client_id = (select w from ids) and deleted_at is null
     and als_weights_used = '{"data_quality": 0.1, "authority": 0.35, "company_fit": 0.25, "timing": 0.15}'
     and scored_at = now()),
  95, 'every non-deleted lead now scored with them'
);
select is(
  (select public.detect_who_patterns((select w from ids)) -> 'weights_in_force'),
  '{"data_quality": 0.1, "authority": 0.35, "company_fit": 0.25, "timing": 0.15}'::jsonb,
  'and the WHO pattern knows the weights in force'
);

select * from finish();
rollback;
