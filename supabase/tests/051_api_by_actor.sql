-- The public API and the layer's tables, by actor, as PostgREST calls them:
-- the owner, an admin, a viewer, an authenticated stranger who belongs to
-- another client, anon, service_role. Members read, owners/admins write,
-- nobody else sees anything.
begin;
select plan(52);

-- Fixture: clients A and B, their users and memberships, stored patterns for both.
create temp table ids as
select
  gen_random_uuid() as client_a, gen_random_uuid() as client_b,
  gen_random_uuid() as owner_a, gen_random_uuid() as admin_a, gen_random_uuid() as viewer_a,
  gen_random_uuid() as pending_a, gen_random_uuid() as owner_b;
grant select on ids to public;

insert into auth.users (id) select unnest(array[owner_a, admin_a, viewer_a, pending_a, owner_b]) from ids;
insert into public.clients (id, name) select client_a, 'API client A' from ids;
insert into public.clients (id, name) select client_b, 'API client B' from ids;
insert into public.memberships (user_id, client_id, role, accepted_at)
select owner_a, client_a, 'owner'::public.membership_role, now() from ids
union all select admin_a, client_a, 'admin', now() from ids
union all select viewer_a, client_a, 'viewer', now() from ids
union all select pending_a, client_a, 'admin', null from ids
union all select owner_b, client_b, 'owner', now() from ids;
insert into public.campaigns (client_id, name, allocation_email, allocation_sms, allocation_linkedin,
  allocation_voice, allocation_mail)
select client_a, 'Campaign A', 40, 10, 30, 20, 0 from ids;

insert into public.conversion_patterns (client_id, pattern_type, patterns, sample_size, confidence, computed_at,
  valid_until)
select client_a, 'how', '{"type": "how", "channel_effectiveness_by_tier": {"warm": {
    "email": {"conversion_rate": 0.10, "smoothed_rate": 0.10, "sample": 200},
    "linkedin": {"conversion_rate": 0.30, "smoothed_rate": 0.30, "sample": 100},
    "sms": {"conversion_rate": 0.90, "smoothed_rate": 0.90, "sample": 50}}}}'::jsonb,
  350, 0.9, now(), now() + interval '7 days' from ids
union all
select client_a, 'who', '{"type": "who"}'::jsonb, 100, 0.5, now() - interval '20 days',
  now() - interval '10 days' from ids
union all
select client_b, 'how', '{"type": "how"}'::jsonb, 50, 0.2, now(), now() + interval '7 days' from ids;
insert into public.conversion_pattern_history (client_id, pattern_type, patterns, sample_size, confidence, computed_at)
select client_a, 'who', '{"n": 1}'::jsonb, 10, 0.1, now() - interval '14 days' from ids
union all select client_a, 'who', '{"n": 2}'::jsonb, 20, 0.2, now() - interval '7 days' from ids
union all select client_a, 'how', '{"n": 3}'::jsonb, 30, 0.3, now() from ids
union all select client_b, 'who', '{"n": 9}'::jsonb, 90, 0.9, now() from ids;

-- Act as PostgREST does for a signed-in user.
create function pg_temp.act_as(p_user uuid) returns void language sql as $$
  select set_config('request.jwt.claims', json_build_object('sub', p_user, 'role', 'authenticated')::text, true);
  set local role authenticated;
$$;
create function pg_temp.act_as_service() returns void language sql as $$
  select set_config('request.jwt.claims', '{"role": "service_role"}', true);
  set local role service_role;
$$;
create function pg_temp.act_as_anon() returns void language sql as $$
  select set_config('request.jwt.claims', '{"role": "anon"}', true);
  set local role anon;
$$;

-- ---- the owner -------------------------------------------------------------------
select pg_temp.act_as((select owner_a from ids));

select ok(
  (public.get_conversion_patterns((select client_a from ids)) -> 'how' ->> 'sample_size')::int = 350,
  'owner: get_conversion_patterns returns the stored HOW pattern'
);
select is(
  (public.get_conversion_patterns((select client_a from ids)) -> 'who' ->> 'stale')::boolean, true,
  'owner: a pattern past valid_until is marked stale'
);
select is(
  (public.get_conversion_patterns((select client_a from ids)) -> 'how' ->> 'stale')::boolean, false,
  'owner: a fresh pattern is not stale'
);
select is(
  public.get_conversion_patterns((select client_a from ids)) -> 'what', 'null'::jsonb,
  'owner: a type never computed is null'
);
select is(
  jsonb_array_length(public.get_pattern_history((select client_a from ids))), 3,
  'owner: get_pattern_history returns the client''s rows only'
);
select is(
  public.get_pattern_history((select client_a from ids)) -> 0 ->> 'pattern_type', 'how',
  'owner: history is newest first'
);
select is(
  jsonb_array_length(public.get_pattern_history((select client_a from ids), 'who', 1)), 1,
  'owner: history by type, limited'
);
select throws_ok(
  format('select public.get_pattern_history(%L, %L)', (select client_a from ids), 'bogus'),
  '22023', null, 'owner: an unknown pattern type is refused'
);
select throws_ok(
  format('select public.get_pattern_history(%L, null, 0)', (select client_a from ids)),
  '22023', null, 'owner: a limit out of range is refused'
);

-- Allocation from the HOW pattern: warm may use email, linkedin, voice (not sms).
select is(
  public.recommended_channel_allocation((select client_a from ids), 'warm') ->> 'source', 'pattern',
  'owner: warm allocation comes from the pattern'
);
select is(
  (select sum(value::int) from jsonb_each_text(
    public.recommended_channel_allocation((select client_a from ids), 'warm') -> 'allocation')),
  100::bigint, 'owner: shares sum to 100'
);
select ok(
  not (public.recommended_channel_allocation((select client_a from ids), 'warm') -> 'allocation') ? 'sms',
  'owner: warm gets no sms share even though sms converted best'
);
select ok(
  (public.recommended_channel_allocation((select client_a from ids), 'warm') #>> '{allocation,linkedin}')::int
  > (public.recommended_channel_allocation((select client_a from ids), 'warm') #>> '{allocation,email}')::int,
  'owner: the channel with the higher booking rate gets the larger share'
);
select is(
  public.recommended_channel_allocation((select client_a from ids), 'cold') -> 'allocation',
  '{"email": 100}'::jsonb, 'owner: cold is email only'
);
select is(
  public.recommended_channel_allocation((select client_a from ids), 'dead') -> 'allocation',
  '{}'::jsonb, 'owner: dead gets no outreach'
);
select is(
  public.recommended_channel_allocation((select client_a from ids), 'hot') ->> 'source', 'campaign',
  'owner: without pattern data for the tier, the campaign''s allocation is used'
);
select is(
  public.recommended_channel_allocation((select client_a from ids), 'hot') -> 'allocation',
  '{"email": 40, "sms": 10, "linkedin": 30, "voice": 20}'::jsonb,
  'owner: hot falls back to the campaign''s shares'
);
select throws_ok(
  format('select public.recommended_channel_allocation(%L, %L)', (select client_a from ids), 'lukewarm'),
  '22023', null, 'owner: an unknown tier is refused'
);
select throws_ok(
  'select public.get_conversion_patterns(null)', '22004', null, 'owner: a null client id is refused'
);

-- Tables: the owner reads the client's rows, writes none directly.
select is((select count(*) from public.conversion_patterns), 2::bigint, 'owner: sees own client''s patterns only');
select is((select count(*) from public.conversion_pattern_history), 3::bigint, 'owner: sees own history only');
select throws_ok(
  $$insert into public.conversion_patterns (client_id, pattern_type, patterns, sample_size, confidence, valid_until)
    values ((select client_a from ids), 'what', '{}', 1, 0.5, now())$$,
  '42501', null, 'owner: cannot write patterns directly'
);
select throws_ok(
  'delete from public.conversion_pattern_history', '42501', null, 'owner: cannot delete history'
);
reset role;

-- ---- an admin, a viewer, a pending invitee ----------------------------------------
select pg_temp.act_as((select admin_a from ids));
select lives_ok(
  format('select public.get_conversion_patterns(%L)', (select client_a from ids)), 'admin: reads patterns'
);
reset role;

select pg_temp.act_as((select viewer_a from ids));
select lives_ok(
  format('select public.get_conversion_patterns(%L)', (select client_a from ids)), 'viewer: reads patterns'
);
select lives_ok(
  format('select public.recommended_channel_allocation(%L, %L)', (select client_a from ids), 'warm'),
  'viewer: reads the allocation'
);
select throws_ok(
  format('select public.refresh_conversion_patterns(%L)', (select client_a from ids)),
  '42501', null, 'viewer: cannot refresh (a write)'
);
select throws_ok(
  format('select public.apply_learned_weights(%L, %L, %L)', (select client_a from ids),
    '{"data_quality": 0.2, "authority": 0.25, "company_fit": 0.25, "timing": 0.15}', '{}'),
  '42501', null, 'viewer: cannot apply weights'
);
select throws_ok(
  format('select public.rescore_client_leads(%L)', (select client_a from ids)),
  '42501', null, 'viewer: cannot rescore'
);
select throws_ok(
  'select public.refresh_all_conversion_patterns()', '42501', null, 'viewer: cannot refresh every client'
);
reset role;

select pg_temp.act_as((select pending_a from ids));
select throws_ok(
  format('select public.get_conversion_patterns(%L)', (select client_a from ids)),
  '42501', null, 'pending invitee (not accepted): no access'
);
reset role;

-- ---- a stranger (owner of client B) ------------------------------------------------
select pg_temp.act_as((select owner_b from ids));
select throws_ok(
  format('select public.get_conversion_patterns(%L)', (select client_a from ids)),
  '42501', null, 'stranger: get_conversion_patterns of another client is refused'
);
select throws_ok(
  format('select public.get_pattern_history(%L)', (select client_a from ids)),
  '42501', null, 'stranger: get_pattern_history refused'
);
select throws_ok(
  format('select public.recommended_channel_allocation(%L, %L)', (select client_a from ids), 'warm'),
  '42501', null, 'stranger: recommended_channel_allocation refused'
);
select throws_ok(
  format('select public.detect_who_patterns(%L)', (select client_a from ids)),
  '42501', null, 'stranger: detect_who_patterns refused'
);
select throws_ok(
  format('select public.detect_what_patterns(%L)', (select client_a from ids)),
  '42501', null, 'stranger: detect_what_patterns refused'
);
select throws_ok(
  format('select public.detect_when_patterns(%L)', (select client_a from ids)),
  '42501', null, 'stranger: detect_when_patterns refused'
);
select throws_ok(
  format('select public.detect_how_patterns(%L)', (select client_a from ids)),
  '42501', null, 'stranger: detect_how_patterns refused'
);
select throws_ok(
  format('select public.refresh_conversion_patterns(%L)', (select client_a from ids)),
  '42501', null, 'stranger: refresh refused'
);
select throws_ok(
  format('select public.apply_learned_weights(%L, %L, %L)', (select client_a from ids),
    '{"data_quality": 0.2, "authority": 0.25, "company_fit": 0.25, "timing": 0.15}', '{}'),
  '42501', null, 'stranger: apply_learned_weights refused'
);
select throws_ok(
  format('select public.rescore_client_leads(%L)', (select client_a from ids)),
  '42501', null, 'stranger: rescore_client_leads refused'
);
select is(
  (select count(*) from public.conversion_patterns where client_id = (select client_a from ids)), 0::bigint,
  'stranger: sees none of client A''s patterns in the table'
);
select is(
  (select count(*) from public.conversion_pattern_history where client_id = (select client_a from ids)), 0::bigint,
  'stranger: sees none of client A''s history'
);
select is((select count(*) from public.conversion_patterns), 1::bigint, 'stranger: sees their own client''s pattern');
reset role;

-- ---- anon --------------------------------------------------------------------------
select pg_temp.act_as_anon();
select throws_ok(
  format('select public.get_conversion_patterns(%L)', (select client_a from ids)),
  '42501', null, 'anon: get_conversion_patterns refused'
);
select throws_ok(
  format('select public.recommended_channel_allocation(%L, %L)', (select client_a from ids), 'warm'),
  '42501', null, 'anon: recommended_channel_allocation refused'
);
select throws_ok(
  'select public.refresh_all_conversion_patterns()', '42501', null, 'anon: refresh_all refused'
);
select throws_ok('select count(*) from public.conversion_patterns', '42501', null, 'anon: cannot read patterns');
select throws_ok('select count(*) from public.leads', '42501', null, 'anon: cannot read leads');
reset role;

-- ---- service_role ------------------------------------------------------------------
select pg_temp.act_as_service();
select ok(
  public.get_conversion_patterns((select client_b from ids)) -> 'how' is not null,
  'service_role: reads any client'
);
select ok(
  (select count(*) from public.conversion_patterns
   where client_id in ((select client_a from ids), (select client_b from ids))) = 3,
  'service_role: sees every client''s rows'
);
select throws_ok(
  format('select public.get_conversion_patterns(%L)', gen_random_uuid()),
  'P0002', null, 'service_role: an unknown client is a clear error'
);
reset role;

select * from finish();
rollback;
