#!/usr/bin/env bash
# Applies supabase/migrations with the pinned Supabase CLI (`supabase db push`),
# the same command a user runs against a real Supabase project.
#   scripts/migrate.sh [DATABASE_URL]
# Without an argument: $DATABASE_URL, else the embedded database.
# CI_MIGRATIONS_ROOT: a folder holding another supabase/migrations to push (the
# upgrade test pushes the previous release's files from there).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

url="${1:-$(target_url)}"
cli="$ROOT/node_modules/.bin/supabase"
[[ -x "$cli" ]] || die "the Supabase CLI is not installed: run scripts/setup.sh"

# A migration role that is not a superuser (hosted Supabase's `postgres`) cannot
# create plpython3u, an untrusted language. Hosted Supabase does not ship it, so
# the extensions migration skips it there; a server that has it installed would
# make that migration fail. The released migration honours ci.disable_plpython
# (only a superuser may store it with ALTER ROLE/DATABASE), so the push session
# gets it as a connection option: the weights are then fitted by the sidecar.
push_url="$url"
if [[ "$(psql -X -At "$url" -c "select rolsuper from pg_catalog.pg_roles where rolname = current_user" 2>/dev/null)" == "f" ]]; then
  case "$url" in
    *\?*) push_url="${url}&options=-c%20ci.disable_plpython%3Don" ;;
    *) push_url="${url}?options=-c%20ci.disable_plpython%3Don" ;;
  esac
  log "migration role is not a superuser: plpython3u left out (the sidecar fits the weights)"
fi

# pg_cron where hosted Supabase keeps it: created WITH SCHEMA pg_catalog by a
# superuser before the migrations run (the extensions migration then finds it
# and leaves it). Only a superuser can, only where the server preloads pg_cron,
# and only in cron.database_name; a database that has pg_cron already keeps it.
psql -X -q -v ON_ERROR_STOP=1 "$url" >/dev/null <<'SQL'
do $cron$
begin
  if (select r.rolsuper from pg_catalog.pg_roles as r where r.rolname = current_user)
     and not exists (select 1 from pg_catalog.pg_extension where extname = 'pg_cron')
     and exists (select 1 from pg_catalog.pg_available_extensions where name = 'pg_cron')
     and pg_catalog.current_database() = coalesce(pg_catalog.current_setting('cron.database_name', true), 'postgres')
     and pg_catalog.current_setting('shared_preload_libraries') like '%pg_cron%' then
    create extension pg_cron with schema pg_catalog;
  end if;
end
$cron$;
SQL

out="$(mktemp)"
trap 'rm -f "$out"' EXIT
workdir="${CI_MIGRATIONS_ROOT:-$ROOT}"
if ! (cd "$workdir" && "$cli" db push --db-url "$push_url" --include-all --yes </dev/null >"$out" 2>&1); then
  cat "$out" >&2
  die "migrations failed"
fi
applied="$(grep -c '^Applying migration' "$out" || true)"
if [[ "$applied" == "0" ]]; then
  log "migrations: database is up to date"
else
  grep '^Applying migration' "$out" | sed 's/^/    /' >&2
  log "migrations: applied ${applied}"
fi

# The schedule lives in supabase.toml; the database keeps its copy in
# ci_private.settings (the one place the jobs read it from).
psql -X -q -v ON_ERROR_STOP=1 "$url" \
  -v refresh_cron="$(toml_get schedule.refresh_cron)" \
  -v trim_cron="$(toml_get schedule.trim_cron)" \
  -v keep_run_details="$(toml_get schedule.keep_run_details)" >/dev/null <<'SQL'
insert into ci_private.settings as s (key, value)
values ('refresh_cron', :'refresh_cron'), ('trim_cron', :'trim_cron'), ('keep_run_details', :'keep_run_details')
on conflict (key) do update set value = excluded.value, updated_at = now()
where s.value is distinct from excluded.value;
select ci_private.schedule_jobs();
SQL
