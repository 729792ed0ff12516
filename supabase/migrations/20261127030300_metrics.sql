-- Metrics over time, so the effect of the learning can be watched (seed spec
-- 8.1 and 8.2). Views with security_invoker: a caller sees only the clients
-- that the row-level security of the underlying tables lets them see.

-- Business KPIs per client and week of first outbound touch: booking rate
-- (bookings / leads contacted, and / leads with an outcome), days from first
-- touch to booking, touches per booking (the converting touch's position).
create or replace view public.conversion_kpis_weekly
with (security_invoker = on) as
with touches as (
  select
    a.lead_id,
    min(a.created_at) as first_touch_at,
    count(*) as touches
  from public.activities as a
  where ci_private.is_outbound_action(a.action)
  group by a.lead_id
),

per_lead as (
  select
    l.client_id,
    l.id,
    t.first_touch_at,
    ci_private.lead_outcome(l.status::text) as outcome,
    l.converted_at,
    (
      select count(*) from public.activities as a
      where a.lead_id = l.id and ci_private.is_outbound_action(a.action) and a.created_at <= l.converted_at
    ) as touches_to_booking
  from public.leads as l
  inner join touches as t on l.id = t.lead_id
  where l.deleted_at is null
)

select
  p.client_id,
  date_trunc('week', p.first_touch_at) as week,
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
group by p.client_id, date_trunc('week', p.first_touch_at);

-- Algorithm metrics per client and refresh: confidence of each pattern, the
-- recommended weights and their variance over the last four refreshes (weight
-- convergence), and how the WHO detector judged its weights.
create or replace view public.conversion_learning_metrics
with (security_invoker = on) as
with who as (
  select
    h.client_id,
    h.computed_at,
    h.confidence,
    (h.patterns #>> '{recommended_weights,data_quality}')::double precision as w_data_quality,
    (h.patterns #>> '{recommended_weights,authority}')::double precision as w_authority,
    (h.patterns #>> '{recommended_weights,company_fit}')::double precision as w_company_fit,
    (h.patterns #>> '{recommended_weights,timing}')::double precision as w_timing,
    h.patterns -> 'weight_learning' as weight_learning
  from public.conversion_pattern_history as h
  where h.pattern_type = 'who'
)

select
  w.client_id,
  date_trunc('week', w.computed_at) as week,
  w.computed_at,
  w.confidence as who_confidence,
  (
    select jsonb_object_agg(o.pattern_type, o.confidence)
    from public.conversion_pattern_history as o
    where o.client_id = w.client_id and o.computed_at = w.computed_at
  ) as confidence_by_type,
  w.w_data_quality,
  w.w_authority,
  w.w_company_fit,
  w.w_timing,
  (
    coalesce(var_samp(w.w_data_quality) over last4, 0)
    + coalesce(var_samp(w.w_authority) over last4, 0)
    + coalesce(var_samp(w.w_company_fit) over last4, 0)
    + coalesce(var_samp(w.w_timing) over last4, 0)
  ) as weight_variance_last4,
  w.weight_learning
from who as w
window last4 as (partition by w.client_id order by w.computed_at rows between 3 preceding and current row);

-- Does the score rank bookers first? Per client, over leads with an outcome:
-- the booking rate of the top 20% by current ALS score against the overall rate.
create or replace view public.conversion_score_quality
with (security_invoker = on) as
with ranked as (
  select
    l.client_id,
    ci_private.lead_outcome(l.status::text) as outcome,
    ntile(5) over (partition by l.client_id order by l.als_score desc nulls last, l.id asc) as quintile
  from public.leads as l
  where l.deleted_at is null and ci_private.lead_outcome(l.status::text) is not null
)

select
  r.client_id,
  count(*) as leads_with_outcome,
  round(avg(r.outcome)::numeric, 4) as booking_rate,
  round((avg(r.outcome) filter (where r.quintile = 1))::numeric, 4) as top20_booking_rate,
  round(((avg(r.outcome) filter (where r.quintile = 1)) / nullif(avg(r.outcome), 0))::numeric, 2) as top20_lift
from ranked as r
group by r.client_id;

revoke all on public.conversion_kpis_weekly from anon;
revoke all on public.conversion_learning_metrics from anon;
revoke all on public.conversion_score_quality from anon;
grant select on public.conversion_kpis_weekly to authenticated, service_role;
grant select on public.conversion_learning_metrics to authenticated, service_role;
grant select on public.conversion_score_quality to authenticated, service_role;
