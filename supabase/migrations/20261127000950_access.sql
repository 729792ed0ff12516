-- Who is calling, and may they touch this client? Every public API function
-- starts with ci_private.assert_client_access (contract section 6): an accepted
-- member reads, an owner or admin writes, service_role and the database's own
-- roles (other services over SQL, pg_cron) do both, anyone else gets an error.

-- The caller's API role: the JWT role claim when PostgREST set one, else the
-- database role in effect. A session that came in through PostgREST's
-- `authenticator` without claims counts as anon.
create or replace function ci_private.caller_role()
returns text
language sql stable
set search_path = ''
as $$
  select coalesce(
    nullif(auth.role(), ''),
    case when session_user::text = 'authenticator' then 'anon' else current_user::text end
  )
$$;

-- Raise unless the caller may read (p_write false) or write (true) this client.
-- security definer: reads memberships and clients whatever the caller's policies.
create or replace function ci_private.assert_client_access(p_client_id uuid, p_write boolean default false)
returns void
language plpgsql stable security definer
set search_path = ''
as $$
declare
  v_role text := ci_private.caller_role();
begin
  if p_client_id is null then
    raise exception 'client id is required' using errcode = 'null_value_not_allowed';
  end if;
  if v_role = 'anon' then
    raise exception 'not authorized: sign in to see client data' using errcode = 'insufficient_privilege';
  end if;
  if v_role = 'authenticated' then
    if not exists (
      select 1 from public.memberships as m
      where m.user_id = auth.uid()
        and m.client_id = p_client_id
        and m.accepted_at is not null
        and m.deleted_at is null
        and (not p_write or m.role::text in ('owner', 'admin'))
    ) then
      -- The same message whether the client exists or not: no probing.
      raise exception 'not authorized for client %', p_client_id using errcode = 'insufficient_privilege';
    end if;
    return;
  end if;
  -- service_role and trusted database roles.
  if not exists (select 1 from public.clients as c where c.id = p_client_id) then
    raise exception 'unknown client %', p_client_id using errcode = 'no_data_found';
  end if;
end
$$;

revoke execute on function ci_private.caller_role() from public, anon;
revoke execute on function ci_private.assert_client_access(uuid, boolean) from public, anon;
grant execute on function ci_private.caller_role() to authenticated, service_role;
grant execute on function ci_private.assert_client_access(uuid, boolean) to authenticated, service_role;
