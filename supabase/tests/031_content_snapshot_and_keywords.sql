-- Derived content snapshots (seed task 16A.3) and the keyword dictionary kept as
-- data: an outbound touch inserted without a snapshot gets one (when the refresh
-- fills its content) from subject,
-- preview and metadata, marked derived; engines' snapshots and other actions are
-- left alone; labels come from metadata first, else from the client's
-- dictionary, whose rows override the defaults per client; stored rows can be
-- derived (and re-derived) later. Then the dictionary's row-level security by
-- actor: owner, viewer, a stranger, anon.
begin;
select plan(25);

create temp table ids as
select
  gen_random_uuid() as client_a, gen_random_uuid() as client_b, gen_random_uuid() as owner_a,
  gen_random_uuid() as viewer_a, gen_random_uuid() as owner_b, gen_random_uuid() as lead_a,
  gen_random_uuid() as lead_b;
grant select on ids to public;

insert into auth.users (id) select unnest(array[owner_a, viewer_a, owner_b]) from ids;
insert into public.clients (id, name) select client_a, 'snapshot client A' from ids;
insert into public.clients (id, name) select client_b, 'snapshot client B' from ids;
insert into public.memberships (user_id, client_id, role, accepted_at)
select owner_a, client_a, 'owner'::public.membership_role, now() from ids
union all select viewer_a, client_a, 'viewer', now() from ids
union all select owner_b, client_b, 'owner', now() from ids;
insert into public.leads (id, client_id, first_name, last_name, company, organization_industry)
select lead_a, client_a, 'Dana', 'Reyes', 'Brightsmile Dental', 'Dental' from ids
union all select lead_b, client_b, 'Sam', 'Lee', 'Lee Legal', 'Legal' from ids;

-- Insert one activity of a lead; returns the snapshot its content is read
-- from: its own, else the one derived for an outbound touch (by the refresh's
-- fill, not on the write: the stored row keeps none).
create function pg_temp.touch(
  p_lead uuid, p_action text, p_subject text, p_preview text, p_metadata jsonb default null,
  p_snapshot jsonb default null, p_channel text default 'email'
) returns jsonb
language sql as $$
  with a as (
    insert into public.activities (client_id, lead_id, channel, action, subject, content_preview, metadata,
      content_snapshot)
    select l.client_id, l.id, p_channel::public.channel_type, p_action, p_subject, p_preview, p_metadata, p_snapshot
    from public.leads as l where l.id = p_lead
    returning *
  )
  select case
    when a.content_snapshot is not null then a.content_snapshot
    when ci_private.is_outbound_action(a.action) then
      ci_private.derive_content_snapshot(a.client_id, a.lead_id, a.subject, a.content_preview, a.metadata)
  end
  from a
$$;

-- Derivation.
select is(
  pg_temp.touch((select lead_a from ids), 'sent', 'Question about Brightsmile Dental',
    'Hi Dana, growing Brightsmile Dental means more hires. Worth 15 minutes? We save hours of manual work.')
  - 'body' - 'derived_from',
  '{"subject": "Question about {company}", "pain_points": ["cost", "scaling", "time"], "cta": "worth 15 minutes",
    "angle": "roi_focused", "personalization": {"company_mention": true, "industry_specific": true},
    "derived": true}'::jsonb,
  'a sent touch without a snapshot gets a derived one: template, labels from the dictionary, personalization'
);
select is(
  pg_temp.touch((select lead_a from ids), 'sent', 'Hello', 'Hi Dana', null) ->> 'body',
  'Hi {first_name}', 'the preview becomes a template too'
);
select is(
  pg_temp.touch((select lead_a from ids), 'email_sent', 'Quick question', 'Worth 15 minutes?',
    '{"pain_point": "leads", "cta": "quick call", "angle": "curiosity", "word_count": 87,
      "personalization": {"recent_news": true}}') - 'body' - 'subject' - 'derived_from',
  '{"pain_points": ["leads"], "cta": "quick call", "angle": "curiosity", "word_count": 87,
    "personalization": {"company_mention": false, "industry_specific": false, "recent_news": true},
    "derived": true}'::jsonb,
  'labels, length and flags the engine put in metadata win over the dictionary'
);
select is(
  pg_temp.touch((select lead_a from ids), 'sent', null, null, '["not", "an", "object"]'), null,
  'nothing to derive from: no snapshot, and no error on odd metadata'
);
select is(
  pg_temp.touch((select lead_a from ids), 'opened', 'Re: hello', 'Worth 15 minutes?'), null,
  'an activity that is not an outbound touch gets no snapshot'
);
select is(
  pg_temp.touch((select lead_a from ids), 'sent', 'Question about Brightsmile Dental', 'x', null,
    '{"subject": "Mine", "body": "kept"}'),
  '{"subject": "Mine", "body": "kept"}'::jsonb, 'an engine''s own snapshot is kept as it is'
);
select is(
  pg_temp.touch((select lead_a from ids), 'sent', repeat('x', 200000), 'y') ->> 'derived', 'true',
  'a 200 KB subject is derived without error (the detectors count it as junk)'
);

-- Client overrides of the dictionary.
insert into public.conversion_keywords (client_id, kind, term, keywords)
select client_a, 'pain_point', 'scaling', array['expansion'] from ids
union all select client_a, 'cta', 'worth 15 minutes', '{}' from ids;
select is(
  ci_private.keyword_labels((select client_a from ids), 'Planning an expansion, worth 15 minutes? More hires.')
  -> 'pain_points',
  '[]'::jsonb || '"scaling"', 'a client row replaces the default keywords of its term'
);
select is(
  ci_private.keyword_labels((select client_a from ids), 'Worth 15 minutes?') ->> 'cta', null,
  'an empty keyword list turns the term off for the client'
);
select is(
  ci_private.keyword_labels((select client_b from ids), 'More hires. Worth 15 minutes?'),
  '{"pain_points": ["scaling"], "cta": "worth 15 minutes", "angle": null}'::jsonb,
  'other clients keep the defaults'
);
select is(
  ci_private.keyword_labels((select client_b from ids), 'A heroic effort, 20% off: $5 saved') -> 'pain_points',
  '["cost"]'::jsonb, 'whole words after stemming: roi is not found in heroic, save in saved is'
);
select is(
  ci_private.keyword_labels((select client_b from ids), 'A heroic effort, $5') ->> 'angle', 'roi_focused',
  'a symbol keyword ($) matches as a substring'
);

-- Stored touches derived later, and re-derived after a dictionary change.
insert into public.activities (client_id, lead_id, channel, action, subject, content_preview)
select client_b, lead_b, 'email', 'sent', 'Question about Lee Legal', 'Planning an expansion? Worth 15 minutes?' from ids;
select is(ci_private.derive_content_snapshots((select client_b from ids)), 1, 'a stored touch without a snapshot is derived');
select is(
  (select a.content_snapshot -> 'pain_points' from public.activities as a where a.client_id = (select client_b from ids)),
  '[]'::jsonb, 'with the defaults, expansion is no pain point'
);
insert into public.conversion_keywords (client_id, kind, term, keywords)
select client_b, 'pain_point', 'scaling', array['expansion'] from ids;
select is(ci_private.derive_content_snapshots((select client_b from ids)), 0, 'without re-derive, derived ones stay');
select is(ci_private.derive_content_snapshots((select client_b from ids), true), 1, 're-derive after a dictionary change');
select is(
  (select a.content_snapshot -> 'pain_points' from public.activities as a where a.client_id = (select client_b from ids)),
  '["scaling"]'::jsonb, 'the client''s own keywords now apply'
);

-- Row-level security of the dictionary, as PostgREST calls it.
create function pg_temp.act_as(p_user uuid) returns void language sql as $$
  select set_config('request.jwt.claims', json_build_object('sub', p_user, 'role', 'authenticated')::text, true);
  set local role authenticated;
$$;

select pg_temp.act_as((select owner_a from ids));
select is(
  (select count(*)::integer from public.conversion_keywords where client_id = (select client_a from ids)), 2,
  'owner reads the client''s own rows'
);
select ok((select count(*) from public.conversion_keywords where client_id is null) >= 21, 'and the defaults');
select lives_ok(
  $$insert into public.conversion_keywords (client_id, kind, term, keywords)
    select client_a, 'angle', 'curiosity', array['wondering'] from ids$$,
  'owner adds a row for the client'
);
select throws_ok(
  $$insert into public.conversion_keywords (client_id, kind, term, keywords) values (null, 'angle', 'x', '{x}')$$,
  '42501', null, 'owner cannot add a default'
);
reset role;

select pg_temp.act_as((select viewer_a from ids));
select throws_ok(
  $$insert into public.conversion_keywords (client_id, kind, term, keywords)
    select client_a, 'angle', 'fear_based', array['risk'] from ids$$,
  '42501', null, 'a viewer cannot change the dictionary'
);
reset role;

select pg_temp.act_as((select owner_b from ids));
select is(
  (select count(*)::integer from public.conversion_keywords where client_id = (select client_a from ids)), 0,
  'another client''s owner sees none of A''s rows'
);
delete from public.conversion_keywords where client_id = (select client_a from ids);
reset role;
select is(
  (select count(*)::integer from public.conversion_keywords where client_id = (select client_a from ids)), 3,
  'nor deletes them'
);

select set_config('request.jwt.claims', '{"role": "anon"}', true);
set local role anon;
select throws_ok('select count(*) from public.conversion_keywords', '42501', null, 'anon reads nothing');
reset role;

select * from finish();
rollback;
