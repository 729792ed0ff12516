-- The WHAT detector reads the content of touches a refresh has not filled yet
-- (a detector called on its own, between refreshes) from
-- ci_private.pending_content, the computation the refresh's fill stores: the
-- same keyed features and label text, so results never depend on whether the
-- fill has run. Touches the fill found nothing to key (key 0) join no key.
-- Otherwise as the what_adjusted migration.

create or replace function ci_private.what_patterns(p_client_id uuid)
returns jsonb
language plpgsql volatile security definer
set search_path = ''
set work_mem = '256MB'
set jit = off
as $$
declare
  v_min integer := 30;
  v_client uuid := p_client_id;
  v_base double precision;
  v_trials bigint;
  v_conversions bigint;
  v_result jsonb;
begin
  perform 'PRAGMA:TABLE: ci_touches (like ci_private.touch)';
  perform 'PRAGMA:TABLE: ci_touch_leads (like ci_private.touch_lead)';
  perform 'PRAGMA:TABLE: ci_what_profile (kind text, junk_reason text, subject text, pain_points text[], cta text, angle text, channel smallint, bucket int4range, pers_company boolean, pers_news boolean, pers_mutual boolean, pers_industry boolean, pers_level integer, n bigint, c bigint, e double precision, derived bigint)';

  if pg_catalog.to_regclass('pg_temp.ci_what_profile') is not null then
    drop table pg_temp.ci_what_profile;
  end if;

  -- The touches grouped by content key straight from the per-touch relation
  -- (a few hundred keys for a templated client), each key's features and
  -- label text unpacked once; touches still pending (the refresh's fill not
  -- run) are computed as the fill would (ci_private.pending_content), found
  -- through the small index of pending touches. Labels missing
  -- from a snapshot are read from the dictionary, once per group.
  create temp table ci_what_profile on commit drop as
  with hazard as (
    -- The client's booking hazard by position (1..6, 7+) and channel, over all its trials.
    select least(t.position, 7) as pos, t.channel, sum(t.booked)::double precision / nullif(count(t.booked), 0) as h
    from pg_temp.ci_touches as t
    group by 1, 2
  ),
  by_key as (
    select
      t.content_key,
      t.channel,
      t.booked is null as no_trial,
      count(*) as n,
      coalesce(sum(t.booked), 0) as c,
      coalesce(sum(h.h) filter (where t.booked is not null), 0) as e
    from pg_temp.ci_touches as t
    left join hazard as h on h.pos = least(t.position, 7) and h.channel = t.channel
    where t.content_key is not null
    group by 1, 2, 3
  ),
  unkeyed as materialized (
    select p.touch_id as id, p.features as x, p.label_text
    from ci_private.pending_content(v_client) as p
    where p.features is distinct from null
  ),
  grouped as (
    select
      true as outbound,
      b.channel,
      k.features as x,
      k.label_text,
      b.no_trial,
      b.n,
      b.c,
      b.e
    from by_key as b
    inner join ci_private.content_keys as k on k.key = b.content_key and k.client_id = v_client
    union all
    select
      true,
      t.channel,
      u.x,
      u.label_text,
      t.booked is null,
      count(*),
      coalesce(sum(t.booked), 0),
      coalesce(sum(h.h) filter (where t.booked is not null), 0)
    from unkeyed as u
    inner join pg_temp.ci_touches as t on t.touch_id = u.id and t.content_key is null
    left join hazard as h on h.pos = least(t.position, 7) and h.channel = t.channel
    group by 1, 2, 3, 4, 5
    union all
    -- Snapshots on activities that are no outbound touch: counted, not read.
    select false, null::smallint, null, null, false, count(*), 0, 0::double precision
    from public.activities as a
    inner join pg_temp.ci_touch_leads as l on l.lead_id = a.lead_id
    where a.client_id = v_client
      and a.content_snapshot is not null
      and not ci_private.is_outbound_action(a.action)
  ),
  kinds as (
    select
      g.*,
      case
        when not g.outbound then 'not_outbound'
        when (g.x).junk_reason is not null then 'junk'
        when not (g.x).has_text then 'no_text'
        when g.no_trial then 'no_trial'
        else 'trial'
      end as kind,
      case when g.label_text is not null then ci_private.keyword_labels(v_client, g.label_text) end as labels
    from grouped as g
  )
  select
    k.kind,
    case when k.kind = 'junk' then (k.x).junk_reason end as junk_reason,
    case when k.kind = 'trial' and k.channel = 1 then (k.x).subject end as subject,
    case when k.kind = 'trial' then coalesce((k.x).pain_points, ci_private.label_array(k.labels -> 'pain_points')) end
      as pain_points,
    case when k.kind = 'trial' then coalesce((k.x).cta, ci_private.normalize_label(k.labels ->> 'cta')) end as cta,
    case when k.kind = 'trial' then coalesce((k.x).angle, ci_private.normalize_label(k.labels ->> 'angle')) end as angle,
    case when k.kind = 'trial' then k.channel end as channel,
    case when k.kind = 'trial' then ci_private.length_bucket(k.channel, (k.x).word_count, (k.x).char_count) end as bucket,
    case when k.kind = 'trial' then (k.x).pers_company end as pers_company,
    case when k.kind = 'trial' then (k.x).pers_news end as pers_news,
    case when k.kind = 'trial' then (k.x).pers_mutual end as pers_mutual,
    case when k.kind = 'trial' then (k.x).pers_industry end as pers_industry,
    case when k.kind = 'trial' then least((k.x).pers_level, 4) end as pers_level,
    k.n,
    case when k.kind = 'trial' then k.c else 0 end as c,
    case when k.kind = 'trial' then k.e else 0 end as e,
    case when k.kind = 'trial' and (k.x).derived then k.n else 0 end as derived
  from kinds as k;

  select sum(p.n), sum(p.c) into v_trials, v_conversions
  from pg_temp.ci_what_profile as p
  where p.kind = 'trial';
  v_base := v_conversions::double precision / nullif(v_trials, 0);

  with
  trials as (
    select p.* from pg_temp.ci_what_profile as p where p.kind = 'trial'
  ),
  subjects as (
    select
      lower(p.subject) as key,
      (array_agg(p.subject order by p.n desc, p.subject))[1] as pattern,
      sum(p.n) as n,
      sum(p.c) as c,
      sum(p.e) as e
    from (
      select t.subject, sum(t.n) as n, sum(t.c) as c, sum(t.e) as e
      from trials as t
      where t.subject is not null
      group by t.subject
    ) as p
    group by 1
  ),
  subject_rows as (
    select ci_private.adjusted_rate_table(
      coalesce(jsonb_agg(jsonb_build_object(
        'pattern', s.pattern, 'conversions', s.c, 'sample', s.n, 'expected', s.e
      )), '[]'::jsonb),
      (select sum(s2.c)::double precision / nullif(sum(s2.n), 0) from subjects as s2), v_min
    ) as ranked
    from subjects as s
  ),
  pains as (
    select e.label, sum(t.n) as n, sum(t.c) as c, sum(t.e) as e
    from trials as t
    cross join lateral unnest(t.pain_points) as e (label)
    group by 1
  ),
  pain_rows as (
    select ci_private.adjusted_rate_table(
      coalesce(jsonb_agg(jsonb_build_object(
        'pain_point', p.label, 'conversions', p.c, 'sample', p.n, 'expected', p.e,
        'frequency', round(p.c::numeric / nullif(v_conversions, 0), 4),
        'usage_share', round(p.n::numeric / nullif(v_trials, 0), 4)
      )), '[]'::jsonb), v_base, v_min
    ) as ranked
    from pains as p
  ),
  ctas as (
    select t.cta as label, sum(t.n) as n, sum(t.c) as c, sum(t.e) as e from trials as t where t.cta is not null group by 1
  ),
  cta_rows as (
    select ci_private.adjusted_rate_table(
      coalesce(jsonb_agg(jsonb_build_object(
        'cta', x.label, 'conversions', x.c, 'sample', x.n, 'expected', x.e
      )), '[]'::jsonb),
      v_base, v_min
    ) as ranked
    from ctas as x
  ),
  angles as (
    select t.angle as label, sum(t.n) as n, sum(t.c) as c, sum(t.e) as e
    from trials as t
    where t.angle is not null
    group by 1
  ),
  angle_rows as (
    select ci_private.adjusted_rate_table(
      coalesce(jsonb_agg(jsonb_build_object(
        'angle', x.label, 'conversions', x.c, 'sample', x.n, 'expected', x.e
      )), '[]'::jsonb),
      v_base, v_min
    ) as ranked
    from angles as x
  ),
  buckets as (
    select t.channel, t.bucket, sum(t.n) as n, sum(t.c) as c, sum(t.e) as e
    from trials as t
    where t.bucket is not null
    group by 1, 2
  ),
  lengths as (
    select
      b.channel,
      ci_private.adjusted_rate_table(
        jsonb_agg(jsonb_build_object(
          'range', case when upper(b.bucket) is null then lower(b.bucket) || '+'
            else lower(b.bucket) || '-' || (upper(b.bucket) - 1) end,
          'range_min', lower(b.bucket), 'range_max', upper(b.bucket) - 1,
          'conversions', b.c, 'sample', b.n, 'expected', b.e
        )),
        sum(b.c)::double precision / nullif(sum(b.n), 0),
        v_min
      ) as ranked
    from buckets as b
    group by b.channel
  ),
  flag_values as (
    select v.flag, v.value, sum(t.n) as n, sum(t.c) as c, sum(t.e) as e
    from trials as t
    cross join lateral (
      values ('company_mention', t.pers_company), ('recent_news', t.pers_news),
      ('mutual_connection', t.pers_mutual), ('industry_specific', t.pers_industry)
    ) as v (flag, value)
    where v.value is not null
    group by 1, 2
  ),
  flags as (
    select
      f.flag,
      ci_private.adjusted_rate_table(
        jsonb_agg(jsonb_build_object('with', f.value, 'conversions', f.c, 'sample', f.n, 'expected', f.e)),
        sum(f.c)::double precision / nullif(sum(f.n), 0), v_min
      ) as ranked
    from flag_values as f
    group by f.flag
  ),
  flag_lifts as (
    select
      f.flag,
      (select r.value from jsonb_array_elements(f.ranked) as r (value) where r.value -> 'with' = 'true'::jsonb) as yes,
      (select r.value from jsonb_array_elements(f.ranked) as r (value) where r.value -> 'with' = 'false'::jsonb) as no
    from flags as f
  ),
  levels as (
    select ci_private.adjusted_rate_table(
      coalesce(jsonb_agg(jsonb_build_object(
        'level', case when x.pers_level >= 4 then '4+' else x.pers_level::text end,
        'conversions', x.c, 'sample', x.n, 'expected', x.e
      )), '[]'::jsonb), v_base, v_min
    ) as ranked
    from (
      select t.pers_level, sum(t.n) as n, sum(t.c) as c, sum(t.e) as e
      from trials as t
      where t.pers_level is not null
      group by 1
    ) as x
  ),
  skipped as (
    select
      coalesce(sum(p.n) filter (where p.kind = 'junk'), 0) as junk,
      coalesce(sum(p.n) filter (where p.kind = 'not_outbound'), 0) as not_outbound,
      coalesce(sum(p.n) filter (where p.kind = 'junk' and p.junk_reason = 'not_object'), 0) as not_object,
      coalesce(sum(p.n) filter (where p.kind = 'junk' and p.junk_reason = 'wrong_type'), 0) as wrong_type,
      coalesce(sum(p.n) filter (where p.kind = 'junk' and p.junk_reason = 'empty'), 0) as empty,
      coalesce(sum(p.n) filter (where p.kind = 'junk' and p.junk_reason = 'oversized'), 0) as oversized
    from pg_temp.ci_what_profile as p
  )
  select jsonb_build_object(
    'trials', coalesce(v_trials, 0),
    'conversions', coalesce(v_conversions, 0),
    'derived_trials', (select coalesce(sum(t.derived), 0) from trials as t),
    'baseline_rate', round(v_base::numeric, 4),
    'min_sample', v_min,
    'subject_rankings', (select s.ranked from subject_rows as s),
    'pain_point_rankings', (select p.ranked from pain_rows as p),
    'cta_rankings', (select c.ranked from cta_rows as c),
    'angle_rankings', (select x.ranked from angle_rows as x),
    'optimal_length', jsonb_strip_nulls(jsonb_build_object(
      'email', (select ci_private.optimal_length(l.ranked, 'words') from lengths as l where l.channel = 1),
      'linkedin', (select ci_private.optimal_length(l.ranked, 'words') from lengths as l where l.channel = 2),
      'sms', (select ci_private.optimal_length(l.ranked, 'chars') from lengths as l where l.channel = 3)
    )),
    'personalization_lift', coalesce((
      select jsonb_object_agg(
        fl.flag,
        round(((fl.yes ->> 'conversion_rate')::numeric / nullif((fl.no ->> 'conversion_rate')::numeric, 0)), 2)
      )
      from flag_lifts as fl
      where fl.yes is not null and fl.no is not null
    ), '{}'::jsonb),
    'personalization_details', coalesce((
      select jsonb_object_agg(fl.flag, jsonb_build_object(
        'with', fl.yes - 'with', 'without', fl.no - 'with', 'significance', fl.yes -> 'significance',
        -- Observed over expected with the flag, against the same without it.
        'adjusted_lift', round(
          (fl.yes ->> 'adjusted_lift')::numeric / nullif((fl.no ->> 'adjusted_lift')::numeric, 0), 2
        )
      ))
      from flag_lifts as fl
    ), '{}'::jsonb),
    'personalization_level_rankings', (select lv.ranked from levels as lv),
    'skipped', (
      select jsonb_build_object(
        'junk_snapshot', sk.junk,
        'not_outbound_with_snapshot', sk.not_outbound,
        'junk_by_reason', jsonb_build_object(
          'not_object', sk.not_object, 'wrong_type', sk.wrong_type, 'empty', sk.empty, 'oversized', sk.oversized
        )
      )
      from skipped as sk
    )
  )
  into v_result;

  drop table pg_temp.ci_what_profile;
  return v_result;
end
$$;

revoke execute on function ci_private.what_patterns(uuid) from public, anon, authenticated;
grant execute on function ci_private.what_patterns(uuid) to service_role;
