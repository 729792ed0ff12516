-- The weekly KPIs read weeks in the client's zone, never the session's
-- TimeZone, and one client's figures come through a function that checks access
-- and filters by client first (issue 13).
begin;
select plan(6);

insert into public.clients (id, name, timezone) values
('00000000-0000-0000-0000-00000000a062', 'kpi tokyo', 'Asia/Tokyo'),
('00000000-0000-0000-0000-00000000b062', 'kpi bad zone', 'Mars/Base');
insert into public.leads (id, client_id, status) values
('00000000-0000-0000-0000-0000000a0621', '00000000-0000-0000-0000-00000000a062', 'in_sequence'),
('00000000-0000-0000-0000-0000000b0621', '00000000-0000-0000-0000-00000000b062', 'in_sequence');
-- Sunday 23:30 UTC: Monday 08:30 in Tokyo, the first day of the next local week.
insert into public.activities (client_id, lead_id, channel, action, created_at) values
('00000000-0000-0000-0000-00000000a062', '00000000-0000-0000-0000-0000000a0621', 'email', 'sent', '2026-09-06 23:30+00'),
('00000000-0000-0000-0000-00000000a062', '00000000-0000-0000-0000-0000000a0621', 'email', 'sent', '-infinity'),
('00000000-0000-0000-0000-00000000b062', '00000000-0000-0000-0000-0000000b0621', 'email', 'sent', '2026-09-06 23:30+00');

set local timezone = 'UTC';
select is(
  (select k.week from public.conversion_kpis_weekly as k where k.client_id = '00000000-0000-0000-0000-00000000a062'),
  '2026-09-07 00:00+09'::timestamptz,
  'the week is the client''s local week (Tokyo: Monday 2026-09-07), a touch at -infinity left out'
);
select is(
  (select k.week from public.conversion_kpis_weekly as k where k.client_id = '00000000-0000-0000-0000-00000000b062'),
  '2026-08-31 00:00+00'::timestamptz,
  'a client zone that names no zone is read as UTC'
);
create temp table under_utc as
select * from public.conversion_kpis_weekly as k
where k.client_id in ('00000000-0000-0000-0000-00000000a062', '00000000-0000-0000-0000-00000000b062');
set local timezone = 'America/Los_Angeles';
select set_eq(
  $$ select * from public.conversion_kpis_weekly as k
     where k.client_id in ('00000000-0000-0000-0000-00000000a062', '00000000-0000-0000-0000-00000000b062') $$,
  $$ select * from under_utc $$,
  'the same rows under another session TimeZone (Los Angeles)'
);
set local timezone = 'Asia/Kolkata';
select set_eq(
  $$ select * from public.get_conversion_kpis_weekly('00000000-0000-0000-0000-00000000a062') $$,
  $$ select * from under_utc where client_id = '00000000-0000-0000-0000-00000000a062' $$,
  'get_conversion_kpis_weekly: the client''s rows only, whatever the session zone'
);
select from set_config('request.jwt.claims', '{"role":"anon"}', true);
set local role anon;
select throws_ok(
  $$ select * from public.get_conversion_kpis_weekly('00000000-0000-0000-0000-00000000a062') $$,
  '42501', null, 'get_conversion_kpis_weekly: anon gets an error'
);
reset role;
select isnt(obj_description('public.get_conversion_kpis_weekly(uuid)'::regprocedure, 'pg_proc'), null,
  'get_conversion_kpis_weekly has a comment');

select * from finish();
rollback;
