-- The WHAT detector (seed spec 3.2 and 4.2): which content books meetings.
-- Reads the shared per-touch relation (ci_private.ensure_touches): the content
-- features of each outbound touch from its content_snapshot (the engine's own,
-- or one derived from subject / content_preview / metadata), pain points, call
-- to action and angle from the snapshot's labels, else from the client's
-- keyword dictionary (public.conversion_keywords).
--
-- Unit: the touch. A touch with usable content (a snapshot that is not junk,
-- with a subject or body) is a trial; it succeeds when it is the lead's
-- converting touch. So every rate is P(booking at this touch | this content was
-- sent), comparable across contents whatever the position or number of touches
-- of the leads they were sent to. Through ci_private.rate_table; the lists that
-- name winners and losers (winning, losing, effective, ineffective) hold only
-- segments whose interval excludes the baseline (the rate of all content
-- trials; per channel for lengths).
--   subject_patterns: email subjects, templates grouped case-insensitively with
--     their {placeholders} normalised.
--   pain_points: every label a touch names counts for it; frequency is the
--     share of converting touches that name it (the seed's meaning), usage_share
--     the share of all content touches.
--   optimal_length: email and LinkedIn in words, SMS in characters, in
--     buckets; the optimum is the best bucket by smoothed rate, widened to the
--     adjacent buckets that are significantly above the channel's rate too.
--     Derived snapshots state no length (a preview may be cut short) and do not
--     count here.
--   personalization_lift: rate with the flag / rate without, among touches
--     that state it (details and significance in personalization_details).

-- A subject template with whitespace collapsed and placeholders written {name}.
create or replace function ci_private.normalize_template(p_text text)
returns text
language sql immutable parallel safe
as $$
  select nullif(btrim(regexp_replace(
    regexp_replace(p_text, '\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}', '{\1}', 'g'), '\s+', ' ', 'g'
  )), '')
$$;

-- A label (pain point, call to action, angle): lower case, whitespace
-- collapsed, no trailing punctuation.
create or replace function ci_private.normalize_label(p_text text)
returns text
language sql immutable parallel safe
as $$
  select nullif(rtrim(regexp_replace(lower(btrim(p_text)), '\s+', ' ', 'g'), '.!?,;: '), '')
$$;

-- Length bucket of a touch: [low, high) in words (email, LinkedIn) or
-- characters (SMS); high null for the open last bucket.
create or replace function ci_private.length_bucket(p_channel integer, p_words integer, p_chars integer)
returns int4range
language sql immutable parallel safe
as $$
  select case
    when p_channel = 1 and p_words is not null then
      case
        when p_words >= 200 then int4range(200, null)
        when p_words >= 150 then int4range(150, 200)
        else int4range(p_words / 25 * 25, p_words / 25 * 25 + 25)
      end
    when p_channel = 2 and p_words is not null then
      case when p_words >= 100 then int4range(100, null) else int4range(p_words / 10 * 10, p_words / 10 * 10 + 10) end
    when p_channel = 3 and p_chars is not null then
      case when p_chars >= 320 then int4range(320, null) else int4range(p_chars / 20 * 20, p_chars / 20 * 20 + 20) end
  end
$$;

-- The optimal length of one channel from its ranked buckets (see the header).
create or replace function ci_private.optimal_length(p_ranked jsonb, p_unit text)
returns jsonb
language sql immutable parallel safe
as $$
  with buckets as (
    select
      (r.value ->> 'range_min')::integer as lo,
      (r.value ->> 'range_max')::integer as hi,
      r.value ->> 'significance' as sig,
      r.ord
    from jsonb_array_elements(p_ranked) with ordinality as r (value, ord)
  ),
  best as (
    select b.lo, b.hi, b.sig from buckets as b order by b.ord limit 1
  ),
  -- Significant buckets that touch the best one through other significant buckets.
  run as (
    select
      min(b.lo) as lo,
      max(coalesce(b.hi, b.lo)) as hi
    from buckets as b
    cross join best as x
    where x.sig = 'above'
      and b.sig = 'above'
      and not exists (
        select 1 from buckets as gap
        where gap.sig <> 'above'
          and gap.lo > least(b.lo, x.lo) and gap.lo < greatest(b.lo, x.lo)
      )
  )
  select case when exists (select 1 from best) then jsonb_build_object(
    'optimal_' || p_unit, (
      select round((coalesce(r.lo, x.lo) + coalesce(r.hi, x.hi, x.lo)) / 2.0)::integer
      from best as x left join run as r on true
    ),
    'range_min', (select coalesce(r.lo, x.lo) from best as x left join run as r on true),
    'range_max', (select coalesce(r.hi, x.hi, x.lo) from best as x left join run as r on true),
    'significant', (select x.sig = 'above' from best as x),
    'distribution', p_ranked
  ) end
$$;

-- Per-touch WHAT statistics of the prepared relation.
-- security definer: reads the temporary per-touch relation its caller prepared.
create or replace function ci_private.what_patterns()
returns jsonb
language plpgsql volatile security definer
set search_path = ''
as $$
declare
  v_min integer := 30;
  v_base double precision;
  v_trials bigint;
  v_conversions bigint;
  v_result jsonb;
begin
  perform 'PRAGMA:TABLE: ci_touches (like ci_private.touch)';
  perform 'PRAGMA:TABLE: ci_what_agg (g_subject integer, g_pain integer, g_cta integer, g_angle integer, g_length integer, g_company integer, g_news integer, g_mutual integer, g_industry integer, g_level integer, subject text, pain_points jsonb, cta text, angle text, channel smallint, bucket int4range, pers_company boolean, pers_news boolean, pers_mutual boolean, pers_industry boolean, pers_level integer, n bigint, c bigint, derived bigint)';

  if pg_catalog.to_regclass('pg_temp.ci_what_agg') is not null then
    drop table pg_temp.ci_what_agg;
  end if;

  -- One pass over the content touches: every grouping at once.
  create temp table ci_what_agg on commit drop as
  select
    grouping(x.subject) as g_subject,
    grouping(t.pain_points) as g_pain,
    grouping(t.cta) as g_cta,
    grouping(t.angle) as g_angle,
    grouping(t.channel, x.bucket) as g_length,
    grouping(t.pers_company) as g_company,
    grouping(t.pers_news) as g_news,
    grouping(t.pers_mutual) as g_mutual,
    grouping(t.pers_industry) as g_industry,
    grouping(x.pers_level) as g_level,
    x.subject,
    t.pain_points,
    t.cta,
    t.angle,
    t.channel,
    x.bucket,
    t.pers_company,
    t.pers_news,
    t.pers_mutual,
    t.pers_industry,
    x.pers_level,
    count(*) as n,
    sum(t.booked) as c,
    count(*) filter (where t.derived) as derived
  from pg_temp.ci_touches as t
  cross join lateral (
    select
      case when t.channel = 1 then t.subject end as subject,
      ci_private.length_bucket(t.channel, t.word_count, t.char_count) as bucket,
      least(t.pers_level, 4) as pers_level
  ) as x
  where t.booked is not null and t.has_text and t.junk_reason is null
  group by grouping sets (
    (x.subject), (t.pain_points), (t.cta), (t.angle), (t.channel, x.bucket), (t.pers_company), (t.pers_news),
    (t.pers_mutual), (t.pers_industry), (x.pers_level), ()
  );

  select a.n, a.c into v_trials, v_conversions
  from pg_temp.ci_what_agg as a
  where a.g_subject = 1 and a.g_pain = 1 and a.g_cta = 1 and a.g_angle = 1 and a.g_length = 3
    and a.g_company = 1 and a.g_news = 1 and a.g_mutual = 1 and a.g_industry = 1 and a.g_level = 1;
  v_base := v_conversions::double precision / nullif(v_trials, 0);

  with
  subjects as (
    select
      lower(ci_private.normalize_template(a.subject)) as key,
      (array_agg(ci_private.normalize_template(a.subject) order by a.n desc, a.subject))[1] as pattern,
      sum(a.n) as n,
      sum(a.c) as c
    from pg_temp.ci_what_agg as a
    where a.g_subject = 0 and ci_private.normalize_template(a.subject) is not null
    group by 1
  ),
  subject_rows as (
    select ci_private.rate_table(
      coalesce(jsonb_agg(jsonb_build_object('pattern', s.pattern, 'conversions', s.c, 'sample', s.n)), '[]'::jsonb),
      (select sum(s2.c)::double precision / nullif(sum(s2.n), 0) from subjects as s2), v_min
    ) as ranked
    from subjects as s
  ),
  pains as (
    select ci_private.normalize_label(e.value #>> '{}') as label, sum(a.n) as n, sum(a.c) as c
    from pg_temp.ci_what_agg as a
    cross join lateral (
      select distinct p.value from jsonb_array_elements(a.pain_points) as p (value) where jsonb_typeof(p.value) = 'string'
    ) as e
    where a.g_pain = 0 and jsonb_typeof(a.pain_points) = 'array'
    group by 1
  ),
  pain_rows as (
    select ci_private.rate_table(
      coalesce(jsonb_agg(jsonb_build_object(
        'pain_point', p.label, 'conversions', p.c, 'sample', p.n,
        'frequency', round(p.c::numeric / nullif(v_conversions, 0), 4),
        'usage_share', round(p.n::numeric / nullif(v_trials, 0), 4)
      )), '[]'::jsonb), v_base, v_min
    ) as ranked
    from pains as p
    where p.label is not null
  ),
  ctas as (
    select ci_private.normalize_label(a.cta) as label, sum(a.n) as n, sum(a.c) as c
    from pg_temp.ci_what_agg as a
    where a.g_cta = 0 and ci_private.normalize_label(a.cta) is not null
    group by 1
  ),
  cta_rows as (
    select ci_private.rate_table(
      coalesce(jsonb_agg(jsonb_build_object('cta', x.label, 'conversions', x.c, 'sample', x.n)), '[]'::jsonb),
      v_base, v_min
    ) as ranked
    from ctas as x
  ),
  angles as (
    select ci_private.normalize_label(a.angle) as label, sum(a.n) as n, sum(a.c) as c
    from pg_temp.ci_what_agg as a
    where a.g_angle = 0 and ci_private.normalize_label(a.angle) is not null
    group by 1
  ),
  angle_rows as (
    select ci_private.rate_table(
      coalesce(jsonb_agg(jsonb_build_object('angle', x.label, 'conversions', x.c, 'sample', x.n)), '[]'::jsonb),
      v_base, v_min
    ) as ranked
    from angles as x
  ),
  lengths as (
    select
      a.channel,
      ci_private.rate_table(
        jsonb_agg(jsonb_build_object(
          'range', case when upper(a.bucket) is null then lower(a.bucket) || '+'
            else lower(a.bucket) || '-' || (upper(a.bucket) - 1) end,
          'range_min', lower(a.bucket), 'range_max', upper(a.bucket) - 1,
          'conversions', a.c, 'sample', a.n
        )),
        sum(a.c)::double precision / nullif(sum(a.n), 0),
        v_min
      ) as ranked
    from pg_temp.ci_what_agg as a
    where a.g_length = 0 and a.bucket is not null
    group by a.channel
  ),
  flags as (
    select
      f.flag,
      ci_private.rate_table(
        jsonb_agg(jsonb_build_object('with', f.value, 'conversions', f.c, 'sample', f.n)),
        sum(f.c)::double precision / nullif(sum(f.n), 0), v_min
      ) as ranked
    from (
      select 'company_mention' as flag, a.pers_company as value, a.n, a.c from pg_temp.ci_what_agg as a
      where a.g_company = 0 and a.pers_company is not null
      union all
      select 'recent_news', a.pers_news, a.n, a.c from pg_temp.ci_what_agg as a
      where a.g_news = 0 and a.pers_news is not null
      union all
      select 'mutual_connection', a.pers_mutual, a.n, a.c from pg_temp.ci_what_agg as a
      where a.g_mutual = 0 and a.pers_mutual is not null
      union all
      select 'industry_specific', a.pers_industry, a.n, a.c from pg_temp.ci_what_agg as a
      where a.g_industry = 0 and a.pers_industry is not null
    ) as f
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
    select ci_private.rate_table(
      coalesce(jsonb_agg(jsonb_build_object(
        'level', case when a.pers_level >= 4 then '4+' else a.pers_level::text end,
        'conversions', a.c, 'sample', a.n
      )), '[]'::jsonb), v_base, v_min
    ) as ranked
    from pg_temp.ci_what_agg as a
    where a.g_level = 0 and a.pers_level is not null
  )
  select jsonb_build_object(
    'trials', coalesce(v_trials, 0),
    'conversions', coalesce(v_conversions, 0),
    'derived_trials', (
      select a.derived from pg_temp.ci_what_agg as a
      where a.g_subject = 1 and a.g_pain = 1 and a.g_cta = 1 and a.g_angle = 1 and a.g_length = 3
        and a.g_company = 1 and a.g_news = 1 and a.g_mutual = 1 and a.g_industry = 1 and a.g_level = 1
    ),
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
        'with', fl.yes - 'with', 'without', fl.no - 'with', 'significance', fl.yes -> 'significance'
      ))
      from flag_lifts as fl
    ), '{}'::jsonb),
    'personalization_level_rankings', (select lv.ranked from levels as lv)
  )
  into v_result;

  drop table pg_temp.ci_what_agg;
  return v_result;
end
$$;

-- WHAT patterns of a client, computed now; writes nothing (temporary tables
-- aside). Insufficient data (fewer than 10 bookings on touches with content or
-- 30 decided leads) gives the seed's keys empty and insufficient_data true.
-- security definer: reads the client's touches whatever the caller's row-level
-- policies, after ci_private.assert_client_access has allowed the read.
create or replace function public.detect_what_patterns(p_client_id uuid)
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
  perform ci_private.assert_client_access(p_client_id, false);
  perform ci_private.ensure_touches(p_client_id);

  select m.skipped, m.touches, m.decided_leads into v_meta from pg_temp.ci_touch_meta as m;
  v_sample := v_meta.decided_leads;
  v_stats := ci_private.what_patterns();
  v_bookings := coalesce((v_stats ->> 'conversions')::bigint, 0);
  v_enough := v_bookings >= 10 and v_sample >= 30;
  if not v_enough then
    v_stats := null;
  end if;

  return jsonb_build_object(
    'type', 'what',
    'version', '1.0',
    'computed_at', pg_catalog.now(),
    'sample_size', v_sample,
    'confidence', case when v_enough then ci_private.pattern_confidence(v_sample) else 0 end,
    'insufficient_data', not v_enough,
    'subject_patterns', jsonb_build_object(
      'winning', coalesce(ci_private.significant(v_stats -> 'subject_rankings', 'above'), '[]'),
      'losing', coalesce(ci_private.significant(v_stats -> 'subject_rankings', 'below'), '[]'),
      'rankings', coalesce(v_stats -> 'subject_rankings', '[]')
    ),
    'pain_points', jsonb_build_object(
      'effective', coalesce(ci_private.significant(v_stats -> 'pain_point_rankings', 'above'), '[]'),
      'ineffective', coalesce(ci_private.significant(v_stats -> 'pain_point_rankings', 'below'), '[]'),
      'rankings', coalesce(v_stats -> 'pain_point_rankings', '[]')
    ),
    'ctas', jsonb_build_object(
      'effective', coalesce(ci_private.significant(v_stats -> 'cta_rankings', 'above'), '[]'),
      'ineffective', coalesce(ci_private.significant(v_stats -> 'cta_rankings', 'below'), '[]'),
      'rankings', coalesce(v_stats -> 'cta_rankings', '[]')
    ),
    'angles', jsonb_build_object(
      'rankings', coalesce(v_stats -> 'angle_rankings', '[]'),
      'effective', coalesce(ci_private.significant(v_stats -> 'angle_rankings', 'above'), '[]'),
      'ineffective', coalesce(ci_private.significant(v_stats -> 'angle_rankings', 'below'), '[]')
    ),
    'optimal_length', coalesce(v_stats -> 'optimal_length', '{}'),
    'personalization_lift', coalesce(v_stats -> 'personalization_lift', '{}'),
    'personalization_details', coalesce(v_stats -> 'personalization_details', '{}'),
    'personalization_level_rankings', coalesce(v_stats -> 'personalization_level_rankings', '[]'),
    'metadata', jsonb_build_object(
      'unit', 'touch with content: P(this touch is the converting touch | it was sent); the last touch of '
      || 'an open lead and touches after a booking are not trials',
      'labels', 'from the snapshot (pain_points / pain_points_used, cta / cta_used, angle), else from the '
      || 'client''s keyword dictionary',
      'touches', v_meta.touches,
      'content_trials', v_stats -> 'trials',
      'derived_snapshot_trials', v_stats -> 'derived_trials',
      'bookings', v_bookings,
      'baseline_rate', v_stats -> 'baseline_rate',
      'min_sample', v_stats -> 'min_sample',
      'winner_rule', ci_private.winner_rule(),
      'skipped', v_meta.skipped
    )
  ) || case when v_enough then '{}'::jsonb else jsonb_build_object(
    'reason', format('insufficient data: %s bookings on touches with content, %s decided leads (need 10 and 30)',
      v_bookings, v_sample)
  ) end;
end
$$;

revoke execute on function ci_private.what_patterns() from public, anon, authenticated;
revoke execute on function public.detect_what_patterns(uuid) from public, anon;
grant execute on function ci_private.what_patterns() to service_role;
grant execute on function public.detect_what_patterns(uuid) to authenticated, service_role;

-- Pure helpers: anyone who may run the detectors' SQL may run them.
revoke execute on function ci_private.normalize_template(text) from public, anon;
revoke execute on function ci_private.normalize_label(text) from public, anon;
revoke execute on function ci_private.length_bucket(integer, integer, integer) from public, anon;
revoke execute on function ci_private.optimal_length(jsonb, text) from public, anon;
grant execute on function ci_private.normalize_template(text) to authenticated, service_role;
grant execute on function ci_private.normalize_label(text) to authenticated, service_role;
grant execute on function ci_private.length_bucket(integer, integer, integer) to authenticated, service_role;
grant execute on function ci_private.optimal_length(jsonb, text) to authenticated, service_role;
