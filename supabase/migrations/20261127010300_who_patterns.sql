-- The WHO detector (seed spec 3.2 and 4.1, issue 3): which lead attributes
-- predict a booking, for one client, computed in SQL and writing nothing.
-- Over the client's non-deleted leads with an outcome (converted 1, failed 0;
-- open leads are censored, not failures), judged as of their first outbound
-- touch (ci_private.who_lead_groups). Every rate comes from ci_private.rate_table
-- (raw conversion_rate, smoothed_rate, interval, lift against the client's
-- overall rate, significance); rankings are ordered by the smoothed rate.
-- The pattern keeps every key of the seed's WHO schema with its meaning; added
-- keys: conversions, baseline_rate, weights_in_force, weight_learning (the fit's
-- decision and why), insufficient_data / reason, and per-segment statistics.
-- Confidence: the seed's sigmoid on the number of outcomes, unchanged.

-- Confidence of a pattern from its number of outcomes: 1 / (1 + e^(-(n - 100) / 30)).
create or replace function ci_private.who_confidence(p_outcomes bigint)
returns double precision
language sql immutable parallel safe
as $$
  select round((1 / (1 + exp(-(coalesce(p_outcomes, 0) - 100) / 30.0)))::numeric, 2)::double precision
$$;

-- The company-size bands of the size analysis (ci_private.who_size_thresholds):
-- band number, label ('16-30', '501+'), lowest and highest employee count.
create or replace function ci_private.who_size_bands()
returns table (band integer, label text, min_employees integer, max_employees integer)
language sql immutable parallel safe
as $$
  select
    b.i::integer,
    b.lo || coalesce('-' || (b.next - 1), '+'),
    b.lo,
    b.next - 1
  from (
    select t.i, t.lo, lead(t.lo) over (order by t.i) as next
    from unnest(ci_private.who_size_thresholds()) with ordinality as t (lo, i)
  ) as b
$$;

-- The first p_limit elements of a JSON array.
create or replace function ci_private.jsonb_array_head(p_array jsonb, p_limit integer)
returns jsonb
language sql immutable parallel safe
as $$
  select coalesce(jsonb_agg(e.value order by e.ord), '[]'::jsonb)
  from jsonb_array_elements(coalesce(p_array, '[]'::jsonb)) with ordinality as e (value, ord)
  where e.ord <= p_limit
$$;

-- Lift of a timing signal from its rate_table (two segments, flag true and
-- false): rate with / rate without, as the seed defines it; 1.0 when either
-- side has fewer than 5 leads or the rate without is 0.
create or replace function ci_private.who_signal_lift(p_table jsonb, p_rate_key text)
returns numeric
language sql immutable parallel safe
as $$
  select coalesce(round(
    (max((e ->> p_rate_key)::numeric) filter (where (e ->> 'flag')::boolean))
    / nullif(max((e ->> p_rate_key)::numeric) filter (where not (e ->> 'flag')::boolean), 0),
    2), 1.0)
  from jsonb_array_elements(coalesce(p_table, '[]'::jsonb)) as t (e)
  having count(*) = 2
$$;

-- The seed's answer for too little data, with the reason and the weights in force.
create or replace function ci_private.who_insufficient(
  p_outcomes bigint, p_conversions bigint, p_weights jsonb, p_reason text
)
returns jsonb
language sql stable parallel safe
as $$
  select jsonb_build_object(
    'type', 'who',
    'version', '2.0',
    'computed_at', pg_catalog.now(),
    'insufficient_data', true,
    'reason', p_reason,
    'sample_size', p_outcomes,
    'conversions', p_conversions,
    'confidence', 0.0,
    'title_rankings', '[]'::jsonb,
    'industry_rankings', '[]'::jsonb,
    'size_analysis', '{}'::jsonb,
    'timing_signals', jsonb_build_object('new_role_lift', 1.0, 'hiring_lift', 1.0, 'funded_lift', 1.0),
    'recommended_weights', p_weights,
    'weights_in_force', p_weights,
    'weight_learning', jsonb_build_object(
      'status', 'not_fitted', 'applied', false, 'reason', p_reason,
      'old_weights', p_weights, 'new_weights', p_weights, 'n', p_outcomes, 'conversions', p_conversions
    )
  )
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
  title_seg as (
    select jsonb_agg(jsonb_build_object(
      'title', s.title_key,
      'raw_titles', to_jsonb((s.spellings)[1:3]),
      'conversions', s.conversions,
      'sample', s.sample
    )) as segs
    from (
      select
        ts.title_key,
        sum(ts.sample) as sample,
        sum(ts.conversions) as conversions,
        array_agg(ts.title order by ts.sample desc, ts.title) as spellings
      from (
        select p.title_key, p.title, sum(p.sample) as sample, sum(p.conversions) as conversions
        from profile as p
        where p.title_key is not null
        group by p.title_key, p.title
      ) as ts
      group by ts.title_key
    ) as s
  ),
  industry_seg as (
    select jsonb_agg(jsonb_build_object(
      'industry', s.spellings[1], 'industry_key', s.industry_key, 'conversions', s.conversions, 'sample', s.sample
    )) as segs
    from (
      select
        i.industry_key,
        sum(i.sample) as sample,
        sum(i.conversions) as conversions,
        array_agg(i.industry order by i.sample desc, i.industry) as spellings
      from (
        select p.industry_key, p.industry, sum(p.sample) as sample, sum(p.conversions) as conversions
        from profile as p
        where p.industry_key is not null
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
    ci_private.rate_table(ts.segs, t.rate),
    ci_private.rate_table(i.segs, t.rate),
    ci_private.rate_table(sz.segs, t.rate),
    (
      select jsonb_object_agg(sg.signal, ci_private.rate_table(sg.segs, t.rate))
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
    'as_of', 'first outbound touch',
    'title_rankings', ci_private.jsonb_array_head(v_titles, 25),
    'industry_rankings', ci_private.jsonb_array_head(v_industries, 25),
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

revoke execute on function public.detect_who_patterns(uuid) from public, anon;
grant execute on function public.detect_who_patterns(uuid) to authenticated, service_role;
grant execute on function ci_private.who_confidence(bigint) to authenticated, service_role;
grant execute on function ci_private.who_size_bands() to authenticated, service_role;
grant execute on function ci_private.jsonb_array_head(jsonb, integer) to authenticated, service_role;
grant execute on function ci_private.who_signal_lift(jsonb, text) to authenticated, service_role;
grant execute on function ci_private.who_insufficient(bigint, bigint, jsonb, text) to authenticated, service_role;
