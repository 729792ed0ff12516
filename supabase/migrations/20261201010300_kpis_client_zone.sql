-- The weekly KPI view in the client's zone, filtered by client first (issue 13).
--
-- Before: weeks were cut by date_trunc on a timestamptz, i.e. in the session's
-- TimeZone (a touch on Sunday night UTC fell in another week for a session in
-- Tokyo), and each lead's first touch came from grouping every tenant's
-- activities by lead before the client was known (a query for one client
-- scanned all activities). Now each week is the client's local week
-- (clients.timezone, an invalid or missing name read as UTC), returned as the
-- instant that week starts (a timestamptz: the same instant whatever the
-- session's zone; same columns and types as before), and each lead's touches
-- are read from the outbound-touch index of that lead, so a filter on
-- client_id reaches the leads and activities scans (the view is grouped by
-- client_id). Touches at +/-infinity are left out. For callers over RPC,
-- public.get_conversion_kpis_weekly(client) checks access and filters first.

-- The zone a client's time is read in: its timezone when it names a zone
-- (ci_private.timezone_names, case-insensitive), else UTC.
-- security definer: the zone cache is the layer's; it reveals only the zone's
-- spelling.
create or replace function ci_private.client_zone(p_timezone text)
returns text
language sql stable security definer
set search_path = ''
as $$
  select coalesce(
    (select z.zone_name from ci_private.timezone_names as z where z.zone_key = lower(btrim(p_timezone))),
    'UTC'
  )
$$;

create or replace view public.conversion_kpis_weekly
with (security_invoker = on) as
with zones as (
  select
    c.id as client_id,
    ci_private.client_zone(c.timezone) as tz_name
  from public.clients as c
),

touches as (
  select
    l.client_id,
    l.id as lead_id,
    min(a.created_at) as first_touch_at,
    count(*) filter (where a.created_at <= l.converted_at) as touches_to_booking
  from public.leads as l
  inner join public.activities as a
    on
      l.client_id = a.client_id
      and l.id = a.lead_id
      and ci_private.is_outbound_action(a.action)
      and a.created_at > '-infinity'::timestamptz
      and a.created_at < 'infinity'::timestamptz
  where l.deleted_at is null
  group by l.client_id, l.id
),

per_lead as (
  select
    l.client_id,
    z.tz_name,
    t.first_touch_at,
    ci_private.lead_outcome(l.status::text) as outcome,
    l.converted_at,
    t.touches_to_booking
  from public.leads as l
  inner join zones as z on l.client_id = z.client_id
  inner join touches as t on l.client_id = t.client_id and l.id = t.lead_id
  where l.deleted_at is null
)

select
  p.client_id,
  (date_trunc('week', p.first_touch_at at time zone p.tz_name) at time zone p.tz_name) as week,
  count(*) as leads_contacted,
  count(*) filter (where p.outcome is not null) as leads_with_outcome,
  count(*) filter (where p.outcome = 1) as bookings,
  round(count(*) filter (where p.outcome = 1)::numeric / count(*), 4) as booking_rate,
  round(
    count(*) filter (where p.outcome = 1)::numeric / nullif(count(*) filter (where p.outcome is not null), 0), 4
  ) as booking_rate_of_outcomes,
  round((avg(date_part('epoch', p.converted_at - p.first_touch_at)) filter (where p.outcome = 1) / 86400)::numeric, 2)
    as avg_days_to_booking,
  round((avg(p.touches_to_booking) filter (where p.outcome = 1))::numeric, 2) as avg_touches_per_booking
from per_lead as p
group by p.client_id, p.tz_name, (date_trunc('week', p.first_touch_at at time zone p.tz_name) at time zone p.tz_name);

-- One client's weekly KPIs, the client filter applied before anything is
-- aggregated; members of the client (and service_role) only.
create or replace function public.get_conversion_kpis_weekly(p_client_id uuid)
returns setof public.conversion_kpis_weekly
language plpgsql stable
set search_path = ''
as $$
begin
  perform ci_private.assert_client_access(p_client_id, false);
  return query
  select k.* from public.conversion_kpis_weekly as k where k.client_id = p_client_id order by k.week;
end
$$;

comment on function public.get_conversion_kpis_weekly(uuid) is
'Weekly business KPIs of one client (rows of view conversion_kpis_weekly, oldest week first): week = the instant '
'the client''s local week (clients.timezone, else UTC) of the leads'' first outbound touch starts; leads_contacted, '
'leads_with_outcome, bookings (counts); booking_rate and booking_rate_of_outcomes (0..1); avg_days_to_booking '
'(days); avg_touches_per_booking (touches up to the booking). Members of the client and service_role; others get '
'SQLSTATE 42501, a null client 22004.';

revoke all on public.conversion_kpis_weekly from anon;
grant select on public.conversion_kpis_weekly to authenticated, service_role;
revoke execute on function ci_private.client_zone(text) from public, anon;
grant execute on function ci_private.client_zone(text) to authenticated, service_role;
revoke execute on function public.get_conversion_kpis_weekly(uuid) from public, anon;
grant execute on function public.get_conversion_kpis_weekly(uuid) to authenticated, service_role;
