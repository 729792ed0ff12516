-- The read side of the public API (contract section 6) and the two write
-- functions that take weights and allocations to the other systems:
-- get_conversion_patterns, get_pattern_history, recommended_channel_allocation,
-- apply_learned_weights. Each checks the caller first.

-- One stored pattern as the API returns it, with its stale flag.
create or replace function ci_private.pattern_json(p_row public.conversion_patterns)
returns jsonb
language sql stable
set search_path = ''
as $$
  select case when p_row.id is null then null else
    p_row.patterns || jsonb_build_object(
      'sample_size', p_row.sample_size,
      'confidence', p_row.confidence,
      'computed_at', p_row.computed_at,
      'valid_until', p_row.valid_until,
      'stale', p_row.valid_until < pg_catalog.now()
    )
  end
$$;

-- {who, what, when, how}: the stored patterns of a client; null where none.
-- security definer: members read over RPC; the check above the read decides
-- who may, whatever the policies a host put on its own copy of the tables.
create or replace function public.get_conversion_patterns(p_client_id uuid)
returns jsonb
language plpgsql stable
security definer
set search_path = ''
as $$
begin
  perform ci_private.assert_client_access(p_client_id, false);
  return (
    select jsonb_build_object(
      'who', ci_private.pattern_json(w),
      'what', ci_private.pattern_json(a),
      'when', ci_private.pattern_json(n),
      'how', ci_private.pattern_json(h)
    )
    from (select 1) as one
    left join public.conversion_patterns as w on w.client_id = p_client_id and w.pattern_type = 'who'
    left join public.conversion_patterns as a on a.client_id = p_client_id and a.pattern_type = 'what'
    left join public.conversion_patterns as n on n.client_id = p_client_id and n.pattern_type = 'when'
    left join public.conversion_patterns as h on h.client_id = p_client_id and h.pattern_type = 'how'
  );
end
$$;

-- History rows of a client, newest first.
-- security definer: as get_conversion_patterns.
create or replace function public.get_pattern_history(
  p_client_id uuid, p_pattern_type text default null, p_limit integer default 52
)
returns jsonb
language plpgsql stable
security definer
set search_path = ''
as $$
begin
  perform ci_private.assert_client_access(p_client_id, false);
  if p_pattern_type is not null and p_pattern_type not in ('who', 'what', 'when', 'how') then
    raise exception 'unknown pattern type %: expected who, what, when or how', p_pattern_type
      using errcode = 'invalid_parameter_value';
  end if;
  if p_limit is null or p_limit < 1 or p_limit > 1000 then
    raise exception 'limit must be between 1 and 1000, got %', p_limit using errcode = 'invalid_parameter_value';
  end if;
  return (
    select coalesce(jsonb_agg(to_jsonb(h) order by h.computed_at desc, h.id desc), '[]'::jsonb)
    from (
      select ph.id, ph.pattern_type, ph.patterns, ph.sample_size, ph.confidence, ph.computed_at
      from public.conversion_pattern_history as ph
      where ph.client_id = p_client_id
        and (p_pattern_type is null or ph.pattern_type = p_pattern_type)
      order by ph.computed_at desc, ph.id desc
      limit p_limit
    ) as h
  );
end
$$;

-- Channels a tier may use (allocator policy).
create or replace function ci_private.tier_channels(p_tier text)
returns text []
language sql immutable
as $$
  select case p_tier
    when 'hot' then array['email', 'linkedin', 'sms', 'voice']
    when 'warm' then array['email', 'linkedin', 'voice']
    when 'cool' then array['email', 'linkedin']
    when 'cold' then array['email']
    when 'dead' then array[]::text []
  end
$$;

-- Integer shares summing to 100 from non-negative weights (largest remainder).
create or replace function ci_private.shares_of_100(p_weights jsonb)
returns jsonb
language sql immutable
as $$
  with w as (
    select e.key, greatest(coalesce((e.value)::text::double precision, 0), 0) as v
    from jsonb_each(p_weights) as e (key, value)
  ),
  t as (select sum(v) as total, count(*) as n from w),
  raw as (
    select w.key,
      case when t.total > 0 then 100 * w.v / t.total else 100.0 / t.n end as exact
    from w cross join t
  ),
  floored as (
    select key, exact, floor(exact)::integer as base, exact - floor(exact) as rem from raw
  ),
  ranked as (
    select f.*, row_number() over (order by f.rem desc, f.key) as rk,
      100 - sum(f.base) over () as missing
    from floored as f
  )
  select coalesce(jsonb_object_agg(key, base + case when rk <= missing then 1 else 0 end), '{}'::jsonb)
  from ranked
$$;

-- Channel shares for a tier: from the HOW pattern, else the client's latest
-- campaign allocation, else equal; always within the tier's channels.
-- security definer: as get_conversion_patterns.
create or replace function public.recommended_channel_allocation(p_client_id uuid, p_tier text)
returns jsonb
language plpgsql stable
security definer
set search_path = ''
as $$
declare
  v_channels text[] := ci_private.tier_channels(lower(p_tier));
  v_how jsonb;
  v_rates jsonb;
  v_campaign jsonb;
  v_source text;
begin
  perform ci_private.assert_client_access(p_client_id, false);
  if v_channels is null then
    raise exception 'unknown tier %: expected hot, warm, cool, cold or dead', p_tier
      using errcode = 'invalid_parameter_value';
  end if;
  if cardinality(v_channels) = 0 then
    return jsonb_build_object('tier', lower(p_tier), 'source', 'policy', 'allocation', '{}'::jsonb,
      'note', 'dead leads get no outreach');
  end if;

  select cp.patterns into v_how
  from public.conversion_patterns as cp
  where cp.client_id = p_client_id and cp.pattern_type = 'how' and cp.valid_until >= pg_catalog.now();

  -- The tier's smoothed booking rate per allowed channel, where the pattern has one.
  select jsonb_object_agg(ch, rate) into v_rates
  from (
    select ch, coalesce(
      (v_how #>> array['channel_effectiveness_by_tier', lower(p_tier), ch, 'smoothed_rate'])::double precision,
      (v_how #>> array['channel_effectiveness_by_tier', lower(p_tier), ch, 'conversion_rate'])::double precision
    ) as rate
    from unnest(v_channels) as ch
  ) as r
  where rate is not null;

  if v_rates is not null and (select sum((e.value)::text::double precision) from jsonb_each(v_rates) as e) > 0 then
    -- Channels the pattern has not seen for this tier keep a small exploratory share.
    select v_rates || coalesce(jsonb_object_agg(ch, 0.1 * (
      select min((e.value)::text::double precision) from jsonb_each(v_rates) as e
    )), '{}'::jsonb)
    into v_rates
    from unnest(v_channels) as ch
    where not v_rates ? ch;
    v_source := 'pattern';
  else
    select jsonb_build_object(
      'email', c.allocation_email, 'linkedin', c.allocation_linkedin,
      'sms', c.allocation_sms, 'voice', c.allocation_voice
    ) into v_campaign
    from public.campaigns as c
    where c.client_id = p_client_id and c.deleted_at is null
    order by c.created_at desc, c.id desc
    limit 1;
    select jsonb_object_agg(ch, coalesce((v_campaign ->> ch)::double precision, 0)) into v_rates
    from unnest(v_channels) as ch;
    if v_campaign is not null and (select sum((e.value)::text::double precision) from jsonb_each(v_rates) as e) > 0 then
      v_source := 'campaign';
    else
      select jsonb_object_agg(ch, 1) into v_rates from unnest(v_channels) as ch;
      v_source := 'equal';
    end if;
  end if;

  return jsonb_build_object(
    'tier', lower(p_tier),
    'source', v_source,
    'allocation', ci_private.shares_of_100(v_rates),
    'basis', v_rates
  );
end
$$;

-- Weights fitted outside the database (the sidecar, on hosted Supabase):
-- validated, then applied and the client's leads rescored.
-- security definer: writes clients.als_learned_weights, which members cannot.
create or replace function public.apply_learned_weights(p_client_id uuid, p_weights jsonb, p_metrics jsonb)
returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
begin
  perform ci_private.assert_client_access(p_client_id, true);
  return ci_private.apply_als_weights(
    p_client_id, p_weights,
    coalesce(p_metrics, '{}'::jsonb) || jsonb_build_object('source', 'apply_learned_weights')
  );
end
$$;

revoke execute on function ci_private.pattern_json(public.conversion_patterns) from public, anon, authenticated;
revoke execute on function ci_private.tier_channels(text) from public, anon;
revoke execute on function ci_private.shares_of_100(jsonb) from public, anon;
revoke execute on function public.get_conversion_patterns(uuid) from public, anon;
revoke execute on function public.get_pattern_history(uuid, text, integer) from public, anon;
revoke execute on function public.recommended_channel_allocation(uuid, text) from public, anon;
revoke execute on function public.apply_learned_weights(uuid, jsonb, jsonb) from public, anon;
grant execute on function ci_private.tier_channels(text) to authenticated, service_role;
grant execute on function ci_private.shares_of_100(jsonb) to authenticated, service_role;
grant execute on function public.get_conversion_patterns(uuid) to authenticated, service_role;
grant execute on function public.get_pattern_history(uuid, text, integer) to authenticated, service_role;
grant execute on function public.recommended_channel_allocation(uuid, text) to authenticated, service_role;
grant execute on function public.apply_learned_weights(uuid, jsonb, jsonb) to authenticated, service_role;
