-- Scores follow what they depend on (issue 13): a change of a client's ICP
-- fields (icp_industries, icp_company_sizes, icp_locations) or learned weights
-- rescores that client's leads, set-based (ci_private.rescore_leads: one
-- statement), never a row at a time.
--
-- Without holding the host's writes for long: the client update's trigger
-- refreshes the scoring context at once (new and updated leads are scored with
-- the new ICP from then on) and rescores the existing leads in the same
-- statement only for a small client (at most the setting rescore_inline_max
-- leads, 5000 by default: a fraction of a second). A larger client is queued
-- in ci_private.als_rescore_queue instead, so that the host's UPDATE of the
-- client row does not hold every lead row of the client locked for a minute;
-- the queue is worked off by the client's next refresh (first thing after the
-- reconciliation) or by ci_private.rescore_pending() (for a frequent schedule).
-- Until then those leads keep the scores of the previous ICP, and their
-- als_weights_used / scored_at say so.

insert into ci_private.settings (key, value) values ('rescore_inline_max', '5000')
on conflict (key) do nothing;

create table if not exists ci_private.als_rescore_queue (
  client_id uuid primary key references public.clients (id) on delete cascade,
  requested_at timestamptz not null default pg_catalog.now()
);
comment on table ci_private.als_rescore_queue is
'Clients whose ICP or weights changed and whose leads are still to be rescored (large clients; small ones are rescored at once).';
alter table ci_private.als_rescore_queue enable row level security;
revoke all on ci_private.als_rescore_queue from public, anon, authenticated, service_role;

-- Keep the cached scoring context of a client current and, on an update of
-- its ICP or weights, rescore its leads (at once when few, else queued).
-- security definer: clients are written by the host's roles, which have no
-- rights on ci_private; writes only the context, the queue and the leads'
-- score columns of the client written.
create or replace function ci_private.clients_refresh_als_context()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_max integer := coalesce(ci_private.setting('rescore_inline_max')::integer, 5000);
  v_leads integer;
begin
  perform ci_private.refresh_als_context(new.id);
  if tg_op = 'UPDATE' then
    select count(*) into v_leads
    from (
      select 1 from public.leads as l
      where l.client_id = new.id and l.deleted_at is null
      limit v_max + 1
    ) as x;
    if v_leads <= v_max then
      perform ci_private.rescore_leads(new.id);
      delete from ci_private.als_rescore_queue as q where q.client_id = new.id;
    else
      insert into ci_private.als_rescore_queue as q (client_id) values (new.id)
      on conflict (client_id) do update set requested_at = pg_catalog.now();
    end if;
  end if;
  return null;
end
$$;

-- Rescore a queued client's leads; returns how many were rescored (0 when
-- the client was not queued). Run by the refresh before its detectors.
-- security definer: as rescore_leads.
create or replace function ci_private.rescore_if_pending(p_client_id uuid)
returns integer
language plpgsql
security definer
set search_path = ''
as $$
begin
  delete from ci_private.als_rescore_queue as q where q.client_id = p_client_id;
  if not found then
    return 0;
  end if;
  return ci_private.rescore_leads(p_client_id);
end
$$;

-- Work off the whole queue, one client after another; returns the number of
-- leads rescored. For a frequent schedule (the weekly refresh does its own).
-- security definer: as rescore_leads.
create or replace function ci_private.rescore_pending()
returns integer
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_client uuid;
  v_total integer := 0;
begin
  for v_client in select q.client_id from ci_private.als_rescore_queue as q order by q.requested_at loop
    v_total := v_total + ci_private.rescore_if_pending(v_client);
  end loop;
  return v_total;
end
$$;

revoke execute on function ci_private.clients_refresh_als_context() from public, anon, authenticated;
revoke execute on function ci_private.rescore_if_pending(uuid) from public, anon, authenticated;
revoke execute on function ci_private.rescore_pending() from public, anon, authenticated;
grant execute on function ci_private.rescore_if_pending(uuid) to service_role;
grant execute on function ci_private.rescore_pending() to service_role;
