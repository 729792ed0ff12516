-- WHEN, position-adjusted (issue 14). Redefines ci_private.when_patterns and
-- public.detect_when_patterns of the detect_when migration:
--   * local day, local hour and gap rankings are judged against the bookings
--     their touches' position and channel predict (ci_private.adjusted_rate_table,
--     hazards of the client's own trials by position, 1..6 and 7+, and channel):
--     a day that merely carries step 3 of every sequence is no winner;
--     touch_position_hazard stays the raw hazard by position (it is the
--     position effect itself);
--   * Kaplan-Meier on exact times (days as fractions), ties handled as usual:
--     bookings at a time come before censorings at that same time;
--   * metadata.bookings_without_prior_touch: converted leads whose booking
--     precedes every outbound touch (no converting touch; not a WHEN trial).

-- Per-touch WHEN statistics of the prepared relation.
-- security definer: reads the temporary per-touch relation its caller prepared.
-- jit: compiling these one-off queries costs more than it saves.
create or replace function ci_private.when_patterns()
returns jsonb
language plpgsql volatile security definer
set search_path = ''
set jit = off
as $$
declare
  v_min integer := 30;
  v_base double precision;
  v_trials bigint;
  v_conversions bigint;
  v_days jsonb;
  v_hours jsonb;
  v_positions jsonb;
  v_gaps jsonb;
  v_distribution jsonb;
  v_seq_gaps jsonb;
  v_timing jsonb;
  v_km jsonb;
  v_leads jsonb;
begin
  perform 'PRAGMA:TABLE: ci_touches (like ci_private.touch)';
  perform 'PRAGMA:TABLE: ci_touch_leads (like ci_private.touch_lead)';

  -- One pass over the trials into their distinct (day, hour, position, gap)
  -- combinations, then every dimension of those.
  with cells as (
    select
      t.local_dow,
      t.local_hour,
      least(t.position, 7) as pos,
      -- Gap buckets 1..7: under 1 day, 1-2, 2-3, 3-5, 5-8, 8-15, 15 and more.
      width_bucket(t.gap_days, '{1, 2, 3, 5, 8, 15}'::real []) + 1 as bucket,
      t.channel,
      count(*) as n,
      sum(t.booked) as c
    from pg_temp.ci_touches as t
    where t.booked is not null
    group by 1, 2, 3, 4, 5
  ),
  -- Expected bookings of each cell: its trials times the hazard of their
  -- stratum (position 1..6 or 7+, and channel) over all the client's trials.
  combos as (
    select
      x.local_dow,
      x.local_hour,
      x.pos,
      x.bucket,
      x.n,
      x.c,
      x.n * sum(x.c) over (partition by x.pos, x.channel)::double precision
      / nullif(sum(x.n) over (partition by x.pos, x.channel), 0) as e
    from cells as x
  ),
  agg as (
    select
      grouping(x.local_dow) as g_dow,
      grouping(x.local_hour) as g_hour,
      grouping(x.pos) as g_pos,
      grouping(x.bucket) as g_gap,
      x.local_dow,
      x.local_hour,
      x.pos,
      x.bucket,
      ('{0-1, 1-2, 2-3, 3-5, 5-8, 8-15, 15+}'::text [])[x.bucket] as label,
      sum(x.n)::bigint as n,
      sum(x.c)::bigint as c,
      sum(x.e) as e
    from combos as x
    group by grouping sets ((x.local_dow), (x.local_hour), (x.pos), (x.bucket), ())
  )
  select
    max(a.n) filter (where a.g_dow = 1 and a.g_hour = 1 and a.g_pos = 1 and a.g_gap = 1),
    max(a.c) filter (where a.g_dow = 1 and a.g_hour = 1 and a.g_pos = 1 and a.g_gap = 1),
    jsonb_agg(jsonb_build_object(
      'day', ci_private.day_name(a.local_dow), 'day_index', a.local_dow, 'conversions', a.c, 'sample', a.n,
      'expected', a.e
    )) filter (where a.g_dow = 0),
    jsonb_agg(jsonb_build_object('hour', a.local_hour, 'conversions', a.c, 'sample', a.n, 'expected', a.e))
    filter (where a.g_hour = 0),
    jsonb_agg(jsonb_build_object(
      'touch', case when a.pos = 7 then '7+' else a.pos::text end, 'position', a.pos, 'conversions', a.c, 'sample', a.n
    )) filter (where a.g_pos = 0),
    jsonb_agg(jsonb_build_object(
      'gap_days', a.label, 'bucket', a.bucket, 'conversions', a.c, 'sample', a.n, 'expected', a.e
    ))
    filter (where a.g_gap = 0 and a.bucket is not null),
    coalesce(jsonb_object_agg(
      case when a.pos = 7 then 'touch_7_plus' else 'touch_' || a.pos end, a.c
    ) filter (where a.g_pos = 0 and a.c > 0), '{}'::jsonb)
  into v_trials, v_conversions, v_days, v_hours, v_positions, v_gaps, v_distribution
  from agg as a;

  v_base := v_conversions::double precision / nullif(v_trials, 0);

  -- Shares of bookings by the position of the converting touch.
  select coalesce(jsonb_object_agg(d.key, round(d.value::numeric / nullif(v_conversions, 0), 4)), '{}'::jsonb)
  into v_distribution
  from jsonb_each_text(v_distribution) as d (key, value);

  -- Median days between touches of converted leads, up to their booking.
  select coalesce(jsonb_object_agg('touch_' || (x.position - 1) || '_to_' || x.position, x.median_days), '{}'::jsonb)
  into v_seq_gaps
  from (
    select
      t.position,
      round(percentile_cont(0.5) within group (order by t.gap_days)::numeric, 1) as median_days
    from pg_temp.ci_touches as t
    where t.outcome = 1 and t.booked is not null and t.position between 2 and 6
    group by t.position
    having count(*) >= 5
  ) as x;

  -- Leads: time from first touch to booking (events) or to now (censored).
  with lead_time as (
    select
      l.outcome,
      date_part('epoch', coalesce(l.converted_at, pg_catalog.now()) - t.created_at) / 86400 as days
    from pg_temp.ci_touches as t
    inner join pg_temp.ci_touch_leads as l on l.lead_no = t.lead_no
    where t.position = 1
  ),
  timing as (
    select
      count(*) as converted,
      avg(lt.days) as avg_days,
      percentile_cont(array[0.5, 0.8, 0.95]) within group (order by lt.days) as pct
    from lead_time as lt
    where lt.outcome = 1 and lt.days >= 0
  ),
  -- Exact times (fractions of a day): one row per distinct time.
  per_day as (
    select
      lt.days as d,
      count(*) filter (where lt.outcome = 1) as events,
      count(*) filter (where lt.outcome is null) as censored
    from lead_time as lt
    where (lt.outcome = 1 and lt.days >= 0) or lt.outcome is null
    group by 1
  ),
  -- One pass for every count of leads: by outcome, and still at risk (not
  -- failed, not booked or censored before) at each horizon.
  lead_counts as (
    select
      count(*) filter (where lt.outcome = 1) as converted,
      count(*) filter (where lt.outcome = 0) as failed,
      count(*) filter (where lt.outcome is null) as open,
      array[
        count(*) filter (where lt.outcome is distinct from 0 and lt.days >= 7),
        count(*) filter (where lt.outcome is distinct from 0 and lt.days >= 14),
        count(*) filter (where lt.outcome is distinct from 0 and lt.days >= 30),
        count(*) filter (where lt.outcome is distinct from 0 and lt.days >= 60),
        count(*) filter (where lt.outcome is distinct from 0 and lt.days >= 90)
      ] as reaching
    from lead_time as lt
  ),
  failed as (
    select c.failed as n from lead_counts as c
  ),
  risk as (
    select
      p.d,
      p.events,
      f.n + sum(p.events + p.censored) over (order by p.d desc) as at_risk
    from per_day as p
    cross join failed as f
  ),
  km as (
    select
      r.d,
      r.at_risk,
      exp(sum(ln(greatest(1 - r.events::double precision / r.at_risk, 1e-300))) over (order by r.d)) as surv
    from risk as r
  ),
  horizon as (
    select
      h.days,
      (select k.surv from km as k where k.d <= h.days order by k.d desc limit 1) as surv,
      c.failed + c.reaching[h.i] as at_risk
    from unnest(array[7, 14, 30, 60, 90]) with ordinality as h (days, i)
    cross join lead_counts as c
  )
  select
    jsonb_build_object(
      'avg_days_to_convert', round(tm.avg_days::numeric, 1),
      'median_days_to_convert', round(tm.pct[1]::numeric, 1),
      'percentile_50', round(tm.pct[1]::numeric, 1),
      'percentile_80', round(tm.pct[2]::numeric, 1),
      'percentile_95', round(tm.pct[3]::numeric, 1),
      'converted_leads', tm.converted
    ),
    jsonb_build_object(
      'booked_by_day', (
        select jsonb_object_agg('day_' || h.days, round((1 - coalesce(h.surv, 1))::numeric, 4) order by h.days)
        from horizon as h
      ),
      'at_risk', (select jsonb_object_agg('day_' || h.days, h.at_risk order by h.days) from horizon as h),
      'median_days_to_booking', (select round(min(k.d)::numeric, 2) from km as k where k.surv <= 0.5),
      'events', (select coalesce(sum(p.events), 0) from per_day as p),
      'censored_open', (select coalesce(sum(p.censored), 0) from per_day as p),
      'failed_kept_at_risk', (select f.n from failed as f),
      'method', 'booking = event at its exact time (days since first touch); open lead = censored at now; '
      || 'failed lead = never books (kept at risk); bookings at a time come before censorings at that time: '
      || '1 - S(t) is the cumulative incidence of booking'
    ),
    (
      select jsonb_build_object(
        'converted', c.converted, 'failed', c.failed, 'open', c.open,
        'bookings_without_prior_touch', (select count(*) from lead_time as lt where lt.outcome = 1 and lt.days < 0)
      )
      from lead_counts as c
    )
  into v_timing, v_km, v_leads
  from timing as tm;

  return jsonb_build_object(
    'trials', coalesce(v_trials, 0),
    'conversions', coalesce(v_conversions, 0),
    'baseline_rate', round(v_base::numeric, 4),
    'min_sample', v_min,
    'day_rankings', ci_private.adjusted_rate_table(coalesce(v_days, '[]'::jsonb), v_base, v_min),
    'hour_rankings', ci_private.adjusted_rate_table(coalesce(v_hours, '[]'::jsonb), v_base, v_min),
    'touch_position_hazard', ci_private.rate_table(coalesce(v_positions, '[]'::jsonb), v_base, v_min),
    'gap_rankings', ci_private.adjusted_rate_table(coalesce(v_gaps, '[]'::jsonb), v_base, v_min),
    'converting_touch_distribution', v_distribution,
    'optimal_sequence_gaps', v_seq_gaps,
    'conversion_timing', v_timing,
    'kaplan_meier', v_km,
    'leads', v_leads
  );
end
$$;

-- WHEN patterns of a client, computed now; writes nothing (temporary tables
-- aside). Insufficient data (fewer than 10 bookings or 30 decided leads) gives
-- the seed's keys empty and insufficient_data true.
-- security definer: reads the client's touches whatever the caller's row-level
-- policies, after ci_private.assert_client_access has allowed the read.
create or replace function public.detect_when_patterns(p_client_id uuid)
returns jsonb
language plpgsql volatile security definer
set search_path = ''
as $$
declare
  v_stats jsonb;
  v_sample bigint;
  v_bookings bigint;
  v_enough boolean;
begin
  perform 'PRAGMA:TABLE: ci_touch_meta (client_id uuid, built_at timestamptz, leads integer, touches integer, decided_leads integer, skipped jsonb)';
  perform ci_private.assert_client_access(p_client_id, false);
  perform ci_private.ensure_touches(p_client_id);

  v_stats := ci_private.when_patterns();
  select m.decided_leads into v_sample from pg_temp.ci_touch_meta as m;
  v_bookings := coalesce((v_stats ->> 'conversions')::bigint, 0);
  v_enough := ci_private.enough_data(v_bookings, v_sample);

  return ci_private.pattern_envelope('when', v_sample, v_bookings) || jsonb_build_object(
    'best_days', case when v_enough then ci_private.significant(v_stats -> 'day_rankings', 'above') else '[]' end,
    'worst_days', case when v_enough then ci_private.significant(v_stats -> 'day_rankings', 'below') else '[]' end,
    'best_hours', case when v_enough then ci_private.significant(v_stats -> 'hour_rankings', 'above') else '[]' end,
    'worst_hours', case when v_enough then ci_private.significant(v_stats -> 'hour_rankings', 'below') else '[]' end,
    'day_rankings', case when v_enough then v_stats -> 'day_rankings' else '[]' end,
    'hour_rankings', case when v_enough then v_stats -> 'hour_rankings' else '[]' end,
    'converting_touch_distribution', case when v_enough then v_stats -> 'converting_touch_distribution' else '{}' end,
    'touch_position_hazard', case when v_enough then v_stats -> 'touch_position_hazard' else '[]' end,
    'winning_positions',
    case when v_enough then ci_private.significant(v_stats -> 'touch_position_hazard', 'above') else '[]' end,
    'optimal_sequence_gaps', case when v_enough then v_stats -> 'optimal_sequence_gaps' else '{}' end,
    'gap_rankings', case when v_enough then v_stats -> 'gap_rankings' else '[]' end,
    'conversion_timing', case when v_enough then v_stats -> 'conversion_timing' else '{}' end,
    'kaplan_meier', case when v_enough then v_stats -> 'kaplan_meier' else '{}' end,
    'metadata', jsonb_build_object(
      'unit', 'touch: P(this touch is the converting touch | it was sent); the last touch of an open lead '
      || 'and touches after a booking are not trials',
      'local_time', 'lead timezone, else campaign, else client, else UTC',
      'trials', v_stats -> 'trials',
      'bookings', v_stats -> 'conversions',
      'baseline_rate', v_stats -> 'baseline_rate',
      'min_sample', v_stats -> 'min_sample',
      'leads', v_stats -> 'leads',
      'winner_rule', ci_private.adjusted_winner_rule(),
      'position_adjustment', 'day, hour and gap rankings: observed bookings against those expected from the '
      || 'client''s hazards by touch position (1..6, 7+) and channel; conversion_rate and lift stay raw',
      'bookings_without_prior_touch', v_stats -> 'leads' -> 'bookings_without_prior_touch',
      'skipped', (select m.skipped from pg_temp.ci_touch_meta as m)
    )
  );
end
$$;

revoke execute on function ci_private.when_patterns() from public, anon, authenticated;
revoke execute on function public.detect_when_patterns(uuid) from public, anon;
grant execute on function ci_private.when_patterns() to service_role;
grant execute on function public.detect_when_patterns(uuid) to authenticated, service_role;
