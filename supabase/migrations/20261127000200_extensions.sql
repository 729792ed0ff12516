-- Extensions of the layer, each created only where the server offers it.
-- pg_cron: the weekly refresh; only in the database named by cron.database_name.
-- plpython3u: the weight fit in the database; hosted Supabase lacks it, and then
-- the sidecar fits the weights instead. A database can opt out with
--   alter database ... set ci.disable_plpython = 'on';
-- which is also how the tests prove the migrations apply without it.

do $ext$
begin
  if exists (select 1 from pg_catalog.pg_available_extensions where name = 'pg_cron')
     and pg_catalog.current_database() = coalesce(pg_catalog.current_setting('cron.database_name', true), 'postgres')
     and exists (
       select 1 from pg_catalog.pg_settings
       where name = 'shared_preload_libraries' and setting like '%pg_cron%'
     ) then
    create extension if not exists pg_cron;
  else
    raise notice 'pg_cron not available here: the weekly refresh must be scheduled elsewhere';
  end if;

  if exists (select 1 from pg_catalog.pg_available_extensions where name = 'plpython3u')
     and coalesce(pg_catalog.current_setting('ci.disable_plpython', true), 'off') <> 'on' then
    create extension if not exists plpython3u;
  else
    raise notice 'plpython3u not available here: weights are fitted by the sidecar';
  end if;
end
$ext$;
