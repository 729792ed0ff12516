-- ci_private.prepare_touches: builds the shared per-touch relation of a client
-- (described in the touches migration) from its leads and activities. Kept in
-- a file of its own: it is the one long query of the layer.

-- Build the per-touch relation of a client (see the header). Returns the number
-- of outbound touches. Two passes: the first reads every activity of the client
-- once, each snapshot value once as its type (parallel workers may share this
-- part: it touches no temporary table); the second joins the leads, sorts by
-- lead and send time and numbers the touches. Local time per contract section
-- 3: the lead's zone, else the campaign's, else the client's, else UTC; a name
-- that is not a valid zone is passed over (and counted), never an error.
-- security definer: reads the client's leads and activities whatever the
-- caller's row-level policies (access is checked first, for reading).
create or replace function ci_private.prepare_touches(p_client_id uuid)
returns integer
language plpgsql volatile security definer
set search_path = ''
-- Let the first pass use parallel workers: its rows are narrow, its work per row is not.
set parallel_tuple_cost = 0.001
as $$
declare
  v_touches integer;
begin
  perform 'PRAGMA:TABLE: ci_touch_leads (like ci_private.touch_lead)';
  perform 'PRAGMA:TABLE: ci_touch_raw (like ci_private.touch_raw)';
  perform 'PRAGMA:TABLE: ci_touches (like ci_private.touch)';
  perform 'PRAGMA:TABLE: ci_touch_meta (client_id uuid, built_at timestamptz, leads integer, touches integer, decided_leads integer, skipped jsonb)';
  perform ci_private.assert_client_access(p_client_id, false);

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

  -- Pass 1: every activity of interest and the content features of its
  -- snapshot, each value read once as its type (null when it is of another type,
  -- so junk never raises).
  create temp table ci_touch_raw on commit drop as
  select
    a.id as touch_id,
    a.lead_id,
    a.created_at,
    ci_private.channel_code(a.channel::text) as channel,
    coalesce(a.led_to_booking, false) as led_to_booking,
    case
      when not ci_private.is_outbound_action(a.action) then 'not_outbound'
      when ci_private.channel_code(a.channel::text) is null then 'unknown_channel'
    end as skip_reason,
    case
      when a.content_snapshot is null then null
      when jsonb_typeof(a.content_snapshot) <> 'object' then 'not_object'
      when not (
        ci_private.json_type_is(x.subject, 'string') and ci_private.json_type_is(x.body, 'string')
        and ci_private.json_type_is(x.cta, 'string') and ci_private.json_type_is(x.cta_used, 'string')
        and ci_private.json_type_is(x.angle, 'string')
        and ci_private.json_type_is(x.pain_points, 'array') and ci_private.json_type_is(x.pain_points_used, 'array')
        and ci_private.json_type_is(x.word_count, 'number') and ci_private.json_type_is(x.char_count, 'number')
        and ci_private.json_type_is(x.personalization_level, 'number')
        and ci_private.json_type_is(x.personalization, 'object') and ci_private.json_type_is(x.derived, 'boolean')
        and coalesce(x.personalization ->> 'company_mention', 'true') in ('true', 'false')
        and coalesce(x.personalization ->> 'recent_news', 'true') in ('true', 'false')
        and coalesce(x.personalization ->> 'mutual_connection', 'true') in ('true', 'false')
        and coalesce(x.personalization ->> 'industry_specific', 'true') in ('true', 'false')
        and ci_private.json_type_is(x.has_company_mention, 'boolean')
        and ci_private.json_type_is(x.has_recent_news, 'boolean')
        and ci_private.json_type_is(x.has_mutual_connection, 'boolean')
        and ci_private.json_type_is(x.has_industry_specific, 'boolean')
      ) then 'wrong_type'
      when octet_length(ci_private.json_text(x.subject)) > 998 or pg_column_size(x.body) > 100000 then 'oversized'
      when (x.subject is not null or x.body is not null)
        and coalesce(x.subject, '""') = '""' and coalesce(x.body, '""') = '""' then 'empty'
    end as junk_reason,
    coalesce(ci_private.json_bool(x.derived), false) as derived,
    coalesce(x.subject <> '""' and jsonb_typeof(x.subject) = 'string', false)
    or coalesce(x.body <> '""' and jsonb_typeof(x.body) = 'string', false) as has_text,
    nullif(btrim(ci_private.json_text(x.subject)), '') as subject,
    coalesce(
      case when jsonb_typeof(x.pain_points) = 'array' then x.pain_points end,
      case when jsonb_typeof(x.pain_points_used) = 'array' then x.pain_points_used end,
      ci_private.keyword_labels(p_client_id, ci_private.label_text(x.subject, x.body, x.pain_points, x.pain_points_used,
        x.cta, x.cta_used, x.angle, x.derived)) -> 'pain_points'
    ) as pain_points,
    nullif(btrim(coalesce(
      ci_private.json_text(x.cta), ci_private.json_text(x.cta_used),
      ci_private.keyword_labels(p_client_id, ci_private.label_text(x.subject, x.body, x.pain_points, x.pain_points_used,
        x.cta, x.cta_used, x.angle, x.derived)) ->> 'cta'
    )), '') as cta,
    nullif(btrim(coalesce(
      ci_private.json_text(x.angle),
      ci_private.keyword_labels(p_client_id, ci_private.label_text(x.subject, x.body, x.pain_points, x.pain_points_used,
        x.cta, x.cta_used, x.angle, x.derived)) ->> 'angle'
    )), '') as angle,
    coalesce(
      ci_private.json_int(x.word_count),
      -- Words of an engine's body that did not state them (spaces + 1); never of
      -- a derived preview, which may be cut short.
      case when x.derived is distinct from 'true'::jsonb and jsonb_typeof(x.body) = 'string'
        and pg_column_size(x.body) <= 100000 and x.body <> '""'
        then octet_length(btrim(x.body #>> '{}')) - octet_length(replace(btrim(x.body #>> '{}'), ' ', '')) + 1
      end
    ) as word_count,
    coalesce(
      ci_private.json_int(x.char_count),
      case when x.derived is distinct from 'true'::jsonb and jsonb_typeof(x.body) = 'string'
        then length(x.body #>> '{}')
      end
    ) as char_count,
    coalesce(ci_private.text_bool(x.personalization ->> 'company_mention'), ci_private.json_bool(x.has_company_mention))
      as pers_company,
    coalesce(ci_private.text_bool(x.personalization ->> 'recent_news'), ci_private.json_bool(x.has_recent_news)) as pers_news,
    coalesce(ci_private.text_bool(x.personalization ->> 'mutual_connection'), ci_private.json_bool(x.has_mutual_connection))
      as pers_mutual,
    coalesce(ci_private.text_bool(x.personalization ->> 'industry_specific'), ci_private.json_bool(x.has_industry_specific))
      as pers_industry,
    ci_private.json_int(x.personalization_level) as pers_level
  from public.activities as a
  left join lateral jsonb_to_record(
    case
      when ci_private.is_outbound_action(a.action) and ci_private.channel_code(a.channel::text) is not null
        and jsonb_typeof(a.content_snapshot) = 'object'
        then a.content_snapshot
    end
  ) as x (
    subject jsonb, body jsonb, pain_points jsonb, pain_points_used jsonb, cta jsonb, cta_used jsonb,
    angle jsonb, word_count jsonb, char_count jsonb, personalization jsonb, personalization_level jsonb,
    has_company_mention jsonb, has_recent_news jsonb, has_mutual_connection jsonb, has_industry_specific jsonb,
    derived jsonb
  ) on true
  where a.client_id = p_client_id
    and (ci_private.is_outbound_action(a.action) or a.content_snapshot is not null);

  -- Pass 2: join the leads, number each lead's touches in send order.
  create temp table ci_touches on commit drop as
  select
    w.touch_id,
    w.lead_no,
    case when w.valid then w.rn end::smallint as position,
    w.channel,
    w.created_at,
    date_part('dow', w.created_at at time zone w.zone)::smallint as local_dow,
    date_part('hour', w.created_at at time zone w.zone)::smallint as local_hour,
    (case when w.valid then date_part('epoch', w.created_at - w.prev_at) / 86400 end)::real as gap_days,
    w.led_to_booking,
    w.after_conversion,
    (case
      when not w.valid or w.after_conversion then null
      when w.outcome = 1 then w.led_to_booking::integer
      when w.outcome = 0 then 0
      when w.next_at is null then null
      else 0
    end)::smallint as booked,
    w.outcome,
    w.tier,
    case when w.valid then w.first_channel end as first_channel,
    case when w.valid then w.channel_mask end::smallint as channel_mask,
    case when w.valid and w.rn <= 6 then
      w.channel + 5 * coalesce(w.lag1, 0) + 25 * coalesce(w.lag2, 0) + 125 * coalesce(w.lag3, 0)
      + 625 * coalesce(w.lag4, 0) + 3125 * coalesce(w.lag5, 0)
    end::integer as prefix_code,
    w.skip_reason,
    case when w.valid then w.junk_reason end as junk_reason,
    w.derived,
    w.valid and w.has_text and w.junk_reason is null as has_text,
    w.subject,
    w.pain_points,
    w.cta,
    w.angle,
    w.word_count,
    w.char_count,
    w.pers_company,
    w.pers_news,
    w.pers_mutual,
    w.pers_industry,
    w.pers_level
  from (
    select
      r.*,
      l.lead_no,
      l.zone,
      l.outcome,
      l.tier,
      r.skip_reason is null as valid,
      coalesce(r.created_at > l.converted_at, false) as after_conversion,
      row_number() over t as rn,
      lag(r.created_at) over t as prev_at,
      lead(r.created_at) over t as next_at,
      first_value(r.channel) over t as first_channel,
      bit_or((1 << (r.channel - 1))::smallint) over t as channel_mask,
      lag(r.channel, 1) over t as lag1,
      lag(r.channel, 2) over t as lag2,
      lag(r.channel, 3) over t as lag3,
      lag(r.channel, 4) over t as lag4,
      lag(r.channel, 5) over t as lag5
    from pg_temp.ci_touch_raw as r
    inner join pg_temp.ci_touch_leads as l on l.lead_id = r.lead_id
    window t as (partition by l.lead_no, r.skip_reason is null order by r.created_at, r.touch_id)
  ) as w;

  drop table pg_temp.ci_touch_raw;

  create temp table ci_touch_meta on commit drop as
  select
    p_client_id as client_id,
    pg_catalog.statement_timestamp() as built_at,
    (select count(*) from pg_temp.ci_touch_leads)::integer as leads,
    c.touches::integer as touches,
    c.decided_leads::integer as decided_leads,
    jsonb_build_object(
      'unknown_channel', c.unknown_channel,
      'not_outbound_with_snapshot', c.not_outbound,
      'junk_snapshot', c.junk,
      'junk_by_reason', jsonb_build_object(
        'not_object', c.not_object, 'wrong_type', c.wrong_type, 'empty', c.empty, 'oversized', c.oversized
      ),
      'invalid_timezone_leads', (select count(*) from pg_temp.ci_touch_leads as l where l.zone_invalid)
    ) as skipped
  from (
    select
      count(*) filter (where t.skip_reason is null) as touches,
      count(*) filter (where t.position = 1 and t.outcome is not null) as decided_leads,
      count(*) filter (where t.skip_reason = 'unknown_channel') as unknown_channel,
      count(*) filter (where t.skip_reason = 'not_outbound') as not_outbound,
      count(*) filter (where t.junk_reason is not null) as junk,
      count(*) filter (where t.junk_reason = 'not_object') as not_object,
      count(*) filter (where t.junk_reason = 'wrong_type') as wrong_type,
      count(*) filter (where t.junk_reason = 'empty') as empty,
      count(*) filter (where t.junk_reason = 'oversized') as oversized
    from pg_temp.ci_touches as t
  ) as c;

  select m.touches into v_touches from pg_temp.ci_touch_meta as m;
  return v_touches;
end
$$;

revoke execute on function ci_private.prepare_touches(uuid) from public, anon, authenticated;
grant execute on function ci_private.prepare_touches(uuid) to service_role;
