-- Issue 14: WHEN and HOW count converted leads whose booking precedes every
-- outbound touch (no converting touch); the adjusted table names a segment
-- only when its observed/expected interval excludes 1.
begin;
select plan(8);

create temp table ids as select gen_random_uuid() as c;
insert into public.clients (id, name, timezone) select c, 'adjusted metadata', 'UTC' from ids;

-- Three leads, one email each: one booked after its touch, one booked a day
-- before its (only) touch, one failed.
with l as (
  insert into public.leads (client_id, first_name, status, timezone)
  select (select c from ids), 'lead ' || i, 'in_sequence', 'UTC' from generate_series(1, 3) as i
  returning id, substring(first_name from 6)::int as i
)
insert into public.activities (client_id, lead_id, channel, action, created_at)
select (select c from ids), l.id, 'email', 'sent', timestamptz '2026-06-01 10:00+00' from l;

update public.leads as l
set status = case when x.i = 3 then 'dead' else 'converted' end::public.lead_status,
  converted_at = case
    when x.i = 1 then timestamptz '2026-06-01 12:00+00'
    when x.i = 2 then timestamptz '2026-05-31 10:00+00'
  end
from (select id, substring(first_name from 6)::int as i from public.leads where client_id = (select c from ids)) as x
where l.id = x.id;

select is(
  (select (public.detect_when_patterns((select c from ids)) #>> '{metadata,bookings_without_prior_touch}')::integer),
  1, 'WHEN counts the lead booked before any touch'
);
select is(
  (select (public.detect_how_patterns((select c from ids)) #>> '{metadata,bookings_without_prior_touch}')::integer),
  1, 'and so does HOW'
);
select is(
  (select (public.detect_when_patterns((select c from ids)) #>> '{metadata,skipped,non_finite_created_at}')::integer),
  0, 'non-finite sends are counted (none here)'
);

-- The adjusted table.
create temp table t as select ci_private.adjusted_rate_table(
  '[{"k": "stratum", "conversions": 40, "sample": 400, "expected": 40},
    {"k": "hot", "conversions": 60, "sample": 400, "expected": 30},
    {"k": "cold", "conversions": 5, "sample": 400, "expected": 30},
    {"k": "tiny", "conversions": 3, "sample": 10, "expected": 0.5}]'::jsonb, 0.1, 30
) as r;
select is((select r -> 0 ->> 'k' from t), 'hot', 'ranked by the adjusted figure');
select is(
  (select e ->> 'significance' from t, jsonb_array_elements(r) as x (e) where e ->> 'k' = 'stratum'),
  'none', 'a segment that is exactly what its positions predict is named nothing'
);
select is(
  (select (e ->> 'adjusted_lift')::numeric from t, jsonb_array_elements(r) as x (e) where e ->> 'k' = 'stratum'),
  1.00, 'observed / expected = 1'
);
select is(
  (select string_agg(e ->> 'k' || ':' || (e ->> 'significance'), ',' order by e ->> 'k')
   from t, jsonb_array_elements(r) as x (e)),
  'cold:below,hot:above,stratum:none', 'winner and loser by their intervals; under 30 trials not ranked'
);
select ok(
  (select bool_and((e #>> '{adjusted_lift_ci,0}')::numeric <= (e ->> 'adjusted_lift')::numeric
     and (e ->> 'adjusted_lift')::numeric <= (e #>> '{adjusted_lift_ci,1}')::numeric)
   from t, jsonb_array_elements(r) as x (e)),
  'each ratio inside its interval'
);

select * from finish();
rollback;
