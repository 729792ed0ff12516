-- The layer's cron jobs: the weekly job CALLs the procedure that commits each
-- client, the watchdog CALLs the time-limit procedure; the trim deletes only the layer's own jobs' run history, including
-- runs left in a running state, older than keep_run_details, never another
-- job's. Skipped where pg_cron is not installed in this database.
begin;
select plan(8);

create function pg_temp.has_cron() returns boolean language sql as $$
  select pg_catalog.to_regclass('cron.job_run_details') is not null
$$;

create function pg_temp.cron_checks() returns setof text language plpgsql as $$
declare
  v_layer bigint;
  v_host bigint;
  v_deleted integer;
begin
  return next is(
    (select command from cron.job where jobname = 'ci-weekly-refresh'),
    'call ci_jobs.run_scheduled_refresh()', 'the weekly job CALLs the procedure, alone in its command');
  return next is(
    (select command from cron.job where jobname = 'ci-trim-cron-run-details'),
    'select ci_private.trim_cron_run_details()', 'the trim job calls the trim function');
  return next is(
    (select command from cron.job where jobname = 'ci-refresh-time-limit'),
    'call ci_jobs.enforce_refresh_time_limit()', 'the time-limit watchdog CALLs its procedure');
  return next is(
    (select command from cron.job where jobname = 'ci-rescore-pending'),
    'call ci_jobs.rescore_pending()', 'the rescore job CALLs its procedure');

  select jobid into v_layer from cron.job where jobname = 'ci-weekly-refresh';
  select cron.schedule('ci-test-host-job', '0 0 1 1 *', 'select 1') into v_host;
  insert into cron.job_run_details (jobid, runid, job_pid, database, username, command, status, start_time, end_time)
  values
  (v_layer, -901, 1, 'postgres', current_user, 'x', 'succeeded', now() - interval '40 days', now() - interval '40 days'),
  (v_layer, -902, 1, 'postgres', current_user, 'x', 'succeeded', now() - interval '1 day', now() - interval '1 day'),
  (v_layer, -903, 1, 'postgres', current_user, 'x', 'running', now() - interval '40 days', null),
  (v_layer, -904, 1, 'postgres', current_user, 'x', 'running', now() - interval '1 hour', null),
  (v_host, -905, 1, 'postgres', current_user, 'x', 'succeeded', now() - interval '40 days', now() - interval '40 days'),
  (v_host, -906, 1, 'postgres', current_user, 'x', 'running', now() - interval '40 days', null);

  v_deleted := ci_private.trim_cron_run_details();
  return next is(v_deleted, 2, 'the trim deleted two rows');
  return next is(
    (select array_agg(runid order by runid desc) from cron.job_run_details where runid between -906 and -901),
    array[-902, -904, -905, -906]::bigint [],
    'kept: the layer''s recent runs and every run of another job; gone: the layer''s old and stuck runs');
  return next is(
    (select count(*)::integer from cron.job_run_details where jobid = v_host), 2,
    'another job''s history is left alone, even when old or stuck');
  return next ok(
    not has_function_privilege('authenticated', 'ci_private.trim_cron_run_details()', 'execute'),
    'the trim is not callable by authenticated');
end
$$;

select * from pg_temp.cron_checks() where pg_temp.has_cron();
select skip('pg_cron is not installed in this database', 8) where not pg_temp.has_cron();

select * from finish();
rollback;
