-- HOW, position-adjusted (issue 14). Redefines ci_private.how_patterns and
-- public.detect_how_patterns of the detect_how migration: channel rankings,
-- first-channel rankings and channel effectiveness by tier are judged against
-- the bookings their touches' positions predict (ci_private.adjusted_rate_table;
-- the client's hazards by position, within the tier for the tier rankings), so
-- a channel bound to the step that books most is no winner for it.
-- metadata.bookings_without_prior_touch counts converted leads whose booking
-- precedes every outbound touch.

-- Per-touch HOW statistics of the prepared relation.
-- security definer: reads the temporary per-touch relation its caller prepared.
-- jit: compiling these one-off queries costs more than it saves.
create or replace function ci_private.how_patterns()
returns jsonb
language plpgsql volatile security definer
set search_path = ''
set jit = off
as $$
declare
  v_min integer := 30;
  v_min_path_leads integer := 20;
  v_base double precision;
  v_trials bigint;
  v_conversions bigint;
  v_leads_decided bigint;
  v_depth integer;
  v_result jsonb;
begin
  perform 'PRAGMA:TABLE: ci_touches (like ci_private.touch)';
  perform 'PRAGMA:TABLE: ci_how_agg (g_channel integer, g_tier integer, g_first integer, g_mask integer, g_pos integer, g_prefix integer, channel smallint, tier smallint, first_channel smallint, channel_mask smallint, position smallint, prefix_code integer, n bigint, c bigint, e double precision, e_tier double precision, leads bigint, leads_decided bigint, leads_converted bigint)';

  if pg_catalog.to_regclass('pg_temp.ci_how_agg') is not null then
    drop table pg_temp.ci_how_agg;
  end if;

  -- One pass over the touches into their distinct combinations (tens of
  -- thousands at most: the sequence code fixes channel, first channel and
  -- channels so far up to touch six), then every grouping of those.
  create temp table ci_how_agg on commit drop as
  select
    grouping(t.channel) as g_channel,
    grouping(t.tier) as g_tier,
    grouping(t.first_channel) as g_first,
    grouping(t.channel_mask) as g_mask,
    grouping(t.position) as g_pos,
    grouping(t.prefix_code) as g_prefix,
    t.channel,
    t.tier,
    t.first_channel,
    t.channel_mask,
    t.position,
    t.prefix_code,
    sum(t.n)::bigint as n,
    sum(t.c)::bigint as c,
    sum(t.e) as e,
    sum(t.e_tier) as e_tier,
    sum(t.leads)::bigint as leads,
    sum(t.leads_decided)::bigint as leads_decided,
    sum(t.leads_converted)::bigint as leads_converted
  from (
    select
      x.channel,
      x.tier,
      x.first_channel,
      x.channel_mask,
      x.position,
      x.prefix_code,
      count(x.booked) as n,
      coalesce(sum(x.booked), 0) as c,
      -- Expected bookings: the trials times the client's hazard at their
      -- position, overall (e) and within the lead's tier (e_tier).
      count(x.booked) * sum(coalesce(sum(x.booked), 0)) over (partition by x.position)::double precision
      / nullif(sum(count(x.booked)) over (partition by x.position), 0) as e,
      count(x.booked) * sum(coalesce(sum(x.booked), 0)) over (partition by x.tier, x.position)::double precision
      / nullif(sum(count(x.booked)) over (partition by x.tier, x.position), 0) as e_tier,
      count(*) filter (where x.position = 1) as leads,
      count(*) filter (where x.position = 1 and x.outcome is not null) as leads_decided,
      count(*) filter (where x.position = 1 and x.outcome = 1) as leads_converted
    from pg_temp.ci_touches as x
    group by 1, 2, 3, 4, 5, 6
  ) as t
  group by grouping sets (
    (t.channel), (t.tier, t.channel), (t.first_channel), (t.channel_mask, t.position),
    (t.tier, t.channel_mask, t.position), (t.tier, t.position), (t.tier), (t.position, t.prefix_code), (t.position), ()
  );

  select a.n, a.c, a.leads_decided into v_trials, v_conversions, v_leads_decided
  from pg_temp.ci_how_agg as a
  where a.g_channel = 1 and a.g_tier = 1 and a.g_first = 1 and a.g_mask = 1 and a.g_pos = 1 and a.g_prefix = 1;
  v_base := v_conversions::double precision / nullif(v_trials, 0);

  -- The deepest sequence depth (up to six) with a path that enough leads reached.
  select max(a.position) into v_depth
  from pg_temp.ci_how_agg as a
  where a.g_pos = 0 and a.g_prefix = 0 and a.g_mask = 1 and a.g_tier = 1 and a.prefix_code is not null
    and a.n >= v_min_path_leads;

  with
  channel_rows as (
    select ci_private.adjusted_rate_table(
      coalesce(jsonb_agg(jsonb_build_object(
        'channel', ci_private.channel_name(a.channel), 'conversions', a.c, 'sample', a.n, 'expected', a.e
      )), '[]'::jsonb), v_base, v_min
    ) as ranked
    from pg_temp.ci_how_agg as a
    where a.g_channel = 0 and a.g_tier = 1 and a.g_first = 1 and a.g_mask = 1 and a.g_pos = 1
  ),
  booking_channels as (
    select coalesce(jsonb_object_agg(
      ci_private.channel_name(a.channel), round(a.c::numeric / nullif(v_conversions, 0), 4)
    ) filter (where a.c > 0), '{}'::jsonb) as dist
    from pg_temp.ci_how_agg as a
    where a.g_channel = 0 and a.g_tier = 1 and a.g_first = 1 and a.g_mask = 1 and a.g_pos = 1
  ),
  first_rows as (
    select ci_private.adjusted_rate_table(
      coalesce(jsonb_agg(jsonb_build_object(
        'channel', ci_private.channel_name(a.first_channel), 'conversions', a.c, 'sample', a.n, 'expected', a.e,
        'leads', a.leads, 'leads_decided', a.leads_decided,
        'lead_conversion_rate', round(a.leads_converted::numeric / nullif(a.leads_decided, 0), 4)
      )), '[]'::jsonb), v_base, v_min
    ) as ranked
    from pg_temp.ci_how_agg as a
    where a.g_first = 0
  ),
  -- Position hazards, overall and per tier: the expected rate of a touch.
  pos_hazard as (
    select a.tier, a.g_tier, a.position, a.c::double precision / nullif(a.n, 0) as h
    from pg_temp.ci_how_agg as a
    where a.g_pos = 0 and a.g_prefix = 1 and a.g_mask = 1 and a.g_channel = 1 and a.g_first = 1
  ),
  -- Channel counts so far (1, 2, 3, 4+) per touch, overall (tier -1) and per tier.
  counts as (
    select
      case when a.g_tier = 1 then -1 else a.tier end as tier,
      least(ci_private.channel_count(a.channel_mask), 4) as k,
      sum(a.n) as n,
      sum(a.c) as c,
      sum(a.n * coalesce(h.h, 0)) as expected
    from pg_temp.ci_how_agg as a
    inner join pos_hazard as h
      on h.position = a.position and h.g_tier = a.g_tier and (a.g_tier = 1 or h.tier = a.tier)
    where a.g_mask = 0 and a.g_pos = 0 and a.g_channel = 1
    group by 1, 2
  ),
  counts_ranked as (
    select
      x.tier,
      x.k,
      x.n,
      x.c,
      x.expected,
      -- Significance against the rate its positions predict (Bonferroni over the counts of the stratum).
      ci_private.rate_table(
        jsonb_build_array(jsonb_build_object('conversions', x.c, 'sample', x.n)),
        x.expected / nullif(x.n, 0), 1, 0.05 / count(*) over (partition by x.tier)
      ) -> 0 as r,
      (x.c / nullif(x.expected, 0))
      / nullif(max(x.c / nullif(x.expected, 0)) filter (where x.k = 1) over (partition by x.tier), 0) as adj_lift,
      (x.c::double precision / nullif(x.n, 0))
      / nullif(max(x.c::double precision / nullif(x.n, 0)) filter (where x.k = 1) over (partition by x.tier), 0)
        as raw_lift
    from counts as x
    where x.n >= v_min
  ),
  counts_json as (
    select
      cr.tier,
      jsonb_object_agg(
        case cr.k when 1 then '1_channel' when 4 then '4_plus_channels' else cr.k || '_channels' end,
        (cr.r - 'lift' - 'smoothed_lift' - 'prior_strength') || jsonb_build_object(
          'lift', round(cr.raw_lift::numeric, 2),
          'position_adjusted_lift', round(cr.adj_lift::numeric, 2),
          'expected_rate', round((cr.expected / cr.n)::numeric, 4)
        )
      ) as obj
    from counts_ranked as cr
    group by cr.tier
  ),
  -- Channel hazards within each tier (baseline: the tier's own rate).
  tier_rates as (
    select a.tier, a.c::double precision / nullif(a.n, 0) as rate
    from pg_temp.ci_how_agg as a
    where a.g_tier = 0 and a.g_pos = 1 and a.g_mask = 1 and a.g_channel = 1
  ),
  tier_channels as (
    select
      ci_private.tier_name(a.tier) as tier,
      ci_private.adjusted_rate_table(
        jsonb_agg(jsonb_build_object(
          'channel', ci_private.channel_name(a.channel), 'conversions', a.c, 'sample', a.n, 'expected', a.e_tier
        )), tr.rate, v_min
      ) as ranked
    from pg_temp.ci_how_agg as a
    inner join tier_rates as tr on tr.tier = a.tier
    where a.g_tier = 0 and a.g_channel = 0 and a.g_mask = 1 and a.g_pos = 1
    group by a.tier, tr.rate
  ),
  -- Sequence nodes: the touches at step j whose first j channels are the node's.
  nodes as (
    select a.position as depth, a.prefix_code as code, a.n, a.c
    from pg_temp.ci_how_agg as a
    where a.g_pos = 0 and a.g_prefix = 0 and a.g_mask = 1 and a.g_tier = 1 and a.prefix_code is not null
  ),
  paths as (
    select
      leaf.code,
      leaf.n as leads,
      sum(anc.c) as c,
      sum(anc.n) as n,
      1 - exp(sum(ln(greatest(1 - anc.c::double precision / anc.n, 1e-300)))) as booking_probability
    from nodes as leaf
    inner join nodes as anc
      on anc.depth <= leaf.depth
      and anc.code = ci_private.sequence_prefix(leaf.code, anc.depth)
    where leaf.depth = v_depth and leaf.n >= v_min_path_leads
    group by leaf.code, leaf.n
  ),
  path_base as (
    select sum(a.c)::double precision / nullif(sum(a.n), 0) as rate
    from pg_temp.ci_how_agg as a
    where a.g_pos = 0 and a.g_prefix = 1 and a.g_mask = 1 and a.g_tier = 1 and a.position <= v_depth
  ),
  path_rows as (
    select ci_private.rate_table(
      coalesce(jsonb_agg(jsonb_build_object(
        'sequence', to_jsonb(ci_private.sequence_channels(p.code, v_depth)),
        'conversions', p.c, 'sample', p.n,
        'sample_size', p.leads,
        'booking_probability', round(p.booking_probability::numeric, 4)
      )), '[]'::jsonb), (select pb.rate from path_base as pb), 1
    ) as ranked
    from paths as p
  )
  select jsonb_build_object(
    'trials', coalesce(v_trials, 0),
    'conversions', coalesce(v_conversions, 0),
    'leads_decided', coalesce(v_leads_decided, 0),
    'baseline_rate', round(v_base::numeric, 4),
    'min_sample', v_min,
    'sequence_depth', v_depth,
    'channel_rankings', (select cr.ranked from channel_rows as cr),
    'booking_channel_distribution', (select bc.dist from booking_channels as bc),
    'first_touch_rankings', (select fr.ranked from first_rows as fr),
    'multi_channel_lift', coalesce((select cj.obj from counts_json as cj where cj.tier = -1), '{}'::jsonb),
    'multi_channel_lift_by_tier', coalesce(
      (select jsonb_object_agg(ci_private.tier_name(cj.tier), cj.obj) from counts_json as cj where cj.tier >= 0),
      '{}'::jsonb
    ),
    'channel_effectiveness_by_tier', coalesce((
      select jsonb_object_agg(tc.tier, (
        select jsonb_object_agg(r.value ->> 'channel', r.value - 'channel')
        from jsonb_array_elements(tc.ranked) as r (value)
      ))
      from tier_channels as tc
      where jsonb_array_length(tc.ranked) > 0
    ), '{}'::jsonb),
    'sequence_rankings', (select pr.ranked from path_rows as pr)
  )
  into v_result;

  drop table pg_temp.ci_how_agg;
  return v_result;
end
$$;

-- HOW patterns of a client, computed now; writes nothing (temporary tables
-- aside). Insufficient data (fewer than 10 bookings or 30 decided leads) gives
-- the seed's keys empty and insufficient_data true.
-- security definer: reads the client's touches whatever the caller's row-level
-- policies, after ci_private.assert_client_access has allowed the read.
create or replace function public.detect_how_patterns(p_client_id uuid)
returns jsonb
language plpgsql volatile security definer
set search_path = ''
as $$
declare
  v_stats jsonb;
  v_meta record;
  v_sample bigint;
  v_bookings bigint;
  v_enough boolean;
begin
  perform 'PRAGMA:TABLE: ci_touch_meta (client_id uuid, built_at timestamptz, leads integer, touches integer, decided_leads integer, skipped jsonb)';
  perform 'PRAGMA:TABLE: ci_touches (like ci_private.touch)';
  perform 'PRAGMA:TABLE: ci_touch_leads (like ci_private.touch_lead)';
  perform ci_private.assert_client_access(p_client_id, false);
  perform ci_private.ensure_touches(p_client_id);

  select
    m.skipped,
    (
      select count(*)
      from pg_temp.ci_touches as t
      inner join pg_temp.ci_touch_leads as l on l.lead_no = t.lead_no
      where t.position = 1 and l.outcome = 1 and t.created_at > l.converted_at
    ) as bookings_without_prior_touch
  into v_meta
  from pg_temp.ci_touch_meta as m;
  v_stats := ci_private.how_patterns();
  v_sample := coalesce((v_stats ->> 'leads_decided')::bigint, 0);
  v_bookings := coalesce((v_stats ->> 'conversions')::bigint, 0);
  v_enough := ci_private.enough_data(v_bookings, v_sample);
  if not v_enough then
    v_stats := null;
  end if;

  return ci_private.pattern_envelope('how', v_sample, v_bookings) || jsonb_build_object(
    'booking_channel_distribution', coalesce(v_stats -> 'booking_channel_distribution', '{}'),
    'first_touch_effectiveness', coalesce((
      select jsonb_object_agg((r.value ->> 'channel') || '_first', r.value - 'channel')
      from jsonb_array_elements(v_stats -> 'first_touch_rankings') as r (value)
    ), '{}'),
    'first_touch_rankings', coalesce(v_stats -> 'first_touch_rankings', '[]'),
    'best_first_channels', coalesce(ci_private.significant(v_stats -> 'first_touch_rankings', 'above'), '[]'),
    'multi_channel_lift', coalesce(v_stats -> 'multi_channel_lift', '{}'),
    'multi_channel_lift_by_tier', coalesce(v_stats -> 'multi_channel_lift_by_tier', '{}'),
    'winning_sequences', coalesce(ci_private.significant(v_stats -> 'sequence_rankings', 'above'), '[]'),
    'losing_sequences', coalesce(ci_private.significant(v_stats -> 'sequence_rankings', 'below'), '[]'),
    'sequence_rankings', coalesce(v_stats -> 'sequence_rankings', '[]'),
    'channel_rankings', coalesce(v_stats -> 'channel_rankings', '[]'),
    'channel_effectiveness_by_tier', coalesce(v_stats -> 'channel_effectiveness_by_tier', '{}'),
    'metadata', jsonb_build_object(
      'unit', 'touch: P(this touch is the converting touch | it was sent); each lead counts only with the '
      || 'touches it received (no survivorship bias from leads that booked early)',
      'sequences', 'per-step hazards along the path; sample = touch exposures at its steps, '
      || 'sample_size = leads that reached its last step',
      'multi_channel', 'channels among the touches so far; significance against the rate its positions predict',
      'position_adjustment', 'channel, first-channel and per-tier channel rankings: observed bookings against '
      || 'those expected from the client''s hazards by touch position (within the tier for the tier rankings); '
      || 'conversion_rate and lift stay raw',
      'bookings_without_prior_touch', v_meta.bookings_without_prior_touch,
      'trials', v_stats -> 'trials',
      'bookings', v_bookings,
      'baseline_rate', v_stats -> 'baseline_rate',
      'sequence_depth', v_stats -> 'sequence_depth',
      'min_sample', v_stats -> 'min_sample',
      'winner_rule', ci_private.adjusted_winner_rule(),
      'sequence_winner_rule', ci_private.winner_rule(),
      'skipped', v_meta.skipped
    )
  );
end
$$;

revoke execute on function ci_private.how_patterns() from public, anon, authenticated;
revoke execute on function public.detect_how_patterns(uuid) from public, anon;
grant execute on function ci_private.how_patterns() to service_role;
grant execute on function public.detect_how_patterns(uuid) to authenticated, service_role;
