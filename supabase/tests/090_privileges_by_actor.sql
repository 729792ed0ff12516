-- The privilege model by actor: the pattern history is append only for every
-- role (service_role and the owner included, TRUNCATE too); a session's JWT
-- claims never raise it above its database role (forged claims); the grants
-- are explicit (the old sweep no longer grants anything).
begin;
select plan(20);

create temp table ids as
select gen_random_uuid() as client_a, gen_random_uuid() as owner_a, gen_random_uuid() as stranger;
grant select on ids to public;
insert into auth.users (id) select unnest(array[owner_a, stranger]) from ids;
insert into public.clients (id, name) select client_a, 'Privileges client A' from ids;
insert into public.memberships (user_id, client_id, role, accepted_at)
select owner_a, client_a, 'owner'::public.membership_role, now() from ids;
insert into public.conversion_pattern_history (client_id, pattern_type, patterns, sample_size, confidence)
select client_a, 'who', '{"n": 1}'::jsonb, 10, 0.5 from ids;

-- History: service_role.
set local role service_role;
select set_config('request.jwt.claims', '{"role": "service_role"}', true);
select throws_ok('truncate public.conversion_pattern_history', '42501', null,
  'service_role: TRUNCATE of the history refused');
select throws_ok(
  format('delete from public.conversion_pattern_history where client_id = %L', (select client_a from ids)),
  '42501', null, 'service_role: DELETE of the history refused');
select throws_ok(
  format('update public.conversion_pattern_history set sample_size = 0 where client_id = %L',
    (select client_a from ids)),
  '42501', null, 'service_role: UPDATE of the history refused');
select lives_ok(
  format($$insert into public.conversion_pattern_history (client_id, pattern_type, patterns, sample_size)
    values (%L, 'how', '{}', 1)$$, (select client_a from ids)),
  'service_role: INSERT into the history allowed (append)');
reset role;

-- History: the owner of the table (the migration role) too, by the statement trigger.
select throws_ok('truncate public.conversion_pattern_history', '42501',
  'conversion_pattern_history is append only (TRUNCATE refused)', 'owner: TRUNCATE of the history refused');
select is(
  (select tgenabled::text from pg_trigger
    where tgname = 'conversion_pattern_history_no_truncate'),
  'A', 'the TRUNCATE trigger fires in replica-mode sessions too (ALWAYS)');
select is(
  (select tgenabled::text from pg_trigger
    where tgname = 'conversion_pattern_history_append_only'),
  'A', 'the row trigger fires in replica-mode sessions too (ALWAYS)');
select is_empty(
  $$select r.rolname from pg_roles as r
    where r.rolname in ('anon', 'authenticated', 'service_role')
      and (has_table_privilege(r.rolname, 'public.conversion_pattern_history', 'truncate')
        or has_table_privilege(r.rolname, 'public.conversion_pattern_history', 'update')
        or has_table_privilege(r.rolname, 'public.conversion_pattern_history', 'delete'))$$,
  'no API role holds TRUNCATE, UPDATE or DELETE on the history');

-- Forged claims: a raw session in role authenticated whose claims say service_role.
set local role authenticated;
select set_config('request.jwt.claims',
  json_build_object('sub', (select stranger from ids), 'role', 'service_role')::text, true);
select is(ci_private.caller_role(), 'authenticated', 'forged claims: caller_role stays authenticated');
select throws_ok('select public.refresh_all_conversion_patterns()', '42501', null,
  'forged claims: refresh_all refused');
select throws_ok(
  format('select public.get_conversion_patterns(%L)', (select client_a from ids)), '42501', null,
  'forged claims: another tenant''s patterns refused');
-- Forged claims naming a role that is no API role: the least privilege.
select set_config('request.jwt.claims', '{"role": "supabase_admin"}', true);
select is(ci_private.caller_role(), 'anon', 'claims naming an unknown role count as anon');
reset role;

-- anon with claims saying authenticated stays anon, seen from inside a security
-- definer function (as assert_client_access sees it).
create function pg_temp.role_seen() returns text language sql security definer
set search_path = '' as $$ select ci_private.caller_role() $$;
grant execute on function pg_temp.role_seen() to public;
set local role anon;
select set_config('request.jwt.claims',
  json_build_object('sub', (select owner_a from ids), 'role', 'authenticated')::text, true);
select is(pg_temp.role_seen(), 'anon', 'anon with claims saying authenticated stays anon (inside a definer)');
reset role;

-- Claims may lower a role: service_role acting for a user is that user.
set local role service_role;
select set_config('request.jwt.claims',
  json_build_object('sub', (select owner_a from ids), 'role', 'authenticated')::text, true);
select is(ci_private.caller_role(), 'authenticated', 'service_role with a user''s claims acts as that user');
select lives_ok(
  format('select public.get_conversion_patterns(%L)', (select client_a from ids)),
  'lowered to the owner: reads the client');
reset role;

-- A real signed-in owner still works.
set local role authenticated;
select set_config('request.jwt.claims',
  json_build_object('sub', (select owner_a from ids), 'role', 'authenticated')::text, true);
select lives_ok(
  format('select public.get_conversion_patterns(%L)', (select client_a from ids)), 'owner reads its client');
reset role;
select set_config('request.jwt.claims', '', true);

-- Explicit grants: helpers that their own migrations revoked from authenticated stay
-- revoked, even after the old sweep (now defused) runs again.
select lives_ok('select ci_private.apply_privileges()', 'the old sweep still runs');
select is_empty(
  $$select s from unnest(array[
      'ci_private.setting(text)', 'ci_private.store_pattern(uuid,text,jsonb,timestamptz)',
      'ci_private.client_outcomes(uuid)', 'ci_private.schedule_jobs()',
      'ci_private.pattern_json(public.conversion_patterns)', 'ci_private.apply_privileges()'
    ]) as s
    where has_function_privilege('authenticated', s::regprocedure, 'execute')$$,
  'helpers revoked from authenticated by their own files stay revoked');
select is_empty(
  $$select p.oid::regprocedure::text from pg_proc as p
    where p.pronamespace = 'ci_private'::regnamespace
      and exists (select 1 from aclexplode(p.proacl) as a where a.grantee = 0)$$,
  'no function of ci_private is executable by PUBLIC');
select ok(
  not has_function_privilege('service_role', 'ci_jobs.run_scheduled_refresh(text)', 'execute')
  and not has_function_privilege('authenticated', 'ci_jobs.run_scheduled_refresh(text)', 'execute')
  and not has_function_privilege('service_role', 'ci_jobs.enforce_refresh_time_limit(text)', 'execute')
  and not has_function_privilege('authenticated', 'ci_jobs.enforce_refresh_time_limit(text)', 'execute'),
  'the scheduled run and its watchdog are the owner''s (pg_cron) only');

select * from finish();
rollback;
