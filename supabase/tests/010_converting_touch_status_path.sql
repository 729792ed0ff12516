-- Converting touch, path A: the lead's status becomes 'converted' (contract
-- section 3). Every rule of the contract on this path, with the host's own
-- action values. Path A converts at now() (the transaction's time) unless the
-- writer sets converted_at in the same update, so touch times here are relative
-- to now(). Path B (booking activities) is in 011, backfill and bad input in 012.
begin;
select plan(39);

\ir include/converting_touch_fixture.psql

-- Rule: every outbound action counts, the host's 'sent' on each channel and the
-- seed's names; a later non-outbound activity (opened, replied, clicked) does not.
select from (
  values
  ('sent', 'email'), ('sent', 'sms'), ('sent', 'linkedin'), ('sent', 'voice'), ('sent', 'mail'),
  ('email_sent', 'email'), ('sms_sent', 'sms'), ('linkedin_sent', 'linkedin'),
  ('voice_completed', 'voice'), ('connection_sent', 'linkedin'), ('message_sent', 'linkedin')
) as x (action, channel)
cross join lateral pg_temp.lead('a1.' || x.action || '.' || x.channel);
select from pg_temp.k as k
cross join
  lateral pg_temp.act(
    k.key || '/touch', k.key, split_part(k.key, '.', 2), now() - interval '2 days', split_part(k.key, '.', 3)
  )
where k.kind = 'lead' and k.key like 'a1.%';
select from pg_temp.k as k
cross join (values ('opened', 1), ('replied', 2), ('clicked', 3)) as x (action, o)
cross join lateral pg_temp.act(k.key || '/' || x.action, k.key, x.action, now() - interval '1 day' + x.o * interval '1 minute')
where k.kind = 'lead' and k.key like 'a1.%';

update public.leads set status = 'converted'
where id in (
  select k.id from pg_temp.k as k
  where k.kind = 'lead' and k.key like 'a1.%'
);

select results_eq(
  $$ select * from pg_temp.marked('a1.%') $$,
  $$ select k.key, k.key || '/touch' from pg_temp.k as k where k.kind = 'lead' and k.key like 'a1.%' order by 1, 2 $$,
  'A: each outbound action (host sent on every channel, seed names) is the mark, once per lead'
);
select is(
  (
    select count(*)::int from public.leads as l
    where
      l.id in (
        select k.id from pg_temp.k as k
        where k.kind = 'lead' and k.key like 'a1.%'
      )
      and l.status = 'converted' and l.converted_at = now()
  ),
  11,
  'A: a status change converts at the time of the change'
);

-- Rule: activities that are not outbound touches are never marked.
select from pg_temp.lead('a2');
select from (values ('opened', 1), ('replied', 2), ('clicked', 3), ('delivered', 4), ('bounced', 5), ('note', 6)) as x (action, o)
cross join lateral pg_temp.act('a2/' || x.action, 'a2', x.action, now() - interval '1 day' + x.o * interval '1 minute');
update public.leads set status = 'converted'
where id = pg_temp.id('a2');
select is(pg_temp.status('a2'), 'converted', 'A: a lead with only non-outbound activities converts');
select is_empty($$ select * from pg_temp.marked('a2') $$, 'A: opened/replied/clicked/delivered/bounced are never marked');

-- Rule: the mark is the last outbound touch at or before converted_at.
select from pg_temp.lead('a3');
select from pg_temp.act('a3/t1', 'a3', 'email_sent', now() - interval '3 days');
select from pg_temp.act('a3/t2', 'a3', 'sent', now() - interval '2 days', 'sms');
select from pg_temp.act('a3/t3', 'a3', 'sent', now() - interval '1 day', 'linkedin');
update public.leads set status = 'converted'
where id = pg_temp.id('a3');
select results_eq(
  $$ select * from pg_temp.marked('a3') $$, $$ values ('a3', 'a3/t3') $$,
  'A: the last outbound touch before the conversion is the mark, and the only one'
);

select from pg_temp.lead('a3b');
select from pg_temp.act('a3b/before', 'a3b', 'sent', '2026-06-01 11:00+00');
select from pg_temp.act('a3b/at', 'a3b', 'sent', '2026-06-01 12:00+00');
select from pg_temp.act('a3b/after', 'a3b', 'sent', '2026-06-01 12:00:00.000001+00');
update public.leads set status = 'converted', converted_at = '2026-06-01 12:00+00'
where id = pg_temp.id('a3b');
select results_eq(
  $$ select * from pg_temp.marked('a3b') $$, $$ values ('a3b', 'a3b/at') $$,
  'A: a touch exactly at converted_at counts, one a microsecond later does not'
);

-- Rule: ties at the same created_at go to the greater id, whatever the insert order.
select from pg_temp.lead('a5');
select from pg_temp.act('a5/early', 'a5', 'sent', now() - interval '2 days');
select from pg_temp.act(
  'a5/lo', 'a5', 'sent', now() - interval '1 day', 'email', null,
  ('00000000' || substr(gen_random_uuid()::text, 9))::uuid
);
select from pg_temp.act(
  'a5/hi', 'a5', 'linkedin_sent', now() - interval '1 day', 'linkedin', null,
  ('ffffffff' || substr(gen_random_uuid()::text, 9))::uuid
);
select from pg_temp.act(
  'a5/mid', 'a5', 'sent', now() - interval '1 day', 'sms', null,
  ('80000000' || substr(gen_random_uuid()::text, 9))::uuid
);
update public.leads set status = 'converted'
where id = pg_temp.id('a5');
select results_eq(
  $$ select * from pg_temp.marked('a5') $$, $$ values ('a5', 'a5/hi') $$,
  'A: a tie at the same created_at goes to the greater id'
);

-- Rule: touches after converted_at are never marked, also when they already
-- existed; history is the truth (contract section 3): a send stamped before the
-- conversion but recorded after it (a late webhook) becomes the converting touch.
select from pg_temp.lead('a6');
select from pg_temp.act('a6/before', 'a6', 'sent', now() - interval '1 day');
select from pg_temp.act('a6/future', 'a6', 'sent', now() + interval '1 day');
update public.leads set status = 'converted'
where id = pg_temp.id('a6');
select results_eq(
  $$ select * from pg_temp.marked('a6') $$, $$ values ('a6', 'a6/before') $$,
  'A: a touch dated after the conversion is not marked'
);
select from pg_temp.act('a6/later', 'a6', 'sent', now() + interval '2 hours');
select from pg_temp.act('a6/late_insert', 'a6', 'sent', now() - interval '1 hour');
select results_eq(
  $$ select * from pg_temp.marked('a6') $$, $$ values ('a6', 'a6/late_insert') $$,
  'A: a touch stamped after the conversion is never marked; one stamped before it but inserted late is (history)'
);

-- Rule: un-conversion removes the mark and clears converted_at.
select from pg_temp.lead('a7');
select from pg_temp.act('a7/t1', 'a7', 'sent', now() - interval '1 day');
update public.leads set status = 'converted'
where id = pg_temp.id('a7');
select results_eq($$ select * from pg_temp.marked('a7') $$, $$ values ('a7', 'a7/t1') $$, 'A: converted lead is marked');
update public.leads set status = 'in_sequence'
where id = pg_temp.id('a7');
select is_empty($$ select * from pg_temp.marked('a7') $$, 'A: status away from converted removes the mark');
select is(pg_temp.converted_at('a7'), null, 'A: status away from converted clears converted_at');

select from pg_temp.lead('a7b');
select from pg_temp.act('a7b/t1', 'a7b', 'sent', now() - interval '1 day');
update public.leads set status = 'converted'
where id = pg_temp.id('a7b');
update public.leads set status = 'not_interested', converted_at = now() - interval '1 hour'
where id = pg_temp.id('a7b');
select is(pg_temp.converted_at('a7b'), null, 'A: a lead that is not converted never keeps a converted_at, even one written');
select is_empty($$ select * from pg_temp.marked('a7b') $$, 'A: a failed status removes the mark');

select from pg_temp.lead('a7c');
update public.leads set converted_at = now() - interval '1 day'
where id = pg_temp.id('a7c');
select is(pg_temp.converted_at('a7c'), null, 'A: converted_at alone does not convert an open lead');

-- Rule: the writer's explicit historical converted_at in the same update wins.
select from pg_temp.lead('a8');
select from pg_temp.act('a8/t1', 'a8', 'sent', now() - interval '10 days');
select from pg_temp.act('a8/t2', 'a8', 'email_sent', now() - interval '5 days');
select from pg_temp.act('a8/t3', 'a8', 'sent', now() - interval '1 day');
update public.leads set status = 'converted', converted_at = now() - interval '3 days'
where id = pg_temp.id('a8');
select is(pg_temp.converted_at('a8'), now() - interval '3 days', 'A: an explicit historical converted_at is kept');
select results_eq(
  $$ select * from pg_temp.marked('a8') $$, $$ values ('a8', 'a8/t2') $$,
  'A: the mark is judged against the explicit converted_at, not now()'
);
update public.leads set converted_at = now() - interval '7 days'
where id = pg_temp.id('a8');
select results_eq(
  $$ select * from pg_temp.marked('a8') $$, $$ values ('a8', 'a8/t1') $$,
  'A: moving converted_at of a converted lead moves its mark'
);

-- Rule: re-conversion re-marks (at the new time, on the then last touch).
select from pg_temp.lead('a9');
select from pg_temp.act('a9/t1', 'a9', 'sent', now() - interval '5 days');
update public.leads set status = 'converted', converted_at = now() - interval '4 days'
where id = pg_temp.id('a9');
update public.leads set status = 'in_sequence'
where id = pg_temp.id('a9');
select from pg_temp.act('a9/t2', 'a9', 'sent', now() - interval '1 hour', 'voice');
update public.leads set status = 'converted'
where id = pg_temp.id('a9');
select is(pg_temp.converted_at('a9'), now(), 'A: re-conversion sets a new converted_at');
select results_eq(
  $$ select * from pg_temp.marked('a9') $$, $$ values ('a9', 'a9/t2') $$,
  'A: re-conversion marks the then last touch, only'
);

-- Rule: on a status-converted lead, an earlier booking activity moves
-- converted_at (and the mark) earlier; a later one changes nothing.
select from pg_temp.lead('a10');
select from pg_temp.act('a10/t1', 'a10', 'sent', now() - interval '5 days');
select from pg_temp.act('a10/t2', 'a10', 'sent', now() - interval '2 days');
update public.leads set status = 'converted'
where id = pg_temp.id('a10');
select from pg_temp.act('a10/booked_early', 'a10', 'meeting_booked', now() - interval '3 days');
select is(pg_temp.converted_at('a10'), now() - interval '3 days', 'A: an earlier booking activity moves converted_at earlier');
select results_eq(
  $$ select * from pg_temp.marked('a10') $$, $$ values ('a10', 'a10/t1') $$,
  'A: ... and moves the mark to the last touch before it'
);
select from pg_temp.act('a10/booked_late', 'a10', 'converted', now() - interval '1 day');
select is(pg_temp.converted_at('a10'), now() - interval '3 days', 'A: a later booking activity is a no-op');
select results_eq(
  $$ select * from pg_temp.marked('a10') $$, $$ values ('a10', 'a10/t1') $$,
  'A: ... the mark stays, and booking activities themselves are never marked'
);

-- Rule: converted twice is not a second conversion: same time, one mark.
select from pg_temp.lead('a11');
select from pg_temp.act('a11/t1', 'a11', 'sent', now() - interval '5 days');
select from pg_temp.act('a11/t2', 'a11', 'sent', now() - interval '2 days');
update public.leads set status = 'converted', converted_at = now() - interval '3 days'
where id = pg_temp.id('a11');
update public.leads set status = 'converted'
where id = pg_temp.id('a11');
select is(pg_temp.converted_at('a11'), now() - interval '3 days', 'A: converting a converted lead again keeps converted_at');
update public.leads set status = 'converted', converted_at = null
where id = pg_temp.id('a11');
select is(pg_temp.converted_at('a11'), now() - interval '3 days', 'A: a converted lead cannot lose its converted_at');
select results_eq(
  $$ select * from pg_temp.marked('a11') $$, $$ values ('a11', 'a11/t1') $$,
  'A: converted twice: still exactly one mark, the same'
);

-- Rule: a wrong mark present before the conversion is cleared by it.
select from pg_temp.lead('a11b');
select from pg_temp.act('a11b/t1', 'a11b', 'sent', now() - interval '5 days');
select from pg_temp.act('a11b/t2', 'a11b', 'sent', now() - interval '2 days');
update public.activities set led_to_booking = true
where id = pg_temp.id('a11b/t1');
update public.leads set status = 'converted'
where id = pg_temp.id('a11b');
select results_eq(
  $$ select * from pg_temp.marked('a11b') $$, $$ values ('a11b', 'a11b/t2') $$,
  'A: conversion leaves exactly one mark, clearing a stale one'
);

-- Rule: a lead without outbound touches converts with no mark.
select from pg_temp.lead('a12');
update public.leads set status = 'converted'
where id = pg_temp.id('a12');
select is(pg_temp.status('a12'), 'converted', 'A: a lead with no touches converts');
select is(pg_temp.converted_at('a12'), now(), 'A: ... with converted_at set');
select is_empty($$ select * from pg_temp.marked('a12') $$, 'A: ... and no mark');

-- Rule: touches recorded under another client on the lead are never marked.
select from pg_temp.lead('a13');
select from pg_temp.act('a13/own', 'a13', 'sent', now() - interval '3 days');
select from pg_temp.act('a13/foreign', 'a13', 'sent', now() - interval '1 day', 'email', 'c2');
update public.leads set status = 'converted'
where id = pg_temp.id('a13');
select results_eq(
  $$ select * from pg_temp.marked('a13') $$, $$ values ('a13', 'a13/own') $$,
  'A: a later touch of another client on the lead is not the mark'
);
select from pg_temp.lead('a13b');
select from pg_temp.act('a13b/foreign', 'a13b', 'email_sent', now() - interval '1 day', 'email', 'c2');
update public.leads set status = 'converted'
where id = pg_temp.id('a13b');
select is_empty($$ select * from pg_temp.marked('a13b') $$, 'A: only another client''s touches: no mark');

-- Rule: a lead inserted as converted gets a conversion time; one inserted open has none.
select from pg_temp.lead('a14', 'c1', 'converted');
select is(pg_temp.converted_at('a14'), now(), 'A: a lead inserted as converted gets converted_at = now()');
select from pg_temp.lead('a14b', 'c1', 'converted', '2026-03-01 09:00+00');
select is(pg_temp.converted_at('a14b'), '2026-03-01 09:00+00'::timestamptz, 'A: ... or the converted_at it was inserted with');
select from pg_temp.lead('a14c', 'c1', 'new', '2026-03-01 09:00+00');
select is(pg_temp.converted_at('a14c'), null, 'A: a lead inserted open has no converted_at');

-- An update that does not change the conversion state leaves the mark alone.
update public.leads set first_name = 'renamed', status = status, converted_at = converted_at
where id = pg_temp.id('a3');
select results_eq(
  $$ select * from pg_temp.marked('a3') $$, $$ values ('a3', 'a3/t3') $$,
  'A: an unrelated update (even one writing status and converted_at unchanged) keeps the mark'
);

-- Invariant over every lead of this file: converted <=> converted_at set, at most one mark.
select is_empty(
  $$ select l.id from public.leads as l where l.client_id = pg_temp.id('c1')
     and (l.status = 'converted') <> (l.converted_at is not null) $$,
  'A: every converted lead has converted_at, no other lead has one'
);
select is_empty(
  $$ select a.lead_id from public.activities as a where a.led_to_booking
     and a.lead_id in (select l.id from public.leads as l where l.client_id = pg_temp.id('c1'))
     group by a.lead_id having count(*) > 1 $$,
  'A: no lead has more than one mark'
);

select * from finish();
rollback;
