#!/usr/bin/env bash
# Runs every test: set-up (idempotent), the embedded database, migrations,
# lint (sqlfluff, plpgsql_check, ruff, mypy), pgTAP through pg_prove, pytest.
#   scripts/test.sh            everything
#   scripts/test.sh -k EXPR    passes pytest options through
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

bash "$ROOT/scripts/setup.sh"
bash "$ROOT/scripts/db.sh" start
url="$(target_url)"
bash "$ROOT/scripts/migrate.sh" "$url"
activate_venv
export DATABASE_URL="$url"

failed=()

log "lint: sqlfluff (migrations)"
sqlfluff lint --nocolor "$ROOT/supabase/migrations" || failed+=("sqlfluff")

log "lint: plpgsql_check (every PL/pgSQL function)"
problems="$(psql -X -q -v ON_ERROR_STOP=1 -At "$url" -f "$ROOT/scripts/lint_plpgsql.sql")" || failed+=("plpgsql_check")
if [[ -n "$problems" ]]; then
  printf '%s\n' "$problems" >&2
  failed+=("plpgsql_check")
fi

log "lint: ruff and mypy (Python)"
ruff check --quiet "$ROOT/plpython" "$ROOT/sidecar" "$ROOT/tests" || failed+=("ruff")
(cd "$ROOT" && mypy --no-error-summary) || failed+=("mypy")

log "pgTAP: supabase/tests"
psql -X -q -v ON_ERROR_STOP=1 "$url" -c "create extension if not exists pgtap with schema extensions" >/dev/null
(pg_env "$url" && PGOPTIONS="-c search_path=public,extensions" \
  pg_prove --ext .sql -r "$ROOT/supabase/tests") || failed+=("pgTAP")

log "pytest: tests/"
(cd "$ROOT" && python -m pytest "$@") || failed+=("pytest")

if ((${#failed[@]})); then
  printf 'FAILED: %s\n' "${failed[*]}" >&2
  exit 1
fi
log "all tests passed"
