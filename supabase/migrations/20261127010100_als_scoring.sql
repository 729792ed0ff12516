-- The lead score (ALS) on the leads themselves: the row trigger and the
-- set-based rescoring, both built from the rules of the als_rules migration.
--   * the row trigger on leads: every insert, and an update of a scored column
--     (UPDATE OF + WHEN, so other updates pay nothing); timing as of today (UTC);
--   * set-based public.rescore_client_leads / public.score_lead (and
--     ci_private.rescore_leads for the layer's own use, e.g. after new weights).
-- The client's ICP and weights are parsed once per client into
-- ci_private.als_client_context, kept current by triggers on clients (and
-- rebuilt from the client row when missing), so that the lead trigger does one
-- primary-key lookup per row and no parsing. After a change of a client's ICP
-- its leads keep their scores until rescored (rescore_client_leads); new
-- weights applied by the layer rescore at once.

-- A client's ICP parsed for scoring and the weights in force (as recorded and
-- as units for the arithmetic).
create table if not exists ci_private.als_client_context (
  client_id uuid primary key references public.clients (id) on delete cascade,
  industries text [],
  sizes int4multirange,
  locations text [],
  weights jsonb not null,
  weight_units integer [] not null,
  refreshed_at timestamptz not null default pg_catalog.now()
);
comment on table ci_private.als_client_context is
'Per-client scoring context (parsed ICP, weights in force), kept current by triggers on clients.';
-- Read by the lead trigger as the writer (authenticated, service_role); written
-- only by the layer's security definer functions. Members see their clients' rows.
alter table ci_private.als_client_context enable row level security;
revoke all on ci_private.als_client_context from public, anon, authenticated, service_role;
grant select on ci_private.als_client_context to authenticated, service_role;
drop policy if exists als_client_context_member_read on ci_private.als_client_context;
create policy als_client_context_member_read on ci_private.als_client_context
for select to authenticated
using (client_id in (select ci_private.member_client_ids()));

-- Parse one client row into its scoring context.
create or replace function ci_private.als_context(p_client public.clients)
returns setof ci_private.als_client_context
language sql immutable parallel safe rows 1
as $$
  select
    p_client.id,
    ci_private.text_keys(p_client.icp_industries),
    ci_private.icp_size_ranges(p_client.icp_company_sizes),
    ci_private.text_keys(p_client.icp_locations),
    w.weights,
    ci_private.als_weight_units(w.weights),
    null::timestamptz
  from (select ci_private.als_weights_in_force(p_client.als_learned_weights) as weights offset 0) as w
$$;

-- Store the scoring context of one client, from its row, for the lead trigger.
-- security definer: the context table is written only by the layer, whoever
-- wrote the client or the lead that needed it. Returns nothing, so it reveals
-- nothing of a client the caller may not see.
create or replace function ci_private.refresh_als_context(p_client_id uuid)
returns void
language sql volatile security definer
set search_path = ''
as $$
  insert into ci_private.als_client_context (
    client_id, industries, sizes, locations, weights, weight_units, refreshed_at
  )
  select x.client_id, x.industries, x.sizes, x.locations, x.weights, x.weight_units, pg_catalog.now()
  from public.clients as c
  cross join lateral ci_private.als_context(c) as x
  where c.id = p_client_id
  on conflict (client_id) do update
  set industries = excluded.industries,
    sizes = excluded.sizes,
    locations = excluded.locations,
    weights = excluded.weights,
    weight_units = excluded.weight_units,
    refreshed_at = excluded.refreshed_at
$$;

-- Keep the cached scoring context of a client current.
-- security definer: clients are written by the host's roles, which have no
-- rights on ci_private; writes only the context row of the client written.
create or replace function ci_private.clients_refresh_als_context()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  perform ci_private.refresh_als_context(new.id);
  return null;
end
$$;

drop trigger if exists clients_ci_als_context_ins on public.clients;
create trigger clients_ci_als_context_ins
after insert on public.clients
for each row execute function ci_private.clients_refresh_als_context();

drop trigger if exists clients_ci_als_context_upd on public.clients;
create trigger clients_ci_als_context_upd
after update of icp_industries, icp_company_sizes, icp_locations, als_learned_weights on public.clients
for each row
when (
  old.icp_industries is distinct from new.icp_industries
  or old.icp_company_sizes is distinct from new.icp_company_sizes
  or old.icp_locations is distinct from new.icp_locations
  or old.als_learned_weights is distinct from new.als_learned_weights
)
execute function ci_private.clients_refresh_als_context();

-- Existing clients (a host database): their context now.
select ci_private.refresh_als_context(c.id) from public.clients as c;

-- Score a lead row before it is written (insert, or update of a scored column).
-- One primary-key lookup of the client's context; the rules themselves are
-- evaluated as PL/pgSQL simple expressions (inlined SQL, compiled once per
-- transaction), which keeps a bulk COPY cheap.
-- Runs as the writer, without security definer and its SET clause (measured:
-- about 10 us more per row on a bulk COPY, some 40% of the scoring itself):
-- it names only qualified objects and reads only the context table, granted
-- to the writing roles (authenticated, service_role; the owner bypasses); a
-- missing context is rebuilt by a security definer function.
create or replace function ci_private.leads_score()
returns trigger
language plpgsql
as $$
declare
  v_industries text [];
  v_sizes int4multirange;
  v_locations text [];
  v_weights jsonb;
  v_units integer [];
  v_title text;
  v_parts ci_private.als_parts;
begin
  select k.industries, k.sizes, k.locations, k.weights, k.weight_units
  into v_industries, v_sizes, v_locations, v_weights, v_units
  from ci_private.als_client_context as k
  where k.client_id = new.client_id;
  if not found then
    -- No context yet (a client written with triggers disabled, or an unknown
    -- client: that one scores with an empty ICP and the defaults, and the
    -- foreign key then rejects the row).
    perform ci_private.refresh_als_context(new.client_id);
    select k.industries, k.sizes, k.locations, k.weights, k.weight_units
    into v_industries, v_sizes, v_locations, v_weights, v_units
    from ci_private.als_client_context as k
    where k.client_id = new.client_id;
    v_weights := coalesce(v_weights, ci_private.als_default_weights());
    v_units := coalesce(v_units, ci_private.als_weight_units(v_weights));
  end if;

  v_title := ' ' || ci_private.normalize_title(new.title) || ' ';
  v_parts := ci_private.als_parts_of(
    ci_private.als_authority_points(v_title), ci_private.als_junior_points(v_title), new.email, new.email_verified, new.phone, new.phone_verified, new.linkedin_url,
    new.personal_email, new.organization_industry, new.organization_employee_count,
    new.organization_country, new.organization_is_hiring, new.organization_latest_funding_date,
    new.employment_start_date, new.bounce_count, new.status::text,
    v_industries, v_sizes, v_locations, ci_private.als_today()
  );
  new.als_data_quality := v_parts.data_quality;
  new.als_authority := v_parts.authority;
  new.als_company_fit := v_parts.company_fit;
  new.als_timing := v_parts.timing;
  new.als_risk := v_parts.risk;
  new.als_score := ci_private.als_score(
    v_parts.data_quality, v_parts.authority, v_parts.company_fit, v_parts.timing, v_parts.risk, v_units
  );
  new.als_tier := ci_private.als_tier(new.als_score);
  new.als_components := ci_private.als_snapshot(v_parts);
  new.als_weights_used := v_weights;
  new.scored_at := pg_catalog.now();
  return new;
end
$$;

drop trigger if exists leads_ci_score_ins on public.leads;
create trigger leads_ci_score_ins
before insert on public.leads
for each row execute function ci_private.leads_score();

drop trigger if exists leads_ci_score_upd on public.leads;
create trigger leads_ci_score_upd
before update of
client_id, email, email_verified, phone, phone_verified, linkedin_url, personal_email, title,
organization_industry, organization_employee_count, organization_country, organization_is_hiring,
organization_latest_funding_date, employment_start_date, bounce_count, status
on public.leads
for each row
when (
  old.client_id is distinct from new.client_id
  or old.email is distinct from new.email
  or old.email_verified is distinct from new.email_verified
  or old.phone is distinct from new.phone
  or old.phone_verified is distinct from new.phone_verified
  or old.linkedin_url is distinct from new.linkedin_url
  or old.personal_email is distinct from new.personal_email
  or old.title is distinct from new.title
  or old.organization_industry is distinct from new.organization_industry
  or old.organization_employee_count is distinct from new.organization_employee_count
  or old.organization_country is distinct from new.organization_country
  or old.organization_is_hiring is distinct from new.organization_is_hiring
  or old.organization_latest_funding_date is distinct from new.organization_latest_funding_date
  or old.employment_start_date is distinct from new.employment_start_date
  or old.bounce_count is distinct from new.bounce_count
  or old.status is distinct from new.status
)
execute function ci_private.leads_score();

-- Rescore a client's non-deleted leads (or one of them) in one statement, as of
-- today, with the weights in force. Returns the number of leads rescored.
-- security definer: the layer's own bookkeeping columns; callers are checked by
-- the public functions (or are trusted internal ones).
create or replace function ci_private.rescore_leads(p_client_id uuid, p_lead_id uuid default null)
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
  where l.client_id = p_client_id
    and l.deleted_at is null
    and (p_lead_id is null or l.id = p_lead_id);
  get diagnostics v_count = row_count;
  return v_count;
end
$$;

-- Rescore every (non-deleted) lead of a client now; returns the count.
-- security definer: after the caller's write access is checked, rescoring
-- writes the layer's columns whatever the host's policies on leads.
create or replace function public.rescore_client_leads(p_client_id uuid)
returns integer
language plpgsql
security definer
set search_path = ''
as $$
begin
  perform ci_private.assert_client_access(p_client_id, true);
  return ci_private.rescore_leads(p_client_id);
end
$$;

-- Rescore one lead now; returns its new score (null for a soft-deleted lead).
-- security definer: looks the lead up to find its client before the access
-- check, then writes as rescore_client_leads does.
create or replace function public.score_lead(p_lead_id uuid)
returns integer
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_client_id uuid;
  v_score integer;
begin
  if p_lead_id is null then
    raise exception 'lead id is required' using errcode = 'null_value_not_allowed';
  end if;
  select l.client_id into v_client_id from public.leads as l where l.id = p_lead_id;
  if not found then
    if ci_private.caller_role() in ('anon', 'authenticated') then
      -- The same answer as for another tenant's lead: no probing.
      raise exception 'not authorized for lead %', p_lead_id using errcode = 'insufficient_privilege';
    end if;
    raise exception 'unknown lead %', p_lead_id using errcode = 'no_data_found';
  end if;
  perform ci_private.assert_client_access(v_client_id, true);
  perform ci_private.rescore_leads(v_client_id, p_lead_id);
  select l.als_score into v_score
  from public.leads as l
  where l.id = p_lead_id and l.deleted_at is null;
  return v_score;
end
$$;

revoke execute on function ci_private.leads_score() from public, anon;
grant execute on function ci_private.leads_score() to authenticated, service_role;
revoke execute on function ci_private.clients_refresh_als_context() from public, anon, authenticated;
revoke execute on function ci_private.refresh_als_context(uuid) from public, anon;
-- Called by the lead trigger, which runs as the writer.
grant execute on function ci_private.refresh_als_context(uuid) to authenticated, service_role;
revoke execute on function ci_private.rescore_leads(uuid, uuid) from public, anon, authenticated;
grant execute on function ci_private.rescore_leads(uuid, uuid) to service_role;

revoke execute on function public.rescore_client_leads(uuid) from public, anon;
revoke execute on function public.score_lead(uuid) from public, anon;
grant execute on function public.rescore_client_leads(uuid) to authenticated, service_role;
grant execute on function public.score_lead(uuid) to authenticated, service_role;

grant execute on function ci_private.als_context(public.clients) to authenticated, service_role;
