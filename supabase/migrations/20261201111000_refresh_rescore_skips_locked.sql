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
-- The rescore job and rescore_leads keep waiting (they hold no lock a host
-- trigger takes). Not covered: the inline rescore of a small client when the
-- refresh applies new weights (the clients trigger), which still waits.
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
  delete from ci_private.als_rescore_queue as q where q.client_id = p_client_id;
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

revoke execute on function ci_private.rescore_lead_slices(uuid, uuid [], boolean) from public, anon, authenticated;
grant execute on function ci_private.rescore_lead_slices(uuid, uuid [], boolean) to service_role;
