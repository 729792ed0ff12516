-- Tenancy: who may see which client's data.
-- Helpers live in ci_private (not exposed over RPC). Policies call them once per
-- statement through `(select ...)`, never auth.uid() per row. Row-level security
-- is put on the host tables only where this layer created them (recorded in
-- ci_private.layer_created_tables); on a host database the host secures its own.

-- Clients the caller belongs to (accepted, not deleted membership).
-- security definer: reads memberships whatever the caller's own policies on it,
-- which also keeps the memberships policy from recursing into itself.
create or replace function ci_private.member_client_ids()
returns setof uuid
language sql stable security definer
set search_path = ''
as $$
  select m.client_id
  from public.memberships as m
  where m.user_id = auth.uid()
    and m.accepted_at is not null
    and m.deleted_at is null
$$;

-- Clients the caller administers (owner or admin).
-- security definer: as member_client_ids.
create or replace function ci_private.admin_client_ids()
returns setof uuid
language sql stable security definer
set search_path = ''
as $$
  select m.client_id
  from public.memberships as m
  where m.user_id = auth.uid()
    and m.accepted_at is not null
    and m.deleted_at is null
    and m.role::text in ('owner', 'admin')
$$;

revoke execute on function ci_private.member_client_ids() from public, anon;
revoke execute on function ci_private.admin_client_ids() from public, anon;
-- memberships is searched by user_id through its unique (user_id, client_id) index.
grant execute on function ci_private.member_client_ids() to authenticated, service_role;
grant execute on function ci_private.admin_client_ids() to authenticated, service_role;


-- Row-level security on the host tables that this layer created.
do $rls$
declare
  t text;
  key_col text;
begin
  for t in select table_name from ci_private.layer_created_tables order by table_name loop
    execute format('alter table public.%I enable row level security', t);
    execute format('revoke all on public.%I from anon', t);
    execute format('grant select, insert, update, delete on public.%I to authenticated', t);
    execute format('grant all on public.%I to service_role', t);
    key_col := case when t = 'clients' then 'id' else 'client_id' end;

    execute format('drop policy if exists %I on public.%I', t || '_member_read', t);
    if t = 'memberships' then
      -- A user sees their own memberships and, as an admin, those of the client.
      execute format(
        'create policy %I on public.%I for select to authenticated using '
        || '(user_id = (select auth.uid()) or client_id in (select ci_private.admin_client_ids()))',
        t || '_member_read', t
      );
    else
      execute format(
        'create policy %I on public.%I for select to authenticated using (%I in (select ci_private.member_client_ids()))',
        t || '_member_read', t, key_col
      );
    end if;

    execute format('drop policy if exists %I on public.%I', t || '_admin_insert', t);
    execute format('drop policy if exists %I on public.%I', t || '_admin_update', t);
    execute format('drop policy if exists %I on public.%I', t || '_admin_delete', t);
    if t <> 'clients' then
      -- Creating a client is the host's business (service_role), not a member's.
      execute format(
        'create policy %I on public.%I for insert to authenticated with check (%I in (select ci_private.admin_client_ids()))',
        t || '_admin_insert', t, key_col
      );
    end if;
    execute format(
      'create policy %I on public.%I for update to authenticated using (%I in (select ci_private.admin_client_ids())) '
      || 'with check (%I in (select ci_private.admin_client_ids()))',
      t || '_admin_update', t, key_col, key_col
    );
    execute format(
      'create policy %I on public.%I for delete to authenticated using (%I in (select ci_private.admin_client_ids()))',
      t || '_admin_delete', t, key_col
    );
  end loop;
end
$rls$;
