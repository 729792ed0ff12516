-- Supabase pieces that a bare PostgreSQL lacks (contract section 1).
-- On a real Supabase database every object below already exists and is left
-- untouched: each one is created only when absent. Also creates the layer's
-- own unexposed schema, ci_private, for internal helpers.

-- Roles that PostgREST switches to; service_role bypasses row-level security.
do $roles$
begin
  if not exists (select 1 from pg_catalog.pg_roles where rolname = 'anon') then
    create role anon nologin noinherit;
  end if;
  if not exists (select 1 from pg_catalog.pg_roles where rolname = 'authenticated') then
    create role authenticated nologin noinherit;
  end if;
  if not exists (select 1 from pg_catalog.pg_roles where rolname = 'service_role') then
    create role service_role nologin noinherit bypassrls;
  end if;
end
$roles$;

create schema if not exists auth;
create schema if not exists extensions;

do $auth$
begin
  -- auth.users: only the id matters to this layer.
  if pg_catalog.to_regclass('auth.users') is null then
    create table auth.users (
      id uuid primary key,
      email text,
      created_at timestamptz not null default pg_catalog.now()
    );
  end if;

  -- auth.uid(): the JWT subject, as PostgREST sets it in request.jwt.claims.
  if pg_catalog.to_regprocedure('auth.uid()') is null then
    create function auth.uid() returns uuid
    language sql stable
    as $fn$
      select coalesce(
        nullif(pg_catalog.current_setting('request.jwt.claim.sub', true), ''),
        (nullif(pg_catalog.current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub')
      )::uuid
    $fn$;
  end if;

  -- auth.role(): the JWT role claim.
  if pg_catalog.to_regprocedure('auth.role()') is null then
    create function auth.role() returns text
    language sql stable
    as $fn$
      select coalesce(
        nullif(pg_catalog.current_setting('request.jwt.claim.role', true), ''),
        (nullif(pg_catalog.current_setting('request.jwt.claims', true), '')::jsonb ->> 'role')
      )::text
    $fn$;
  end if;

  -- auth.jwt(): all claims.
  if pg_catalog.to_regprocedure('auth.jwt()') is null then
    create function auth.jwt() returns jsonb
    language sql stable
    as $fn$
      select coalesce(
        nullif(pg_catalog.current_setting('request.jwt.claim', true), ''),
        nullif(pg_catalog.current_setting('request.jwt.claims', true), '')
      )::jsonb
    $fn$;
  end if;
end
$auth$;

grant usage on schema auth to anon, authenticated, service_role;
grant usage on schema public to anon, authenticated, service_role;
grant usage on schema extensions to anon, authenticated, service_role;

-- The layer's internal helpers. PostgREST does not expose this schema.
create schema if not exists ci_private;
revoke all on schema ci_private from public;
grant usage on schema ci_private to authenticated, service_role;
alter default privileges in schema ci_private revoke execute on functions from public;
