-- Review of release 0.5.0's rescoring changes (a fresh user's tests, with
-- two sessions).
--
-- 1. Deadlocks. rescore_lead_ids (migration 20261201110600) updates its ids
--    in slices of a thousand, in the order the caller passed them. The rescore
--    job passes them sorted; rescore_leads (the refresh's rescore step, and
--    rescore_client_leads) passed them in table order. Two rescores of one
--    client then locked the same leads in different orders, slice by slice:
--    deadlock detected in 5 of 16 overlapping tries (none with the single
--    UPDATE before). Now rescore_lead_ids takes each id once, sorted, before
--    slicing, so every caller locks a client's leads in id order. That also
--    counts a lead passed twice once (it was rescored and counted once per
--    copy).
-- 2. Stale weights compared with the wrong weights. rescore_if_pending
--    (migration 20261201110300) compared each lead's als_weights_used with
--    the cached scoring context (ci_private.als_client_context), while the
--    rescore writes the weights of the client's row (ci_private.als_context).
--    After a change of the client's weights in a replica-mode session (no
--    trigger refreshes the cache), every refresh rescored the same leads
--    again and left the others with the old weights. It now reads the
--    weights as the rescore does.

create or replace function ci_private.rescore_lead_ids(p_client_id uuid, p_lead_ids uuid [])
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

  -- Each id once, in id order, in slices of a thousand (see the header): every
  -- caller locks the leads in the same order.
  v_ids := array(select distinct u.id from unnest(p_lead_ids) as u (id) where u.id is not null order by u.id);
  while v_from <= coalesce(pg_catalog.array_upper(v_ids, 1), 0) loop
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
    where l.id = any(v_ids[v_from:v_from + v_slice - 1])
      and l.client_id = p_client_id
      and l.deleted_at is null;
    get diagnostics v_rows = row_count;
    v_count := v_count + v_rows;
    v_from := v_from + v_slice;
  end loop;
  return v_count;
end
$$;

comment on function ci_private.rescore_lead_ids(uuid, uuid []) is
'Rescores the given leads of a client (those not deleted) with the client''s current scoring context, as of today: '
'each id once, in id order (so concurrent rescores lock leads in one order), in slices of 1,000 ids (a row re-checked '
'after a concurrent update searches one slice). Returns the number of leads rescored; 0 for an unknown client. The '
'batch step of ci_jobs.rescore_pending and the scoring UPDATE of rescore_leads and rescore_if_pending.';

create or replace function ci_private.rescore_if_pending(p_client_id uuid)
returns integer
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_today date := ci_private.als_today();
  v_weights jsonb;
begin
  delete from ci_private.als_rescore_queue as q where q.client_id = p_client_id;
  if found then
    return ci_private.rescore_leads(p_client_id);
  end if;
  -- The weights the rescore writes (the client's row, as rescore_lead_ids
  -- reads it), not the cached context, which a replica-mode change of the
  -- client leaves behind.
  select k.weights into v_weights
  from public.clients as c
  cross join lateral ci_private.als_context(c) as k
  where c.id = p_client_id;
  return ci_private.rescore_lead_ids(
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
    )
  );
end
$$;

comment on function ci_private.rescore_if_pending(uuid) is
'The refresh''s rescore step for one client: a client queued after an ICP or weights change '
'(ci_private.als_rescore_queue) has every lead rescored and leaves the queue; otherwise the leads whose timing '
'component as of today (role and funding age) differs from their stored als_timing, and the leads scored with '
'other weights than the client''s own (als_weights_used against als_context of the clients row), are rescored. '
'Returns the number of leads rescored.';
