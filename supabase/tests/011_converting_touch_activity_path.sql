-- Converting touch, path B: an activity with action 'meeting_booked' or
-- 'converted' is inserted for the lead (contract section 3). Every rule of the
-- contract on this path, with the host's own action values. Path B converts at
-- the activity's created_at, so times here are explicit. Path A (status change)
-- is in 010, backfill and bad input in 012.
begin;
select plan(34);

\ir include/converting_touch_fixture.psql

-- Rule: every outbound action counts, the host's 'sent' on each channel and the
-- seed's names; later non-outbound activities do not. The booking activity
-- converts the lead at its own created_at, whichever of the two actions it has.
select from (
  values
  ('sent', 'email'), ('sent', 'sms'), ('sent', 'linkedin'), ('sent', 'voice'), ('sent', 'mail'),
  ('email_sent', 'email'), ('sms_sent', 'sms'), ('linkedin_sent', 'linkedin'),
  ('voice_completed', 'voice'), ('connection_sent', 'linkedin'), ('message_sent', 'linkedin')
) as x (action, channel)
cross join lateral pg_temp.lead('b1.' || x.action || '.' || x.channel);
select from pg_temp.k as k
cross join
  lateral pg_temp.act(
    k.key || '/touch', k.key, split_part(k.key, '.', 2), '2026-09-01 10:00+00', split_part(k.key, '.', 3)
  )
where k.kind = 'lead' and k.key like 'b1.%';
select from pg_temp.k as k
cross join (values ('opened', 1), ('replied', 2), ('clicked', 3)) as x (action, o)
cross join
  lateral pg_temp.act(k.key || '/' || x.action, k.key, x.action, '2026-09-01 11:00+00'::timestamptz + x.o * interval '1 minute')
where k.kind = 'lead' and k.key like 'b1.%';
select from (
  select
    k.key,
    row_number() over (order by k.key) as n
  from pg_temp.k as k
  where k.kind = 'lead' and k.key like 'b1.%'
) as x
cross join lateral pg_temp.act(
  x.key || '/booked', x.key, case when x.n % 2 = 0 then 'converted' else 'meeting_booked' end, '2026-09-02 09:00+00'
);

select results_eq(
  $$ select * from pg_temp.marked('b1.%') $$,
  $$ select k.key, k.key || '/touch' from pg_temp.k as k where k.kind = 'lead' and k.key like 'b1.%' order by 1, 2 $$,
  'B: each outbound action (host sent on every channel, seed names) is the mark, once per lead'
);
select is(
  (
    select count(*)::int from public.leads as l
    where
      l.id in (
        select k.id from pg_temp.k as k
        where k.kind = 'lead' and k.key like 'b1.%'
      )
      and l.status = 'converted' and l.converted_at = '2026-09-02 09:00+00'
  ),
  11,
  'B: meeting_booked and converted activities convert the lead at the activity''s created_at'
);

-- History imported in one statement, the booking row listed first: the mark
-- is derived once the statement's rows are all in.
select from pg_temp.lead('b1m');
insert into public.activities (client_id, lead_id, channel, action, created_at)
values
(pg_temp.id('c1'), pg_temp.id('b1m'), 'email', 'meeting_booked', '2026-09-01 12:00+00'),
(pg_temp.id('c1'), pg_temp.id('b1m'), 'email', 'sent', '2026-09-01 10:00+00'),
(pg_temp.id('c1'), pg_temp.id('b1m'), 'email', 'sent', '2026-09-01 13:00+00');
select results_eq(
  $$ select a.created_at from public.activities as a where a.lead_id = pg_temp.id('b1m') and a.led_to_booking $$,
  $$ values ('2026-09-01 10:00+00'::timestamptz) $$,
  'B: touches and booking inserted in one statement: the touch before the booking is the mark'
);

-- Rule: activities that are not outbound touches are never marked, the booking itself included.
select from pg_temp.lead('b2');
select from (values ('opened', 1), ('replied', 2), ('clicked', 3), ('delivered', 4), ('note', 5)) as x (action, o)
cross join lateral pg_temp.act('b2/' || x.action, 'b2', x.action, '2026-09-01 10:00+00'::timestamptz + x.o * interval '1 minute');
select from pg_temp.act('b2/booked', 'b2', 'meeting_booked', '2026-09-01 12:00+00');
select is(pg_temp.status('b2'), 'converted', 'B: a lead with only non-outbound activities converts');
select is_empty($$ select * from pg_temp.marked('b2') $$, 'B: opened/replied/clicked and meeting_booked are never marked');

-- Rule: the mark is the last outbound touch at or before the booking's time.
select from pg_temp.lead('b3');
select from pg_temp.act('b3/t1', 'b3', 'email_sent', '2026-09-01 10:00+00');
select from pg_temp.act('b3/t2', 'b3', 'sent', '2026-09-01 11:00+00', 'sms');
select from pg_temp.act('b3/t3', 'b3', 'sent', '2026-09-01 13:00+00', 'linkedin');
select from pg_temp.act('b3/booked', 'b3', 'meeting_booked', '2026-09-01 12:00+00');
select results_eq(
  $$ select * from pg_temp.marked('b3') $$, $$ values ('b3', 'b3/t2') $$,
  'B: the last outbound touch before the booking is the mark, and the only one'
);
select is(pg_temp.converted_at('b3'), '2026-09-01 12:00+00'::timestamptz, 'B: converted_at is the booking''s time, not now()');

select from pg_temp.lead('b3b');
select from pg_temp.act('b3b/before', 'b3b', 'sent', '2026-09-01 11:00+00');
select from pg_temp.act('b3b/at', 'b3b', 'sent', '2026-09-01 12:00+00');
select from pg_temp.act('b3b/after', 'b3b', 'sent', '2026-09-01 12:00:00.000001+00');
select from pg_temp.act('b3b/booked', 'b3b', 'converted', '2026-09-01 12:00+00');
select results_eq(
  $$ select * from pg_temp.marked('b3b') $$, $$ values ('b3b', 'b3b/at') $$,
  'B: a touch exactly at the booking time counts, one a microsecond later does not'
);

-- Rule: ties at the same created_at go to the greater id, whatever the insert order.
select from pg_temp.lead('b5');
select from pg_temp.act('b5/early', 'b5', 'sent', '2026-09-01 08:00+00');
select from pg_temp.act(
  'b5/lo', 'b5', 'sent', '2026-09-01 10:00+00', 'email', null,
  ('00000000' || substr(gen_random_uuid()::text, 9))::uuid
);
select from pg_temp.act(
  'b5/hi', 'b5', 'message_sent', '2026-09-01 10:00+00', 'linkedin', null,
  ('ffffffff' || substr(gen_random_uuid()::text, 9))::uuid
);
select from pg_temp.act(
  'b5/mid', 'b5', 'sent', '2026-09-01 10:00+00', 'sms', null,
  ('80000000' || substr(gen_random_uuid()::text, 9))::uuid
);
select from pg_temp.act('b5/booked', 'b5', 'meeting_booked', '2026-09-01 12:00+00');
select results_eq(
  $$ select * from pg_temp.marked('b5') $$, $$ values ('b5', 'b5/hi') $$,
  'B: a tie at the same created_at goes to the greater id'
);

-- Rule: touches after the booking are never marked, also when inserted later;
-- a send stamped before the booking but inserted after it takes the mark (history).
select from pg_temp.lead('b6');
select from pg_temp.act('b6/before', 'b6', 'sent', '2026-09-01 10:00+00');
select from pg_temp.act('b6/after', 'b6', 'sent', '2026-09-01 14:00+00');
select from pg_temp.act('b6/booked', 'b6', 'meeting_booked', '2026-09-01 12:00+00');
select from pg_temp.act('b6/later', 'b6', 'sent', '2026-09-02 10:00+00');
select from pg_temp.act('b6/late_insert', 'b6', 'sent', '2026-09-01 11:00+00');
select results_eq(
  $$ select * from pg_temp.marked('b6') $$, $$ values ('b6', 'b6/late_insert') $$,
  'B: touches after the booking are never marked; the 11:00 send recorded late is the converting touch'
);

-- Rule: un-conversion (status away from converted) removes the mark and clears converted_at.
select from pg_temp.lead('b7');
select from pg_temp.act('b7/t1', 'b7', 'sent', '2026-09-01 10:00+00');
select from pg_temp.act('b7/booked', 'b7', 'meeting_booked', '2026-09-01 12:00+00');
select results_eq($$ select * from pg_temp.marked('b7') $$, $$ values ('b7', 'b7/t1') $$, 'B: converted lead is marked');
update public.leads set status = 'in_sequence'
where id = pg_temp.id('b7');
select is_empty($$ select * from pg_temp.marked('b7') $$, 'B: status away from converted removes the mark');
select is(pg_temp.converted_at('b7'), null, 'B: ... and clears converted_at');

select from pg_temp.lead('b7b');
select from pg_temp.act('b7b/t1', 'b7b', 'sent', '2026-09-01 10:00+00');
select from pg_temp.act('b7b/booked', 'b7b', 'converted', '2026-09-01 12:00+00');
update public.leads set status = 'dead'
where id = pg_temp.id('b7b');
select is_empty($$ select * from pg_temp.marked('b7b') $$, 'B: a failed status removes the mark');
select is(pg_temp.converted_at('b7b'), null, 'B: ... and clears converted_at');

-- Rule: re-conversion re-marks: a new booking after un-conversion converts at
-- its own time. The un-conversion (at now()) overrules bookings stamped before
-- it, whenever they arrive: a late booking stamped 2026-09-05 converts nothing.
select from pg_temp.act('b7/booked_late', 'b7', 'meeting_booked', '2026-09-05 12:00+00');
select is(pg_temp.converted_at('b7'), null, 'B: a booking stamped before the un-conversion does not re-convert, even recorded after it');
select from pg_temp.act('b7/t2', 'b7', 'sent', now() + interval '1 day', 'voice');
select from pg_temp.act('b7/booked_again', 'b7', 'meeting_booked', now() + interval '1 day 2 hours');
select is(pg_temp.converted_at('b7'), now() + interval '1 day 2 hours', 'B: re-conversion by a new booking sets its time');
select results_eq(
  $$ select * from pg_temp.marked('b7') $$, $$ values ('b7', 'b7/t2') $$,
  'B: re-conversion marks the last touch before the new booking, only'
);

-- Rule: an earlier booking moves converted_at (and the mark) earlier; a later
-- or equal one is a no-op.
select from pg_temp.lead('b10');
select from pg_temp.act('b10/t1', 'b10', 'sent', '2026-09-01 10:00+00');
select from pg_temp.act('b10/t2', 'b10', 'sent', '2026-09-03 10:00+00');
select from pg_temp.act('b10/booked', 'b10', 'meeting_booked', '2026-09-04 12:00+00');
select results_eq($$ select * from pg_temp.marked('b10') $$, $$ values ('b10', 'b10/t2') $$, 'B: first booking marks');
select from pg_temp.act('b10/booked_early', 'b10', 'converted', '2026-09-02 12:00+00');
select is(pg_temp.converted_at('b10'), '2026-09-02 12:00+00'::timestamptz, 'B: an earlier booking moves converted_at earlier');
select results_eq(
  $$ select * from pg_temp.marked('b10') $$, $$ values ('b10', 'b10/t1') $$,
  'B: ... and the mark to the last touch before it'
);
select from pg_temp.act('b10/booked_late', 'b10', 'meeting_booked', '2026-09-06 12:00+00');
select from pg_temp.act('b10/booked_same', 'b10', 'meeting_booked', '2026-09-02 12:00+00');
select is(pg_temp.converted_at('b10'), '2026-09-02 12:00+00'::timestamptz, 'B: a later or equal booking is a no-op');
select results_eq($$ select * from pg_temp.marked('b10') $$, $$ values ('b10', 'b10/t1') $$, 'B: ... the mark stays');

-- Rule: converted twice (two bookings at once, both actions) is one conversion, one mark.
select from pg_temp.lead('b11');
select from pg_temp.act('b11/t1', 'b11', 'sent', '2026-09-01 10:00+00');
select from pg_temp.act('b11/t2', 'b11', 'sent', '2026-09-01 14:00+00');
insert into public.activities (client_id, lead_id, channel, action, created_at)
values
(pg_temp.id('c1'), pg_temp.id('b11'), 'email', 'converted', '2026-09-01 15:00+00'),
(pg_temp.id('c1'), pg_temp.id('b11'), 'email', 'meeting_booked', '2026-09-01 15:00+00'),
(pg_temp.id('c1'), pg_temp.id('b11'), 'email', 'meeting_booked', '2026-09-01 12:00+00');
select is(pg_temp.converted_at('b11'), '2026-09-01 12:00+00'::timestamptz, 'B: several bookings at once: the earliest wins');
select results_eq(
  $$ select * from pg_temp.marked('b11') $$, $$ values ('b11', 'b11/t1') $$,
  'B: converted twice: exactly one mark'
);

-- Rule: a lead without outbound touches converts with no mark.
select from pg_temp.lead('b12');
select from pg_temp.act('b12/booked', 'b12', 'meeting_booked', '2026-09-01 12:00+00');
select is(pg_temp.status('b12'), 'converted', 'B: a lead with no touches converts');
select is(pg_temp.converted_at('b12'), '2026-09-01 12:00+00'::timestamptz, 'B: ... at the booking''s time');
select is_empty($$ select * from pg_temp.marked('b12') $$, 'B: ... and no mark');

-- Rule: touches recorded under another client on the lead are never marked.
select from pg_temp.lead('b13');
select from pg_temp.act('b13/own', 'b13', 'sent', '2026-09-01 09:00+00');
select from pg_temp.act('b13/foreign', 'b13', 'sent', '2026-09-01 11:00+00', 'email', 'c2');
select from pg_temp.act('b13/booked', 'b13', 'meeting_booked', '2026-09-01 12:00+00');
select results_eq(
  $$ select * from pg_temp.marked('b13') $$, $$ values ('b13', 'b13/own') $$,
  'B: a later touch of another client on the lead is not the mark'
);

-- A booking for a lead in a failed status is still a booking: it converts.
select from pg_temp.lead('b14');
update public.leads set status = 'unsubscribed'
where id = pg_temp.id('b14');
select from pg_temp.act('b14/t1', 'b14', 'sent', '2026-09-01 10:00+00');
select from pg_temp.act('b14/booked', 'b14', 'meeting_booked', '2026-09-01 12:00+00');
select results_eq(
  $$ select pg_temp.status('b14'), pg_temp.converted_at('b14') $$,
  $$ values ('converted', '2026-09-01 12:00+00'::timestamptz) $$,
  'B: a booking converts a lead whatever its status was'
);

-- After a booking, the writer may still set the time explicitly (path A on a B lead).
update public.leads set converted_at = '2026-09-01 10:30+00'
where id = pg_temp.id('b3');
select results_eq(
  $$ select * from pg_temp.marked('b3') $$, $$ values ('b3', 'b3/t1') $$,
  'B: an explicit converted_at written later moves the mark'
);

-- Invariant over every lead of this file.
select is_empty(
  $$ select l.id from public.leads as l where l.client_id = pg_temp.id('c1')
     and (l.status = 'converted') <> (l.converted_at is not null) $$,
  'B: every converted lead has converted_at, no other lead has one'
);
select is_empty(
  $$ select a.lead_id from public.activities as a where a.led_to_booking
     and a.lead_id in (select l.id from public.leads as l where l.client_id = pg_temp.id('c1'))
     group by a.lead_id having count(*) > 1 $$,
  'B: no lead has more than one mark'
);
select is_empty(
  $$ select a.id from public.activities as a where a.led_to_booking and a.client_id = pg_temp.id('c1')
     and not ci_private.is_outbound_action(a.action) $$,
  'B: only outbound touches carry a mark'
);

select * from finish();
rollback;
