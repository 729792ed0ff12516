-- Plans that do not depend on luck (issue 15, item 2): WHO on a client the
-- statistics have never seen. Redefines ci_private.who_lead_counts
-- (who_contacted migration) unchanged but for enable_nestloop = off: its one
-- statement joins a whole client's leads to their first touches, and with the
-- client estimated at one row (imported after the last ANALYZE, too small to
-- pass analyze_stale_tables' fifth-changed threshold) PostgreSQL joined them by
-- a nested loop over lead_touches_first_idx keyed by client alone: quadratic in
-- the client's leads. Hash joins cost the same whatever the estimates.

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
  perform ci_private.sync_lead_touches(p_client_id);
  v_built := exists (select 1 from ci_private.lead_touches_built as b where b.client_id = p_client_id);

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
      and (not v_built or ci_private.channel_code(a.channel) is null)
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

revoke execute on function ci_private.who_lead_counts(uuid) from public, anon, authenticated;
grant execute on function ci_private.who_lead_counts(uuid) to service_role;
