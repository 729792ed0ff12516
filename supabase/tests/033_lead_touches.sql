-- Each lead's outbound touches in send order (ci_private.lead_touches), kept by
-- the triggers on activities: sends in and out of order, a bulk statement,
-- updates that move or re-time a touch (and one that does not matter), deletes,
-- channels the detectors do not know, a replica-mode session, a repair of rows
-- written with the triggers disabled; then who may read the table and run its
-- functions (the owner side first, then a member, then anon).
begin;
select plan(31);

create temp table k (key text primary key, id uuid not null unique);
grant select on pg_temp.k to authenticated, anon;

create function pg_temp.id(p_key text) returns uuid
language sql stable as $$
  select k.id from pg_temp.k as k where k.key = p_key
$$;

create function pg_temp.lead(p_key text) returns uuid
language sql as $$
  with l as (
    insert into public.leads (client_id, first_name, company, status)
    values (pg_temp.id('client'), p_key, 'Acme ' || p_key, 'in_sequence')
    returning id
  )
  insert into pg_temp.k (key, id) select p_key, l.id from l returning id
$$;

create function pg_temp.act(p_key text, p_lead text, p_channel text, p_action text, p_at timestamptz)
returns uuid
language sql as $$
  with a as (
    insert into public.activities (client_id, lead_id, channel, action, created_at)
    values (pg_temp.id('client'), pg_temp.id(p_lead), p_channel::public.channel_type, p_action, p_at)
    returning id
  )
  insert into pg_temp.k (key, id) select p_key, a.id from a returning id
$$;

-- The kept rows brought up to date, as every reader does first (an insert
-- leaves them to the next read: lead_touches_read_time migration).
create function pg_temp.kept() returns void
language plpgsql as $$
begin
  perform ci_private.sync_lead_touches(pg_temp.id('client'));
end
$$;

-- A lead's rows, in names: channel sequence, masks, send days, gaps, last.
create function pg_temp.shape(p_lead text) returns text
language plpgsql as $$
begin
  perform pg_temp.kept();
  return (
  select array_to_string(ci_private.sequence_channels(max(t.sequence_code), count(*)::integer), ',')
    || ' masks ' || array_agg(t.channel_mask order by t.touch_no)::text
    || ' days ' || string_agg(to_char(t.created_at, 'DD'), ',' order by t.touch_no)
    || ' gaps ' || array_agg(coalesce(t.gap_days::text, '-') order by t.touch_no)::text
    || ' last ' || string_agg(t.touch_no::text, ',') filter (where t.is_last)
  from ci_private.lead_touches as t where t.lead_id = pg_temp.id(p_lead)
  );
end
$$;

-- A lead's touch ids in send order.
create function pg_temp.ids(p_lead text) returns uuid []
language plpgsql as $$
begin
  perform pg_temp.kept();
  return (select array_agg(t.touch_id order by t.touch_no) from ci_private.lead_touches as t where t.lead_id = pg_temp.id(p_lead));
end
$$;

insert into pg_temp.k (key, id) values ('client', gen_random_uuid()), ('stranger', gen_random_uuid());
insert into public.clients (id, name) values (pg_temp.id('client'), 'sequences'), (pg_temp.id('stranger'), 'other');

-- In order, then a send dated before the others: renumbered in send order.
select pg_temp.lead('a');
select pg_temp.act('a2', 'a', 'email', 'sent', '2026-05-05 10:00+00');
select pg_temp.act('a3', 'a', 'linkedin', 'sent', '2026-05-07 12:00+00');
select is(pg_temp.shape('a'), 'email,linkedin masks {1,3} days 05,07 gaps {-,2.0833333} last 2',
  'sends in order: channels, running channel set, gaps, the last touch');
select pg_temp.act('a1', 'a', 'sms', 'sms_sent', '2026-05-01 10:00+00');
select is(pg_temp.shape('a'), 'sms,email,linkedin masks {4,5,7} days 01,05,07 gaps {-,4,2.0833333} last 3',
  'a send dated before the others takes the first place');
select is(pg_temp.ids('a'), array[pg_temp.id('a1'), pg_temp.id('a2'), pg_temp.id('a3')], 'touch ids in send order');

-- Inbound activities are not touches; nor are sends on a channel the detectors do not know.
select pg_temp.act('a-open', 'a', 'email', 'opened', '2026-05-02 10:00+00');
select pg_temp.act('a0', 'a', 'mail', 'sent', '2026-04-30 10:00+00');
select is(pg_temp.shape('a'), 'sms,email,linkedin masks {4,5,7} days 01,05,07 gaps {-,4,2.0833333} last 3',
  'an open and a send on an unknown channel are not placed');

-- Updates: re-timing a touch reorders; moving one to another lead recomputes both.
update public.activities set created_at = '2026-05-09 10:00+00' where id = pg_temp.id('a1');
select is(pg_temp.shape('a'), 'email,linkedin,sms masks {1,3,7} days 05,07,09 gaps {-,2.0833333,1.9166666} last 3',
  're-timed send moves to its place');
select pg_temp.lead('b');
update public.activities set lead_id = pg_temp.id('b') where id = pg_temp.id('a3');
select is(pg_temp.shape('a'), 'email,sms masks {1,5} days 05,09 gaps {-,4} last 2', 'a send moved away leaves its lead');
select is(pg_temp.shape('b'), 'linkedin masks {2} days 07 gaps {-} last 1', '... and joins its new lead');
-- The booking mark and the content key are read from the row as it now is
-- (the mark set by a booking between a2 and a1: a hand-set mark is re-derived).
insert into public.activities (client_id, lead_id, channel, action, created_at)
select l.client_id, l.id, 'email', 'meeting_booked', '2026-05-06 10:00+00' from public.leads as l where l.id = pg_temp.id('a');
select pg_temp.kept();
select is(
  (select array_agg(t.led_to_booking order by t.touch_no) from ci_private.lead_touches as t where t.lead_id = pg_temp.id('a')),
  array[true, false], 'the booking mark follows its touch');
-- An update that changes nothing the rows hold leaves them alone.
create temp table before_xmin as
select array_agg(xmin::text order by touch_no) as x from ci_private.lead_touches where lead_id = pg_temp.id('a');
update public.activities set subject = 'new subject', metadata = '{"k": 1}' where lead_id = pg_temp.id('a');
select is(
  (select array_agg(xmin::text order by touch_no) from ci_private.lead_touches where lead_id = pg_temp.id('a')),
  (select x from before_xmin), 'an update of other columns does not rewrite the rows');

-- Deletes: a touch goes; the last outbound touch takes the rows with it.
delete from public.activities where id = pg_temp.id('a2');
select is(pg_temp.shape('a'), 'sms masks {4} days 09 gaps {-} last 1', 'a deleted send leaves the sequence');
delete from public.activities where lead_id = pg_temp.id('b');
select is((select count(*) from ci_private.lead_touches where lead_id = pg_temp.id('b')), 0::bigint,
  'a lead without outbound touches has no rows');

-- A bulk statement (more leads than the single-lead path takes): each lead once.
insert into public.leads (client_id, first_name, company, status)
select pg_temp.id('client'), 'bulk' || g, 'Bulk', 'in_sequence' from generate_series(1, 80) as g;
insert into public.activities (client_id, lead_id, channel, action, created_at)
select l.client_id, l.id, c.channel::public.channel_type, 'sent', '2026-06-01 10:00+00'::timestamptz + c.n * interval '2 days'
from public.leads as l
cross join (values (1, 'email'), (2, 'voice'), (3, 'email')) as c (n, channel)
where l.client_id = pg_temp.id('client') and l.first_name like 'bulk%';
select is((select count(*) from ci_private.lead_touches as t inner join public.leads as l on l.id = t.lead_id
  where l.first_name like 'bulk%'), 0::bigint, 'an insert leaves the kept rows to the next read');
select pg_temp.kept();
select is(
  (select count(distinct t.lead_id) from ci_private.lead_touches as t
   inner join public.leads as l on l.id = t.lead_id
   where l.first_name like 'bulk%' and t.touch_no = 3 and t.is_last and t.channel_mask = 9
     and t.sequence_code = 1 | (4 << 3) | (1 << 6) and t.gap_days = 2),
  80::bigint, 'a bulk insert keeps every lead''s touches');

-- A session that replays writes (replication, restore) still keeps the rows.
set local session_replication_role = replica;
select pg_temp.act('a4', 'a', 'voice', 'voice_completed', '2026-05-10 10:00+00');
set local session_replication_role = origin;
select is(pg_temp.shape('a'), 'sms,voice masks {4,12} days 09,10 gaps {-,1} last 2',
  'a send written in replica mode lands (the triggers fire always)');

-- Built once: a client not marked built (rows stored before the layer) is
-- built whole by the next build of the relation; a marked one is not read again.
select is(ci_private.ensure_lead_touches(pg_temp.id('client')), 0, 'a built client: nothing rebuilt');
delete from ci_private.lead_touches where lead_id = pg_temp.id('a');
delete from ci_private.lead_touches_built where client_id = pg_temp.id('client');
select cmp_ok(ci_private.ensure_lead_touches(pg_temp.id('client')), '>', 0, 'an unmarked client is built whole');
select is(pg_temp.shape('a'), 'sms,voice masks {4,12} days 09,10 gaps {-,1} last 2', '... its rows back');

-- Repair: sends written with the triggers disabled are found by the per-lead comparison.
select is(ci_private.ensure_lead_touches(pg_temp.id('client'), true), 0, 'rows in step: nothing rebuilt');
alter table public.activities disable trigger activities_ci_lead_touches_ins;
alter table public.activities disable trigger activities_ci_lead_touches_del;
select pg_temp.act('a5', 'a', 'email', 'sent', '2026-05-11 10:00+00');
delete from public.activities where id in (
  select a.id from public.activities as a inner join public.leads as l on l.id = a.lead_id where l.first_name = 'bulk1'
);
alter table public.activities enable always trigger activities_ci_lead_touches_ins;
alter table public.activities enable always trigger activities_ci_lead_touches_del;
select cmp_ok(ci_private.ensure_lead_touches(pg_temp.id('client')), '>', 0,
  'the per-lead comparison finds sends and deletes written with the triggers disabled');
select is((select s.leads from ci_private.sync_lead_touches(pg_temp.id('client')) as s), 0,
  'a second read finds nothing to bring up to date');
select is(pg_temp.shape('a'), 'sms,voice,email masks {4,12,13} days 09,10,11 gaps {-,1,1} last 3',
  'the rebuilt rows have the send');
select is(
  (select count(*) from ci_private.lead_touches as t inner join public.leads as l on l.id = t.lead_id where l.first_name = 'bulk1'),
  0::bigint, 'and a lead whose sends were deleted with the triggers disabled loses its rows');
select is(ci_private.ensure_lead_touches(pg_temp.id('client'), true), 0, 'then in step again');

-- WHO's as-of date, the first outbound send of any channel: from the kept
-- touches and the unknown-channel sends, or (a client not built) from all sends.
-- Lead a's first send (2026-04-30) is on a channel the detectors do not know,
-- its first kept one on 2026-05-09: in the role since 2025-11-05, it is new in
-- the role (under 6 months) only as of the first.
update public.leads set status = 'not_interested', title = 'as-of probe', employment_start_date = '2025-11-05'
where id = pg_temp.id('a');
update public.leads set status = 'converted', title = 'bulk probe'
where client_id = pg_temp.id('client') and first_name in ('bulk1', 'bulk2', 'bulk3');
select is(
  (select c.new_role from ci_private.who_lead_counts(pg_temp.id('client')) as c
   where not c.learning and c.title = 'as-of probe'),
  true, 'the first send counts though its channel is not one the detectors know');
create temp table built_counts as select * from ci_private.who_lead_counts(pg_temp.id('client'));
-- (Issue 14: WHO counts contacted leads only; bulk1's sends were deleted above.)
select is((select sum(c.leads) from built_counts as c where not c.learning), 3::numeric,
  'every lead with an outcome and a send');
delete from ci_private.lead_touches_built where client_id = pg_temp.id('client');
select set_eq('select * from ci_private.who_lead_counts(pg_temp.id(''client''))', 'select * from built_counts',
  'the same counts when the client is not built (WHO builds it first)');
insert into ci_private.lead_touches_built (client_id, touches) values (pg_temp.id('client'), 0) on conflict do nothing;

-- Who may read and run it. A member of the client.
insert into pg_temp.k (key, id) values ('member', gen_random_uuid());
insert into auth.users (id) values (pg_temp.id('member'));
insert into public.memberships (user_id, client_id, role, accepted_at)
values (pg_temp.id('member'), pg_temp.id('client'), 'admin', now());
set local role authenticated;
select set_config('request.jwt.claims', json_build_object('sub', pg_temp.id('member'), 'role', 'authenticated')::text, true);
select throws_ok('select count(*) from ci_private.lead_touches', '42501', null, 'a member cannot read the table');
select throws_ok(format('select ci_private.rebuild_lead_touches(%L)', pg_temp.id('client')), '42501', null,
  'a member cannot run a rebuild');
-- A member's own send still keeps the sequence (the trigger runs as the layer).
select lives_ok(format(
  'insert into public.activities (client_id, lead_id, channel, action, created_at) values (%L, %L, ''email'', ''sent'', ''2026-05-12 10:00+00'')',
  pg_temp.id('client'), pg_temp.id('a')), 'a member''s send is written');
reset role;
select is(pg_temp.shape('a'), 'sms,voice,email,email masks {4,12,13,13} days 09,10,11,12 gaps {-,1,1,1} last 4',
  '... and lands in the sequence');

-- anon.
set local role anon;
select throws_ok(format('select ci_private.ensure_lead_touches(%L, true)', pg_temp.id('client')), '42501', null,
  'anon cannot run the repair');
reset role;

select * from finish();
rollback;
