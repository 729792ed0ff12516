-- Score quality without the outcome's own risk points (issue 14). Redefines
-- the view public.conversion_score_quality (metrics migration) and adds
-- public.conversion_score_discrimination.
-- The stored ALS score deducts risk for a bounce (10) and an unsubscribe (15):
-- points that record the outcome itself (a bounced or unsubscribed lead is a
-- failed lead), so ranking leads by it and measuring how well it finds the
-- bookers flatters it (one real set: AUC 0.676 reported, 0.624 without the
-- leak). Both views score every lead with its stored components and the
-- weights it was scored with, risk counting only its title (a junior title, 5
-- points), and measure that score. conversion_score_quality keeps its columns
-- (a view's columns cannot change under a re-run of the metrics migration):
-- the top 20%'s booking rate and lift, now on that score.
-- conversion_score_discrimination adds the AUC (ties count one half), says
-- which score is measured (score_basis), and puts the stored score's own
-- top-20% lift and AUC alongside for comparison.

create or replace view public.conversion_score_discrimination
with (security_invoker = on) as
with scored as (
  select
    l.client_id,
    l.id,
    ci_private.lead_outcome(l.status::text) as outcome,
    l.als_score as stored_score,
    ci_private.als_score(
      coalesce(l.als_data_quality, 0), coalesce(l.als_authority, 0), coalesce(l.als_company_fit, 0),
      coalesce(l.als_timing, 0),
      least(ci_private.als_junior_points(' ' || coalesce(ci_private.normalize_title(l.title), '') || ' '), 15),
      ci_private.als_weight_units(coalesce(l.als_weights_used, ci_private.als_default_weights()))
    ) as score
  from public.leads as l
  where l.deleted_at is null and ci_private.lead_outcome(l.status::text) is not null
),

ranked as (
  select
    s.*,
    ntile(5) over (partition by s.client_id order by s.score desc nulls last, s.id asc) as quintile,
    ntile(5) over (partition by s.client_id order by s.stored_score desc nulls last, s.id asc) as stored_quintile
  from scored as s
),

-- AUC by score value: each booked lead against the failed leads scored lower, plus half of those tied.
by_score as (
  select
    s.client_id,
    s.score,
    count(*) filter (where s.outcome = 1) as pos,
    count(*) filter (where s.outcome = 0) as neg
  from scored as s
  group by s.client_id, s.score
),

auc as (
  select
    b.client_id,
    sum(b.pos * (b.neg_below + 0.5 * b.neg))::double precision / nullif(sum(b.pos) * sum(b.neg), 0) as auc
  from (
    select
      x.*,
      coalesce(sum(x.neg) over (
        partition by x.client_id order by x.score nulls first rows between unbounded preceding and 1 preceding
      ), 0) as neg_below
    from by_score as x
  ) as b
  group by b.client_id
),

stored_by_score as (
  select
    s.client_id,
    s.stored_score as score,
    count(*) filter (where s.outcome = 1) as pos,
    count(*) filter (where s.outcome = 0) as neg
  from scored as s
  group by s.client_id, s.stored_score
),

stored_auc as (
  select
    b.client_id,
    sum(b.pos * (b.neg_below + 0.5 * b.neg))::double precision / nullif(sum(b.pos) * sum(b.neg), 0) as auc
  from (
    select
      x.*,
      coalesce(sum(x.neg) over (
        partition by x.client_id order by x.score nulls first rows between unbounded preceding and 1 preceding
      ), 0) as neg_below
    from stored_by_score as x
  ) as b
  group by b.client_id
)

select
  r.client_id,
  count(*) as leads_with_outcome,
  round(avg(r.outcome)::numeric, 4) as booking_rate,
  round((avg(r.outcome) filter (where r.quintile = 1))::numeric, 4) as top20_booking_rate,
  round(((avg(r.outcome) filter (where r.quintile = 1)) / nullif(avg(r.outcome), 0))::numeric, 2) as top20_lift,
  round(max(a.auc)::numeric, 4) as auc,
  'ALS score without outcome-derived risk: the stored components and weights, risk from the title only '
  || '(bounce and unsubscribe points record the outcome itself)' as score_basis,
  round(
    ((avg(r.outcome) filter (where r.stored_quintile = 1)) / nullif(avg(r.outcome), 0))::numeric, 2
  ) as stored_score_top20_lift,
  round(max(sa.auc)::numeric, 4) as stored_score_auc
from ranked as r
left join auc as a on r.client_id = a.client_id
left join stored_auc as sa on r.client_id = sa.client_id
group by r.client_id;

-- The columns the metrics migration gave it, on the score without the leak.
create or replace view public.conversion_score_quality
with (security_invoker = on) as
select
  d.client_id,
  d.leads_with_outcome,
  d.booking_rate,
  d.top20_booking_rate,
  d.top20_lift
from public.conversion_score_discrimination as d;

comment on view public.conversion_score_quality is
'Per client, over leads with an outcome: booking rate of the top 20% by the ALS score without outcome-derived '
'risk (stored components and weights, risk from the title only), against the client''s rate. '
'AUC and the stored score''s own figures: conversion_score_discrimination.';
comment on view public.conversion_score_discrimination is
'Per client, over leads with an outcome: top-20% booking rate and lift and AUC of the ALS score without '
'outcome-derived risk (score_basis), with the stored score''s top-20% lift and AUC for comparison.';

revoke all on public.conversion_score_discrimination from anon;
revoke all on public.conversion_score_quality from anon;
grant select on public.conversion_score_discrimination to authenticated, service_role;
grant select on public.conversion_score_quality to authenticated, service_role;
