-- The WHAT, WHEN and HOW detectors as PostgREST calls them: a member reads, a
-- stranger and anon get an error, service_role reads; they write nothing;
-- too little data gives a clear insufficient_data answer; a history of junk
-- snapshots is counted, never fatal.
begin;
select plan(23);

create temp table ids as
select
  gen_random_uuid() as client_a, gen_random_uuid() as client_b, gen_random_uuid() as client_c,
  gen_random_uuid() as owner_a, gen_random_uuid() as viewer_a, gen_random_uuid() as owner_b;
grant select on ids to public;

insert into auth.users (id) select unnest(array[owner_a, viewer_a, owner_b]) from ids;
insert into public.clients (id, name, timezone)
select client_a, 'detectors A', 'Europe/London' from ids
union all select client_b, 'detectors B (empty)', 'UTC' from ids
union all select client_c, 'detectors C (junk)', 'UTC' from ids;
insert into public.memberships (user_id, client_id, role, accepted_at)
select owner_a, client_a, 'owner'::public.membership_role, now() from ids
union all select viewer_a, client_a, 'viewer', now() from ids
union all select owner_b, client_b, 'owner', now() from ids;

-- A (and C): 60 leads, three touches each, 15 booked after their second touch,
-- 35 failed, 10 still open. A's touches carry snapshots; C's are all junk.
insert into public.leads (client_id, first_name, company, status, timezone)
select c.id, 'lead ' || g, 'Co ' || g, 'in_sequence', 'America/Chicago'
from ids cross join lateral (values (ids.client_a), (ids.client_c)) as c (id)
cross join generate_series(1, 60) as g;
insert into public.activities (client_id, lead_id, channel, action, created_at, content_snapshot)
select l.client_id, l.id, (array['email', 'linkedin', 'email'])[k]::public.channel_type, 'sent',
  timestamptz '2026-06-01 15:00+00' + (substring(l.first_name from 6)::integer % 20) * interval '1 day'
  + (k - 1) * interval '2 days',
  case when l.client_id = (select client_a from ids) then jsonb_build_object(
    'subject', (array['Question about {company}', 'Quick question'])[1 + k % 2],
    'body', 'Hi, worth 15 minutes? We help teams scale.', 'pain_points', jsonb_build_array('scaling'),
    'cta', 'worth 15 minutes', 'angle', 'curiosity', 'word_count', 60 + k)
  else (array['"junk"', '[1]', '{"subject": "", "body": ""}'])[k]::jsonb end
from public.leads as l
cross join generate_series(1, 3) as k
where l.client_id in ((select client_a from ids), (select client_c from ids));
update public.leads as l
set status = 'converted',
  converted_at = timestamptz '2026-06-01 18:00+00' + (substring(l.first_name from 6)::integer % 20) * interval '1 day'
  + interval '2 days'
where l.client_id in ((select client_a from ids), (select client_c from ids))
  and substring(l.first_name from 6)::integer <= 15;
update public.leads as l set status = 'dead'
where l.client_id in ((select client_a from ids), (select client_c from ids))
  and substring(l.first_name from 6)::integer between 16 and 50;

create temp table before as
select
  (select count(*) from public.conversion_patterns) as patterns,
  (select count(*) from public.conversion_pattern_history) as history,
  (select count(*) from public.activities) as activities,
  (select sum(hashtext(l::text)) from public.leads as l) as leads;
grant select on before to public;

create function pg_temp.act_as(p_user uuid) returns void language sql as $$
  select set_config('request.jwt.claims', json_build_object('sub', p_user, 'role', 'authenticated')::text, true);
  set local role authenticated;
$$;

-- Owner of A.
select pg_temp.act_as((select owner_a from ids));
select is((public.detect_what_patterns((select client_a from ids))) ->> 'type', 'what', 'owner reads WHAT');
select is((public.detect_when_patterns((select client_a from ids))) ->> 'type', 'when', 'owner reads WHEN');
select is((public.detect_how_patterns((select client_a from ids))) ->> 'type', 'how', 'owner reads HOW');
select is(
  (public.detect_when_patterns((select client_a from ids))) -> 'converting_touch_distribution',
  '{"touch_2": 1.0000}'::jsonb, 'WHEN on A: every booking at touch 2'
);
select is(
  (public.detect_how_patterns((select client_a from ids))) -> 'booking_channel_distribution',
  '{"linkedin": 1.0000}'::jsonb, 'HOW on A: every booking on LinkedIn'
);
select is(
  (public.detect_what_patterns((select client_a from ids))) #> '{pain_points,rankings,0,pain_point}',
  '"scaling"'::jsonb, 'WHAT on A: the one pain point ranked'
);
select is(
  ((public.detect_when_patterns((select client_a from ids))) ->> 'sample_size')::integer, 50,
  'sample size: the decided leads'
);
reset role;

-- A viewer of A reads too.
select pg_temp.act_as((select viewer_a from ids));
select lives_ok('select public.detect_how_patterns((select client_a from ids))', 'viewer reads HOW');
reset role;

-- The owner of B: nothing of A, and B alone has too little data.
select pg_temp.act_as((select owner_b from ids));
select throws_ok('select public.detect_what_patterns((select client_a from ids))', '42501', null,
  'a stranger cannot read WHAT of A');
select throws_ok('select public.detect_when_patterns((select client_a from ids))', '42501', null,
  'a stranger cannot read WHEN of A');
select throws_ok('select public.detect_how_patterns((select client_a from ids))', '42501', null,
  'a stranger cannot read HOW of A');
select is(
  (public.detect_what_patterns((select client_b from ids))) - 'computed_at' - 'metadata',
  jsonb_build_object(
    'type', 'what', 'version', '1.0', 'sample_size', 0, 'confidence', 0, 'insufficient_data', true,
    'reason', 'insufficient data: 0 bookings on touches with content, 0 decided leads (need 10 and 30)',
    'subject_patterns', '{"winning": [], "losing": [], "rankings": []}'::jsonb,
    'pain_points', '{"effective": [], "ineffective": [], "rankings": []}'::jsonb,
    'ctas', '{"effective": [], "ineffective": [], "rankings": []}'::jsonb,
    'angles', '{"rankings": [], "effective": [], "ineffective": []}'::jsonb,
    'optimal_length', '{}'::jsonb, 'personalization_lift', '{}'::jsonb, 'personalization_details', '{}'::jsonb,
    'personalization_level_rankings', '[]'::jsonb
  ),
  'WHAT without data: every seed key, empty, and a reason'
);
select is(
  (public.detect_when_patterns((select client_b from ids))) -> 'insufficient_data', 'true'::jsonb,
  'WHEN without data: insufficient_data'
);
select is(
  (public.detect_how_patterns((select client_b from ids))) -> 'winning_sequences', '[]'::jsonb,
  'HOW without data: no winners'
);
reset role;

-- anon: no execute at all.
select set_config('request.jwt.claims', '{"role": "anon"}', true);
set local role anon;
select throws_ok('select public.detect_what_patterns((select client_a from ids))', '42501', null, 'anon: WHAT refused');
select throws_ok('select public.detect_when_patterns((select client_a from ids))', '42501', null, 'anon: WHEN refused');
select throws_ok('select public.detect_how_patterns((select client_a from ids))', '42501', null, 'anon: HOW refused');
reset role;

-- service_role; a history of junk snapshots.
select set_config('request.jwt.claims', '{"role": "service_role"}', true);
set local role service_role;
select is(
  (public.detect_what_patterns((select client_c from ids))) #> '{metadata,skipped,junk_by_reason}',
  '{"not_object": 120, "wrong_type": 0, "empty": 60, "oversized": 0}'::jsonb,
  'junk snapshots are counted by reason'
);
select is(
  (public.detect_what_patterns((select client_c from ids))) -> 'insufficient_data', 'true'::jsonb,
  'and WHAT has nothing to learn from them'
);
select is(
  (public.detect_when_patterns((select client_c from ids))) -> 'converting_touch_distribution',
  '{"touch_2": 1.0000}'::jsonb, 'while WHEN still uses those touches'
);
reset role;

-- Nothing was written.
select is(
  (select array[patterns, history, activities] from before),
  array[
    (select count(*) from public.conversion_patterns), (select count(*) from public.conversion_pattern_history),
    (select count(*) from public.activities)
  ],
  'the detectors stored no pattern and touched no activity'
);
select is((select leads from before), (select sum(hashtext(l::text)) from public.leads as l), 'nor any lead');
select is(
  (select array_agg(p.provolatile order by p.proname) from pg_catalog.pg_proc as p
   where p.oid in ('public.detect_what_patterns(uuid)'::regprocedure, 'public.detect_when_patterns(uuid)'::regprocedure,
     'public.detect_how_patterns(uuid)'::regprocedure)),
  array['v', 'v', 'v']::"char" [],
  'volatile: they build temporary tables'
);

select * from finish();
rollback;
