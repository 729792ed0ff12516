-- The layer's readers in a read-only transaction (a PostgREST GET, a hot
-- standby, BEGIN READ ONLY): issue 15's "readers write".
--
-- detect_who_patterns brings the kept per-lead touches up to date first
-- (ci_private.sync_lead_touches). After any send since the last read-write
-- read, that wrote lead_touches, and the read-only call failed with "cannot
-- execute DELETE in a read-only transaction". Now WHO
-- (ci_private.who_lead_counts) neither brings them up to date nor reads them
-- in a read-only transaction: it takes each lead's first touch from the
-- activities there, as it does for a client never built: the same answer as a read-write call, not the kept rows' stale one
-- (review: an imported client never read had no kept rows, and a merge's
-- moved touches were kept for neither lead). Outside read-only transactions
-- nothing changes but one filter that makes the activities' path agree with
-- the kept rows: without kept rows it reads the touches with a finite time
-- (and, as before, every touch with an unknown channel).
--
-- detect_what_patterns, detect_when_patterns and detect_how_patterns build the
-- per-touch relation in temporary tables, which a read-only transaction
-- cannot create. They failed with "cannot execute CREATE TABLE AS in a
-- read-only transaction". They still cannot run there, but ci_private.ensure_touches
-- now fails first, with the same SQLSTATE (25006) and a message that says
-- what to do instead.
--
-- who_lead_counts is the body of the who_plan migration with the changes
-- above. sync_lead_touches is unchanged: WHO does not call it in a read-only
-- transaction.

-- The per-touch relation of one client, built once per statement; refuses a
-- read-only transaction with a message that says what to do (see the header).
create or replace function ci_private.ensure_touches(p_client_id uuid)
returns void
language plpgsql
security definer
set search_path = ''
as $$
begin
  perform 'PRAGMA:TABLE: ci_touch_meta (client_id uuid, built_at timestamptz, leads integer, touches integer, decided_leads integer, skipped jsonb)';
  if pg_catalog.current_setting('transaction_read_only')::boolean then
    raise exception 'the WHAT, WHEN and HOW detectors build temporary tables and cannot run in a read-only transaction'
      using errcode = 'read_only_sql_transaction',
      hint = 'call detect_what_patterns, detect_when_patterns or detect_how_patterns in a read-write transaction '
      || '(over PostgREST: POST, not GET), or read the stored patterns with get_conversion_patterns';
  end if;
  if pg_catalog.to_regclass('pg_temp.ci_touch_meta') is not null then
    if exists (
      select 1 from pg_temp.ci_touch_meta as m
      where m.client_id = p_client_id and m.built_at = pg_catalog.statement_timestamp()
    ) then
      return;
    end if;
  end if;
  perform ci_private.prepare_touches(p_client_id);
end
$$;

-- WHO's per-lead counts (see the header).
create or replace function ci_private.who_lead_counts(p_client_id uuid)
returns table (
  learning boolean,
  title text,
  industry text,
  size_band integer,
  new_role boolean,
  hiring boolean,
  funded boolean,
  data_quality integer,
  company_fit integer,
  timing integer,
  fold integer,
  converted integer,
  leads bigint
)
-- volatile: it brings the kept touches up to date first (their first touches
-- are read; lead_touches_read_time migration).
language plpgsql volatile
set search_path = ''
set plan_cache_mode = force_custom_plan
set work_mem = '256MB'
-- One statement over the whole client: hash joins are linear in its rows
-- whatever the statistics say. On a client the statistics have not seen
-- (estimated at one lead) the planner chose a nested loop that scanned the
-- client's first touches once per lead (3,000 leads: 5.7 s instead of 0.1 s).
set enable_nestloop = off
as $$
declare
  v_industries text [];
  v_sizes int4multirange;
  v_locations text [];
  v_built boolean;
  v_read_only boolean;
  v_client_zone text;
begin
  select k.industries, k.sizes, k.locations into v_industries, v_sizes, v_locations
  from public.clients as c
  cross join lateral ci_private.als_context(c) as k
  where c.id = p_client_id;
  select coalesce(z.zone_name, 'UTC') into v_client_zone
  from public.clients as c
  left join ci_private.timezone_names as z on z.zone_key = lower(btrim(c.timezone))
  where c.id = p_client_id;
  v_read_only := pg_catalog.current_setting('transaction_read_only')::boolean;
  if not v_read_only then
    perform ci_private.sync_lead_touches(p_client_id);
  end if;
  -- In a read-only transaction the kept rows cannot be brought up to date:
  -- first touches come from the activities themselves, as for a client never
  -- built.
  v_built := not v_read_only
    and exists (select 1 from ci_private.lead_touches_built as b where b.client_id = p_client_id);

  return query
  select
    grouping(l.organization_industry) = 1,
    l.title,
    l.organization_industry,
    ci_private.who_size_band(l.organization_employee_count),
    ci_private.als_role_points(l.employment_start_date, d.as_of) = 6,
    coalesce(l.organization_is_hiring, false),
    ci_private.als_funding_points(l.organization_latest_funding_date, d.as_of) = 4,
    p.data_quality,
    p.company_fit,
    p.timing,
    ci_private.als_learning_fold(l.id),
    ci_private.lead_outcome(l.status::text),
    count(*)
  from public.leads as l
  left join (
    select k.lead_id, k.created_at
    from ci_private.lead_touches as k
    where v_built and k.client_id = p_client_id and k.touch_no = 1
  ) as f on f.lead_id = l.id
  left join (
    select a.lead_id, min(a.created_at) as created_at
    from public.activities as a
    where a.client_id = p_client_id
      and ci_private.is_outbound_action(a.action)
      -- Kept rows hold the touches with a known channel and a finite time;
      -- the others are read here, and all of them when there are no kept rows.
      and (ci_private.channel_code(a.channel) is null or not v_built and isfinite(a.created_at))
    group by a.lead_id
  ) as u on u.lead_id = l.id
  left join public.campaigns as c on c.id = l.campaign_id and c.client_id = l.client_id and c.deleted_at is null
  left join ci_private.timezone_names as zl on zl.zone_key = lower(btrim(l.timezone))
  left join ci_private.timezone_names as zc on zc.zone_key = lower(btrim(c.timezone))
  cross join lateral (
    select (
      least(f.created_at, u.created_at) at time zone coalesce(zl.zone_name, zc.zone_name, v_client_zone)
    )::date as as_of
  ) as d
  cross join lateral (
    select (x.parts).data_quality, (x.parts).company_fit, (x.parts).timing
    from (
      select ci_private.als_parts_of(
        null, null, l.email, l.email_verified, l.phone, l.phone_verified, l.linkedin_url,
        l.personal_email, l.organization_industry, l.organization_employee_count, l.organization_country,
        l.organization_is_hiring, l.organization_latest_funding_date, l.employment_start_date,
        null, null, v_industries, v_sizes, v_locations, d.as_of
      ) as parts
    ) as x
  ) as p
  where l.client_id = p_client_id
    and l.deleted_at is null
    and ci_private.lead_outcome(l.status::text) is not null
    -- Contacted leads only: a lead nobody sent anything to says nothing about who books.
    and coalesce(f.created_at, u.created_at) is not null
  group by grouping sets (
    (2, 3, 4, 5, 6, 7, 12),
    (2, 8, 9, 10, 11, 12)
  );
end
$$;

-- What the detectors write, said exactly (they store no pattern).
comment on function public.detect_who_patterns(uuid) is
'Compute the WHO pattern now (titles, industries, size bands, timing signals as of the first outbound touch, '
'and the ALS weight-learning decision in weight_learning); stores no pattern, and brings the layer''s kept '
'per-lead touches up to date in a read-write transaction (in a read-only one it reads first touches from the '
'activities: same answer). Rates per lead with an outcome. Members read; others 42501.';

comment on function public.detect_what_patterns(uuid) is
'Compute the WHAT pattern now (subject patterns, pain points, CTAs, angles, lengths, personalisation); stores no '
'pattern, brings the kept per-lead touches up to date and builds temporary tables, so it needs a read-write '
'transaction (else 25006). Rates per touch sent (P(the touch is the converting touch)). Members read; others 42501.';

comment on function public.detect_when_patterns(uuid) is
'Compute the WHEN pattern now (local days and hours, converting-touch distribution, per-position hazard, '
'gaps, time to booking); stores no pattern, needs a read-write transaction (else 25006: it builds temporary '
'tables). Local time: the lead''s zone, else the campaign''s, else the client''s, else UTC. Members read; '
'others 42501.';

comment on function public.detect_how_patterns(uuid) is
'Compute the HOW pattern now (channel sequences with per-step hazards, first channel, multi-channel lift, '
'channel by tier); stores no pattern, needs a read-write transaction (else 25006: it builds temporary tables). '
'Members read; others 42501.';
