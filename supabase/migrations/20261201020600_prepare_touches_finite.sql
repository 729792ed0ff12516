-- ci_private.prepare_touches (redefined from the prepare_touches migration,
-- issue 14): outbound touches with a non-finite created_at ('infinity',
-- '-infinity'; the write path may accept them, contract section 3) never reach
-- the relation (their local time has no meaning and would fail the arithmetic)
-- and are counted in ci_touch_meta.skipped.non_finite_created_at, which every
-- WHAT, WHEN and HOW pattern's metadata.skipped carries. They are counted
-- through a partial index that holds only them (empty in practice).

create index if not exists activities_ci_non_finite_idx
on public.activities (client_id, lead_id)
where ci_private.is_outbound_action(action) and not isfinite(created_at);

-- Build the per-touch relation of a client (see the header of the touches
-- migration). Returns the number of outbound touches. The leads first (local
-- zone per contract section 3: the lead's, else the campaign's, else the
-- client's, else UTC; a name that is not a valid zone is passed over and
-- counted, never an error); then the touches, numbered in send order when
-- they were written (ci_private.lead_touches), joined to their leads by hash.
-- security definer: reads the client's leads and activities whatever the
-- caller's row-level policies (access is checked first, for reading).
-- work_mem: the hash of a large client's leads fits in memory; jit: compiling
-- these one-off queries costs seconds and saves less.
create or replace function ci_private.prepare_touches(p_client_id uuid)
returns integer
language plpgsql volatile security definer
set search_path = ''
set work_mem = '256MB'
set jit = off
as $$
declare
  v_touches integer;
begin
  perform 'PRAGMA:TABLE: ci_touch_leads (like ci_private.touch_lead)';
  perform 'PRAGMA:TABLE: ci_touches (like ci_private.touch)';
  perform 'PRAGMA:TABLE: ci_touch_meta (client_id uuid, built_at timestamptz, leads integer, touches integer, decided_leads integer, skipped jsonb)';
  perform ci_private.assert_client_access(p_client_id, false);
  -- Rows stored before the layer or with its triggers disabled: rebuilt first.
  perform ci_private.ensure_lead_touches(p_client_id);

  if pg_catalog.to_regclass('pg_temp.ci_touch_meta') is not null then
    drop table pg_temp.ci_touch_meta;
  end if;
  if pg_catalog.to_regclass('pg_temp.ci_touches') is not null then
    drop table pg_temp.ci_touches;
  end if;
  if pg_catalog.to_regclass('pg_temp.ci_touch_leads') is not null then
    drop table pg_temp.ci_touch_leads;
  end if;

  create temp table ci_touch_leads on commit drop as
  select
    (row_number() over ())::integer as lead_no,
    l.id as lead_id,
    ci_private.lead_outcome(l.status::text)::smallint as outcome,
    ci_private.tier_code(l.als_tier) as tier,
    l.converted_at,
    coalesce(zl.zone_name, zc.zone_name, zk.zone_name, 'UTC') as zone,
    (l.timezone is not null and zl.zone_name is null)
    or (zl.zone_name is null and c.timezone is not null and zc.zone_name is null)
    or (zl.zone_name is null and zc.zone_name is null and k.timezone is not null and zk.zone_name is null) as zone_invalid
  from public.leads as l
  inner join public.clients as k on k.id = l.client_id
  left join public.campaigns as c on c.id = l.campaign_id and c.client_id = l.client_id and c.deleted_at is null
  left join ci_private.timezone_names as zl on zl.zone_key = lower(btrim(l.timezone))
  left join ci_private.timezone_names as zc on zc.zone_key = lower(btrim(c.timezone))
  left join ci_private.timezone_names as zk on zk.zone_key = lower(btrim(k.timezone))
  where l.client_id = p_client_id
    and l.deleted_at is null;
  analyze pg_temp.ci_touch_leads;

  -- The touches as kept on write (lead_touches migration: numbered, with
  -- gaps, channel sets and sequences), joined to their leads by hash. Local
  -- time: one zone conversion a touch.
  create temp table ci_touches on commit drop as
  select
    q.touch_id,
    q.lead_no,
    q.touch_no as position,
    q.channel,
    q.created_at,
    -- Hours since 1970-01-01 00:00 local, a Thursday (day 4 counting from
    -- Sunday); integer arithmetic only (numeric division cost 0.7 us a touch).
    ((((q.local_hours - (q.local_hours % 24 + 24) % 24) / 24 + 4) % 7 + 7) % 7)::smallint as local_dow,
    ((q.local_hours % 24 + 24) % 24)::smallint as local_hour,
    q.gap_days,
    q.led_to_booking,
    coalesce(q.created_at > q.converted_at, false) as after_conversion,
    (case
      when q.created_at > q.converted_at then null
      when q.outcome = 1 then q.led_to_booking::integer
      when q.outcome = 0 then 0
      when q.is_last then null
      else 0
    end)::smallint as booked,
    q.outcome,
    q.tier,
    (q.sequence_code & 7)::smallint as first_channel,
    q.channel_mask,
    case when q.touch_no <= 6 then q.sequence_code end as prefix_code,
    q.content_key
  from (
    select
      t.*,
      l.lead_no,
      l.outcome,
      l.tier,
      l.converted_at,
      floor(date_part('epoch', t.created_at at time zone l.zone) / 3600)::bigint as local_hours
    from ci_private.lead_touches as t
    inner join pg_temp.ci_touch_leads as l on l.lead_id = t.lead_id
    where t.client_id = p_client_id
      and isfinite(t.created_at)
    offset 0
  ) as q;

  get diagnostics v_touches = row_count;

  -- The counts of the relation; unknown channels from their own small index.
  create temp table ci_touch_meta on commit drop as
  select
    p_client_id as client_id,
    pg_catalog.statement_timestamp() as built_at,
    (select count(*) from pg_temp.ci_touch_leads)::integer as leads,
    v_touches as touches,
    (
      select count(*) from pg_temp.ci_touches as t where t.position = 1 and t.outcome is not null
    )::integer as decided_leads,
    jsonb_build_object(
      'unknown_channel', (
        select count(*)
        from public.activities as a
        inner join pg_temp.ci_touch_leads as l on l.lead_id = a.lead_id
        where a.client_id = p_client_id
          and ci_private.is_outbound_action(a.action)
          and ci_private.channel_code(a.channel) is null
      ),
      'invalid_timezone_leads', (select count(*) from pg_temp.ci_touch_leads as l where l.zone_invalid),
      -- Sends with a non-finite time (accepted, never read): their own small partial index.
      'non_finite_created_at', (
        select count(*)
        from public.activities as a
        inner join pg_temp.ci_touch_leads as l on l.lead_id = a.lead_id
        where a.client_id = p_client_id
          and ci_private.is_outbound_action(a.action)
          and not isfinite(a.created_at)
      )
    ) as skipped;

  return v_touches;
end
$$;

revoke execute on function ci_private.prepare_touches(uuid) from public, anon, authenticated;
grant execute on function ci_private.prepare_touches(uuid) to service_role;
