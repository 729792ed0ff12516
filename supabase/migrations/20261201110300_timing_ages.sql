-- Scores follow the calendar: the refresh rescores the leads whose timing
-- component has changed since they were scored.
--
-- Timing is the one ALS component that depends on the day: a role started
-- under six months ago gives 6 points, under twelve 3; a funding within twelve
-- months 4, within twenty-four 2 (ci_private.als_role_points,
-- als_funding_points, as of ci_private.als_today()). A lead is rescored when
-- it or its client's ICP or weights change. Nothing rescored it when its
-- role simply aged. In release 0.4.0 every refresh that applied learned
-- weights rescored every lead of the client, which hid this. Since migration
-- 20261201110100 it rescores only the leads not scored with the weights in
-- force.
--
-- ci_private.rescore_if_pending (the refresh's step after the
-- reconciliation) now also rescores, when the client is not queued, the
-- leads whose timing as of today differs from the timing they were scored
-- with. That is one pass over the client's leads with the scorer's inlined rules,
-- and only the leads that changed are written. The refresh's summary counts
-- them in reconciled.leads_rescored, with the queued ones. Measured on
-- 100,000 leads with role and funding dates: 0.08-0.19 s with nothing to
-- rescore, 0.12 s with 500 leads aged.
--
-- The same pass rescores the leads scored with other weights than the
-- client's scoring context holds. A lead inserted while another transaction
-- was applying new weights is scored with the committed (old) ones, and that
-- transaction's rescore does not see it. Before, it kept the old weights until
-- the client's next ICP or weights change; now until the next refresh.
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
  select k.weights into v_weights from ci_private.als_client_context as k where k.client_id = p_client_id;
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
'other weights than the client''s scoring context holds (als_weights_used), are rescored. Returns the number of '
'leads rescored.';
