-- The refresh's rescore step no longer waits for leads a host transaction
-- holds (review: 2 of 44 looping refreshes deadlocked with the host).
--
-- The refresh brings the kept touch rows up to date first (sync_lead_touches,
-- which for more than 64 changed leads holds the client's ci_lead_touches
-- advisory lock exclusively until the refresh commits), then rescores the
-- leads whose weights or timing are stale (rescore_if_pending). A host
-- transaction that had locked one of those leads (an update, or the delete
-- of a lead whose activities cascade) and then deleted an activity waited in
-- its delete trigger for the advisory lock, while the refresh waited for the
-- lead: a deadlock, and when the host's backend detected it, the host's own
-- write was the one rolled back.
--
-- Now the refresh's rescore takes each slice's leads FOR NO KEY UPDATE SKIP
-- LOCKED and rescores the ones it got. A skipped lead is not lost:
-- - stale weights or timing: rescore_if_pending finds it again at the next
--   refresh (its condition is recomputed each time);
-- - a client queued after an ICP or weights change (every lead rescored):
--   the client goes back on the queue, and the rescore job (or the next
--   refresh) rescores it.
-- The rescore job keeps waiting (it holds no lock a host trigger takes).
--
-- The same review of this migration's first version found the other waits of
-- the refresh on a host's rows, after the lock, each reproduced with the
-- host's delete rolled back (4 of 4 runs):
-- - applying new weights to a client of at most rescore_inline_max leads: the
--   clients trigger rescored every lead (rescore_leads) and waited for a
--   held one. Within a refresh (the setting ci.rescore_skip_locked, on while
--   the refresh runs) rescore_leads skips held leads and queues
--   the client for the rescore job;
-- - the client's row, held by a host's ICP change or rename: the refresh
--   waited for it to apply the weights and store the sample count. It now
--   takes the row FOR NO KEY UPDATE SKIP LOCKED; held, the weights are
--   deferred to the next refresh (weights.applied false, with the reason)
--   and the sample count is not stored;
-- - the queue row, held by a host's ICP change in progress: the refresh's
--   rescore step skips it (the host's transaction queues the client).
-- - the same inline rescore run by a host's own ICP change (the clients
--   trigger, in the host's transaction) now skips held leads as well: two
--   host transactions deadlocked over it (review, two looping hosts).
-- Not covered: the reconciliation's corrections (a lead whose stored state
-- differs from its history, a misplaced mark) still wait for a held row;
-- they are rare (writes with the layer's triggers off).
--
-- rescore_lead_ids' body moves into rescore_lead_slices(client, ids,
-- skip_locked); rescore_lead_ids(client, ids) calls it without skipping.
-- Tests: tests/test_rescore_concurrent.py (the refresh against a host
-- transaction holding a lead and deleting an activity; fails on the previous
-- body: the host's delete is the deadlock victim); pgTAP 061, unchanged, checks
-- what the step rescores.

create or replace function ci_private.rescore_lead_slices(p_client_id uuid, p_lead_ids uuid [], p_skip_locked boolean)
returns integer
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_ctx record;
  v_today date := ci_private.als_today();
  v_count integer := 0;
  v_rows integer;
  v_slice constant integer := 1000;
  v_ids uuid [];
  v_part uuid [];
  v_from integer := 1;
begin
  select k.industries, k.sizes, k.locations, k.weights, k.weight_units
  into v_ctx
  from public.clients as c
  cross join lateral ci_private.als_context(c) as k
  where c.id = p_client_id;
  if not found then
    return 0;
  end if;

  -- Each id once, in id order, in slices of a thousand: every caller locks
  -- the leads in the same order (migration 20261201110700).
  v_ids := array(select distinct u.id from unnest(p_lead_ids) as u (id) where u.id is not null order by u.id);
  while v_from <= coalesce(pg_catalog.array_upper(v_ids, 1), 0) loop
    v_part := v_ids[v_from:v_from + v_slice - 1];
    if p_skip_locked then
      -- The leads of the slice no other transaction holds, locked now.
      v_part := array(
        select l.id
        from public.leads as l
        where l.id = any(v_part)
          and l.client_id = p_client_id
          and l.deleted_at is null
        order by l.id
        for no key update skip locked
      );
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
    where l.id = any(v_part)
      and l.client_id = p_client_id
      and l.deleted_at is null;
    get diagnostics v_rows = row_count;
    v_count := v_count + v_rows;
    v_from := v_from + v_slice;
  end loop;
  return v_count;
end
$$;

comment on function ci_private.rescore_lead_slices(uuid, uuid [], boolean) is
'Rescores the given leads of a client (those not deleted) with the client''s current scoring context, as of today: '
'each id once, in id order, in slices of 1,000 ids. With p_skip_locked, a lead another transaction holds is skipped '
'(not waited for). Returns the number of leads rescored; 0 for an unknown client.';

create or replace function ci_private.rescore_lead_ids(p_client_id uuid, p_lead_ids uuid [])
returns integer
language plpgsql
security definer
set search_path = ''
as $$
begin
  return ci_private.rescore_lead_slices(p_client_id, p_lead_ids, false);
end
$$;

create or replace function ci_private.rescore_if_pending(p_client_id uuid)
returns integer
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_today date := ci_private.als_today();
  v_weights jsonb;
  v_ids uuid [];
  v_rescored integer;
begin
  -- The queue row unless another transaction holds it (a host's ICP change
  -- in progress queues the client itself; the rescore job takes it then).
  delete from ci_private.als_rescore_queue as q
  where q.client_id = p_client_id
    and q.client_id in (
      select q2.client_id from ci_private.als_rescore_queue as q2
      where q2.client_id = p_client_id
      for update skip locked
    );
  if found then
    -- Every lead; those another transaction holds are left to the rescore
    -- job: the client goes back on the queue.
    v_ids := array(select l.id from public.leads as l where l.client_id = p_client_id and l.deleted_at is null);
    v_rescored := ci_private.rescore_lead_slices(p_client_id, v_ids, true);
    if v_rescored < cardinality(v_ids) then
      insert into ci_private.als_rescore_queue as q (client_id) values (p_client_id)
      on conflict (client_id) do update set requested_at = pg_catalog.now();
    end if;
    return v_rescored;
  end if;
  -- The weights the rescore writes (the client's row, as rescore_lead_slices
  -- reads it), not the cached context, which a replica-mode change of the
  -- client leaves behind.
  select k.weights into v_weights
  from public.clients as c
  cross join lateral ci_private.als_context(c) as k
  where c.id = p_client_id;
  return ci_private.rescore_lead_slices(
    p_client_id,
    array(
      select l.id
      from public.leads as l
      where l.client_id = p_client_id
        and l.deleted_at is null
        and (
          -- Scored with other weights than the client's: a lead written while
          -- new weights were being applied in a transaction not yet committed.
          (v_weights is not null and l.als_weights_used is distinct from v_weights)
          -- The timing of today by the scorer's own rules (the other components'
          -- inputs are left null: they do not change with the day).
          or (l.employment_start_date is not null or l.organization_latest_funding_date is not null)
          and l.als_timing is distinct from (
            ci_private.als_parts_of(
              null, null, null, null, null, null, null, null, null, null, null,
              l.organization_is_hiring, l.organization_latest_funding_date, l.employment_start_date,
              null, null, null, null, null, v_today
            )
          ).timing
        )
    ),
    true
  );
end
$$;

comment on function ci_private.rescore_if_pending(uuid) is
'The refresh''s rescore step for one client: a client queued after an ICP or weights change '
'(ci_private.als_rescore_queue) has every lead rescored and leaves the queue; otherwise the leads whose timing '
'component as of today (role and funding age) differs from their stored als_timing, and the leads scored with '
'other weights than the client''s own (als_weights_used against als_context of the clients row), are rescored. '
'Leads another transaction holds are skipped, not waited for: the next refresh finds them again, and a queued '
'client goes back on the queue. Returns the number of leads rescored.';

-- Every lead of a client (p_lead_id null) or one lead. Within a refresh
-- (ci.rescore_skip_locked on: the clients trigger's inline rescore when the
-- refresh applies new weights) the leads another transaction holds are
-- skipped and the client is queued for the rescore job.
create or replace function ci_private.rescore_leads(p_client_id uuid, p_lead_id uuid default null)
returns integer
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_ids uuid [];
  v_rescored integer;
begin
  if p_lead_id is not null then
    return ci_private.rescore_lead_ids(p_client_id, array[p_lead_id]);
  end if;
  v_ids := array(select l.id from public.leads as l where l.client_id = p_client_id and l.deleted_at is null);
  if pg_catalog.current_setting('ci.rescore_skip_locked', true) is distinct from 'on' then
    return ci_private.rescore_lead_ids(p_client_id, v_ids);
  end if;
  v_rescored := ci_private.rescore_lead_slices(p_client_id, v_ids, true);
  if v_rescored < cardinality(v_ids) then
    insert into ci_private.als_rescore_queue as q (client_id) values (p_client_id)
    on conflict (client_id) do update set requested_at = pg_catalog.now();
  end if;
  return v_rescored;
end
$$;

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

  v_summary := jsonb_build_object(
    'who', ci_private.store_pattern(p_client_id, 'who', v_who, v_now),
    'what', ci_private.store_pattern(p_client_id, 'what', v_what, v_now),
    'when', ci_private.store_pattern(p_client_id, 'when', v_when, v_now),
    'how', ci_private.store_pattern(p_client_id, 'how', v_how, v_now)
  );

  -- Learned weights: only when the WHO detector's checks passed.
  -- The client's row, if no other transaction holds it (an ICP change, a
  -- rename): the refresh holds the kept rows' lock, which the host's activity
  -- delete trigger waits for, so waiting here for a host's row could
  -- deadlock, and the host's write would be the one rolled back. A held row
  -- defers the weights and the sample count to the next refresh.
  v_client_held := exists (
    select 1 from public.clients as c where c.id = p_client_id for no key update skip locked
  );
  v_learning := v_who -> 'weight_learning';
  if coalesce((v_learning ->> 'applied')::boolean, false) and v_client_held then
    v_applied := ci_private.apply_als_weights(p_client_id, v_learning -> 'new_weights', v_learning);
  elsif coalesce((v_learning ->> 'applied')::boolean, false) then
    v_applied := jsonb_build_object(
      'applied', false,
      'reason', 'deferred to the next refresh: another transaction was writing the client''s row'
    );
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

-- The weights' and ICP's trigger on clients (migration 20261201110100's
-- body): its inline rescore of a small client skips the leads another
-- transaction holds too, and queues the client for the rescore job. It ran
-- inside the host's own transaction and locked every lead of the client: two
-- host transactions, one changing the ICP, the other holding a lead and then
-- writing the client's row, deadlocked (review: with two looping hosts).
create or replace function ci_private.clients_refresh_als_context()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_leads integer;
  v_prev text;
begin
  if tg_op = 'UPDATE' then
    v_leads := ci_private.rescore_inline_leads(new.id);
    if v_leads is not null then
      delete from ci_private.als_rescore_queue as q where q.client_id = new.id;
    else
      insert into ci_private.als_rescore_queue as q (client_id) values (new.id)
      on conflict (client_id) do update set requested_at = pg_catalog.now();
    end if;
  end if;
  perform ci_private.refresh_als_context(new.id);
  if tg_op = 'UPDATE' and v_leads is not null then
    v_prev := pg_catalog.current_setting('ci.rescore_skip_locked', true);
    perform pg_catalog.set_config('ci.rescore_skip_locked', 'on', true);
    perform ci_private.rescore_leads(new.id);
    perform pg_catalog.set_config('ci.rescore_skip_locked', coalesce(v_prev, ''), true);
  end if;
  return null;
end
$$;

revoke execute on function ci_private.rescore_lead_slices(uuid, uuid [], boolean) from public, anon, authenticated;
grant execute on function ci_private.rescore_lead_slices(uuid, uuid [], boolean) to service_role;
