# shellcheck shell=bash
# Shared helpers for the scripts: paths, settings from supabase.toml, logging.
# Sourced, never run.

set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export ROOT
PG_MAJOR=15
PG_BIN="/usr/lib/postgresql/${PG_MAJOR}/bin"
VENV="${ROOT}/.venv"

log() { printf '\033[1m==>\033[0m %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# toml_get KEY: one value from supabase.toml (dotted path), printed raw.
toml_get() {
  /usr/bin/python3 - "$ROOT/supabase.toml" "$1" <<'PY'
import sys, tomllib
with open(sys.argv[1], "rb") as fh:
    data = tomllib.load(fh)
node = data
for part in sys.argv[2].split("."):
    node = node[part]
print(node)
PY
}

# toml_settings: the [db.settings] table as "key = 'value'" lines for postgresql.conf.
toml_settings() {
  /usr/bin/python3 - "$ROOT/supabase.toml" <<'PY'
import sys, tomllib
with open(sys.argv[1], "rb") as fh:
    data = tomllib.load(fh)
for key, value in data["db"].get("settings", {}).items():
    print(f"{key} = '{value}'")
PY
}

# load_db_config: DB_HOST, DB_PORT, DB_USER, DB_PASSWORD, DB_NAME, DB_DATA, DB_URL.
load_db_config() {
  DB_HOST="$(toml_get db.host)"
  DB_PORT="${CI_DB_PORT:-$(toml_get db.port)}"
  DB_USER="$(toml_get db.user)"
  DB_PASSWORD="$(toml_get db.password)"
  DB_NAME="$(toml_get db.database)"
  local data_dir
  data_dir="${CI_DB_DATA_DIR:-$(toml_get db.data_dir)}"
  case "$data_dir" in
    /*) DB_DATA="$data_dir" ;;
    *) DB_DATA="$ROOT/$data_dir" ;;
  esac
  # A second cluster on another port gets a data directory of its own.
  if [[ -z "${CI_DB_DATA_DIR:-}" && "$DB_PORT" != "$(toml_get db.port)" ]]; then
    DB_DATA="${DB_DATA}-${DB_PORT}"
  fi
  DB_URL="postgresql://${DB_USER}:${DB_PASSWORD}@${DB_HOST}:${DB_PORT}/${DB_NAME}?sslmode=disable"
  export DB_HOST DB_PORT DB_USER DB_PASSWORD DB_NAME DB_DATA DB_URL
}

# target_url: the database the layer works on (DATABASE_URL wins over the embedded one).
target_url() {
  if [[ -n "${DATABASE_URL:-}" ]]; then
    printf '%s\n' "$DATABASE_URL"
  else
    load_db_config
    printf '%s\n' "$DB_URL"
  fi
}

# as_pg_owner CMD...: run a command as the OS user that owns the cluster.
as_pg_owner() {
  if [[ "$(id -u)" == "0" ]]; then
    # From / : the caller's folder may be one the postgres user cannot enter.
    (cd / && runuser -u postgres -- "$@")
  else
    "$@"
  fi
}

activate_venv() {
  [[ -x "$VENV/bin/python" ]] || die "no virtual environment: run scripts/setup.sh first"
  # shellcheck disable=SC1091
  source "$VENV/bin/activate"
}

# pg_env URL: export libpq's PG* variables for a connection URL (pg_prove
# does not take URLs).
pg_env() {
  eval "$(/usr/bin/python3 - "$1" <<'PY'
import shlex, sys
from urllib.parse import urlsplit, unquote, parse_qs
u = urlsplit(sys.argv[1])
env = {
    "PGHOST": u.hostname or "127.0.0.1",
    "PGPORT": str(u.port or 5432),
    "PGUSER": unquote(u.username or "postgres"),
    "PGPASSWORD": unquote(u.password or ""),
    "PGDATABASE": unquote(u.path.lstrip("/") or "postgres"),
}
mode = parse_qs(u.query).get("sslmode")
if mode:
    env["PGSSLMODE"] = mode[0]
for key, value in env.items():
    print(f"export {key}={shlex.quote(value)}")
PY
)"
}
