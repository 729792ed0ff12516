-- A rescore no longer takes minutes when another transaction has just
-- written the same leads.
--
-- ci_private.rescore_lead_ids (migration 20261201080000) scored the given
-- leads in one UPDATE ... where l.id = any(p_lead_ids). A rescore of a whole
-- client passes every lead id of the client. When another transaction had
-- updated the same leads and committed while this UPDATE waited (the rescore
-- job's committed batches against the refresh's rescore_if_pending, a
-- rescore_client_leads call, or the host updating leads), READ COMMITTED
-- re-checks each such row (EvalPlanQual), and the re-check evaluated
-- `id = any(array)` by a linear search of the whole array, detoasting it
-- each time: quadratic in the client's leads. Measured on the
-- 21,000-lead bench client: 127 s after a concurrent update of its leads
-- committed, against 1.1 s uncontended; a 315,000-lead client's rescore ran
-- for more than seven minutes in the benchmark, racing the rescore job.
-- (force_custom_plan, which makes the array a constant, did not help: 134 s.)
--
-- Now the UPDATE runs over slices of a thousand ids, so a re-check searches
-- at most a thousand. Same rows, same result.
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
  v_from integer := coalesce(pg_catalog.array_lower(p_lead_ids, 1), 1);
begin
  select k.industries, k.sizes, k.locations, k.weights, k.weight_units
  into v_ctx
  from public.clients as c
  cross join lateral ci_private.als_context(c) as k
  where c.id = p_client_id;
  if not found then
    return 0;
  end if;

  -- In slices of a thousand ids: see the header.
  while v_from <= coalesce(pg_catalog.array_upper(p_lead_ids, 1), 0) loop
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
    where l.id = any(p_lead_ids[v_from:v_from + v_slice - 1])
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
'Rescores the given leads of a client (those not deleted) with the client''s current scoring context, as of today, '
'in slices of 1,000 ids (a row re-checked after a concurrent update searches one slice). Returns the number of '
'leads rescored; 0 for an unknown client. The batch step of ci_jobs.rescore_pending and the scoring UPDATE of '
'rescore_leads and rescore_if_pending.';
