-- Content off the host's write path (issue 15, item 1): a send computes no
-- content (no row trigger of the layer on activities, the host's row stays as
-- written, no kept row written: the rows are brought up to date when read, and
-- are those a full re-numbering gives, whatever the order and shape of the sends; the
-- refresh's fill computes only the pending touches, once per template, and
-- leaves the touches it filled before untouched; replica-mode writes are kept.
begin;
select plan(17);

create temp table k (key text primary key, id uuid not null unique);
create function pg_temp.id(p_key text) returns uuid language sql stable as $$
  select k.id from pg_temp.k as k where k.key = p_key
$$;
insert into pg_temp.k (key, id) values ('client', gen_random_uuid());
insert into public.clients (id, name) values (pg_temp.id('client'), 'content off the write path');
insert into pg_temp.k (key, id)
select 'lead' || i, gen_random_uuid() from generate_series(1, 20) as i;
insert into public.leads (id, client_id, first_name, last_name, company, status)
select k.id, pg_temp.id('client'), 'Name' || k.key, 'Surname', 'Company of ' || k.key, 'in_sequence'
from pg_temp.k as k where k.key like 'lead%';

-- A send of the host's shape.
create function pg_temp.send(p_lead text, p_at timestamptz, p_channel text default 'email',
  p_action text default 'sent', p_snapshot jsonb default null) returns uuid
language sql as $$
  insert into public.activities (client_id, lead_id, channel, action, created_at, subject, content_preview,
    content_snapshot)
  select l.client_id, l.id, p_channel::public.channel_type, p_action, p_at, 'Quick question about ' || l.company,
    'Hi ' || l.first_name || ', teams like ' || l.company || ' lose hours to manual work. Worth 15 minutes?',
    p_snapshot
  from public.leads as l where l.id = pg_temp.id(p_lead)
  returning id
$$;

-- The kept rows of the client, as text, in key order.
create function pg_temp.kept() returns text language sql stable as $$
  select string_agg(
    concat_ws(' ', t.lead_id, t.touch_no, t.touch_id, t.created_at, t.channel, t.gap_days, t.channel_mask,
      t.sequence_code, t.led_to_booking, t.is_last),
    '; ' order by t.lead_id, t.touch_no)
  from ci_private.lead_touches as t where t.client_id = pg_temp.id('client')
$$;

select is_empty(
  $$ select t.tgname from pg_catalog.pg_trigger as t
     where t.tgrelid = 'public.activities'::regclass and not t.tgisinternal
       and t.tgname like 'activities_ci_%' and (t.tgtype & 1) = 1 $$,
  'the layer has no row trigger on activities: a write computes no content'
);

-- Single sends in every shape: in order, the same instant (ties by id),
-- backdated (before the lead's last kept touch), a new lead's first, on an
-- unknown channel, at infinity, an open.
select pg_temp.send('lead1', '2026-05-01 10:00+00');
select pg_temp.send('lead1', '2026-05-03 10:00+00', 'linkedin');
select pg_temp.send('lead1', '2026-05-03 10:00+00', 'sms');
select pg_temp.send('lead1', '2026-05-02 10:00+00', 'voice');
select pg_temp.send('lead1', '2026-05-04 10:00+00', 'mail');
select pg_temp.send('lead1', 'infinity', 'email');
select pg_temp.send('lead1', '2026-05-05 10:00+00', 'email', 'opened');
select pg_temp.send('lead' || i, timestamptz '2026-05-01 10:00+00' + interval '1 day' * j,
  (array['email', 'linkedin', 'sms', 'voice'])[1 + (i + j) % 4])
from generate_series(2, 20) as i cross join generate_series(1, 12) as j;
select pg_temp.send('lead2', '2026-04-01 10:00+00');

select ok(
  (select bool_and(a.content_snapshot is null and a.content_features is null and a.content_key is null)
   from public.activities as a where a.client_id = pg_temp.id('client')),
  'the host''s rows stay as written: no snapshot, features or key'
);
select is(
  (select count(*)::integer from ci_private.lead_touches as t where t.client_id = pg_temp.id('client')),
  0, 'a send writes no kept row (they are brought up to date when read)'
);
select is(
  (select s.leads from ci_private.sync_lead_touches(pg_temp.id('client')) as s), 20,
  'the read brings every lead that was sent to up to date'
);
select is(
  (select count(*)::integer from ci_private.lead_touches as t
   where t.client_id = pg_temp.id('client') and t.content_key is null),
  4 + 19 * 12 + 1, 'every kept touch is pending'
);

create temp table appended as select pg_temp.kept() as rows;
select ci_private.rebuild_lead_touches(pg_temp.id('client'));
select is((select a.rows from appended as a), pg_temp.kept(),
  'the rows the read wrote are those a full re-numbering gives');
select is(
  (select string_agg(t.touch_no || ':' || t.channel || ':' || t.is_last, ' ' order by t.touch_no)
   from ci_private.lead_touches as t where t.lead_id = pg_temp.id('lead1') and t.touch_no <= 2),
  '1:1:false 2:4:false', 'the backdated send was put in its place'
);

-- Replica mode (a restore, logical replication): kept as well.
set local session_replication_role = replica;
select pg_temp.send('lead3', '2026-06-01 10:00+00');
reset session_replication_role;
select ci_private.sync_lead_touches(pg_temp.id('client'));
select is(
  (select t.touch_no::integer from ci_private.lead_touches as t where t.lead_id = pg_temp.id('lead3') and t.is_last),
  13, 'a send in a replica-mode session is read like any other'
);

-- The fill: all pending touches once, each template's content computed once.
select is(ci_private.fill_content_features(pg_temp.id('client')), 4 + 19 * 12 + 2,
  'the first fill computes every pending touch');
select is(
  (select count(distinct t.content_key)::integer from ci_private.lead_touches as t
   where t.client_id = pg_temp.id('client') and t.channel = 1),
  1, 'twenty leads'' rendered emails of one template: one content key'
);
select is(
  (select count(*)::integer from ci_private.content_keys as k where k.client_id = pg_temp.id('client')),
  1, 'one key for the template on every channel (derived lengths come only from metadata)'
);
create temp table filled as
select t.touch_id, t.ctid::text as version from ci_private.lead_touches as t where t.client_id = pg_temp.id('client');
select pg_temp.send('lead4', '2026-07-01 10:00+00');
select pg_temp.send('lead5', '2026-07-01 10:00+00', 'sms', 'sent',
  '{"subject": "Hi {first_name}", "body": "Hi Namelead5, quick one", "cta": "Quick call"}');
select is(ci_private.fill_content_features(pg_temp.id('client')), 2, 'the next fill computes only the new touches');
select is(
  (select count(*)::integer from pg_temp.filled as f
   inner join ci_private.lead_touches as t on t.touch_id = f.touch_id and t.ctid::text <> f.version
   where t.lead_id not in (pg_temp.id('lead4'), pg_temp.id('lead5'))),
  0, 'and rewrites none of the touches filled before (but the two leads sent to, re-numbered by the read)'
);
select is(ci_private.fill_content_features(pg_temp.id('client')), 0, 'a fill with nothing pending does nothing');
select is(
  (select (k.features).cta from ci_private.lead_touches as t inner join ci_private.content_keys as k on k.key = t.content_key
   where t.lead_id = pg_temp.id('lead5') and t.is_last),
  'quick call', 'an engine''s snapshot is read by the fill'
);
select is(
  (select k.label_text from ci_private.lead_touches as t inner join ci_private.content_keys as k on k.key = t.content_key
   where t.lead_id = pg_temp.id('lead5') and t.is_last),
  'Hi {first_name} Hi {first_name}, quick one',
  'a snapshot that names one label keeps its templated text for the others'
);

-- What the refresh reads: WHAT is the same from pending touches and from keys.
select ci_private.prepare_touches(pg_temp.id('client'));
create temp table what_filled as select ci_private.what_patterns(pg_temp.id('client')) as w;
update ci_private.lead_touches set content_key = null where client_id = pg_temp.id('client');
select ci_private.prepare_touches(pg_temp.id('client'));
select is(ci_private.what_patterns(pg_temp.id('client')), (select w.w from what_filled as w),
  'WHAT reads the same from pending touches as from filled keys');

select * from finish();
rollback;
