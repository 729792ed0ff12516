-- Converting touch: bad input, the booking path under PostgREST's roles, and
-- the backfill (contract section 3). A malformed conversion gets a clear error
-- or a defined no-op, never a wrong mark; the backfill re-derives every mark of
-- one client from its history and leaves other clients alone.
begin;
select plan(27);

\ir include/converting_touch_fixture.psql

-- ---------------------------------------------------------------------------
-- Bad input (as the database owner).

-- A booking for a lead that does not exist: a foreign-key error, nothing recorded.
select throws_ok(
  $$ insert into public.activities (client_id, lead_id, channel, action, created_at)
     values (pg_temp.id('c1'), gen_random_uuid(), 'email', 'meeting_booked', '2026-09-01 12:00+00') $$,
  '23503', null,
  'bad: a booking for an unknown lead is refused (foreign key)'
);

-- A booking without a lead.
select throws_ok(
  $$ insert into public.activities (client_id, lead_id, channel, action, created_at)
     values (pg_temp.id('c1'), null, 'email', 'meeting_booked', '2026-09-01 12:00+00') $$,
  '23502', null,
  'bad: a booking with a null lead is refused'
);

-- A booking recorded under client c1 for a lead of client c2.
select from pg_temp.lead('x1', 'c2');
select from pg_temp.act('x1/t1', 'x1', 'sent', '2026-09-01 10:00+00');
select throws_like(
  $$ insert into public.activities (client_id, lead_id, channel, action, created_at)
     values (pg_temp.id('c1'), pg_temp.id('x1'), 'email', 'meeting_booked', '2026-09-01 12:00+00') $$,
  '%belongs to client%',
  'bad: a booking for another client''s lead is refused with a clear error'
);
select throws_ok(
  $$ insert into public.activities (client_id, lead_id, channel, action, created_at)
     values (pg_temp.id('c1'), pg_temp.id('x1'), 'email', 'converted', '2026-09-01 12:00+00') $$,
  '23514', null,
  'bad: ... as a check violation, for either booking action'
);
select results_eq(
  $$ select l.status::text, l.converted_at from public.leads as l where l.id = pg_temp.id('x1') $$,
  $$ values ('in_sequence', null::timestamptz) $$,
  'bad: ... the other client''s lead is not converted'
);
select is_empty(
  $$ select a.id from public.activities as a where a.lead_id = pg_temp.id('x1') and (a.led_to_booking or a.action <> 'sent') $$,
  'bad: ... no mark and no booking row left behind'
);

-- A booking for a soft-deleted lead: recorded, but no conversion and no mark.
select from pg_temp.lead('x2');
select from pg_temp.act('x2/t1', 'x2', 'sent', '2026-09-01 10:00+00');
update public.leads set deleted_at = '2026-09-01 11:00+00'
where id = pg_temp.id('x2');
select lives_ok(
  $$ select pg_temp.act('x2/booked', 'x2', 'meeting_booked', '2026-09-01 12:00+00') $$,
  'bad: a booking for a soft-deleted lead is accepted as history'
);
select results_eq(
  $$ select l.status::text, l.converted_at from public.leads as l where l.id = pg_temp.id('x2') $$,
  $$ values ('in_sequence', null::timestamptz) $$,
  'bad: ... but the soft-deleted lead is not converted'
);
select is_empty($$ select * from pg_temp.marked('x2') $$, 'bad: ... and gets no mark');

-- An action that is almost a booking (case, whitespace) is neither a booking nor a touch.
select from pg_temp.lead('x3');
select from pg_temp.act('x3/t1', 'x3', 'sent', '2026-09-01 10:00+00');
select from pg_temp.act('x3/odd', 'x3', 'Meeting_Booked ', '2026-09-01 12:00+00');
select results_eq(
  $$ select l.status::text from public.leads as l where l.id = pg_temp.id('x3') $$,
  $$ values ('in_sequence') $$,
  'bad: an unknown action (not exactly meeting_booked/converted) converts nothing'
);

-- A booking for a lead converted before this layer existed (status converted,
-- converted_at null, written with triggers off): the booking gives it its time.
set local session_replication_role = replica;
select from pg_temp.lead('x4', 'c1', 'converted');
set local session_replication_role = origin;
select from pg_temp.act('x4/t1', 'x4', 'sent', '2026-09-01 10:00+00');
select from pg_temp.act('x4/booked', 'x4', 'meeting_booked', '2026-09-01 12:00+00');
select results_eq(
  $$ select pg_temp.converted_at('x4'), (select count(*)::int from pg_temp.marked('x4')) $$,
  $$ values ('2026-09-01 12:00+00'::timestamptz, 1) $$,
  'legacy: a booking for a converted lead without converted_at sets it and marks the touch'
);

-- ---------------------------------------------------------------------------
-- The booking path through PostgREST's roles: an admin of c1, a viewer of c1, anon.
with u as (
  insert into auth.users (id) values (gen_random_uuid()), (gen_random_uuid()) returning id
)

insert into pg_temp.k (key, id, kind)
select
  case when row_number() over (order by u.id) = 1 then 'u_admin' else 'u_viewer' end as key,
  u.id,
  'user' as kind
from u;
insert into public.memberships (user_id, client_id, role, accepted_at)
values
(pg_temp.id('u_admin'), pg_temp.id('c1'), 'admin', now()),
(pg_temp.id('u_viewer'), pg_temp.id('c1'), 'viewer', now());
select from pg_temp.lead('r1');
select from pg_temp.act('r1/t1', 'r1', 'sent', '2026-09-01 10:00+00');
select from pg_temp.lead('r2');
select from pg_temp.lead('r3', 'c2');
select from set_config('t.r1', pg_temp.id('r1')::text, true);
select from set_config('t.r2', pg_temp.id('r2')::text, true);
select from set_config('t.r3', pg_temp.id('r3')::text, true);
select from set_config('t.c1', pg_temp.id('c1')::text, true);
select from set_config('t.admin_claims', json_build_object('sub', pg_temp.id('u_admin'), 'role', 'authenticated')::text, true);
select from set_config('t.viewer_claims', json_build_object('sub', pg_temp.id('u_viewer'), 'role', 'authenticated')::text, true);

-- The admin of c1 (the host's booking webhook acting for the user).
set local role authenticated;
select from set_config('request.jwt.claims', current_setting('t.admin_claims'), true);
select lives_ok(
  $$ insert into public.activities (client_id, lead_id, channel, action, created_at)
     values (current_setting('t.c1')::uuid, current_setting('t.r1')::uuid, 'email', 'meeting_booked', '2026-09-01 12:00+00') $$,
  'role admin: records a booking for a lead of their client'
);
select throws_ok(
  $$ insert into public.activities (client_id, lead_id, channel, action, created_at)
     values (current_setting('t.c1')::uuid, current_setting('t.r3')::uuid, 'email', 'meeting_booked', '2026-09-01 12:00+00') $$,
  '23514', null,
  'role admin: a booking under their client for another tenant''s lead is refused'
);
select throws_ok(
  $$ select ci_private.backfill_converting_touches(current_setting('t.c1')::uuid) $$,
  '42501', null,
  'role admin: may not run the backfill directly'
);
reset role;

-- A viewer of c1 may not write activities at all.
set local role authenticated;
select from set_config('request.jwt.claims', current_setting('t.viewer_claims'), true);
select throws_ok(
  $$ insert into public.activities (client_id, lead_id, channel, action, created_at)
     values (current_setting('t.c1')::uuid, current_setting('t.r2')::uuid, 'email', 'meeting_booked', '2026-09-01 12:00+00') $$,
  '42501', null,
  'role viewer: cannot record a booking'
);
reset role;

set local role anon;
select from set_config('request.jwt.claims', '{"role":"anon"}', true);
select throws_ok(
  $$ insert into public.activities (client_id, lead_id, channel, action, created_at)
     values (current_setting('t.c1')::uuid, current_setting('t.r2')::uuid, 'email', 'meeting_booked', '2026-09-01 12:00+00') $$,
  '42501', null,
  'role anon: cannot record a booking'
);
reset role;
select from set_config('request.jwt.claims', '', true);

select results_eq(
  $$ select pg_temp.status('r1'), pg_temp.converted_at('r1'), pg_temp.status('r2'), pg_temp.status('r3') $$,
  $$ values ('converted', '2026-09-01 12:00+00'::timestamptz, 'in_sequence', 'in_sequence') $$,
  'roles: only the admin''s own booking converted a lead'
);
select results_eq(
  $$ select * from pg_temp.marked('r_') $$, $$ values ('r1', 'r1/t1') $$,
  'roles: the admin''s booking marked the touch (the trigger writes as the layer)'
);

-- ---------------------------------------------------------------------------
-- Backfill: ci_private.backfill_converting_touches(client) re-derives every mark
-- of a client from its history. The triggers now keep every write path, so the
-- wrong states are written with the layer's triggers disabled (a bulk loader's
-- ALTER TABLE ... DISABLE TRIGGER), which only a reconciliation can put right.
select from pg_temp.client('c3');
select from pg_temp.client('c4');

-- bf1: touches imported after the lead was already converted.
select from pg_temp.lead('bf1', 'c3');
select from pg_temp.act('bf1/t1', 'bf1', 'sent', '2026-08-01 10:00+00');
select from pg_temp.act('bf1/t2', 'bf1', 'email_sent', '2026-08-05 10:00+00');
update public.leads set status = 'converted', converted_at = '2026-08-10 12:00+00'
where id = pg_temp.id('bf1');
alter table public.activities disable trigger user;
select from pg_temp.act('bf1/t3', 'bf1', 'sent', '2026-08-08 10:00+00', 'linkedin');
select from pg_temp.act('bf1/t4', 'bf1', 'sent', '2026-08-12 10:00+00');
alter table public.activities enable trigger user;

-- bf2: marks set wrongly by hand, on an older touch and on an 'opened'.
select from pg_temp.lead('bf2', 'c3');
select from pg_temp.act('bf2/t1', 'bf2', 'sent', '2026-08-01 10:00+00');
select from pg_temp.act('bf2/t2', 'bf2', 'sent', '2026-08-05 10:00+00');
select from pg_temp.act('bf2/opened', 'bf2', 'opened', '2026-08-06 10:00+00');
update public.leads set status = 'converted', converted_at = '2026-08-10 12:00+00'
where id = pg_temp.id('bf2');
alter table public.activities disable trigger user;
update public.activities set led_to_booking = true
where id in (pg_temp.id('bf2/t1'), pg_temp.id('bf2/opened'));
alter table public.activities enable trigger user;

-- bf3, bf3b: converted before this layer existed (written with triggers off):
-- converted_at null, no mark. bf3 has a booking activity, bf3b none.
alter table public.leads disable trigger user;
alter table public.activities disable trigger user;
with l as (
  insert into public.leads (client_id, status, updated_at)
  values (pg_temp.id('c3'), 'converted', '2026-08-20 00:00+00'), (pg_temp.id('c3'), 'converted', '2026-08-21 00:00+00')
  returning id, updated_at
)

insert into pg_temp.k (key, id, kind)
select
  case when l.updated_at < '2026-08-21' then 'bf3' else 'bf3b' end as key,
  l.id,
  'lead' as kind
from l;
select from pg_temp.act('bf3/t1', 'bf3', 'sent', '2026-08-01 10:00+00');
select from pg_temp.act('bf3/t2', 'bf3', 'voice_completed', '2026-08-03 10:00+00', 'voice');
select from pg_temp.act('bf3/booked', 'bf3', 'meeting_booked', '2026-08-04 10:00+00');
select from pg_temp.act('bf3/booked_later', 'bf3', 'converted', '2026-08-07 10:00+00');
select from pg_temp.act('bf3/t3', 'bf3', 'sent', '2026-08-06 10:00+00');
select from pg_temp.act('bf3b/t1', 'bf3b', 'sent', '2026-08-01 10:00+00');
alter table public.leads enable trigger user;
alter table public.activities enable trigger user;

-- bf4: an open lead with a hand-set mark.
select from pg_temp.lead('bf4', 'c3');
select from pg_temp.act('bf4/t1', 'bf4', 'sent', '2026-08-01 10:00+00');
alter table public.activities disable trigger user;
update public.activities set led_to_booking = true
where id = pg_temp.id('bf4/t1');
alter table public.activities enable trigger user;

-- bf5: already right; bf6: a touch of client c4 on a c3 lead, marked by hand.
select from pg_temp.lead('bf5', 'c3');
select from pg_temp.act('bf5/t1', 'bf5', 'sent', '2026-08-01 10:00+00');
select from pg_temp.act('bf5/booked', 'bf5', 'meeting_booked', '2026-08-02 10:00+00');
select from pg_temp.lead('bf6', 'c3');
select from pg_temp.act('bf6/own', 'bf6', 'sent', '2026-08-01 10:00+00');
select from pg_temp.act('bf6/booked', 'bf6', 'meeting_booked', '2026-08-03 10:00+00');
select from pg_temp.act('bf6/foreign', 'bf6', 'sent', '2026-08-02 10:00+00', 'email', 'c4');
alter table public.activities disable trigger user;
update public.activities set led_to_booking = true
where id = pg_temp.id('bf6/foreign');
alter table public.activities enable trigger user;

-- Client c4: a wrong mark on its own lead, which a backfill of c3 must leave alone.
select from pg_temp.lead('oth1', 'c4');
select from pg_temp.act('oth1/t1', 'oth1', 'sent', '2026-08-01 10:00+00');
alter table public.activities disable trigger user;
update public.activities set led_to_booking = true
where id = pg_temp.id('oth1/t1');
alter table public.activities enable trigger user;
create temp table c4_before as
select
  a.id,
  a.led_to_booking
from public.activities as a
inner join public.leads as l on a.lead_id = l.id and l.client_id = pg_temp.id('c4');

select is(
  ci_private.backfill_converting_touches(pg_temp.id('c3')),
  8,
  'backfill: returns the number of activities whose mark changed (bf1 2, bf2 2, bf3 1, bf3b 1, bf4 1, bf6 1)'
);
select results_eq(
  $$ select * from pg_temp.marked('bf%') $$,
  $$ values ('bf1', 'bf1/t3'), ('bf2', 'bf2/t2'), ('bf3', 'bf3/t2'), ('bf3b', 'bf3b/t1'),
            ('bf5', 'bf5/t1'), ('bf6', 'bf6/own') $$,
  'backfill: every converted lead of the client has exactly its converting touch marked, nothing else'
);
select results_eq(
  $$ select pg_temp.converted_at('bf3'), pg_temp.converted_at('bf3b'), pg_temp.converted_at('bf1') $$,
  $$ values ('2026-08-04 10:00+00'::timestamptz, '2026-08-21 00:00+00'::timestamptz, '2026-08-10 12:00+00'::timestamptz) $$,
  'backfill: legacy converted leads get their earliest booking time, else their last update; others keep theirs'
);
select is(
  ci_private.backfill_converting_touches(pg_temp.id('c3')), 0,
  'backfill: a second run changes nothing'
);
select results_eq(
  $$ select a.id, a.led_to_booking from public.activities as a
     join public.leads as l on l.id = a.lead_id and l.client_id = pg_temp.id('c4') order by a.id $$,
  $$ select b.id, b.led_to_booking from pg_temp.c4_before as b order by b.id $$,
  'backfill: another client''s activities are left untouched'
);
select is(
  ci_private.backfill_converting_touches(pg_temp.id('c4')), 1,
  'backfill: the other client''s own run fixes its own wrong mark'
);
select is(ci_private.backfill_converting_touches(gen_random_uuid()), 0, 'backfill: a client with no rows: 0');
select throws_ok(
  $$ select ci_private.backfill_converting_touches(null) $$, '22004', null,
  'backfill: a null client is an error'
);

set local role service_role;
select lives_ok(
  $$ select ci_private.backfill_converting_touches(current_setting('t.c1')::uuid) $$,
  'backfill: service_role may run it'
);
reset role;

select * from finish();
rollback;
