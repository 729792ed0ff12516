-- The host's lead writes after issue 15 (part 2): the cheaper mechanisms give
-- the same results as the rules (contract sections 3 and 4).
--   * the mark trigger re-marks one lead itself (scalar statements): the mark
--     lands on the converting touch, moves when the conversion is re-timed,
--     goes when the lead is un-converted, and is copied into lead_touches;
--   * status has its own scoring trigger (one WHEN comparison): a status
--     change rescores exactly as a rescore does (score, components,
--     weights_used, scored_at), alone or with another scored field;
--   * the conversion time reads nothing for a change between two open
--     statuses, and still clears a stray converted_at there;
--   * the triggers' calls of derive_conversions / remark_leads run with
--     generic plans through their wrappers; the reconciliation does not;
--   * the status path's own triggers (mark, conversion time) keep generic
--     plans (set by ALTER FUNCTION, which a later CREATE OR REPLACE without
--     the SET clause would drop): planned at every call they cost 2x.
begin;
select plan(29);

select from set_config('t.client', gen_random_uuid()::text, true);
insert into public.clients (id, name, icp_industries, icp_locations)
values (current_setting('t.client')::uuid, 'lead write path', array['software'], array['US']);
update public.clients set als_learned_weights = '{"data_quality": 0.10, "authority": 0.35, "company_fit": 0.25, "timing": 0.15}'
where id = current_setting('t.client')::uuid;

create temp table k (key text primary key, id uuid not null default gen_random_uuid()) on commit drop;
create function pg_temp.new_id(p_key text) returns uuid
language sql as $$
  insert into k (key) values (p_key) on conflict (key) do update set key = excluded.key returning id
$$;
create function pg_temp.id(p_key text) returns uuid
language sql stable as $$
  select k.id from k where k.key = p_key
$$;
create function pg_temp.lead(p_key text, p_status text default 'in_sequence') returns void
language sql as $$
  insert into public.leads (id, client_id, email, email_verified, title, organization_industry,
    organization_employee_count, organization_country, employment_start_date, status)
  values (pg_temp.new_id(p_key), current_setting('t.client')::uuid, p_key || '@example.com', true, 'VP Sales',
    'software', 30, 'US', current_date - 100, p_status::public.lead_status)
$$;
create function pg_temp.act(p_key text, p_lead text, p_action text, p_at timestamptz) returns void
language sql as $$
  insert into public.activities (id, client_id, lead_id, channel, action, created_at)
  values (pg_temp.new_id(p_key), current_setting('t.client')::uuid, pg_temp.id(p_lead), 'email', p_action, p_at)
$$;
-- The marked touches of a lead, by key.
create function pg_temp.marks(p_lead text) returns text []
language sql as $$
  select coalesce(array_agg(k.key order by k.key), '{}')
  from public.activities as a inner join k on a.id = k.id
  where a.lead_id = pg_temp.id(p_lead) and a.led_to_booking
$$;
-- The kept rows' marks of a lead, by key, as a reader sees them (brought up
-- to date first, as the refresh and the detectors do).
create function pg_temp.kept_marks(p_lead text) returns text []
language plpgsql as $$
begin
  perform ci_private.sync_lead_touches(current_setting('t.client')::uuid);
  return (
    select coalesce(array_agg(k.key order by k.key), '{}')
    from ci_private.lead_touches as t inner join k on t.touch_id = k.id
    where t.lead_id = pg_temp.id(p_lead) and t.led_to_booking
  );
end
$$;
-- What a rescore gives a lead now, beside what it has.
create function pg_temp.score_matches(p_lead text) returns boolean
language plpgsql as $$
declare
  v_have record;
  v_want record;
begin
  select l.als_score, l.als_tier, l.als_components, l.als_weights_used, l.scored_at,
    l.als_data_quality, l.als_authority, l.als_company_fit, l.als_timing, l.als_risk
  into v_have from public.leads as l where l.id = pg_temp.id(p_lead);
  perform ci_private.rescore_leads(current_setting('t.client')::uuid, pg_temp.id(p_lead));
  select l.als_score, l.als_tier, l.als_components, l.als_weights_used, l.scored_at,
    l.als_data_quality, l.als_authority, l.als_company_fit, l.als_timing, l.als_risk
  into v_want from public.leads as l where l.id = pg_temp.id(p_lead);
  return v_have is not distinct from v_want;
end
$$;

-- The mark, on the status path.
select pg_temp.lead('m');
select pg_temp.act('m/t1', 'm', 'sent', now() - interval '3 days');
select pg_temp.act('m/t2', 'm', 'email_sent', now() - interval '2 days');
select pg_temp.act('m/open', 'm', 'opened', now() - interval '1 day');
update public.leads set status = 'converted' where id = pg_temp.id('m');
select is(pg_temp.marks('m'), array['m/t2'], 'a conversion marks the last outbound touch, once');
select is(pg_temp.kept_marks('m'), array['m/t2'], '... and the kept touches carry the mark');
select is(
  (select converted_at from public.leads where id = pg_temp.id('m')), now(),
  '... converted at the time of the change'
);
update public.leads set converted_at = now() - interval '2 days 12 hours' where id = pg_temp.id('m');
select is(pg_temp.marks('m'), array['m/t1'], 'a conversion re-timed before the last touch moves the mark to the one before');
select is(pg_temp.kept_marks('m'), array['m/t1'], '... in the kept touches too');
update public.leads set converted_at = now() - interval '3 days 1 hour' where id = pg_temp.id('m');
select is(pg_temp.marks('m'), '{}'::text [], 'a conversion re-timed before every touch marks none');
update public.leads set converted_at = now() - interval '1 hour' where id = pg_temp.id('m');
select is(pg_temp.marks('m'), array['m/t2'], 'and re-timed after them marks the last again');
select pg_temp.act('m/late', 'm', 'sent', now() + interval '1 hour');
select is(pg_temp.marks('m'), array['m/t2'], 'a touch sent after the conversion is never marked');
update public.leads set status = 'not_interested' where id = pg_temp.id('m');
select is(pg_temp.marks('m'), '{}'::text [], 'un-converting removes the mark');
select is(pg_temp.kept_marks('m'), '{}'::text [], '... from the kept touches too');
select is(
  (select unconverted_at is not null from ci_private.lead_conversion_status where lead_id = pg_temp.id('m')), true,
  '... and records the un-conversion (history: earlier bookings stay overruled)'
);

-- A mark set by hand on a lead about to convert is taken off by the conversion.
select pg_temp.lead('h');
select pg_temp.act('h/t1', 'h', 'sent', now() - interval '3 days');
select pg_temp.act('h/t2', 'h', 'sent', now() - interval '2 days');
alter table public.activities disable trigger activities_ci_lead_touches_upd;
update public.activities set led_to_booking = true where id = pg_temp.id('h/t1');
alter table public.activities enable trigger activities_ci_lead_touches_upd;
update public.leads set status = 'converted' where id = pg_temp.id('h');
select is(pg_temp.marks('h'), array['h/t2'], 'a conversion leaves exactly one mark, whatever the touches carried');

-- Ties: the greater id wins.
select pg_temp.lead('tie');
insert into public.activities (id, client_id, lead_id, channel, action, created_at)
select x.id, current_setting('t.client')::uuid, pg_temp.id('tie'), 'email', 'sent', now() - interval '1 day'
from (values ('00000000-0000-0000-0000-0000000000a1'::uuid), ('00000000-0000-0000-0000-0000000000a2'::uuid)) as x (id);
update public.leads set status = 'converted' where id = pg_temp.id('tie');
select is(
  (select array_agg(a.id) from public.activities as a where a.lead_id = pg_temp.id('tie') and a.led_to_booking),
  array['00000000-0000-0000-0000-0000000000a2'::uuid],
  'two touches at the same time: the greater id is the mark'
);

-- Scoring on status changes: what a rescore gives.
select pg_temp.lead('s');
update public.leads set scored_at = now() - interval '1 day', als_score = -1 where id = pg_temp.id('s');
update public.leads set status = 'converted' where id = pg_temp.id('s');
select ok(pg_temp.score_matches('s'), 'a conversion rescores the lead: score, components, weights used, scored_at');
select is(
  (select (als_weights_used ->> 'authority')::numeric from public.leads where id = pg_temp.id('s')), 0.35,
  '... with the weights in force (the learned ones)'
);
update public.leads set status = 'bounced' where id = pg_temp.id('s');
select is(
  (select als_risk from public.leads where id = pg_temp.id('s')), 10,
  'a status change to bounced counts the bounce in risk'
);
select ok(pg_temp.score_matches('s'), '... as a rescore does');
update public.leads set status = 'unsubscribed', title = 'Intern' where id = pg_temp.id('s');
select is(
  (select (als_risk, als_authority) from public.leads where id = pg_temp.id('s')), (15, 5),
  'status and title in one statement: both count'
);
select ok(pg_temp.score_matches('s'), '... as a rescore does');
update public.leads set scored_at = now() - interval '1 day' where id = pg_temp.id('s');
update public.leads set status = status, first_name = 'x' where id = pg_temp.id('s');
select is(
  (select scored_at from public.leads where id = pg_temp.id('s')), now() - interval '1 day',
  'a write that leaves status as it was does not rescore'
);

-- Every scored field is watched by one of the two update triggers, and status
-- by its own with one comparison.
select is(
  (
    select array_agg(a.attname::text order by a.attname::text)
    from pg_trigger as t
    cross join lateral unnest(t.tgattr::int2 []) as c (attnum)
    inner join pg_attribute as a on a.attrelid = t.tgrelid and a.attnum = c.attnum
    where t.tgrelid = 'public.leads'::regclass and t.tgname in ('leads_ci_score_upd', 'leads_ci_score_status_upd')
  ),
  array[
    'bounce_count', 'client_id', 'email', 'email_verified', 'employment_start_date', 'linkedin_url',
    'organization_country', 'organization_employee_count', 'organization_industry', 'organization_is_hiring',
    'organization_latest_funding_date', 'personal_email', 'phone', 'phone_verified', 'status', 'title'
  ],
  'the scoring triggers watch the sixteen scored fields, each once'
);
select is(
  (select pg_get_triggerdef(oid) from pg_trigger where tgname = 'leads_ci_score_status_upd'),
  'CREATE TRIGGER leads_ci_score_status_upd BEFORE UPDATE OF status ON public.leads FOR EACH ROW '
  || 'WHEN ((old.status IS DISTINCT FROM new.status)) EXECUTE FUNCTION ci_private.leads_score()',
  'status is scored by its own trigger, one comparison'
);

-- A converted_at left on an open lead (written with the triggers disabled) is
-- cleared by the next status change between open statuses.
select pg_temp.lead('stray', 'new');
alter table public.leads disable trigger leads_ci_conversion_time_upd;
update public.leads set converted_at = now() - interval '1 day' where id = pg_temp.id('stray');
alter table public.leads enable trigger leads_ci_conversion_time_upd;
update public.leads set status = 'in_sequence' where id = pg_temp.id('stray');
select is(
  (select converted_at from public.leads where id = pg_temp.id('stray')), null,
  'a change between open statuses clears a stray converted_at'
);

-- The triggers' path goes through the generic-plan wrappers, the
-- reconciliation of a client does not.
set local track_functions = 'all';
select pg_temp.lead('b');
select pg_temp.act('b/t', 'b', 'sent', now() - interval '1 day');
select pg_temp.act('b/book', 'b', 'meeting_booked', now() - interval '1 hour');
select is(
  (
    select (l.status::text, l.converted_at, pg_temp.marks('b'))
    from public.leads as l where l.id = pg_temp.id('b')
  ),
  ('converted'::text, now() - interval '1 hour', array['b/t']),
  'a booking converts at its time and marks the touch before it'
);
select ok(
  pg_stat_get_xact_function_calls('ci_private.derive_conversions_generic(uuid[], boolean)'::regprocedure) >= 1,
  '... through the wrapper with cached plans'
);
select pg_temp.act('b/t2', 'b', 'sent', now() - interval '2 hours');
select is(pg_temp.marks('b'), array['b/t2'], 'a touch sent late but before the booking becomes the mark');
select ok(
  pg_stat_get_xact_function_calls('ci_private.remark_leads_generic(uuid[])'::regprocedure) >= 1,
  '... re-marked through the wrapper with cached plans'
);
select ok(
  (
    with before as (
      select
        pg_stat_get_xact_function_calls('ci_private.derive_conversions_generic(uuid[], boolean)'::regprocedure) as d,
        pg_stat_get_xact_function_calls('ci_private.remark_leads_generic(uuid[])'::regprocedure) as r
    ),

    run as (
      select ci_private.reconcile_client_conversions(current_setting('t.client')::uuid) as res
    )

    select
      (run.res ->> 'marks_added')::int = 0 and (run.res ->> 'leads_converted')::int = 0
      and pg_stat_get_xact_function_calls('ci_private.derive_conversions_generic(uuid[], boolean)'::regprocedure)
      = before.d
    from before, run
  ),
  'the reconciliation finds nothing to correct and plans per call as before (no wrapper)'
);

select is(
  (
    select array_agg(p.oid::regprocedure::text order by p.oid::regprocedure::text)
    from pg_proc as p
    where p.oid in (
      'ci_private.leads_mark_converting_touch()'::regprocedure, 'ci_private.leads_conversion_time()'::regprocedure
    )
      and p.proconfig @> array['plan_cache_mode=force_generic_plan']
  ),
  array['ci_private.leads_conversion_time()', 'ci_private.leads_mark_converting_touch()'],
  'the status path''s triggers plan once (generic plans)'
);

select * from finish();
rollback;
