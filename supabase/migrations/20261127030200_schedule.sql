-- pg_cron jobs: the weekly refresh of every client and the daily trim of
-- cron.job_run_details. Named jobs, so re-running this (or ci_private.schedule_jobs
-- after a settings change) updates them instead of adding duplicates. The
-- schedule comes from ci_private.settings, the one place it is kept. Where
-- pg_cron is absent (another database of the cluster, a host without it) this
-- schedules nothing and says so.

-- (Re)schedule the layer's jobs from ci_private.settings; returns what was done.
create or replace function ci_private.schedule_jobs()
returns jsonb
language plpgsql
set search_path = ''
as $$
declare
  v_refresh text := ci_private.setting('refresh_cron');
  v_trim text := ci_private.setting('trim_cron');
  v_keep text := ci_private.setting('keep_run_details');
  v_timeout text := ci_private.setting('refresh_statement_timeout');
begin
  if pg_catalog.to_regnamespace('cron') is null then
    return jsonb_build_object('scheduled', false, 'reason', 'pg_cron is not installed in this database');
  end if;
  -- Validate before scheduling: an interval that does not parse stops here.
  perform v_keep::interval;
  execute format(
    'select cron.schedule(%L, %L, %L)',
    'ci-weekly-refresh', v_refresh,
    format('set statement_timeout = %L; select public.refresh_all_conversion_patterns();', v_timeout)
  );
  execute format(
    'select cron.schedule(%L, %L, %L)',
    'ci-trim-cron-run-details', v_trim,
    format('delete from cron.job_run_details where end_time < now() - interval %L;', v_keep)
  );
  return jsonb_build_object('scheduled', true, 'refresh_cron', v_refresh, 'trim_cron', v_trim,
    'keep_run_details', v_keep);
end
$$;

revoke execute on function ci_private.schedule_jobs() from public, anon, authenticated;
grant execute on function ci_private.schedule_jobs() to service_role;

select ci_private.schedule_jobs();
