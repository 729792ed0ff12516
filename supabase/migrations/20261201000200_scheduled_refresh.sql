-- The scheduled refresh keeps its work: a procedure that pg_cron CALLs,
-- committing each client on its own.
--
-- refresh_all_conversion_patterns() runs every client in one transaction: a
-- cancellation, a crash or a timeout while it waits on one client rolls back
-- every client already refreshed, and its one statement holds one snapshot for
-- the whole run (vacuum of the host's tables waits for it). The scheduled job
-- now CALLs ci_jobs.run_scheduled_refresh() instead:
--   * a run (ci_private.refresh_batches) lists every active client once
--     (ci_private.refresh_batch_clients); each client is refreshed in a
--     transaction of its own and committed with its outcome, so whatever stops
--     the run later keeps it;
--   * a client whose refresh lock (the advisory lock of
--     refresh_conversion_patterns) another session holds is waited on for at
--     most `refresh_lock_wait` (lock_timeout, local to that client's
--     transaction), then skipped as busy and recorded;
--   * every outcome is recorded, in public.conversion_refresh_runs as before
--     (ok, skipped with its reason, failed with its error) and in the run's
--     client row: ok, skipped, busy, failed, cancelled;
--   * a cancellation (pg_cancel_backend, a statement timeout of the caller) is
--     caught where it lands: that client is recorded as cancelled and
--     committed, and the procedure stops with the error;
--   * the next CALL resumes the latest unfinished run (started within
--     `refresh_resume_window`): the clients still pending or cancelled are
--     done, the others are not redone; a crash leaves the client it was on
--     pending. Two CALLs at once share the clients (FOR UPDATE SKIP LOCKED).
-- The procedure lives in a schema of its own, ci_jobs, reachable by its owner
-- only: not exposed by the API, and out of ci_private, whose released privilege
-- sweep (20261127039000) treats every routine there as a function.
-- A procedure that commits cannot be security definer nor carry a SET clause
-- (PostgreSQL forbids transaction control there): it runs as its caller (pg_cron
-- runs it as the owner of the job, the migration role), every name in it is
-- schema-qualified, and only the owner may call it.

create schema if not exists ci_jobs;
revoke all on schema ci_jobs from public;

insert into ci_private.settings (key, value) values
('refresh_lock_wait', '30s'),
('refresh_client_time_limit', '30 min'),
('time_limit_cron', '* * * * *'),
('refresh_resume_window', '6 days')
on conflict (key) do nothing;

create table if not exists ci_private.refresh_batches (
  id uuid primary key default public.uuid_generate_v7(),
  started_at timestamptz not null default pg_catalog.now(),
  finished_at timestamptz,
  -- How many CALLs worked on it (1 + resumptions).
  calls integer not null default 1,
  last_call_at timestamptz not null default pg_catalog.now()
);

create table if not exists ci_private.refresh_batch_clients (
  batch_id uuid not null references ci_private.refresh_batches (id) on delete cascade,
  client_id uuid not null references public.clients (id) on delete cascade,
  status text not null default 'pending',
  started_at timestamptz,
  finished_at timestamptz,
  -- The backend working on it (status running) and when the time limit stopped it.
  pid integer,
  timed_out_at timestamptz,
  detail jsonb not null default '{}'::jsonb,
  primary key (batch_id, client_id),
  constraint refresh_batch_clients_status_check
  check (status in ('pending', 'running', 'ok', 'skipped', 'busy', 'failed', 'cancelled'))
);
create index if not exists refresh_batch_clients_client_idx on ci_private.refresh_batch_clients (client_id);

alter table ci_private.refresh_batches enable row level security;
alter table ci_private.refresh_batch_clients enable row level security;
revoke all on ci_private.refresh_batches from public, anon, authenticated, service_role;
revoke all on ci_private.refresh_batch_clients from public, anon, authenticated, service_role;
grant select on ci_private.refresh_batches to service_role;
grant select on ci_private.refresh_batch_clients to service_role;
drop policy if exists refresh_batches_service_read on ci_private.refresh_batches;
create policy refresh_batches_service_read on ci_private.refresh_batches
for select to service_role using (true);
drop policy if exists refresh_batch_clients_service_read on ci_private.refresh_batch_clients;
create policy refresh_batch_clients_service_read on ci_private.refresh_batch_clients
for select to service_role using (true);

-- Refresh one client as one step of a run: wait for its refresh lock at most
-- p_lock_wait, then refresh it; every outcome but a cancellation is caught and
-- recorded in public.conversion_refresh_runs. Returns {status, reason?,
-- sqlstate?} with status ok, skipped (too few outcomes), busy or failed.
-- A query_canceled (cancel, timeout) is not caught here: the caller decides.
create or replace function ci_private.refresh_client_step(p_client_id uuid, p_lock_wait text)
returns jsonb
language plpgsql
set search_path = ''
as $$
declare
  v_started timestamptz := pg_catalog.clock_timestamp();
  v_min integer := coalesce(ci_private.setting('min_outcomes')::integer, 30);
  v_outcomes integer;
  v_result jsonb;
  v_old_timeout text := pg_catalog.current_setting('lock_timeout');
begin
  begin
    v_outcomes := ci_private.client_outcomes(p_client_id);
    if v_outcomes < v_min then
      v_result := jsonb_build_object(
        'client_id', p_client_id, 'status', 'skipped',
        'reason', format('insufficient outcomes: %s < %s', v_outcomes, v_min)
      );
      insert into public.conversion_refresh_runs (client_id, started_at, finished_at, status, detail)
      values (p_client_id, v_started, pg_catalog.clock_timestamp(), 'skipped', v_result);
      return v_result;
    end if;
    -- The refresh's own lock (and any lock the refresh then waits for) waited
    -- on for at most p_lock_wait: a client that another refresh holds is
    -- skipped, not waited on for hours.
    perform pg_catalog.set_config('lock_timeout', p_lock_wait, true);
    perform pg_catalog.pg_advisory_xact_lock(
      pg_catalog.hashtext('ci_refresh'), pg_catalog.hashtext(p_client_id::text)
    );
    v_result := public.refresh_conversion_patterns(p_client_id);
    perform pg_catalog.set_config('lock_timeout', v_old_timeout, true);
    return jsonb_build_object('client_id', p_client_id, 'status', 'ok');
  exception
    when lock_not_available then
      perform pg_catalog.set_config('lock_timeout', v_old_timeout, true);
      v_result := jsonb_build_object(
        'client_id', p_client_id, 'status', 'busy',
        'reason', format('busy: a lock of this client was held for more than %s (another refresh?)', p_lock_wait),
        'sqlstate', sqlstate
      );
      insert into public.conversion_refresh_runs (client_id, started_at, finished_at, status, detail)
      values (p_client_id, v_started, pg_catalog.clock_timestamp(), 'skipped', v_result);
      return v_result;
    when others then
      perform pg_catalog.set_config('lock_timeout', v_old_timeout, true);
      -- The subtransaction rolled back this client's partial work only.
      v_result := jsonb_build_object(
        'client_id', p_client_id, 'status', 'failed', 'reason', sqlerrm, 'sqlstate', sqlstate
      );
      insert into public.conversion_refresh_runs (client_id, started_at, finished_at, status, detail)
      values (p_client_id, v_started, pg_catalog.clock_timestamp(), 'failed', v_result);
      return v_result;
  end;
end
$$;

revoke execute on function ci_private.refresh_client_step(uuid, text) from public, anon, authenticated, service_role;

-- The scheduled run (see the top of this file). p_lock_wait overrides the
-- setting refresh_lock_wait for this call. Raises query_canceled after
-- recording and committing the client it was cancelled on.
create or replace procedure ci_jobs.run_scheduled_refresh(p_lock_wait text default null)
language plpgsql
as $$
declare
  v_batch uuid;
  v_client uuid;
  v_started timestamptz;
  v_result jsonb;
  v_wait text := coalesce(p_lock_wait, ci_private.setting('refresh_lock_wait'), '30s');
  v_window interval := coalesce(ci_private.setting('refresh_resume_window'), '6 days')::interval;
  v_cancel_message text;
begin
  -- Find the run to resume or start one; one session at a time decides.
  perform pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('ci_refresh_batch'), 0);
  select b.id into v_batch
  from ci_private.refresh_batches as b
  where b.finished_at is null and b.started_at > pg_catalog.now() - v_window
  order by b.started_at desc
  limit 1;
  if v_batch is null then
    insert into ci_private.refresh_batches default values returning id into v_batch;
    insert into ci_private.refresh_batch_clients (batch_id, client_id)
    select v_batch, c.id from public.clients as c where c.deleted_at is null;
  else
    update ci_private.refresh_batches
    set calls = calls + 1, last_call_at = pg_catalog.now()
    where id = v_batch;
    -- Clients added since the run started join it.
    insert into ci_private.refresh_batch_clients (batch_id, client_id)
    select v_batch, c.id from public.clients as c where c.deleted_at is null
    on conflict do nothing;
  end if;
  commit;

  loop
    -- Claim the next client not done (a second CALL takes another one) and
    -- commit the claim, so that the time-limit watchdog sees who works on it.
    -- A client left running by a backend that is gone (a crash) is claimed again.
    select bc.client_id into v_client
    from ci_private.refresh_batch_clients as bc
    join public.clients as c on c.id = bc.client_id
    where bc.batch_id = v_batch and c.deleted_at is null
      and (bc.status in ('pending', 'cancelled')
        or (bc.status = 'running' and not exists (
          select 1 from pg_catalog.pg_stat_activity as a
          where a.pid = bc.pid and a.backend_start <= bc.started_at
        )))
    order by bc.client_id
    limit 1
    for update of bc skip locked;
    exit when v_client is null;
    v_started := pg_catalog.clock_timestamp();
    update ci_private.refresh_batch_clients
    set status = 'running', pid = pg_catalog.pg_backend_pid(), started_at = v_started, timed_out_at = null
    where batch_id = v_batch and client_id = v_client;
    commit;

    v_cancel_message := null;
    begin
      v_result := ci_private.refresh_client_step(v_client, v_wait);
    exception when query_canceled then
      if exists (
        select 1 from ci_private.refresh_batch_clients as bc
        where bc.batch_id = v_batch and bc.client_id = v_client and bc.timed_out_at is not null
      ) then
        -- The watchdog stopped this client at its time limit: recorded, the run goes on.
        v_result := jsonb_build_object(
          'client_id', v_client, 'status', 'failed', 'reason',
          format('time limit: the client ran longer than %s', ci_private.setting('refresh_client_time_limit')),
          'sqlstate', sqlstate
        );
      else
        v_cancel_message := sqlerrm;
        v_result := jsonb_build_object(
          'client_id', v_client, 'status', 'cancelled', 'reason', sqlerrm, 'sqlstate', sqlstate
        );
      end if;
      insert into public.conversion_refresh_runs (client_id, started_at, finished_at, status, detail)
      values (v_client, v_started, pg_catalog.clock_timestamp(), 'failed', v_result);
    end;

    update ci_private.refresh_batch_clients
    set status = v_result ->> 'status',
      finished_at = pg_catalog.clock_timestamp(),
      pid = null,
      detail = v_result
    where batch_id = v_batch and client_id = v_client;
    commit;

    if v_cancel_message is not null then
      raise exception 'scheduled refresh cancelled (%); clients done so far are kept, the next call resumes run %',
        v_cancel_message, v_batch
        using errcode = 'query_canceled';
    end if;
  end loop;

  -- Done when no client is left to do (another CALL may still hold one).
  update ci_private.refresh_batches as b
  set finished_at = pg_catalog.clock_timestamp()
  where b.id = v_batch and b.finished_at is null
    and not exists (
      select 1
      from ci_private.refresh_batch_clients as bc
      join public.clients as c on c.id = bc.client_id
      where bc.batch_id = b.id and bc.status in ('pending', 'running', 'cancelled') and c.deleted_at is null
    );
  commit;
end
$$;

revoke execute on procedure ci_jobs.run_scheduled_refresh(text) from public, anon, authenticated, service_role;

-- Each client's time limit. Inside one CALL PostgreSQL arms statement_timeout
-- once, at the CALL (a timeout set in the procedure never fires), so a
-- watchdog enforces refresh_client_time_limit from outside: it marks each
-- client that has been running longer, COMMITS the mark, then cancels the
-- backend working on it; the run sees the mark, records the client as failed
-- (time limit) and goes on with the next. A cancellation without the mark is
-- an operator's, and stops the run. pg_cron CALLs it every minute
-- (time_limit_cron); p_limit overrides the setting. Returns nothing; the
-- clients stopped are in the run's rows (timed_out_at).
create or replace procedure ci_jobs.enforce_refresh_time_limit(p_limit text default null)
language plpgsql
as $$
declare
  v_limit interval := coalesce(p_limit, ci_private.setting('refresh_client_time_limit'), '30 min')::interval;
  v_pids integer [];
  v_pid integer;
begin
  with hit as (
    update ci_private.refresh_batch_clients as bc
    set timed_out_at = pg_catalog.clock_timestamp()
    where bc.status = 'running' and bc.timed_out_at is null
      and bc.started_at < pg_catalog.clock_timestamp() - v_limit
      and exists (
        select 1 from pg_catalog.pg_stat_activity as a
        where a.pid = bc.pid and a.backend_start <= bc.started_at
      )
    returning bc.pid
  )
  select coalesce(array_agg(hit.pid), array[]::integer []) into v_pids from hit;
  -- The marks must be visible before the cancel lands.
  commit;
  foreach v_pid in array v_pids loop
    perform pg_catalog.pg_cancel_backend(v_pid);
  end loop;
end
$$;

revoke execute on procedure ci_jobs.enforce_refresh_time_limit(text) from public, anon, authenticated, service_role;

-- Every active client, each on its own, in ONE transaction (a function cannot
-- commit): for RPC callers and scripts. Contract signature kept. Each client is
-- a step as in the scheduled run (bounded wait for a busy client, every outcome
-- recorded); unlike the scheduled run, a cancellation or timeout of this call
-- rolls every client back, and its statement holds one snapshot for the whole
-- run. The weekly job uses ci_jobs.run_scheduled_refresh() instead.
create or replace function public.refresh_all_conversion_patterns()
returns jsonb
language plpgsql
security definer
set search_path = ''
set statement_timeout = '4h'
as $$
declare
  v_role text := ci_private.caller_role();
  v_client record;
  v_results jsonb := '[]'::jsonb;
  v_result jsonb;
  v_wait text := coalesce(ci_private.setting('refresh_lock_wait'), '30s');
begin
  if v_role in ('anon', 'authenticated') then
    raise exception 'refresh_all_conversion_patterns is for service_role and the scheduler'
      using errcode = 'insufficient_privilege';
  end if;

  for v_client in
    select c.id from public.clients as c where c.deleted_at is null order by c.id
  loop
    v_result := ci_private.refresh_client_step(v_client.id, v_wait);
    v_results := v_results || jsonb_build_array(
      jsonb_build_object('client_id', v_client.id, 'status', v_result ->> 'status')
      || case when v_result ? 'reason' then jsonb_build_object('reason', v_result ->> 'reason') else '{}'::jsonb end
    );
  end loop;

  return jsonb_build_object(
    'finished_at', pg_catalog.clock_timestamp(),
    'clients', v_results,
    'ok', (select count(*) from jsonb_array_elements(v_results) as r where r ->> 'status' = 'ok'),
    'skipped', (select count(*) from jsonb_array_elements(v_results) as r where r ->> 'status' in ('skipped', 'busy')),
    'failed', (select count(*) from jsonb_array_elements(v_results) as r where r ->> 'status' = 'failed')
  );
end
$$;

revoke execute on function public.refresh_all_conversion_patterns() from public, anon, authenticated, service_role;
grant execute on function public.refresh_all_conversion_patterns() to service_role;

comment on function public.refresh_all_conversion_patterns() is
'Refreshes every active client (not deleted), each on its own: returns {finished_at, clients: [{client_id, status '
'ok|skipped|busy|failed, reason?}], ok, skipped (incl. busy), failed}. A client whose refresh another session holds '
'is waited on for at most the setting refresh_lock_wait (default 30s), then reported busy; clients under '
'min_outcomes are skipped; a failure is recorded and the others go on; every outcome is also recorded in '
'conversion_refresh_runs. One transaction: a cancellation or timeout of the call keeps nothing; the weekly pg_cron '
'job runs ci_jobs.run_scheduled_refresh() instead, which commits each client. service_role (and database roles) '
'only: anon and authenticated get 42501.';

-- pg_cron's run log of the layer's own jobs only, older than keep_run_details;
-- also the runs left in a running state (a crash, a restart) that started
-- before that. Other jobs' history is the host's. Returns the rows deleted.
create or replace function ci_private.trim_cron_run_details()
returns integer
language plpgsql
set search_path = ''
as $$
declare
  v_keep interval := coalesce(ci_private.setting('keep_run_details'), '14 days')::interval;
  v_deleted integer;
begin
  if pg_catalog.to_regclass('cron.job_run_details') is null then
    return 0;
  end if;
  execute $sql$
    delete from cron.job_run_details as d
    where d.jobid in (
        select j.jobid from cron.job as j
        where j.jobname in ('ci-weekly-refresh', 'ci-trim-cron-run-details', 'ci-refresh-time-limit')
      )
      and (d.end_time < pg_catalog.now() - $1
        or (d.end_time is null and d.status in ('starting', 'running', 'sending', 'connecting')
          and d.start_time < pg_catalog.now() - $1))
  $sql$ using v_keep;
  get diagnostics v_deleted = row_count;
  return v_deleted;
end
$$;

revoke execute on function ci_private.trim_cron_run_details() from public, anon, authenticated, service_role;

-- The layer's jobs: the weekly run CALLs the procedure (alone in its command,
-- since a procedure that commits cannot run inside a multi-statement string),
-- the daily trim calls the trim function. Named, so re-running reschedules.
create or replace function ci_private.schedule_jobs()
returns jsonb
language plpgsql
set search_path = ''
as $$
declare
  v_refresh text := ci_private.setting('refresh_cron');
  v_trim text := ci_private.setting('trim_cron');
  v_keep text := ci_private.setting('keep_run_details');
  v_watch text := coalesce(ci_private.setting('time_limit_cron'), '* * * * *');
begin
  if pg_catalog.to_regnamespace('cron') is null then
    return jsonb_build_object('scheduled', false, 'reason', 'pg_cron is not installed in this database');
  end if;
  -- Validate before scheduling: an interval that does not parse stops here.
  perform v_keep::interval;
  execute format(
    'select cron.schedule(%L, %L, %L)',
    'ci-weekly-refresh', v_refresh, 'call ci_jobs.run_scheduled_refresh()'
  );
  execute format(
    'select cron.schedule(%L, %L, %L)',
    'ci-trim-cron-run-details', v_trim, 'select ci_private.trim_cron_run_details()'
  );
  execute format(
    'select cron.schedule(%L, %L, %L)',
    'ci-refresh-time-limit', v_watch, 'call ci_jobs.enforce_refresh_time_limit()'
  );
  return jsonb_build_object('scheduled', true, 'refresh_cron', v_refresh, 'trim_cron', v_trim,
    'keep_run_details', v_keep, 'time_limit_cron', v_watch);
end
$$;

revoke execute on function ci_private.schedule_jobs() from public, anon, authenticated, service_role;
grant execute on function ci_private.schedule_jobs() to service_role;

select ci_private.schedule_jobs();
