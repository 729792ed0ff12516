-- The shared per-touch relation (ci_private.prepare_touches) on a small hand-built
-- history: positions in send order, local day and hour in the lead's zone (else
-- the campaign's, else the client's; an invalid name falls through and is
-- counted), which touches are trials and which booked, channel masks and
-- sequence codes, every kind of skipped row counted, never fatal; the content
-- features read once when a touch is written, and keyed.
begin;
select plan(62);

create temp table k (key text primary key, id uuid not null unique);

create function pg_temp.id(p_key text) returns uuid
language sql stable as $$
  select k.id from pg_temp.k as k where k.key = p_key
$$;

-- A lead of the test client.
create function pg_temp.lead(
  p_key text, p_zone text, p_status text default 'in_sequence', p_campaign text default null,
  p_deleted boolean default false
) returns uuid
language sql as $$
  with l as (
    insert into public.leads (client_id, campaign_id, first_name, company, status, timezone, deleted_at)
    values (pg_temp.id('client'), pg_temp.id(p_campaign), p_key, 'Acme ' || p_key, p_status::public.lead_status,
      p_zone, case when p_deleted then now() end)
    returning id
  )
  insert into pg_temp.k (key, id) select p_key, l.id from l returning id
$$;

-- An activity of a lead.
create function pg_temp.act(
  p_key text, p_lead text, p_channel text, p_action text, p_at timestamptz, p_snapshot jsonb default null,
  p_subject text default null, p_preview text default null
) returns uuid
language sql as $$
  with a as (
    insert into public.activities (client_id, lead_id, channel, action, created_at, content_snapshot, subject,
      content_preview)
    values (pg_temp.id('client'), pg_temp.id(p_lead), p_channel::public.channel_type, p_action, p_at, p_snapshot,
      p_subject, p_preview)
    returning id
  )
  insert into pg_temp.k (key, id) select p_key, a.id from a returning id
$$;

-- The relation's row of an activity.
create function pg_temp.touch(p_key text) returns ci_private.touch
language plpgsql volatile as $$
declare
  v ci_private.touch;
begin
  select t.* into v from pg_temp.ci_touches as t where t.touch_id = pg_temp.id(p_key);
  return v;
end
$$;

insert into pg_temp.k (key, id) values ('client', gen_random_uuid()), ('campaign', gen_random_uuid());
insert into public.clients (id, name, timezone) values (pg_temp.id('client'), 'touch relation', 'America/New_York');
insert into public.campaigns (id, client_id, name, timezone)
values (pg_temp.id('campaign'), pg_temp.id('client'), 'berlin', 'Europe/Berlin');

-- A: Sydney, books after its second touch, one more touch after the booking.
select pg_temp.lead('a', 'Australia/Sydney');
select pg_temp.act('a1', 'a', 'email', 'sent', '2026-03-03 23:30+00',
  jsonb_build_object('subject', repeat('x', 200000), 'body', 'y'));
select pg_temp.act('a2', 'a', 'linkedin', 'linkedin_sent', '2026-03-05 22:00+00', null,
  'Question about Acme a', 'Hi a, scaling your team? Worth 15 minutes?');
update public.leads set status = 'converted', converted_at = '2026-03-06 01:00+00' where id = pg_temp.id('a');
select pg_temp.act('a3', 'a', 'email', 'email_sent', '2026-03-08 00:00+00');
-- B: no zone of its own, Berlin campaign; failed; junk snapshots; an open with a snapshot.
select pg_temp.lead('b', null, 'in_sequence', 'campaign');
select pg_temp.act('b1', 'b', 'sms', 'sent', '2026-01-13 09:00+00', '"just a string"');
select pg_temp.act('b2', 'b', 'voice', 'voice_completed', '2026-01-15 09:00+00', '{"subject": 42, "word_count": "many", "personalization": {"recent_news": "yes"}}');
select pg_temp.act('b3', 'b', 'email', 'opened', '2026-01-15 10:00+00', '{"subject": "x", "body": "y"}');
select pg_temp.act('b4', 'b', 'email', 'sent', '2026-01-16 09:00+00', '[1, 2, 3]');
update public.leads set status = 'unsubscribed' where id = pg_temp.id('b');
-- C: an invalid zone, no campaign: the client's New York; still open.
select pg_temp.lead('c', 'Mars/Base');
select pg_temp.act('c1', 'c', 'email', 'sent', '2026-07-07 14:00+00', '{
  "subject": "Question about {company}", "body": "Hi there, scaling? Worth 15 minutes?",
  "pain_points": ["scaling"], "cta": "worth 15 minutes", "angle": "curiosity", "word_count": 6}');
select pg_temp.act('c2', 'c', 'email', 'sent', '2026-07-09 14:00+00', '{"subject": "", "body": ""}');
select pg_temp.act('c3', 'c', 'mail', 'sent', '2026-07-10 14:00+00');
-- D: deleted, ignored.
select pg_temp.lead('d', 'UTC', 'in_sequence', null, true);
select pg_temp.act('d1', 'd', 'email', 'sent', '2026-07-07 14:00+00');

select is(ci_private.prepare_touches(pg_temp.id('client')), 8, 'eight outbound touches on known channels of live leads');
select is((select count(*)::integer from pg_temp.ci_touch_leads), 3, 'the deleted lead is left out');

-- The tables have the shapes their types document (other functions rely on them).
create function pg_temp.columns(p_rel regclass) returns text []
language sql stable as $$
  select array_agg(a.attname || ' ' || format_type(a.atttypid, a.atttypmod) order by a.attnum)
  from pg_catalog.pg_attribute as a where a.attrelid = p_rel and a.attnum > 0 and not a.attisdropped
$$;
select is(pg_temp.columns('pg_temp.ci_touches'), pg_temp.columns('ci_private.touch'::regtype::text::regclass),
  'ci_touches has the columns of ci_private.touch');
select is(pg_temp.columns('pg_temp.ci_touch_leads'), pg_temp.columns('ci_private.touch_lead'::regtype::text::regclass),
  'ci_touch_leads has the columns of ci_private.touch_lead');

-- The content features of an activity: its key's once the refresh has filled
-- it, else as the fill will compute them (nothing is read on write).
create function pg_temp.features(p_key text) returns ci_private.content_features
language sql stable as $$
  select coalesce(
    (
      select k.features from ci_private.lead_touches as t
      inner join ci_private.content_keys as k on k.key = t.content_key
      where t.touch_id = pg_temp.id(p_key)
    ),
    (select p.features from ci_private.pending_content(pg_temp.id('client')) as p where p.touch_id = pg_temp.id(p_key))
  )
$$;

-- Positions, local time, trials.
select is(
  array[(pg_temp.touch('a1')).position, (pg_temp.touch('a2')).position, (pg_temp.touch('a3')).position],
  array[1, 2, 3], 'positions follow send order'
);
select is(
  array[(pg_temp.touch('a1')).local_dow, (pg_temp.touch('a1')).local_hour], array[3, 10]::smallint [],
  'Sydney lead: 23:30 UTC on Tuesday is Wednesday 10:30 local'
);
select is(
  array[(pg_temp.touch('b1')).local_dow, (pg_temp.touch('b1')).local_hour], array[2, 10]::smallint [],
  'lead without a zone: the campaign''s (Berlin, 09:00 UTC = 10:00)'
);
select is(
  array[(pg_temp.touch('c1')).local_dow, (pg_temp.touch('c1')).local_hour], array[2, 10]::smallint [],
  'invalid zone: the client''s (New York, 14:00 UTC = 10:00 EDT)'
);
select ok((select l.zone_invalid from pg_temp.ci_touch_leads as l where l.lead_id = pg_temp.id('c')),
  'the invalid zone is flagged');
select is(
  array[(pg_temp.touch('a1')).booked, (pg_temp.touch('a2')).booked], array[0, 1]::smallint [],
  'converted lead: the converting touch booked, the one before did not'
);
select ok((pg_temp.touch('a3')).after_conversion and (pg_temp.touch('a3')).booked is null,
  'a touch after the booking is no trial');
select is(
  array[(pg_temp.touch('b1')).booked, (pg_temp.touch('b2')).booked, (pg_temp.touch('b4')).booked],
  array[0, 0, 0]::smallint [], 'failed lead: every touch a non-booking trial'
);
select is((pg_temp.touch('c1')).booked, 0::smallint, 'open lead: a touch followed by another is decided');
select is((pg_temp.touch('c2')).booked, null, 'open lead: its last touch is pending, no trial');
select is((pg_temp.touch('a2')).gap_days, 1.9375::real, 'days since the previous touch');

-- Channels and sequences.
select is(
  array[(pg_temp.touch('a1')).channel_mask, (pg_temp.touch('a2')).channel_mask, (pg_temp.touch('a3')).channel_mask],
  array[1, 3, 3]::smallint [], 'channel mask: the channels so far'
);
select is(ci_private.sequence_channels((pg_temp.touch('a3')).prefix_code, 3), array['email', 'linkedin', 'email'],
  'sequence code decodes to the first three channels');
select is((pg_temp.touch('a2')).first_channel, 1::smallint, 'first channel carried on every touch');

-- Content features: computed for pending touches as the fill will, derived, junk.
select is(
  array[(pg_temp.features('c1')).subject, (pg_temp.features('c1')).cta, (pg_temp.features('c1')).angle],
  array['Question about {company}', 'worth 15 minutes', 'curiosity'], 'snapshot values read as they are'
);
select is((pg_temp.features('c1')).pain_points, array['scaling'], 'pain points read as labels');
select ok((pg_temp.features('a2')).derived and (pg_temp.features('a2')).has_text,
  'a touch without a snapshot gets a derived one');
select is((pg_temp.features('a2')).subject, 'Question about {company}',
  'derived subject with the lead''s company as placeholder');
select is((pg_temp.features('a2')).pain_points, array['scaling'], 'derived pain point from the keyword dictionary');
select is((pg_temp.features('a1')).junk_reason, 'oversized', '200 KB subject: junk');
select is((pg_temp.features('b1')).junk_reason, 'not_object', 'a JSON string: junk');
select is((pg_temp.features('b4')).junk_reason, 'not_object', 'an array: junk');
select is((pg_temp.features('b2')).junk_reason, 'wrong_type', 'wrong types: junk');
select is((pg_temp.features('c2')).junk_reason, 'empty', 'empty subject and body: junk');
select ok((pg_temp.touch('a1')).position = 1 and (pg_temp.touch('a1')).booked = 0,
  'a junk snapshot still leaves the touch in timing and channels');
select is(
  (select m.skipped from pg_temp.ci_touch_meta as m),
  '{"unknown_channel": 1, "invalid_timezone_leads": 1, "non_finite_created_at": 0}'::jsonb,
  'the relation counts skipped touches and zones'
);
select is(
  ci_private.what_patterns(pg_temp.id('client')) -> 'skipped',
  '{"junk_snapshot": 5, "not_outbound_with_snapshot": 1,
    "junk_by_reason": {"not_object": 2, "wrong_type": 1, "empty": 1, "oversized": 1}}'::jsonb,
  'the content pass counts junk snapshots by reason and snapshots on other activities'
);
select is((ci_private.what_patterns(gen_random_uuid()) -> 'trials')::integer, 0,
  'the content pass reads the client it is given, never the one the temporary tables name');
-- Content keys: nothing is read or keyed on the host's write; the refresh's
-- fill computes the pending touches once, set-based, and keys them in the
-- layer's rows (activities is never rewritten).
create function pg_temp.key_of(p_key text) returns integer
language sql stable as $$
  select t.content_key from ci_private.lead_touches as t where t.touch_id = pg_temp.id(p_key)
$$;
create function pg_temp.keys_match() returns boolean
language sql stable as $$
  select not exists (
    select 1
    from ci_private.lead_touches as t
    inner join public.activities as a on a.id = t.touch_id
    left join ci_private.content_keys as k on k.key = t.content_key and k.client_id = t.client_id
    where t.client_id = pg_temp.id('client') and a.content_snapshot is not null
      and k.features is distinct from ci_private.keyed_features(ci_private.content_features_of(a.content_snapshot), t.channel)
  )
$$;
select is(
  (select count(*)::integer from ci_private.lead_touches as t where t.client_id = pg_temp.id('client') and t.content_key is null),
  9, 'every touch is pending after the host''s writes'
);
select ok(
  (select bool_and(a.content_features is null and a.content_key is null) from public.activities as a
   where a.client_id = pg_temp.id('client')),
  'no content is written into the host''s rows'
);
create temp table trials_before as select (ci_private.what_patterns(pg_temp.id('client')) -> 'trials')::integer as n;
select is(ci_private.fill_content_features(pg_temp.id('client')), 9, 'the refresh''s fill computes every pending touch once');
select is(ci_private.fill_content_features(pg_temp.id('client')), 0, 'a second fill finds nothing pending');
select ci_private.prepare_touches(pg_temp.id('client'));
select ok((pg_temp.touch('c1')).content_key > 0 and (pg_temp.touch('c1')).content_key = pg_temp.key_of('c1'),
  'the relation carries the touch''s content key');
select is(pg_temp.key_of('a3'), 0, 'a touch with nothing to read is keyed 0 (computed, no key)');
select ok(pg_temp.keys_match(), 'every snapshot is keyed to its own features');
select is((ci_private.what_patterns(pg_temp.id('client')) -> 'trials')::integer, (select t.n from trials_before as t),
  'WHAT reads the same from keys as from pending touches');
select is((pg_temp.features('b2')).junk_reason, 'wrong_type', 'filled features are the pending ones');
create temp table c1_key as select pg_temp.key_of('c1') as key;
select pg_temp.act('c1_again', 'c', 'email', 'sent', '2026-07-07 15:00+00',
  (select a.content_snapshot from public.activities as a where a.id = pg_temp.id('c1')));
select is(pg_temp.key_of('c1_again'), null, 'a new send is pending ...');
select is(pg_temp.key_of('c1'), (select c.key from c1_key as c), '... and its lead''s earlier touches keep their keys');
select is(ci_private.fill_content_features(pg_temp.id('client')), 1, 'the next fill computes only the new touch');
select is(pg_temp.key_of('c1_again'), pg_temp.key_of('c1'), 'the same content sent again gets the same key');
delete from public.activities where id = pg_temp.id('c1_again');
select isnt_empty(format('select 1 from ci_private.content_keys where key = %s', pg_temp.key_of('c1')),
  'deleting one of two touches of a key keeps the key');

-- Rendered bodies of one template share a key (and the work): two leads'
-- host-style sends, and two engine snapshots of rendered bodies whose lengths
-- fall in one band.
select pg_temp.lead('ee', 'UTC');
select pg_temp.lead('ff', 'UTC');
update public.leads set company = 'Acme ff Holdings Group' where id = pg_temp.id('ff');
select pg_temp.act('ee1', 'ee', 'email', 'sent', '2026-07-07 14:00+00', null,
  'Question about Acme ee', 'Hi ee, scaling your team at Acme ee? Worth 15 minutes?');
select pg_temp.act('ff1', 'ff', 'email', 'sent', '2026-07-07 14:00+00', null,
  'Question about Acme ff Holdings Group', 'Hi ff, scaling your team at Acme ff Holdings Group? Worth 15 minutes?');
select pg_temp.act('ee2', 'ee', 'email', 'sent', '2026-07-09 14:00+00',
  '{"subject": "Hello {first_name}", "body": "Hi ee, we help teams like Acme ee grow without more hires."}');
select pg_temp.act('ff2', 'ff', 'email', 'sent', '2026-07-09 14:00+00',
  '{"subject": "Hello {first_name}", "body": "Hi ff, we help teams like Acme ff Holdings Group grow without more hires."}');
select is(ci_private.fill_content_features(pg_temp.id('client')), 4, 'the fill computes the four new touches');
select ok(pg_temp.key_of('ee1') > 0 and pg_temp.key_of('ee1') = pg_temp.key_of('ff1'),
  'rendered host sends of one template: one derived content, one key');
select ok(pg_temp.key_of('ee2') > 0 and pg_temp.key_of('ee2') = pg_temp.key_of('ff2'),
  'rendered engine bodies of one template, 12 and 14 words (one band): one key');
select is(
  (select k.label_text from ci_private.content_keys as k where k.key = pg_temp.key_of('ee2')),
  'Hello {first_name} Hi {first_name}, we help teams like {company} grow without more hires.',
  'the text labels are read from is the template, without the lead''s values'
);

-- Erasure: the key goes with the last touch that holds it, and its text with it.
create temp table shared_key as select pg_temp.key_of('ee2') as key;
delete from public.activities where id = pg_temp.id('ee2');
select isnt_empty('select 1 from ci_private.content_keys where key = (select key from shared_key)',
  'a key still held by another lead''s touch stays');
delete from public.activities where id = pg_temp.id('ff2');
select is_empty('select 1 from ci_private.content_keys where key = (select key from shared_key)',
  'deleting the last touch of a key removes the key and its text');
delete from public.leads where id in (pg_temp.id('ee'), pg_temp.id('ff'));

-- The host changes what a touch's content is read from: pending again, read
-- again by the next fill, and the old key (held by no other touch) forgotten.
create temp table old_key as select pg_temp.key_of('c1') as key;
update public.activities set content_snapshot = content_snapshot || '{"cta": "quick call"}' where id = pg_temp.id('c1');
select is(pg_temp.key_of('c1'), null, 'a changed snapshot makes the touch pending');
select is_empty('select 1 from ci_private.content_keys where key = (select key from old_key)',
  'and its old key, held by no other touch, is forgotten');
select is(ci_private.fill_content_features(pg_temp.id('client')), 1, 'the next fill reads it again');
select is((pg_temp.features('c1')).cta, 'quick call', 'with the new content');
update public.activities set subject = 'Another subject' where id = pg_temp.id('c1');
select isnt(pg_temp.key_of('c1'), null, 'the subject of a touch with a snapshot is not what it is read from');
update public.activities set subject = 'Another question about Acme a' where id = pg_temp.id('a2');
select is(pg_temp.key_of('a2'), null, 'the subject of a touch without one is');

-- Rebuilt for a later statement: a new touch shows up.
select pg_temp.act('c4', 'c', 'sms', 'sent', '2026-07-12 14:00+00');
select ci_private.ensure_touches(pg_temp.id('client'));
select is((pg_temp.touch('c4')).position, 3, 'a later statement rebuilds the relation');
select is((pg_temp.touch('c2')).booked, 0::smallint, 'and the earlier last touch is now decided');

-- Zones off the whole hour and the two daylight-saving changes of New York,
-- on a second client (the helpers write to the key 'client').
update pg_temp.k set key = 'client1' where key = 'client';
insert into pg_temp.k (key, id) values ('client', gen_random_uuid());
insert into public.clients (id, name) values (pg_temp.id('client'), 'zones');
select pg_temp.lead('k', 'Asia/Kolkata');
select pg_temp.act('k1', 'k', 'email', 'sent', '2026-05-05 04:20+00');
select pg_temp.act('k2', 'k', 'email', 'sent', '2026-05-05 04:40+00');
select pg_temp.act('k3', 'k', 'email', 'sent', '2026-05-05 18:40+00');
select pg_temp.lead('n', 'Asia/Kathmandu');
select pg_temp.act('n1', 'n', 'sms', 'sent', '2026-05-05 04:10+00');
select pg_temp.act('n2', 'n', 'sms', 'sent', '2026-05-05 04:20+00');
select pg_temp.lead('y', 'America/New_York');
select pg_temp.act('y1', 'y', 'voice', 'voice_completed', '2026-03-08 06:30+00');
select pg_temp.act('y2', 'y', 'voice', 'voice_completed', '2026-03-08 07:30+00');
select pg_temp.act('y3', 'y', 'voice', 'voice_completed', '2026-11-01 05:30+00');
select pg_temp.act('y4', 'y', 'voice', 'voice_completed', '2026-11-01 06:30+00');
select ci_private.prepare_touches(pg_temp.id('client'));
select is(
  (select array_agg((pg_temp.touch(x.key)).local_hour order by x.n)
   from unnest(array['k1', 'k2', 'k3', 'n1', 'n2', 'y1', 'y2', 'y3', 'y4']) with ordinality as x (key, n)),
  array[9, 10, 0, 9, 10, 1, 3, 1, 1]::smallint [],
  'local hours: Kolkata +5:30 (09:50, 10:10, 00:10), Kathmandu +5:45 (09:55, 10:05), '
  || 'New York across both changes (01:30 EST, 03:30 EDT; 01:30 EDT, then 01:30 EST)'
);
select is(
  (select array_agg((pg_temp.touch(x.key)).local_dow order by x.n)
   from unnest(array['k1', 'k2', 'k3', 'n1', 'n2', 'y1', 'y2', 'y3', 'y4']) with ordinality as x (key, n)),
  array[2, 2, 3, 2, 2, 0, 0, 0, 0]::smallint [],
  'local days: 18:40 UTC on Tuesday is Wednesday in Kolkata; the changes fall on Sundays'
);

select * from finish();
rollback;
