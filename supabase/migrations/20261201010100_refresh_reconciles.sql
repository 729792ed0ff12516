-- The weekly refresh reconciles first (issue 13): public.refresh_conversion_patterns
-- as in the refresh migration, with ci_private.reconcile_client_conversions run
-- before anything is read, and its corrections recorded in the result, the run's
-- detail and every stored pattern's metadata.reconciled; a client queued for
-- rescoring (its ICP or weights changed) is rescored right after it.

-- A pattern with the reconciliation's corrections merged into its metadata
-- object (a metadata value that is not an object is kept under metadata.detector).
create or replace function ci_private.with_reconciled(p_pattern jsonb, p_reconciled jsonb)
returns jsonb
language sql immutable
set search_path = ''
as $$
  select case
    when p_pattern is null or jsonb_typeof(p_pattern) <> 'object' then p_pattern
    else p_pattern || jsonb_build_object(
      'metadata',
      case
        when jsonb_typeof(p_pattern -> 'metadata') = 'object' then p_pattern -> 'metadata'
        when p_pattern ? 'metadata' then jsonb_build_object('detector', p_pattern -> 'metadata')
        else '{}'::jsonb
      end || jsonb_build_object('reconciled', p_reconciled)
    )
  end
$$;

-- Compute and store all four patterns of a client; all or nothing. First the
-- client's conversions, marks and kept touches are re-derived from history
-- (ci_private.reconcile_client_conversions: what a trigger could not see, a
-- concurrent send, writes with triggers disabled), so the detectors read the
-- corrected state; what it corrected is in the result ('reconciled'), the
-- run's detail and each stored pattern's metadata.reconciled.
-- security definer: owners and admins may refresh over RPC, but the pattern
-- tables and clients.als_learned_weights are written only by this layer.
create or replace function public.refresh_conversion_patterns(p_client_id uuid)
returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_now timestamptz;
  v_who jsonb;
  v_what jsonb;
  v_when jsonb;
  v_how jsonb;
  v_summary jsonb := '{}'::jsonb;
  v_learning jsonb;
  v_applied jsonb;
  v_reconciled jsonb;
begin
  perform ci_private.assert_client_access(p_client_id, true);
  -- Two refreshes of one client never interleave: the second waits, then
  -- recomputes over the data as it then is.
  perform pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('ci_refresh'), pg_catalog.hashtext(p_client_id::text));
  -- The time is read once the lock is held, so the later refresh always
  -- stores the later computed_at.
  v_now := pg_catalog.clock_timestamp();

  -- Content features still missing (rows stored before the layer) read once;
  -- then one shared snapshot of the client's touches for the four detectors.
  v_reconciled := ci_private.reconcile_client_conversions(p_client_id);
  -- Leads of a large client whose ICP or weights changed since: rescored now
  -- (rescore_on_icp_change migration), so WHO reads current scores.
  v_reconciled := v_reconciled || jsonb_build_object('leads_rescored', ci_private.rescore_if_pending(p_client_id));
  perform ci_private.fill_content_features(p_client_id);
  perform ci_private.prepare_touches(p_client_id);
  v_who := public.detect_who_patterns(p_client_id);
  v_what := public.detect_what_patterns(p_client_id);
  v_when := public.detect_when_patterns(p_client_id);
  v_how := public.detect_how_patterns(p_client_id);

  -- The corrections go into each pattern's metadata (merged into the
  -- detector's own metadata object, never replacing it).
  v_who := ci_private.with_reconciled(v_who, v_reconciled);
  v_what := ci_private.with_reconciled(v_what, v_reconciled);
  v_when := ci_private.with_reconciled(v_when, v_reconciled);
  v_how := ci_private.with_reconciled(v_how, v_reconciled);

  v_summary := jsonb_build_object(
    'who', ci_private.store_pattern(p_client_id, 'who', v_who, v_now),
    'what', ci_private.store_pattern(p_client_id, 'what', v_what, v_now),
    'when', ci_private.store_pattern(p_client_id, 'when', v_when, v_now),
    'how', ci_private.store_pattern(p_client_id, 'how', v_how, v_now)
  );

  -- Learned weights: only when the WHO detector's checks passed.
  v_learning := v_who -> 'weight_learning';
  if coalesce((v_learning ->> 'applied')::boolean, false) then
    v_applied := ci_private.apply_als_weights(p_client_id, v_learning -> 'new_weights', v_learning);
  else
    v_applied := jsonb_build_object('applied', false, 'reason', coalesce(v_learning ->> 'reason', 'no decision'));
  end if;

  update public.clients
  set conversion_sample_count = coalesce((v_who ->> 'sample_size')::integer, 0)
  where id = p_client_id;

  insert into public.conversion_refresh_runs (client_id, started_at, finished_at, status, detail)
  values (p_client_id, v_now, pg_catalog.clock_timestamp(), 'ok', v_summary || jsonb_build_object('weights', v_applied, 'reconciled', v_reconciled));

  perform pg_catalog.pg_notify(
    'conversion_patterns_refreshed',
    jsonb_build_object('client_id', p_client_id, 'computed_at', v_now)::text
  );

  return jsonb_build_object('client_id', p_client_id, 'status', 'ok', 'computed_at', v_now, 'weights', v_applied,
    'reconciled', v_reconciled
  )
    || v_summary;
end
$$;

revoke execute on function ci_private.with_reconciled(jsonb, jsonb) from public, anon, authenticated;
grant execute on function ci_private.with_reconciled(jsonb, jsonb) to service_role;
revoke execute on function public.refresh_conversion_patterns(uuid) from public, anon;
grant execute on function public.refresh_conversion_patterns(uuid) to authenticated, service_role;
