-- The rescore job skips the leads another transaction holds, as the refresh
-- does (migration 20261201111000), and keeps the client queued for its next
-- run (a review of release 0.6.0).
--
-- ci_jobs.rescore_pending rescored a queued client's leads waiting for any
-- lead a host transaction held, while holding the client's queue row (its
-- first batch). Two cycles followed, each rolling back a host's write:
-- - the host's ICP change, whose clients trigger writes the same queue row,
--   waited for the job, which waited for a lead the host held (2 of 2);
-- - the refresh, holding the client's ci_lead_touches lock, waited for the
--   queue row (applying weights), the job for a host's lead, and the host's
--   activity delete for the lock (2 of 2; in looping runs with the job every
--   2 s, 16 host and 11 job victims in 240 s).
-- Now each batch locks its leads FOR NO KEY UPDATE SKIP LOCKED
-- (ci_private.rescore_lead_slices); when any was skipped the queue row stays
-- (its request time unchanged), and the job's next run (every 5 minutes)
-- rescores the client again. Body of migration 20261201080000 otherwise.
-- Test: tests/test_rescore_job.py (a job run while a lead is held, under a
-- lock timeout).
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
  v_skipped integer;
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
    v_skipped := 0;
    while v_from <= cardinality(v_ids) loop
      v_skipped := v_skipped + cardinality(v_ids[v_from:v_from + v_batch - 1])
        - ci_private.rescore_lead_slices(v_client, v_ids[v_from:v_from + v_batch - 1], true);
      v_from := v_from + v_batch;
      commit;
    end loop;
    -- Done, unless queued again meanwhile (a newer ICP or weights: redo), or
    -- a lead was skipped (held by another transaction, or deleted meanwhile):
    -- then the next run rescores the client again.
    if v_skipped = 0 then
      delete from ci_private.als_rescore_queue as q
      where q.client_id = v_client and q.requested_at = v_requested;
    end if;
    commit;
  end loop;
end
$$;

revoke execute on procedure ci_jobs.rescore_pending(integer) from public, anon, authenticated, service_role;
