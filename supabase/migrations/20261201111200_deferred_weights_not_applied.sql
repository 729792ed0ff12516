-- When the refresh defers learned weights (the client's row held by another
-- transaction, migration 20261201111000), the stored WHO pattern said
-- weight_learning.applied = true with the new weights, while the client's
-- weights stayed as they were: the report's weight history and the demo
-- showed weights applied that were not (review of release 0.6.0). The
-- refresh now takes the client's row before storing the patterns, and a
-- deferral sets weight_learning.applied to false with the reason in the
-- stored pattern too. Body of 20261201111000 otherwise.
-- Test: tests/test_rescore_concurrent.py
-- (test_refresh_does_not_wait_for_the_clients_row_the_host_holds).
create or replace function public.refresh_conversion_patterns(p_client_id uuid)
returns jsonb
language plpgsql
security definer
set search_path = ''
set jit = off
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
  v_prev_skip text := pg_catalog.current_setting('ci.rescore_skip_locked', true);
  v_client_held boolean;
  v_deferred boolean;
begin
  perform ci_private.assert_client_access(p_client_id, true);
  -- Two refreshes of one client never interleave: the second waits, then
  -- recomputes over the data as it then is.
  perform pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('ci_refresh'), pg_catalog.hashtext(p_client_id::text));
  -- The time is read once the lock is held, so the later refresh always
  -- stores the later computed_at.
  v_now := pg_catalog.clock_timestamp();
  -- Every rescore this refresh runs skips the leads another transaction holds
  -- (rescore_lead_slices, rescore_leads): see the header.
  perform pg_catalog.set_config('ci.rescore_skip_locked', 'on', true);

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

  -- The client's row, if no other transaction holds it (an ICP change, a
  -- rename): the refresh holds the kept rows' lock, which the host's activity
  -- delete trigger waits for, so waiting here for a host's row could
  -- deadlock, and the host's write would be the one rolled back. A held row
  -- defers the weights and the sample count to the next refresh, and the
  -- stored WHO pattern says so (not applied, and why).
  v_client_held := exists (
    select 1 from public.clients as c where c.id = p_client_id for no key update skip locked
  );
  v_deferred := coalesce((v_who #>> '{weight_learning,applied}')::boolean, false) and not v_client_held;
  if v_deferred then
    v_who := pg_catalog.jsonb_set(
      v_who, '{weight_learning}',
      (v_who -> 'weight_learning') || jsonb_build_object(
        'applied', false,
        'reason', 'deferred to the next refresh: another transaction was writing the client''s row'
      )
    );
  end if;

  v_summary := jsonb_build_object(
    'who', ci_private.store_pattern(p_client_id, 'who', v_who, v_now),
    'what', ci_private.store_pattern(p_client_id, 'what', v_what, v_now),
    'when', ci_private.store_pattern(p_client_id, 'when', v_when, v_now),
    'how', ci_private.store_pattern(p_client_id, 'how', v_how, v_now)
  );

  -- Learned weights: only when the WHO detector's checks passed (the client's
  -- row taken before the patterns are stored, see above).
  v_learning := v_who -> 'weight_learning';
  if coalesce((v_learning ->> 'applied')::boolean, false) and v_client_held then
    v_applied := ci_private.apply_als_weights(p_client_id, v_learning -> 'new_weights', v_learning);
  elsif v_deferred then
    v_applied := jsonb_build_object('applied', false, 'reason', v_learning ->> 'reason');
  else
    v_applied := jsonb_build_object('applied', false, 'reason', coalesce(v_learning ->> 'reason', 'no decision'));
  end if;

  if v_client_held then
    update public.clients
    set conversion_sample_count = coalesce((v_who ->> 'sample_size')::integer, 0)
    where id = p_client_id;
  end if;
  perform pg_catalog.set_config('ci.rescore_skip_locked', coalesce(v_prev_skip, ''), true);

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
