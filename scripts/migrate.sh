#!/usr/bin/env bash
# Applies supabase/migrations with the pinned Supabase CLI (`supabase db push`),
# the same command a user runs against a real Supabase project.
#   scripts/migrate.sh [DATABASE_URL]
# Without an argument: $DATABASE_URL, else the embedded database.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

url="${1:-$(target_url)}"
cli="$ROOT/node_modules/.bin/supabase"
[[ -x "$cli" ]] || die "the Supabase CLI is not installed: run scripts/setup.sh"

out="$(mktemp)"
trap 'rm -f "$out"' EXIT
if ! (cd "$ROOT" && "$cli" db push --db-url "$url" --include-all --yes </dev/null >"$out" 2>&1); then
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
