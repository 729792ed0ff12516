-- Converting touch: ordinary writes pay nothing (issue 2). The triggers are
-- declared with UPDATE OF and WHEN clauses, and a lead update that does not
-- touch status or converted_at (or an insert of an ordinary touch) calls none of
-- the layer's trigger functions. Counted with track_functions, not timed; the
-- timings are in scripts/bench/bench_trigger_overhead.py.
begin;
select plan(14);

-- Declarations: when each trigger can fire at all.
select
  matches(
    pg_get_triggerdef(t.oid),
    'BEFORE UPDATE OF status, converted_at ON public\.leads FOR EACH ROW '
    || 'WHEN \(\(\(old\.status IS DISTINCT FROM new\.status\) OR',
    'leads_ci_conversion_time_upd: BEFORE UPDATE OF status, converted_at, WHEN one of them changed'
  )
from pg_trigger as t
where t.tgrelid = 'public.leads'::regclass and t.tgname = 'leads_ci_conversion_time_upd';
select
  matches(
    pg_get_triggerdef(t.oid),
    'AFTER UPDATE OF status, converted_at, deleted_at ON public\.leads FOR EACH ROW WHEN \(',
    'leads_ci_mark_converting_touch: AFTER UPDATE OF status, converted_at, deleted_at, with a WHEN clause'
  )
from pg_trigger as t
where t.tgrelid = 'public.leads'::regclass and t.tgname = 'leads_ci_mark_converting_touch';
select
  matches(
    pg_get_triggerdef(t.oid),
    'BEFORE INSERT ON public\.leads FOR EACH ROW WHEN \(',
    'leads_ci_conversion_time_ins: BEFORE INSERT, only for rows that are converted or carry converted_at'
  )
from pg_trigger as t
where t.tgrelid = 'public.leads'::regclass and t.tgname = 'leads_ci_conversion_time_ins';
-- Bookings are seen by the statement triggers that keep the touches (one call
-- a statement, which sees inserts, updates and deletes alike; issue 13).
select
  matches(
    pg_get_triggerdef(t.oid),
    'AFTER INSERT ON public\.activities REFERENCING NEW TABLE AS changed_rows FOR EACH STATEMENT',
    'activities_ci_lead_touches_ins: AFTER INSERT, once a statement, sees bookings too'
  )
from pg_trigger as t
where t.tgrelid = 'public.activities'::regclass and t.tgname = 'activities_ci_lead_touches_ins';
select is_empty(
  $$ select t.tgname from pg_trigger as t
     where t.tgrelid in ('public.leads'::regclass, 'public.activities'::regclass)
       and not t.tgisinternal
       and t.tgfoid in (
         'ci_private.leads_conversion_time()'::regprocedure,
         'ci_private.leads_mark_converting_touch()'::regprocedure,
         'ci_private.activities_record_conversion()'::regprocedure
       )
       and t.tgqual is null $$,
  'no converting-touch trigger lacks a WHEN clause'
);
select is_empty(
  $$ select t.tgname from pg_trigger as t
     where t.tgrelid in ('public.leads'::regclass, 'public.activities'::regclass)
       and not t.tgisinternal
       and t.tgfoid in (
         'ci_private.leads_conversion_time()'::regprocedure,
         'ci_private.leads_mark_converting_touch()'::regprocedure,
         'ci_private.activities_record_conversion()'::regprocedure
       )
       and (t.tgtype::int & 16) <> 0
       and t.tgattr = ''::int2vector $$,
  'no converting-touch UPDATE trigger fires on an update of any column'
);

-- Behaviour: count the calls of the layer's functions in this transaction.
set local track_functions = 'all';

create function pg_temp.calls() returns bigint
language sql stable as $$
  select coalesce(sum(pg_stat_get_xact_function_calls(f.oid)), 0)::bigint
  from unnest(array[
    'ci_private.leads_conversion_time()'::regprocedure,
    'ci_private.leads_mark_converting_touch()'::regprocedure,
    'ci_private.activities_record_conversion()'::regprocedure,
    'ci_private.mark_converting_touch(uuid)'::regprocedure,
    'ci_private.remark_leads(uuid[], uuid)'::regprocedure,
    'ci_private.derive_conversions(uuid[], boolean, uuid)'::regprocedure
  ]) as f (oid)
$$;

select from set_config('t.client', gen_random_uuid()::text, true);
insert into public.clients (id, name) values (current_setting('t.client')::uuid, 'trigger cost');
insert into public.leads (client_id, first_name, status)
select
  current_setting('t.client')::uuid as client_id,
  'lead ' || i as first_name,
  'in_sequence' as status
from generate_series(1, 200) as i;
insert into public.activities (client_id, lead_id, channel, action, created_at)
select
  l.client_id,
  l.id,
  'email' as channel,
  x.action,
  now() - interval '1 day' as created_at
from public.leads as l
cross join (values ('sent'), ('opened'), ('email_sent')) as x (action)
where l.client_id = current_setting('t.client')::uuid;

select is(pg_temp.calls(), 0::bigint, 'inserting open leads and ordinary activities calls no trigger function');

update public.leads set first_name = first_name || ''
where client_id = current_setting('t.client')::uuid;
select is(pg_temp.calls(), 0::bigint, 'an update of first_name calls no trigger function');

update public.leads set updated_at = now()
where client_id = current_setting('t.client')::uuid;
select is(pg_temp.calls(), 0::bigint, 'an update of updated_at calls no trigger function');

update public.leads set status = status, converted_at = converted_at, title = 'CEO'
where client_id = current_setting('t.client')::uuid;
select is(pg_temp.calls(), 0::bigint, 'a full-row write (status, converted_at unchanged) calls none: the WHEN clauses stop it');

update public.leads set status = 'enriched'
where client_id = current_setting('t.client')::uuid;
select is(
  pg_stat_get_xact_function_calls('ci_private.leads_mark_converting_touch()'::regprocedure), null,
  'a status change between two open statuses does not look for a converting touch'
);

update public.leads set status = 'converted'
where client_id = current_setting('t.client')::uuid;
select is(
  pg_stat_get_xact_function_calls('ci_private.leads_mark_converting_touch()'::regprocedure), 200::bigint,
  'a conversion does: once per converted lead'
);
select is(
  (
    select count(*)::int from public.activities as a
    where a.client_id = current_setting('t.client')::uuid and a.led_to_booking
  ),
  200,
  '... and marks one touch per lead'
);

insert into public.activities (client_id, lead_id, channel, action, created_at)
select
  l.client_id,
  l.id,
  'email' as channel,
  'meeting_booked' as action, -- noqa: RF04
  now() as created_at
from public.leads as l
where l.client_id = current_setting('t.client')::uuid
order by l.id limit 10;
-- (Counted at the triggers' entry, the generic-plan wrapper: derive_conversions
-- itself is entered twice for it, once to hand off to the wrapper.)
select is(
  pg_stat_get_xact_function_calls('ci_private.derive_conversions_generic(uuid[], boolean)'::regprocedure), 1::bigint,
  'ten booking activities in one statement re-derive their leads once'
);

select * from finish();
rollback;
