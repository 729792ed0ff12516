-- History is the truth (contract section 3, issue 13): the converting-touch
-- mark, the kept touches and the lead's conversion state follow every write
-- path of the host. One case per path; each fails when its trigger is
-- disabled (docs/conversions.md lists which trigger each one needs).
begin;
select plan(34);

\ir include/converting_touch_fixture.psql

-- A lead's kept touches as a reader sees them (its client's rows brought up
-- to date first, as the refresh and the detectors do).
create function pg_temp.kept(p_lead text) returns text
language plpgsql as $$
begin
  perform ci_private.sync_lead_touches(l.client_id) from public.leads as l where l.id = pg_temp.id(p_lead);
  return (
    select coalesce(string_agg(coalesce(k.key, t.touch_id::text) || case when t.led_to_booking then '*' else '' end, ',' order by t.touch_no), '')
    from ci_private.lead_touches as t
    left join pg_temp.k as k on t.touch_id = k.id
    where t.lead_id = pg_temp.id(p_lead)
  );
end
$$;

-- The issue's first case: send at 10:00, booking at 12:00, an SMS stamped 11:00 recorded late.
select from pg_temp.lead('late');
select from pg_temp.act('late/10', 'late', 'sent', '2026-09-01 10:00+00');
select from pg_temp.act('late/booked', 'late', 'meeting_booked', '2026-09-01 12:00+00');
select from pg_temp.act('late/11', 'late', 'sent', '2026-09-01 11:00+00', 'sms');
select results_eq($$ select * from pg_temp.marked('late') $$, $$ values ('late', 'late/11') $$,
  'insert: a send stamped before the booking but recorded after it takes the mark');
select is(pg_temp.kept('late'), 'late/10,late/11*', 'insert: ... and the kept touches carry it');

-- The converting touch re-timed past the booking: the mark goes back to the earlier send.
update public.activities set created_at = '2026-09-01 13:00+00' where id = pg_temp.id('late/11');
select results_eq($$ select * from pg_temp.marked('late') $$, $$ values ('late', 'late/10') $$,
  'update of created_at: the converting touch moved past the booking loses the mark');
select is(pg_temp.kept('late'), 'late/10*,late/11', 'update of created_at: ... in the kept touches too');
update public.activities set created_at = '2026-09-01 11:30+00' where id = pg_temp.id('late/11');
select results_eq($$ select * from pg_temp.marked('late') $$, $$ values ('late', 'late/11') $$,
  'update of created_at: an outbound touch moved before the booking takes it');

-- Its action changed to a non-outbound one, and back.
update public.activities set action = 'send_failed' where id = pg_temp.id('late/11');
select results_eq($$ select * from pg_temp.marked('late') $$, $$ values ('late', 'late/10') $$,
  'update of action: a converting touch that turns out failed (send_failed) loses the mark');
update public.activities set action = 'sms_sent' where id = pg_temp.id('late/11');
select results_eq($$ select * from pg_temp.marked('late') $$, $$ values ('late', 'late/11') $$,
  'update of action: ... and takes it back as an outbound action');

-- Deleted.
delete from public.activities where id = pg_temp.id('late/11');
select results_eq($$ select * from pg_temp.marked('late') $$, $$ values ('late', 'late/10') $$,
  'delete: the converting touch deleted, the previous send takes the mark');
select is(pg_temp.kept('late'), 'late/10*', 'delete: ... and leaves the kept touches');

-- The booking re-timed, then deleted: the lead follows it.
update public.activities set created_at = '2026-09-01 09:00+00' where id = pg_temp.id('late/booked');
select is(pg_temp.converted_at('late'), '2026-09-01 09:00+00'::timestamptz, 'booking re-timed: converted_at follows it');
select is_empty($$ select * from pg_temp.marked('late') $$, 'booking re-timed: before every send, no converting touch');
delete from public.activities where id = pg_temp.id('late/booked');
select results_eq($$ select pg_temp.status('late'), pg_temp.converted_at('late') $$,
  $$ values ('in_sequence', null::timestamptz) $$,
  'booking deleted: a lead converted by it alone is no longer converted');

-- A status-path conversion survives the deletion of an earlier booking.
select from pg_temp.lead('st');
select from pg_temp.act('st/t1', 'st', 'sent', '2026-09-01 10:00+00');
select from pg_temp.act('st/t2', 'st', 'sent', '2026-09-03 10:00+00');
update public.leads set status = 'converted', converted_at = '2026-09-05 10:00+00' where id = pg_temp.id('st');
select from pg_temp.act('st/booked', 'st', 'meeting_booked', '2026-09-02 10:00+00');
select results_eq($$ select pg_temp.converted_at('st'), (select activity_key from pg_temp.marked('st')) $$,
  $$ values ('2026-09-02 10:00+00'::timestamptz, 'st/t1') $$,
  'status path then an earlier booking: the earliest wins');
delete from public.activities where id = pg_temp.id('st/booked');
select results_eq($$ select pg_temp.status('st'), pg_temp.converted_at('st'), (select activity_key from pg_temp.marked('st')) $$,
  $$ values ('converted', '2026-09-05 10:00+00'::timestamptz, 'st/t2') $$,
  'the booking deleted: the status path''s conversion and its time remain');

-- Un-conversion by status is the truth too: bookings stamped before it stay overruled.
update public.leads set status = 'not_interested' where id = pg_temp.id('st');
select from pg_temp.act('st/booked_late', 'st', 'meeting_booked', '2026-09-06 10:00+00');
select results_eq($$ select pg_temp.status('st'), pg_temp.converted_at('st') $$,
  $$ values ('not_interested', null::timestamptz) $$,
  'un-conversion: a booking stamped before it, recorded after it, converts nothing');

-- A CRM merge: a converted duplicate's activities moved onto an open lead.
select from pg_temp.lead('dup');
select from pg_temp.lead('keep');
select from pg_temp.act('dup/t1', 'dup', 'sent', '2026-09-01 10:00+00');
select from pg_temp.act('dup/booked', 'dup', 'meeting_booked', '2026-09-02 10:00+00');
select from pg_temp.act('keep/t1', 'keep', 'sent', '2026-09-01 11:00+00');
update public.activities set lead_id = pg_temp.id('keep') where id = pg_temp.id('dup/t1');
select results_eq($$ select pg_temp.status('keep'), (select count(*)::int from pg_temp.marked('keep')), (select activity_key from pg_temp.marked('dup')) $$,
  $$ values ('in_sequence', 0, null::text) $$,
  'merge of a marked touch onto an open lead: no mark on the open lead, none left on the duplicate');
update public.activities set lead_id = pg_temp.id('keep') where lead_id = pg_temp.id('dup');
select results_eq(
  $$ select pg_temp.status('dup'), pg_temp.status('keep'), pg_temp.converted_at('keep'), (select activity_key from pg_temp.marked('keep')) $$,
  $$ values ('in_sequence', 'converted', '2026-09-02 10:00+00'::timestamptz, 'keep/t1') $$,
  'merge of the booking: the lead it moved to is converted at its time and marked; the duplicate is not'
);

-- Replica-mode sessions (logical replication, trigger-less loaders) write history too.
select from pg_temp.lead('rep');
set local session_replication_role = replica;
select from pg_temp.act('rep/t1', 'rep', 'sent', '2026-09-01 10:00+00');
select from pg_temp.act('rep/booked', 'rep', 'meeting_booked', '2026-09-01 12:00+00');
set local session_replication_role = origin;
select results_eq(
  $$ select pg_temp.status('rep'), pg_temp.converted_at('rep'), (select activity_key from pg_temp.marked('rep')), pg_temp.kept('rep') $$,
  $$ values ('converted', '2026-09-01 12:00+00'::timestamptz, 'rep/t1', 'rep/t1*') $$,
  'replica mode: a booking converts its lead and marks its touch (the triggers are enabled always)'
);
select is(
  (
    select string_agg(t.tgname || '=' || t.tgenabled::text, ',' order by t.tgname)
    from pg_trigger as t
    where t.tgname in (
      'leads_ci_conversion_time_ins', 'leads_ci_conversion_time_upd', 'leads_ci_mark_converting_touch',
      'activities_ci_lead_touches_ins', 'activities_ci_lead_touches_upd', 'activities_ci_lead_touches_del'
    )
  ),
  'activities_ci_lead_touches_del=A,activities_ci_lead_touches_ins=A,activities_ci_lead_touches_upd=A,'
  || 'leads_ci_conversion_time_ins=A,leads_ci_conversion_time_upd=A,leads_ci_mark_converting_touch=A',
  'every trigger that keeps the conversion state fires always'
);
select from pg_temp.lead('rep2');
select from pg_temp.act('rep2/t1', 'rep2', 'sent', '2026-09-01 10:00+00');
set local session_replication_role = replica;
update public.leads set status = 'converted', converted_at = '2026-09-02 10:00+00' where id = pg_temp.id('rep2');
set local session_replication_role = origin;
select results_eq($$ select * from pg_temp.marked('rep2') $$, $$ values ('rep2', 'rep2/t1') $$,
  'replica mode: a status conversion marks the touch');

-- Non-finite send times are accepted and left out.
select from pg_temp.lead('inf');
select from pg_temp.act('inf/t1', 'inf', 'sent', '2026-09-01 10:00+00');
select lives_ok(
  $$ select pg_temp.act('inf/pos', 'inf', 'sent', 'infinity'), pg_temp.act('inf/neg', 'inf', 'sms_sent', '-infinity', 'sms') $$,
  'a send at +/-infinity is accepted'
);
select lives_ok(
  $$ select pg_temp.act('inf/booked_inf', 'inf', 'meeting_booked', 'infinity') $$,
  'a booking at infinity is accepted'
);
select is(pg_temp.status('inf'), 'in_sequence', '... and converts nothing');
select from pg_temp.act('inf/booked', 'inf', 'meeting_booked', '2026-09-02 10:00+00');
select results_eq($$ select activity_key from pg_temp.marked('inf') $$, $$ values ('inf/t1') $$,
  'a -infinity send is never the converting touch');
select is(pg_temp.kept('inf'), 'inf/t1*', 'touches at +/-infinity are not kept');
update public.activities set created_at = 'infinity' where id = pg_temp.id('inf/t1');
select results_eq($$ select pg_temp.status('inf'), (select count(*)::int from pg_temp.marked('inf')), pg_temp.kept('inf') $$,
  $$ values ('converted', 0, '') $$,
  'the converting touch re-timed to infinity: no converting touch, nothing kept');

-- Erasure: a lead hard-deleted with its activities leaves no personal text in the layer.
select from pg_temp.lead('gone');
insert into public.activities (client_id, lead_id, channel, action, created_at, content_snapshot)
select l.client_id, l.id, 'email', 'sent', '2026-09-01 10:00+00',
  '{"subject": "Jane Roe, about Roe Widgets", "body": "Jane, I saw Roe Widgets is hiring"}'::jsonb
from public.leads as l where l.id = pg_temp.id('gone');
update public.leads set status = 'converted' where id = pg_temp.id('gone');
-- (Content is keyed when the refresh fills it, not on the write.)
select ci_private.fill_content_features(l.client_id) from public.leads as l where l.id = pg_temp.id('gone');
select isnt_empty(
  $$ select 1 from ci_private.content_keys as k where k.label_text like '%Jane%' or (k.features).subject like '%Jane%' $$,
  'erasure: the content key holds the personal text while the touch exists'
);
delete from public.leads where id = pg_temp.id('gone');
select is_empty(
  $$ select 1 from ci_private.content_keys as k where k.label_text like '%Jane%' or (k.features).subject like '%Jane%' $$,
  'erasure: the lead hard-deleted with its activities, no content key keeps its text'
);
select is_empty(
  $$ select 1 from ci_private.lead_touches as t where t.lead_id = pg_temp.id('gone')
     union all select 1 from ci_private.lead_conversion_status as s where s.lead_id = pg_temp.id('gone') $$,
  'erasure: nor any kept touch or status row of the lead'
);

-- Reconciliation: what a trigger could not see (written with the layer's triggers disabled).
select from pg_temp.client('c5');
select from pg_temp.lead('r1', 'c5');
select from pg_temp.lead('r2', 'c5');
select from pg_temp.act('r1/t1', 'r1', 'sent', '2026-09-01 10:00+00');
alter table public.activities disable trigger user;
select from pg_temp.act('r1/booked', 'r1', 'meeting_booked', '2026-09-02 10:00+00');
select from pg_temp.act('r2/t1', 'r2', 'sent', '2026-09-01 10:00+00');
update public.activities set led_to_booking = true where id = pg_temp.id('r2/t1');
alter table public.activities enable trigger user;
select is(
  public.reconcile_conversions(pg_temp.id('c5')) - 'client_id',
  '{"leads_converted": 1, "leads_unconverted": 0, "leads_retimed": 0, "marks_added": 1, "marks_removed": 1,
    "lead_touches_leads": 2, "lead_touches_rows": 2}'::jsonb,
  'reconcile_conversions: converts the booked lead, moves the marks, brings the kept touches up to date (a send not read yet, one missed), and counts them'
);
select results_eq(
  $$ select pg_temp.status('r1'), pg_temp.converted_at('r1'), (select activity_key from pg_temp.marked('r1')), pg_temp.kept('r1'), pg_temp.kept('r2') $$,
  $$ values ('converted', '2026-09-02 10:00+00'::timestamptz, 'r1/t1', 'r1/t1*', 'r2/t1') $$,
  'reconcile_conversions: the state follows history'
);
select is(
  public.reconcile_conversions(pg_temp.id('c5')) - 'client_id',
  '{"leads_converted": 0, "leads_unconverted": 0, "leads_retimed": 0, "marks_added": 0, "marks_removed": 0,
    "lead_touches_leads": 0, "lead_touches_rows": 0}'::jsonb,
  'reconcile_conversions: a second run corrects nothing'
);
select isnt(obj_description('public.reconcile_conversions(uuid)'::regprocedure, 'pg_proc'), null,
  'reconcile_conversions has a comment');
select from set_config('t.c5', pg_temp.id('c5')::text, true);
set local role authenticated;
select throws_ok(
  format('select public.reconcile_conversions(%L)', current_setting('t.c5')), '42501', null,
  'reconcile_conversions: not for authenticated users'
);
reset role;

select * from finish();
rollback;
