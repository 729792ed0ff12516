-- Privileges as an allow-list, swept once every function exists.
-- A per-schema `alter default privileges` can add grants but cannot take away
-- PostgreSQL's default EXECUTE for PUBLIC, so each function of ci_private would
-- otherwise be callable by anyone who reaches the schema. This sweep revokes
-- that default everywhere in ci_private, then grants:
--   * invoker SQL and PL/pgSQL helpers (they can do nothing the caller could not
--     do anyway) to authenticated and service_role, because triggers and API
--     functions that run as the caller call them; PL/Python functions (the
--     CPU-heavy weight fit) are left to the functions that call them;
--   * security definer helpers only where their own migration granted them,
--     per signature.
-- Public API functions are granted per signature in their own migrations.
-- Re-run it (select ci_private.apply_privileges()) after adding functions.

-- Sweep ci_private's function privileges as described above.
create or replace function ci_private.apply_privileges()
returns integer
language plpgsql
set search_path = ''
as $$
declare
  f record;
  n integer := 0;
begin
  for f in
    select p.oid::regprocedure as sig, p.prosecdef, l.lanname
    from pg_catalog.pg_proc as p
    join pg_catalog.pg_language as l on l.oid = p.prolang
    where p.pronamespace = 'ci_private'::regnamespace
      and not exists (
        select 1 from pg_catalog.pg_depend as d
        where d.classid = 'pg_catalog.pg_proc'::regclass and d.objid = p.oid and d.deptype = 'e'
      )
  loop
    execute format('revoke execute on function %s from public, anon', f.sig);
    if not f.prosecdef and f.lanname in ('sql', 'plpgsql') then
      execute format('grant execute on function %s to authenticated, service_role', f.sig);
    elsif not f.prosecdef then
      execute format('revoke execute on function %s from authenticated', f.sig);
    end if;
    n := n + 1;
  end loop;
  return n;
end
$$;

revoke execute on function ci_private.apply_privileges() from public, anon, authenticated;

select ci_private.apply_privileges();
