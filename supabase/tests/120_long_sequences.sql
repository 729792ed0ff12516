-- A lead with more touches than a smallint holds (a bot, a runaway sequence):
-- its 32,768th touch is written, kept, numbered and read by every detector
-- (lead_touches.touch_no and the per-touch relation's position are integers).
begin;
select plan(7);

select from set_config('t.client', gen_random_uuid()::text, true);
select from set_config('t.lead', gen_random_uuid()::text, true);
insert into public.clients (id, name) values (current_setting('t.client')::uuid, 'long sequences');
insert into public.leads (id, client_id, first_name, status)
values (current_setting('t.lead')::uuid, current_setting('t.client')::uuid, 'Bot', 'in_sequence');

select lives_ok(
  $$ insert into public.activities (client_id, lead_id, channel, action, created_at)
     select current_setting('t.client')::uuid, current_setting('t.lead')::uuid, 'email', 'sent',
       timestamptz '2026-01-01 00:00+00' + g * interval '1 minute'
     from generate_series(1, 33000) as g $$,
  'a lead''s 33,000 sends are written'
);
select is(
  (select s.touch_rows from ci_private.sync_lead_touches(current_setting('t.client')::uuid) as s), 33000,
  '... and kept'
);
select is(
  (select max(t.touch_no) from ci_private.lead_touches as t where t.lead_id = current_setting('t.lead')::uuid), 33000,
  'numbered past 32,767'
);
select lives_ok(
  $$ insert into public.activities (client_id, lead_id, channel, action, created_at)
     values (current_setting('t.client')::uuid, current_setting('t.lead')::uuid, 'sms', 'sms_sent', '2026-03-01 00:00+00') $$,
  'one more single send is written'
);
select is(
  ci_private.prepare_touches(current_setting('t.client')::uuid), 33001,
  'the per-touch relation reads every touch'
);
select is((select max(t.position) from pg_temp.ci_touches as t), 33001, '... at its position');

select lives_ok(
  format('select public.refresh_conversion_patterns(%L)', current_setting('t.client')),
  'the refresh and its four detectors run over it'
);

select * from finish();
rollback;
