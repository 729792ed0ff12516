-- WHO over contacted leads, as of the lead's local date (issue 14). Redefines
-- ci_private.who_lead_counts (weight_learning migration) and
-- public.detect_who_patterns (who_patterns migration):
--   * only leads with at least one outbound touch count (a bounced import of
--     leads nobody contacted lowered the baseline and made their title a loser
--     on 0 of 300); the as-of date of the timing signals is the first touch's
--     date in the lead's zone (the lead's, else the campaign's, else the
--     client's, else UTC, as for local times), not in UTC;
--   * the rankings keep segments of at least 30 leads, as the other detectors
--     (a 3-of-5 title no longer outranks a 40-of-200 one), list losers
--     (losing_titles, losing_industries) as well as winners, and keep leads
--     with no title or no industry as a segment of their own ('(missing)').

-- Leads of a client with an outcome and at least one outbound touch,
-- non-deleted, counted in one pass by the profile and by the learning
-- groupings (see the weight_learning migration), as of their first outbound
-- touch's local date.
create or replace function ci_private.who_lead_counts(p_client_id uuid)
returns table (
  learning boolean,
  title text,
  industry text,
  size_band integer,
  new_role boolean,
  hiring boolean,
  funded boolean,
  data_quality integer,
  company_fit integer,
  timing integer,
  fold integer,
  converted integer,
  leads bigint
)
language plpgsql stable
set search_path = ''
set plan_cache_mode = force_custom_plan
set work_mem = '256MB'
as $$
declare
  v_industries text [];
  v_sizes int4multirange;
  v_locations text [];
  v_built boolean;
  v_client_zone text;
begin
  select k.industries, k.sizes, k.locations into v_industries, v_sizes, v_locations
  from public.clients as c
  cross join lateral ci_private.als_context(c) as k
  where c.id = p_client_id;
  select coalesce(z.zone_name, 'UTC') into v_client_zone
  from public.clients as c
  left join ci_private.timezone_names as z on z.zone_key = lower(btrim(c.timezone))
  where c.id = p_client_id;
  v_built := exists (select 1 from ci_private.lead_touches_built as b where b.client_id = p_client_id);

  return query
  select
    grouping(l.organization_industry) = 1,
    l.title,
    l.organization_industry,
    ci_private.who_size_band(l.organization_employee_count),
    ci_private.als_role_points(l.employment_start_date, d.as_of) = 6,
    coalesce(l.organization_is_hiring, false),
    ci_private.als_funding_points(l.organization_latest_funding_date, d.as_of) = 4,
    p.data_quality,
    p.company_fit,
    p.timing,
    ci_private.als_learning_fold(l.id),
    ci_private.lead_outcome(l.status::text),
    count(*)
  from public.leads as l
  left join (
    select k.lead_id, k.created_at
    from ci_private.lead_touches as k
    where v_built and k.client_id = p_client_id and k.touch_no = 1
  ) as f on f.lead_id = l.id
  left join (
    select a.lead_id, min(a.created_at) as created_at
    from public.activities as a
    where a.client_id = p_client_id
      and ci_private.is_outbound_action(a.action)
      and (not v_built or ci_private.channel_code(a.channel) is null)
    group by a.lead_id
  ) as u on u.lead_id = l.id
  left join public.campaigns as c on c.id = l.campaign_id and c.client_id = l.client_id and c.deleted_at is null
  left join ci_private.timezone_names as zl on zl.zone_key = lower(btrim(l.timezone))
  left join ci_private.timezone_names as zc on zc.zone_key = lower(btrim(c.timezone))
  cross join lateral (
    select (
      least(f.created_at, u.created_at) at time zone coalesce(zl.zone_name, zc.zone_name, v_client_zone)
    )::date as as_of
  ) as d
  cross join lateral (
    select (x.parts).data_quality, (x.parts).company_fit, (x.parts).timing
    from (
      select ci_private.als_parts_of(
        null, null, l.email, l.email_verified, l.phone, l.phone_verified, l.linkedin_url,
        l.personal_email, l.organization_industry, l.organization_employee_count, l.organization_country,
        l.organization_is_hiring, l.organization_latest_funding_date, l.employment_start_date,
        null, null, v_industries, v_sizes, v_locations, d.as_of
      ) as parts
    ) as x
  ) as p
  where l.client_id = p_client_id
    and l.deleted_at is null
    and ci_private.lead_outcome(l.status::text) is not null
    -- Contacted leads only: a lead nobody sent anything to says nothing about who books.
    and coalesce(f.created_at, u.created_at) is not null
  group by grouping sets (
    (2, 3, 4, 5, 6, 7, 12),
    (2, 8, 9, 10, 11, 12)
  );
end
$$;

-- Compute the WHO pattern of a client now; writes nothing.
-- security definer: reads the client's leads and activities whatever the host's
-- policies on them, after the caller's read access is checked.
-- work_mem: the one pass hashes every lead's first touch; a large client needs
-- more than the default to do it in memory. jit: compiling this one-off query
-- cost 3 to 6 s of an 18 s run at 1M leads and saved nothing measurable.
create or replace function public.detect_who_patterns(p_client_id uuid)
returns jsonb
language plpgsql
stable
security definer
set search_path = ''
set work_mem = '256MB'
set jit = off
as $$
declare
  v_weights jsonb;
  v_n bigint;
  v_conversions bigint;
  v_rate double precision;
  v_confidence double precision;
  v_titles jsonb;
  v_industries jsonb;
  v_sizes jsonb;
  v_signals jsonb;
  v_dq integer [];
  v_au integer [];
  v_cf integer [];
  v_ti integer [];
  v_risk integer [];
  v_conv integer [];
  v_counts integer [];
  v_learning jsonb;
  v_recommended jsonb;
  v_new jsonb;
  v_min constant integer := 30;
begin
  perform ci_private.assert_client_access(p_client_id, false);
  select ci_private.als_weights_in_force(c.als_learned_weights) into v_weights
  from public.clients as c
  where c.id = p_client_id;

  -- One pass over the leads, two groupings (ci_private.who_lead_groups): the
  -- lead profile (title, industry, size band, timing flags, outcome), small
  -- enough to be regrouped for every ranking below, and the learning groups
  -- (components, risk, outcome) with their fold counts.
  with agg as materialized (
    select g.* from ci_private.who_lead_groups(p_client_id) as g
  ),
  profile as (
    select a.*, a.leads as sample, a.leads * a.converted as conversions
    from agg as a
    where not a.learning
  ),
  totals as (
    select
      sum(p.sample) as n,
      coalesce(sum(p.conversions), 0) as conversions,
      coalesce(sum(p.conversions)::double precision / nullif(sum(p.sample), 0), 0) as rate
    from profile as p
  ),
  -- Leads with no title (or none that normalises to a word) are a segment of
  -- their own, '(missing)', as are leads with no industry.
  title_seg as (
    select jsonb_agg(jsonb_build_object(
      'title', coalesce(s.title_key, '(missing)'),
      'raw_titles', coalesce(to_jsonb((s.spellings)[1:3]), '[]'::jsonb),
      'missing', s.title_key is null,
      'conversions', s.conversions,
      'sample', s.sample
    )) as segs
    from (
      select
        ts.title_key,
        sum(ts.sample) as sample,
        sum(ts.conversions) as conversions,
        array_agg(ts.title order by ts.sample desc, ts.title) filter (where ts.title is not null) as spellings
      from (
        select p.title_key, p.title, sum(p.sample) as sample, sum(p.conversions) as conversions
        from profile as p
        group by p.title_key, p.title
      ) as ts
      group by ts.title_key
    ) as s
  ),
  industry_seg as (
    select jsonb_agg(jsonb_build_object(
      'industry', coalesce(s.spellings[1], '(missing)'), 'industry_key', s.industry_key,
      'missing', s.industry_key is null, 'conversions', s.conversions, 'sample', s.sample
    )) as segs
    from (
      select
        i.industry_key,
        sum(i.sample) as sample,
        sum(i.conversions) as conversions,
        array_agg(i.industry order by i.sample desc, i.industry)
        filter (where i.industry_key is not null) as spellings
      from (
        select p.industry_key, p.industry, sum(p.sample) as sample, sum(p.conversions) as conversions
        from profile as p
        group by p.industry_key, p.industry
      ) as i
      group by i.industry_key
    ) as s
  ),
  size_seg as (
    select jsonb_agg(jsonb_build_object(
      'range', b.label, 'min', b.min_employees, 'max', b.max_employees, 'band', b.band,
      'conversions', z.conversions, 'sample', z.sample
    )) as segs
    from (
      select p.size_band, sum(p.sample) as sample, sum(p.conversions) as conversions
      from profile as p
      where p.size_band is not null
      group by p.size_band
    ) as z
    inner join ci_private.who_size_bands() as b on b.band = z.size_band
  ),
  signal_seg as (
    select
      x.signal,
      jsonb_agg(jsonb_build_object(
        'signal', x.signal, 'flag', x.flag, 'conversions', x.conversions, 'sample', x.sample
      )) as segs
    from (
      select v.signal, v.flag, sum(p.sample) as sample, sum(p.conversions) as conversions
      from profile as p
      cross join lateral (
        values ('new_role', p.new_role), ('hiring', p.hiring), ('funded', p.funded)
      ) as v (signal, flag)
      group by v.signal, v.flag
    ) as x
    group by x.signal
  ),
  learning as (
    select
      array_agg(a.data_quality) as dq,
      array_agg(a.authority) as au,
      array_agg(a.company_fit) as cf,
      array_agg(a.timing) as ti,
      array_agg(a.risk) as risk,
      array_agg(a.converted) as conv,
      array_agg(a.fold_counts) as fold_counts
    from agg as a
    where a.learning
  )
  select
    coalesce(t.n, 0),
    coalesce(t.conversions, 0),
    coalesce(t.rate, 0),
    ci_private.rate_table(ts.segs, t.rate, v_min),
    ci_private.rate_table(i.segs, t.rate, v_min),
    ci_private.rate_table(sz.segs, t.rate, v_min),
    (
      select jsonb_object_agg(sg.signal, ci_private.rate_table(sg.segs, t.rate, v_min))
      from signal_seg as sg
    ),
    l.dq, l.au, l.cf, l.ti, l.risk, l.conv, l.fold_counts
  into
    v_n, v_conversions, v_rate, v_titles, v_industries, v_sizes, v_signals,
    v_dq, v_au, v_cf, v_ti, v_risk, v_conv, v_counts
  from title_seg as ts
  cross join industry_seg as i
  cross join size_seg as sz
  cross join learning as l
  left join totals as t on true;

  if v_n < 30 or v_conversions < 10 then
    return ci_private.who_insufficient(
      v_n, v_conversions, v_weights,
      format('insufficient data: %s outcomes (need 30) and %s conversions (need 10)', v_n, v_conversions)
    );
  end if;
  v_confidence := ci_private.who_confidence(v_n);

  if ci_private.als_fit_available() then
    execute 'select ci_private.fit_als_weights($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)'
    into v_learning
    using v_dq, v_au, v_cf, v_ti, v_risk, v_conv, v_counts, v_weights, v_confidence, '{}'::jsonb;
  else
    v_learning := jsonb_build_object(
      'status', 'not_fitted', 'applied', false, 'reason', 'not fitted in database: use the sidecar',
      'old_weights', v_weights, 'new_weights', v_weights, 'n', v_n, 'conversions', v_conversions,
      'confidence', v_confidence
    );
  end if;
  -- New weights are recorded at the precision the scorer uses (4 decimals), so
  -- that applying them stores exactly what the pattern shows.
  v_new := v_learning -> 'new_weights';
  if coalesce((v_learning ->> 'applied')::boolean, false) and ci_private.als_valid_weights(v_new) then
    v_recommended := ci_private.als_quantize_weights(v_new);
    v_learning := v_learning || jsonb_build_object('new_weights', v_recommended);
  else
    v_recommended := v_weights;
    v_learning := v_learning || jsonb_build_object('applied', false);
  end if;

  return jsonb_build_object(
    'type', 'who',
    'version', '2.0',
    'computed_at', pg_catalog.now(),
    'insufficient_data', false,
    'sample_size', v_n,
    'conversions', v_conversions,
    'baseline_rate', round(v_rate::numeric, 4),
    'confidence', v_confidence,
    'as_of', 'first outbound touch, local date of the lead (lead, campaign, client zone, else UTC)',
    'population', 'leads with an outcome and at least one outbound touch',
    'min_sample', v_min,
    'winner_rule', ci_private.winner_rule(),
    'title_rankings', ci_private.jsonb_array_head(v_titles, 25),
    'industry_rankings', ci_private.jsonb_array_head(v_industries, 25),
    'winning_titles', ci_private.significant(v_titles, 'above'),
    'losing_titles', ci_private.significant(v_titles, 'below'),
    'winning_industries', ci_private.significant(v_industries, 'above'),
    'losing_industries', ci_private.significant(v_industries, 'below'),
    'size_analysis', jsonb_build_object(
      'sweet_spot', (
        select jsonb_build_object(
          'min', (e ->> 'min')::integer,
          'max', (e ->> 'max')::integer,
          'range', e ->> 'range',
          'conversion_rate', (e ->> 'conversion_rate')::numeric,
          'smoothed_rate', (e ->> 'smoothed_rate')::numeric,
          'lift', (e ->> 'lift')::numeric,
          'significance', e ->> 'significance',
          'sample', (e ->> 'sample')::integer
        )
        from jsonb_array_elements(v_sizes) as d (e)
        order by (e ->> 'smoothed_rate')::numeric desc, (e ->> 'sample')::integer desc
        limit 1
      ),
      'distribution', (
        select coalesce(jsonb_agg(e order by (e ->> 'band')::integer), '[]'::jsonb)
        from jsonb_array_elements(v_sizes) as d (e)
      )
    ),
    'timing_signals', jsonb_build_object(
      'new_role_lift', coalesce(ci_private.who_signal_lift(v_signals -> 'new_role', 'conversion_rate'), 1.0),
      'hiring_lift', coalesce(ci_private.who_signal_lift(v_signals -> 'hiring', 'conversion_rate'), 1.0),
      'funded_lift', coalesce(ci_private.who_signal_lift(v_signals -> 'funded', 'conversion_rate'), 1.0),
      'smoothed', jsonb_build_object(
        'new_role_lift', coalesce(ci_private.who_signal_lift(v_signals -> 'new_role', 'smoothed_rate'), 1.0),
        'hiring_lift', coalesce(ci_private.who_signal_lift(v_signals -> 'hiring', 'smoothed_rate'), 1.0),
        'funded_lift', coalesce(ci_private.who_signal_lift(v_signals -> 'funded', 'smoothed_rate'), 1.0)
      ),
      'segments', coalesce(v_signals, '{}'::jsonb),
      'definitions', jsonb_build_object(
        'new_role', 'in the role under 6 months at the first outbound touch',
        'hiring', 'organization_is_hiring',
        'funded', 'latest funding within 12 months before the first outbound touch'
      )
    ),
    'recommended_weights', v_recommended,
    'weights_in_force', v_weights,
    'weight_learning', v_learning
  );
end
$$;

revoke execute on function ci_private.who_lead_counts(uuid) from public, anon, authenticated;
grant execute on function ci_private.who_lead_counts(uuid) to service_role;
revoke execute on function public.detect_who_patterns(uuid) from public, anon;
grant execute on function public.detect_who_patterns(uuid) to authenticated, service_role;
