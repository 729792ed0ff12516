-- Plans that do not depend on luck (issue 15, item 2): HOW's cost linear in
-- the touches, whatever their distribution over leads. Redefines
-- ci_private.how_patterns (how_adjusted migration) with one change: the
-- position hazards reach the channel-count rows through a window instead of a
-- join. Outputs are unchanged (the same hazard, the same products, summed per
-- tier and channel count).
--
-- Measured (docs/performance-plans.md): an 80-lead client plus one lead with
-- 10,000 sends; HOW alone took more than 300 s (a nested loop of the 60,000
-- per-position rows against the 60,000 hazards, both estimated at one row).

-- Per-touch HOW statistics of the prepared relation.
-- security definer: reads the temporary per-touch relation its caller prepared.
-- jit: compiling these one-off queries costs more than it saves.
create or replace function ci_private.how_patterns()
returns jsonb
language plpgsql volatile security definer
set search_path = ''
set jit = off
-- Every join here is between aggregates of unknown size (temporary tables
-- never analysed, filters estimated at one row): a nested loop is the
-- planner's guess for them and quadratic when they are large (a lead with
-- 10,000 touches gives 10,000 positions); a hash join is linear whatever
-- their size and costs microseconds more when they are small.
set enable_nestloop = off
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
  perform 'PRAGMA:TABLE: ci_how_agg (g_channel integer, g_tier integer, g_first integer, g_mask integer, g_pos integer, g_prefix integer, channel smallint, tier smallint, first_channel smallint, channel_mask smallint, position integer, prefix_code integer, n bigint, c bigint, e double precision, e_tier double precision, leads bigint, leads_decided bigint, leads_converted bigint)';

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
  -- Position hazards, overall and per tier (the expected rate of a touch),
  -- carried to each (channels so far, position) row of the same tier and
  -- position by a window over one sort, not a join: a join of these rows to
  -- the hazards was planned as a nested loop (the filters' estimate is one
  -- row), quadratic in the positions: a lead with 10,000 touches made HOW run
  -- for minutes.
  with_hazard as (
    select
      a.g_tier,
      a.g_mask,
      a.tier,
      a.channel_mask,
      a.n,
      a.c,
      max(a.c::double precision / nullif(a.n, 0)) filter (where a.g_mask = 1)
        over (partition by a.g_tier, a.tier, a.position) as h
    from pg_temp.ci_how_agg as a
    where a.g_pos = 0 and a.g_prefix = 1 and a.g_channel = 1 and a.g_first = 1
  ),
  -- Channel counts so far (1, 2, 3, 4+) per touch, overall (tier -1) and per tier.
  counts as (
    select
      case when a.g_tier = 1 then -1 else a.tier end as tier,
      least(ci_private.channel_count(a.channel_mask), 4) as k,
      sum(a.n) as n,
      sum(a.c) as c,
      sum(a.n * coalesce(a.h, 0)) as expected
    from with_hazard as a
    where a.g_mask = 0
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
  -- Channel hazards within each tier (baseline: the tier's own rate, carried
  -- to the tier's channel rows by a window, not a join).
  tier_rates as (
    select
      a.tier,
      a.g_channel,
      a.channel,
      a.n,
      a.c,
      a.e_tier,
      max(a.c::double precision / nullif(a.n, 0)) filter (where a.g_channel = 1)
        over (partition by a.tier) as rate
    from pg_temp.ci_how_agg as a
    where a.g_tier = 0 and a.g_mask = 1 and a.g_pos = 1 and a.g_first = 1 and a.g_prefix = 1
  ),
  tier_channels as (
    select
      ci_private.tier_name(a.tier) as tier,
      ci_private.adjusted_rate_table(
        jsonb_agg(jsonb_build_object(
          'channel', ci_private.channel_name(a.channel), 'conversions', a.c, 'sample', a.n, 'expected', a.e_tier
        )), a.rate, v_min
      ) as ranked
    from tier_rates as a
    where a.g_channel = 0
    group by a.tier, a.rate
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
    -- Each leaf's ancestors by their key (depth, prefix), an equi-join.
    cross join lateral generate_series(1, leaf.depth) as d (depth)
    inner join nodes as anc
      on anc.depth = d.depth
      and anc.code = ci_private.sequence_prefix(leaf.code, d.depth)
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

revoke execute on function ci_private.how_patterns() from public, anon, authenticated;
grant execute on function ci_private.how_patterns() to service_role;
