-- Valid time zone names, cached (contract section 3, local time).
-- A touch's day and hour are read in the lead's zone, else the campaign's, else
-- the client's, else UTC. A zone column may hold anything a writer typed; an
-- invalid name must not abort a detector (`at time zone 'Mars/Base'` raises), so
-- the per-touch relation looks names up here and falls back to the next zone.
-- pg_timezone_names reads the whole tz database on every query (slow), hence a
-- table filled once here and again by ci_private.refresh_timezone_names() after
-- a tzdata upgrade.

create table if not exists ci_private.timezone_names (
  -- lower(name): zone names are matched case-insensitively, as PostgreSQL does.
  zone_key text primary key,
  -- The name as the tz database spells it.
  zone_name text not null
);
revoke all on ci_private.timezone_names from public;
grant select on ci_private.timezone_names to service_role;

-- Re-read the server's tz database into the cache; returns the number of names.
create or replace function ci_private.refresh_timezone_names()
returns integer
language plpgsql volatile
set search_path = ''
as $$
declare
  v_count integer;
begin
  delete from ci_private.timezone_names;
  insert into ci_private.timezone_names (zone_key, zone_name)
  select distinct on (lower(z.name)) lower(z.name), z.name
  from pg_catalog.pg_timezone_names as z
  order by lower(z.name), z.name;
  get diagnostics v_count = row_count;
  return v_count;
end
$$;

revoke execute on function ci_private.refresh_timezone_names() from public, anon, authenticated;
grant execute on function ci_private.refresh_timezone_names() to service_role;

select ci_private.refresh_timezone_names();
