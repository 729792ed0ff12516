-- Small-sample rate statistics, one implementation for every detector.
-- Each segment (a title, a subject template, a local hour, ...) gets its
-- conversions, its sample, the raw rate, an empirical-Bayes smoothed rate (a
-- Beta prior fitted to the segments of the same ranking, shrinking small
-- segments toward the baseline) and a Wilson score interval at a family-wise
-- 95% level (Bonferroni over the segments ranked together). A segment is
-- 'above' or 'below' the baseline only when its interval excludes it (and it
-- rests on at least 5 bookings, or 5 expected ones for a loser); only those
-- may be named winners or losers.

-- Inverse of the standard normal CDF (Acklam's rational approximation,
-- relative error below 1.2e-9), for the interval's z.
create or replace function ci_private.normal_quantile(p double precision)
returns double precision
language plpgsql immutable strict parallel safe
set search_path = ''
as $$
declare
  a1 constant double precision := -3.969683028665376e+01;
  a2 constant double precision := 2.209460984245205e+02;
  a3 constant double precision := -2.759285104469687e+02;
  a4 constant double precision := 1.383577518672690e+02;
  a5 constant double precision := -3.066479806614716e+01;
  a6 constant double precision := 2.506628277459239e+00;
  b1 constant double precision := -5.447609879822406e+01;
  b2 constant double precision := 1.615858368580409e+02;
  b3 constant double precision := -1.556989798598866e+02;
  b4 constant double precision := 6.680131188771972e+01;
  b5 constant double precision := -1.328068155288572e+01;
  c1 constant double precision := -7.784894002430293e-03;
  c2 constant double precision := -3.223964580411365e-01;
  c3 constant double precision := -2.400758277161838e+00;
  c4 constant double precision := -2.549732539343734e+00;
  c5 constant double precision := 4.374664141464968e+00;
  c6 constant double precision := 2.938163982698783e+00;
  d1 constant double precision := 7.784695709041462e-03;
  d2 constant double precision := 3.224671290700398e-01;
  d3 constant double precision := 2.445134137142996e+00;
  d4 constant double precision := 3.754408661907416e+00;
  p_low constant double precision := 0.02425;
  q double precision;
  r double precision;
begin
  if p <= 0 or p >= 1 then
    raise exception 'normal_quantile: p must be in (0, 1), got %', p using errcode = 'invalid_parameter_value';
  end if;
  if p < p_low then
    q := sqrt(-2 * ln(p));
    return (((((c1 * q + c2) * q + c3) * q + c4) * q + c5) * q + c6)
      / ((((d1 * q + d2) * q + d3) * q + d4) * q + 1);
  elsif p <= 1 - p_low then
    q := p - 0.5;
    r := q * q;
    return (((((a1 * r + a2) * r + a3) * r + a4) * r + a5) * r + a6) * q
      / (((((b1 * r + b2) * r + b3) * r + b4) * r + b5) * r + 1);
  else
    q := sqrt(-2 * ln(1 - p));
    return -(((((c1 * q + c2) * q + c3) * q + c4) * q + c5) * q + c6)
      / ((((d1 * q + d2) * q + d3) * q + d4) * q + 1);
  end if;
end
$$;

-- Rank segments of one dimension honestly.
-- p_segments: a JSON array of objects, each with integer `conversions` and
-- `sample` plus any label keys (kept as they are). p_baseline: the rate to beat
-- (the client's overall rate). Segments with sample < p_min_sample are dropped.
-- Returns the segments as a JSON array ordered by smoothed rate (then sample),
-- each with: conversions, sample, conversion_rate (raw), smoothed_rate, ci_low,
-- ci_high, lift (raw rate / baseline), smoothed_lift, significance
-- ('above' | 'below' | 'none'), plus prior_strength (alpha + beta of the prior).
create or replace function ci_private.rate_table(
  p_segments jsonb,
  p_baseline double precision,
  p_min_sample integer default 5,
  p_alpha double precision default 0.05
)
returns jsonb
language sql immutable parallel safe
as $$
  with seg as (
    select
      s.value as item,
      (s.value ->> 'conversions')::bigint as c,
      (s.value ->> 'sample')::bigint as n
    from jsonb_array_elements(
      case when jsonb_typeof(p_segments) = 'array' then p_segments else '[]'::jsonb end
    ) as s (value)
    where (s.value ->> 'sample')::bigint >= greatest(p_min_sample, 1)
  ),
  base as (
    select
      least(greatest(coalesce(p_baseline, 0), 1e-6), 1 - 1e-6) as p0,
      count(*) as m,
      -- Between-segment variance of the raw rates, weighted by sample.
      sum(n * (c::double precision / n - p_baseline) ^ 2) / nullif(sum(n), 0) as var_obs,
      -- What binomial noise alone would give at those sample sizes.
      count(*) * coalesce(p_baseline, 0) * (1 - coalesce(p_baseline, 0)) / nullif(sum(n), 0) as var_noise
    from seg
  ),
  prior as (
    select
      b.p0,
      b.m,
      -- Method of moments: kappa = p(1-p)/tau^2 - 1, tau^2 the excess variance.
      -- No excess variance (no real differences): a strong prior, rates shrink
      -- to the baseline. Never below 10 pseudo-observations, so that a handful
      -- of lucky leads cannot outrank a well-sampled segment; never above 1e4.
      least(greatest(
        b.p0 * (1 - b.p0) / greatest(coalesce(b.var_obs - b.var_noise, 0), 1e-9) - 1,
        10
      ), 1e4) as kappa,
      ci_private.normal_quantile(1 - p_alpha / (2 * greatest(b.m, 1))) as z
    from base as b
  ),
  scored as (
    select
      s.item,
      s.c,
      s.n,
      pr.z,
      pr.kappa,
      s.c::double precision / s.n as rate,
      (s.c + pr.p0 * pr.kappa) / (s.n + pr.kappa) as smoothed,
      -- Wilson score interval.
      (s.c::double precision / s.n + pr.z ^ 2 / (2 * s.n)) / (1 + pr.z ^ 2 / s.n) as centre,
      pr.z * sqrt(s.c::double precision / s.n * (1 - s.c::double precision / s.n) / s.n + pr.z ^ 2 / (4 * s.n ^ 2))
      / (1 + pr.z ^ 2 / s.n) as half,
      pr.p0
    from seg as s
    cross join prior as pr
  )
  select coalesce(jsonb_agg(
    x.item || jsonb_build_object(
      'conversions', x.c,
      'sample', x.n,
      'conversion_rate', round(x.rate::numeric, 4),
      'smoothed_rate', round(x.smoothed::numeric, 4),
      'ci_low', round(greatest(x.centre - x.half, 0)::numeric, 4),
      'ci_high', round(least(x.centre + x.half, 1)::numeric, 4),
      'lift', case when p_baseline > 0 then round((x.rate / p_baseline)::numeric, 2) end,
      'smoothed_lift', case when p_baseline > 0 then round((x.smoothed / p_baseline)::numeric, 2) end,
      -- A winner needs at least 5 bookings of its own, a loser a sample in which
      -- the baseline would have expected at least 5: below that, an interval on a
      -- handful of events is too fragile to act on.
      'significance', case
        when x.centre - x.half > p_baseline and x.c >= 5 then 'above'
        when x.centre + x.half < p_baseline and x.n * p_baseline >= 5 then 'below'
        else 'none'
      end,
      'prior_strength', round(x.kappa::numeric, 1)
    )
    order by x.smoothed desc, x.n desc, x.item::text
  ), '[]'::jsonb)
  from scored as x
$$;

-- The rule that names winners and losers, in words, for the patterns' metadata.
create or replace function ci_private.winner_rule()
returns text
language sql immutable parallel safe
as $$
  select 'a segment is named only when its family-wise 95% interval excludes the baseline rate '
    || 'and it rests on at least 5 bookings (a loser: 5 expected at the baseline rate)'
$$;

grant execute on function ci_private.normal_quantile(double precision) to authenticated, service_role;
grant execute on function ci_private.rate_table(jsonb, double precision, integer, double precision)
to authenticated, service_role;
