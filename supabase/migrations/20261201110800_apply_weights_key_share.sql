-- Applying learned weights no longer blocks the host's inserts for the client.
--
-- ci_private.apply_als_weights (migration 20261201110100, and since release
-- 0.1.0) read the client's row FOR UPDATE to serialise two applications.
-- FOR UPDATE also conflicts with FOR KEY SHARE, the lock every foreign-key
-- check takes on the referenced row. Every lead or activity the host inserted
-- for that client then waited until the refresh committed (the weights are
-- applied near its end, and a small client is rescored before it commits),
-- and a host transaction that already held one of the client's leads could
-- deadlock with the refresh's rescore: a fresh user's test with two writers
-- and looping refreshes failed 3 of 44 refreshes, one of them this way.
-- FOR NO KEY UPDATE serialises applications the same way (it conflicts with
-- itself and with a delete of the client), and is the lock the UPDATE of the
-- client's weights takes anyway; it does not block foreign-key checks.
-- tests/test_apply_weights_locks.py inserts an activity while weights are
-- being applied in another transaction, with a lock timeout.
create or replace function ci_private.apply_als_weights(p_client_id uuid, p_weights jsonb, p_decision jsonb)
returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_old jsonb;
  v_stored jsonb;
  v_new jsonb;
  v_rescored integer;
  v_sample integer;
  v_queued boolean;
  v_stale boolean;
  v_leads integer;
begin
  perform ci_private.assert_client_access(p_client_id, true);
  if jsonb_typeof(p_decision -> 'applied') = 'boolean' and not (p_decision ->> 'applied')::boolean then
    return jsonb_build_object(
      'applied', false,
      'reason', 'the decision says not applied: ' || coalesce(p_decision ->> 'reason', 'no reason given')
    );
  end if;
  if not ci_private.als_valid_weights(p_weights) then
    raise exception 'invalid ALS weights %', coalesce(p_weights::text, 'null')
      using errcode = 'invalid_parameter_value',
      hint = 'four numbers data_quality, authority, company_fit, timing, each in [0.05, 0.50], summing to 0.85';
  end if;

  v_new := ci_private.als_quantize_weights(p_weights);
  v_sample := case
    when jsonb_typeof(p_decision -> 'n') = 'number' then (p_decision ->> 'n')::numeric::integer
  end;
  select ci_private.als_weights_in_force(c.als_learned_weights), c.als_learned_weights into v_old, v_stored
  from public.clients as c
  where c.id = p_client_id
  -- Not FOR UPDATE: that also blocks the foreign-key checks (FOR KEY SHARE)
  -- of every lead and activity the host inserts for the client.
  for no key update;
  -- The queue row next (when there is one), before the context and the
  -- leads: the order of the rescore job and rescore_if_pending, so that they
  -- wait for each other instead of deadlocking.
  perform 1 from ci_private.als_rescore_queue as q where q.client_id = p_client_id for update;

  -- New weights: the clients trigger rescores a small client here, or queues a large one.
  update public.clients
  set als_learned_weights = v_new,
    als_weights_updated_at = pg_catalog.now(),
    conversion_sample_count = coalesce(v_sample, conversion_sample_count)
  where id = p_client_id;
  perform ci_private.refresh_als_context(p_client_id);

  v_leads := ci_private.rescore_inline_leads(p_client_id);
  v_stale := exists (
    select 1 from public.leads as l
    where l.client_id = p_client_id and l.deleted_at is null and l.als_weights_used is distinct from v_new
  );
  v_queued := exists (select 1 from ci_private.als_rescore_queue as q where q.client_id = p_client_id);
  if v_leads is not null then
    if v_stale or v_queued then
      delete from ci_private.als_rescore_queue as q where q.client_id = p_client_id;
      v_rescored := ci_private.rescore_leads(p_client_id);
    elsif v_stored is distinct from v_new and pg_catalog.current_setting('session_replication_role') <> 'replica' then
      -- Every lead scored with the new weights: by the trigger, in the UPDATE above
      -- (which a replica-mode session does not fire).
      v_rescored := v_leads;
    else
      v_rescored := 0;
    end if;
    v_queued := false;
  else
    if v_stale then
      insert into ci_private.als_rescore_queue as q (client_id) values (p_client_id)
      on conflict (client_id) do update set requested_at = pg_catalog.now();
      v_queued := true;
    end if;
    v_rescored := 0;
  end if;
  return jsonb_build_object(
    'applied', true,
    'weights', v_new,
    'previous_weights', v_old,
    'rescored', v_rescored,
    'rescore_queued', v_queued,
    'applied_at', pg_catalog.now()
  );
end
$$;
