-- Rescoring a large client after its ICP or learned weights changed, within
-- minutes and in short transactions.
--
-- Why: a client of more than rescore_inline_max leads whose ICP or weights
-- change is queued (ci_private.als_rescore_queue, rescore_on_icp_change
-- migration) so that the host's UPDATE of clients never rewrites every lead.
-- Until now the queue was worked off only by the client's next refresh, a week
-- later with the weekly schedule: the leads kept scores from the old weights
-- meanwhile (the scorer, the allocator and the agents read them), and the
-- refresh that applies new weights always leaves its own rescore to the next
-- week. In the refresh benchmark (20,000 leads) that deferred rescore was 3.2 s
-- of the next 9.5 s refresh.
--
-- Now a pg_cron job CALLs ci_jobs.rescore_pending() every five minutes
-- (setting rescore_cron): each queued client is rescored in batches of
-- rescore_batch leads (5,000), each batch its own transaction, so a host write
-- to a lead waits at most for one batch (about 0.2-0.8 s), not for the whole
-- client; the client leaves the queue when done unless it was queued again
-- meanwhile (then the next call rescores it again with the newer context). A
-- queued client locked by a running refresh is skipped (the refresh rescores
-- it). The refresh keeps working off its own client first, as before.

insert into ci_private.settings (key, value) values
('rescore_cron', '*/5 * * * *'),
('rescore_batch', '5000')
on conflict (key) do nothing;

-- Rescore the given leads of a client (those not deleted) with the client's
-- current context; returns how many were rescored. The batch step of
-- ci_jobs.rescore_pending, and the one scoring UPDATE of a rescore:
-- ci_private.rescore_leads (below) calls it with the client's lead ids.
-- security definer: writes the leads' score columns for the job, whose owner
-- is the migration role (on hosted Supabase not a superuser).
create or replace function ci_private.rescore_lead_ids(p_client_id uuid, p_lead_ids uuid [])
returns integer
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_ctx record;
  v_today date := ci_private.als_today();
  v_count integer;
begin
  select k.industries, k.sizes, k.locations, k.weights, k.weight_units
  into v_ctx
  from public.clients as c
  cross join lateral ci_private.als_context(c) as k
  where c.id = p_client_id;
  if not found then
    return 0;
  end if;

  update public.leads as l
  set (
    als_data_quality, als_authority, als_company_fit, als_timing, als_risk,
    als_score, als_tier, als_components, als_weights_used, scored_at
  ) = (
    select
      p.data_quality, p.authority, p.company_fit, p.timing, p.risk,
      s.score, ci_private.als_tier(s.score), ci_private.als_snapshot(p), v_ctx.weights, pg_catalog.now()
    from ci_private.als_components(
      l.email, l.email_verified, l.phone, l.phone_verified, l.linkedin_url, l.personal_email,
      l.title, l.organization_industry, l.organization_employee_count, l.organization_country,
      l.organization_is_hiring, l.organization_latest_funding_date, l.employment_start_date,
      l.bounce_count, l.status::text,
      v_ctx.industries, v_ctx.sizes, v_ctx.locations, v_today
    ) as p
    cross join lateral (
      select ci_private.als_score(
        p.data_quality, p.authority, p.company_fit, p.timing, p.risk, v_ctx.weight_units
      ) as score
      offset 0
    ) as s
  )
  where l.id = any(p_lead_ids)
    and l.client_id = p_client_id
    and l.deleted_at is null;
  get diagnostics v_count = row_count;
  return v_count;
end
$$;

revoke execute on function ci_private.rescore_lead_ids(uuid, uuid []) from public, anon, authenticated;
grant execute on function ci_private.rescore_lead_ids(uuid, uuid []) to service_role;

-- Rescore a client's non-deleted leads (or one of them) in one statement, as of
-- today, with the weights in force. Returns the number of leads rescored.
-- The scoring UPDATE is rescore_lead_ids' (one copy of it): this passes the one
-- lead, or the ids of the client's non-deleted leads, read just before.
-- security definer: the layer's own bookkeeping columns; callers are checked by
-- the public functions (or are trusted internal ones).
create or replace function ci_private.rescore_leads(p_client_id uuid, p_lead_id uuid default null)
returns integer
language plpgsql
security definer
set search_path = ''
as $$
begin
  if p_lead_id is not null then
    return ci_private.rescore_lead_ids(p_client_id, array[p_lead_id]);
  end if;
  return ci_private.rescore_lead_ids(
    p_client_id,
    array(
      select l.id from public.leads as l
      where l.client_id = p_client_id and l.deleted_at is null
    )
  );
end
$$;

revoke execute on function ci_private.rescore_leads(uuid, uuid) from public, anon, authenticated;
grant execute on function ci_private.rescore_leads(uuid, uuid) to service_role;

-- Work off the rescore queue: each queued client (oldest request first) in
-- batches of p_batch leads (default setting rescore_batch), each batch
-- committed. A procedure that commits: no SET clause, not security definer
-- (see the scheduled_refresh migration); every name is qualified and only its
-- owner may call it.
create or replace procedure ci_jobs.rescore_pending(p_batch integer default null)
language plpgsql
as $$
declare
  v_batch integer := greatest(coalesce(p_batch, ci_private.setting('rescore_batch')::integer, 5000), 1);
  v_clients uuid [];
  v_client uuid;
  v_requested timestamptz;
  v_ids uuid [];
  v_from integer;
begin
  select coalesce(array_agg(q.client_id order by q.requested_at, q.client_id), '{}'::uuid []) into v_clients
  from ci_private.als_rescore_queue as q;
  foreach v_client in array v_clients loop
    -- A client whose refresh holds its queue row is the refresh's to rescore.
    select q.requested_at into v_requested
    from ci_private.als_rescore_queue as q
    where q.client_id = v_client
    for update skip locked;
    if not found then
      commit;
      continue;
    end if;
    select coalesce(array_agg(l.id order by l.id), '{}'::uuid []) into v_ids
    from public.leads as l
    where l.client_id = v_client and l.deleted_at is null;
    -- The queue row stays locked only for the first batch: later batches run
    -- beside a refresh, which may rescore the client too (same result).
    v_from := 1;
    while v_from <= cardinality(v_ids) loop
      perform ci_private.rescore_lead_ids(v_client, v_ids[v_from:v_from + v_batch - 1]);
      v_from := v_from + v_batch;
      commit;
    end loop;
    -- Done, unless queued again meanwhile (a newer ICP or weights: redo).
    delete from ci_private.als_rescore_queue as q
    where q.client_id = v_client and q.requested_at = v_requested;
    commit;
  end loop;
end
$$;

revoke execute on procedure ci_jobs.rescore_pending(integer) from public, anon, authenticated, service_role;

-- The trim keeps the run history of the layer's jobs only: the new job is one.
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
        where j.jobname in (
          'ci-weekly-refresh', 'ci-trim-cron-run-details', 'ci-refresh-time-limit', 'ci-rescore-pending'
        )
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

-- The layer's jobs, as before plus the rescore job. Named, so re-running reschedules.
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
  v_rescore text := coalesce(ci_private.setting('rescore_cron'), '*/5 * * * *');
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
  execute format(
    'select cron.schedule(%L, %L, %L)',
    'ci-rescore-pending', v_rescore, 'call ci_jobs.rescore_pending()'
  );
  return jsonb_build_object('scheduled', true, 'refresh_cron', v_refresh, 'trim_cron', v_trim,
    'keep_run_details', v_keep, 'time_limit_cron', v_watch, 'rescore_cron', v_rescore);
end
$$;

revoke execute on function ci_private.schedule_jobs() from public, anon, authenticated, service_role;
grant execute on function ci_private.schedule_jobs() to service_role;

select ci_private.schedule_jobs();
