-- Position-adjusted effects (issue 14): every per-touch effect is judged
-- against what the touch's position (and channel, where it applies) alone
-- predicts. Indirect standardisation: a segment's observed bookings O are set
-- against the bookings E expected from the client's own position hazards,
-- E = sum over the segment's trials of h(position[, channel]), where h is the
-- booking rate of all the client's trials in that stratum. The ratio O/E (a
-- standardised booking ratio) gets an exact Poisson (Garwood) interval on O,
-- divided by E, at a family-wise level (Bonferroni over the segments ranked
-- together); a segment is named only when that interval excludes 1. Why this
-- and not Mantel-Haenszel: docs/statistics.md.

-- P(X <= k) for X ~ Poisson(mean); the terms summed upward from j = 0 (exact
-- for the k <= 100 and means below ~700 it is used for).
create or replace function ci_private.poisson_cdf(p_k integer, p_mean double precision)
returns double precision
language plpgsql immutable strict parallel safe
set search_path = ''
as $$
declare
  v_term double precision;
  v_sum double precision;
begin
  if p_k < 0 then
    return 0;
  end if;
  if p_mean <= 0 then
    return 1;
  end if;
  v_term := exp(-p_mean);
  v_sum := v_term;
  for j in 1..p_k loop
    v_term := v_term * p_mean / j;
    v_sum := v_sum + v_term;
  end loop;
  return least(v_sum, 1);
end
$$;

-- The mean x at which P(X <= k | x) = p_target (the CDF falls in x): Newton's
-- method inside a bracket that bisection keeps (the derivative is -pmf(k; x)).
create or replace function ci_private.poisson_mean_at(p_k integer, p_target double precision)
returns double precision
language plpgsql immutable strict parallel safe
set search_path = ''
as $$
declare
  v_lo double precision := 0;
  v_hi double precision := p_k + 10;
  v_x double precision;
  v_f double precision;
  v_pmf double precision;
  v_next double precision;
  v_ln_fact double precision := 0;
begin
  if p_target <= 0 or p_target >= 1 then
    raise exception 'poisson_mean_at: target must be in (0, 1), got %', p_target using errcode = 'invalid_parameter_value';
  end if;
  for j in 2..p_k loop
    v_ln_fact := v_ln_fact + ln(j::double precision);
  end loop;
  while ci_private.poisson_cdf(p_k, v_hi) > p_target loop
    v_lo := v_hi;
    v_hi := v_hi * 2;
  end loop;
  v_x := (v_lo + v_hi) / 2;
  for i in 1..200 loop
    v_f := ci_private.poisson_cdf(p_k, v_x) - p_target;
    if v_f > 0 then
      v_lo := v_x;
    else
      v_hi := v_x;
    end if;
    -- pmf(k; x) = exp(k ln x - x - ln k!)
    v_pmf := exp(p_k * ln(v_x) - v_x - v_ln_fact);
    v_next := case when v_pmf > 0 then v_x + v_f / v_pmf end;
    if v_next is null or v_next <= v_lo or v_next >= v_hi then
      v_next := (v_lo + v_hi) / 2;
    end if;
    exit when abs(v_next - v_x) <= 1e-12 * greatest(v_x, 1e-12) or v_hi - v_lo <= 1e-13 * greatest(v_hi, 1e-12);
    v_x := v_next;
  end loop;
  return v_x;
end
$$;

-- Two-sided (1 - p_alpha) interval for the mean of a Poisson count p_observed:
-- exact (Garwood: the chi-square quantiles chi2(alpha/2; 2k)/2 and
-- chi2(1 - alpha/2; 2k + 2)/2, found on the Poisson CDF) up to 100 events,
-- Byar's approximation above (relative error under 0.2% there).
create or replace function ci_private.poisson_interval(p_observed bigint, p_alpha double precision)
returns double precision []
language plpgsql immutable strict parallel safe
set search_path = ''
as $$
declare
  v_z double precision;
  v_o double precision := p_observed;
begin
  if p_observed < 0 then
    raise exception 'poisson_interval: a count cannot be negative, got %', p_observed using errcode = 'invalid_parameter_value';
  end if;
  if p_alpha <= 0 or p_alpha >= 1 then
    raise exception 'poisson_interval: alpha must be in (0, 1), got %', p_alpha using errcode = 'invalid_parameter_value';
  end if;
  if p_observed <= 100 then
    return array[
      case when p_observed = 0 then 0 else ci_private.poisson_mean_at(p_observed::integer - 1, 1 - p_alpha / 2) end,
      ci_private.poisson_mean_at(p_observed::integer, p_alpha / 2)
    ];
  end if;
  v_z := ci_private.normal_quantile(1 - p_alpha / 2);
  return array[
    v_o * (1 - 1 / (9 * v_o) - v_z / (3 * sqrt(v_o))) ^ 3,
    (v_o + 1) * (1 - 1 / (9 * (v_o + 1)) + v_z / (3 * sqrt(v_o + 1))) ^ 3
  ];
end
$$;

-- Rank segments by their position-adjusted effect.
-- p_segments: a JSON array of objects, each with integer `conversions` and
-- `sample`, number `expected` (the bookings its trials' positions predict) and
-- label keys (kept). Every key of ci_private.rate_table is kept as it is (raw
-- conversion_rate, smoothed_rate, Wilson interval, lift against p_baseline;
-- its verdict as raw_significance), and added:
--   expected_bookings       E
--   adjusted_lift           O / E (null when E = 0)
--   adjusted_lift_ci        [low, high]: the exact Poisson interval on O over E,
--                           at a family-wise 1 - p_alpha (Bonferroni over the
--                           segments ranked together)
--   smoothed_adjusted_lift  (O + a) / (E + a / R): the posterior mean under a
--                           Gamma prior of mean R = sum O / sum E (the family's
--                           pooled ratio) and shape a (method of moments,
--                           between 2 and 1e4): small segments shrink toward R
--   significance            'above' when the interval lies above 1 and O >= 5,
--                           'below' when it lies below 1 and E >= 5, else 'none'
-- Ordered by smoothed_adjusted_lift (then expected bookings, sample).
create or replace function ci_private.adjusted_rate_table(
  p_segments jsonb,
  p_baseline double precision,
  p_min_sample integer default 30,
  p_alpha double precision default 0.05
)
returns jsonb
language sql immutable parallel safe
as $$
  with raw as (
    select
      r.value as item,
      (r.value ->> 'conversions')::bigint as o,
      greatest(coalesce((r.value ->> 'expected')::double precision, 0), 0) as e,
      (r.value ->> 'sample')::bigint as n
    from jsonb_array_elements(ci_private.rate_table(p_segments, p_baseline, p_min_sample, p_alpha)) as r (value)
  ),
  pool as (
    select
      count(*) filter (where x.e > 0) as m,
      coalesce(sum(x.o)::double precision / nullif(sum(x.e), 0), 1) as r
    from raw as x
  ),
  prior as (
    -- Method of moments for O ~ Poisson(E theta), theta ~ Gamma(shape a, rate
    -- a / R) (mean R, relative variance tau^2 = 1 / a):
    -- E (O - R E)^2 = R E + R^2 tau^2 E^2. No excess variance: a strong prior.
    select
      greatest(p.r, 1e-6) as pooled,
      least(greatest(1 / greatest(coalesce(
        (sum((x.o - p.r * x.e) ^ 2) - p.r * sum(x.e)) / nullif(p.r ^ 2 * sum(x.e ^ 2), 0), 0
      ), 1e-4), 2), 1e4) as a
    from pool as p
    left join raw as x on x.e > 0
    group by p.r
  ),
  scored as (
    select
      x.item,
      x.o,
      x.e,
      x.n,
      p.a,
      (x.o + p.a) / (x.e + p.a / p.pooled) as smoothed,
      case when x.e > 0 then x.o / x.e end as ratio,
      case when x.e > 0 then ci_private.poisson_interval(
        x.o, p_alpha / greatest((select count(*) from raw), 1)
      ) end as ci
    from raw as x
    cross join prior as p
  )
  select coalesce(jsonb_agg(
    (s.item - 'expected' - 'significance') || jsonb_build_object(
      'raw_significance', s.item -> 'significance',
      'expected_bookings', round(s.e::numeric, 2),
      'adjusted_lift', round(s.ratio::numeric, 2),
      'adjusted_lift_ci', case when s.ci is not null then jsonb_build_array(
        round((s.ci[1] / s.e)::numeric, 3), round((s.ci[2] / s.e)::numeric, 3)
      ) end,
      'smoothed_adjusted_lift', round(s.smoothed::numeric, 3),
      'adjusted_prior_strength', round(s.a::numeric, 1),
      'significance', case
        when s.ci is not null and s.ci[1] / s.e > 1 and s.o >= 5 then 'above'
        when s.ci is not null and s.ci[2] / s.e < 1 and s.e >= 5 then 'below'
        else 'none'
      end
    )
    order by s.smoothed desc, s.e desc, s.n desc, s.item::text
  ), '[]'::jsonb)
  from scored as s
$$;

-- The rule that names winners and losers of position-adjusted rankings, in words.
create or replace function ci_private.adjusted_winner_rule()
returns text
language sql immutable parallel safe
as $$
  select 'per-touch effects are judged against the bookings their touches'' positions (and channel, for content '
    || 'and timing) predict from the client''s own position hazards (indirect standardisation): a segment is '
    || 'named only when the family-wise 95% exact Poisson interval of observed / expected bookings excludes 1 '
    || 'and it rests on at least 5 bookings (a loser: 5 expected)'
$$;

revoke execute on function ci_private.poisson_cdf(integer, double precision) from public, anon;
revoke execute on function ci_private.poisson_mean_at(integer, double precision) from public, anon;
revoke execute on function ci_private.poisson_interval(bigint, double precision) from public, anon;
revoke execute on function ci_private.adjusted_rate_table(jsonb, double precision, integer, double precision)
from public, anon;
revoke execute on function ci_private.adjusted_winner_rule() from public, anon;
grant execute on function ci_private.poisson_cdf(integer, double precision) to authenticated, service_role;
grant execute on function ci_private.poisson_mean_at(integer, double precision) to authenticated, service_role;
grant execute on function ci_private.poisson_interval(bigint, double precision) to authenticated, service_role;
grant execute on function ci_private.adjusted_rate_table(jsonb, double precision, integer, double precision)
to authenticated, service_role;
grant execute on function ci_private.adjusted_winner_rule() to authenticated, service_role;
