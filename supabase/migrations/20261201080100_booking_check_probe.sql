-- The check of a booking's lead probes the leads' primary key once per
-- booking row, whatever the plan cache decides.
--
-- Why: ci_private.check_booking_rows (conversion_history migration) joined the
-- statement's booking rows (a jsonb_to_recordset, estimated at 100 rows) to
-- public.leads. After five calls in a session PL/pgSQL switches to a generic
-- plan, which hash-joined a full scan of public.leads: about 100 ms for every
-- booking on a 300,000-lead database (measured by part 2 of issue 15, see
-- docs/performance-leads.md). The lead is now read by a LATERAL subquery with
-- LIMIT 1, which the planner cannot flatten into a join: one index probe per
-- booking row in every plan. Same checks, same errors.
create or replace function ci_private.check_booking_rows(p_rows jsonb)
returns void
language plpgsql stable
set search_path = ''
as $$
declare
  v_bad record;
begin
  select r.id, r.client_id, r.lead_id, l.id as found_id, l.client_id as lead_client_id into v_bad
  from jsonb_to_recordset(p_rows) as r (id uuid, client_id uuid, lead_id uuid)
  left join lateral (
    select x.id, x.client_id from public.leads as x where x.id = r.lead_id limit 1
  ) as l on true
  where r.lead_id is null or l.id is null or l.client_id is distinct from r.client_id
  limit 1;
  if not found then
    return;
  end if;
  if v_bad.lead_id is null then
    raise exception 'booking activity % has no lead', v_bad.id using errcode = 'not_null_violation';
  elsif v_bad.found_id is null then
    raise exception 'booking activity % refers to unknown lead %', v_bad.id, v_bad.lead_id
      using errcode = 'foreign_key_violation';
  end if;
  raise exception 'booking activity % is for client % but lead % belongs to client %',
    v_bad.id, v_bad.client_id, v_bad.lead_id, v_bad.lead_client_id
    using errcode = 'check_violation';
end
$$;

revoke execute on function ci_private.check_booking_rows(jsonb) from public, anon, authenticated;
grant execute on function ci_private.check_booking_rows(jsonb) to service_role;
