#!/usr/bin/env bash
# A second cluster shaped like hosted Supabase, for the hosted-install test
# (tests/test_hosted_install.py): the cluster's superuser is supabase_admin,
# `postgres` is not a superuser, pg_cron is preloaded and created in pg_catalog
# by the superuser, plpython3u is not creatable by postgres
# (tests/fixtures/hosted_supabase.sql sets the roles, grants and default
# privileges up).
#
#   scripts/hosted_db.sh start   create (when absent) and start it, print nothing
#   scripts/hosted_db.sh reset   stop, delete, create and start it anew
#   scripts/hosted_db.sh stop    stop it
#   scripts/hosted_db.sh url     the URL of `postgres` (the role migrations run as)
#   scripts/hosted_db.sh admin-url  the URL of supabase_admin
#
# Port: CI_HOSTED_DB_PORT, else the embedded database's port + 1000 (so that
# clusters of several checkouts side by side never share one).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
load_db_config

PORT="${CI_HOSTED_DB_PORT:-$((DB_PORT + 1000))}"
DATA="$(dirname "$DB_DATA")/hosted-${PORT}"
if [[ "$(id -u)" == "0" && -z "${CI_DB_DATA_DIR:-}" ]] && ! runuser -u postgres -- test -x "$(dirname "$DB_DATA")" 2>/dev/null; then
  DATA="/var/lib/conversion-intel/$(printf '%s' "$ROOT" | sha256sum | cut -c1-12)/hosted-${PORT}"
fi
LOG_FILE="${DATA}.log"
PASSWORD="postgres"
URL="postgresql://postgres:${PASSWORD}@${DB_HOST}:${PORT}/postgres?sslmode=disable"
ADMIN_URL="postgresql://supabase_admin:${PASSWORD}@${DB_HOST}:${PORT}/postgres?sslmode=disable"

pgctl() { as_pg_owner "$PG_BIN/pg_ctl" -D "$DATA" "$@"; }
is_running() { [[ -f "$DATA/postmaster.pid" ]] && pgctl status >/dev/null 2>&1; }

create() {
  mkdir -p "$(dirname "$DATA")"
  [[ "$(id -u)" == "0" ]] && chown postgres:postgres "$(dirname "$DATA")"
  local pwfile
  pwfile="$(mktemp)"
  printf '%s\n' "$PASSWORD" >"$pwfile"
  [[ "$(id -u)" == "0" ]] && chown postgres "$pwfile"
  as_pg_owner "$PG_BIN/initdb" -D "$DATA" -U supabase_admin --pwfile="$pwfile" \
    --auth-local=trust --auth-host=scram-sha-256 -E UTF8 --locale=C.UTF-8 >/dev/null
  rm -f "$pwfile"
  {
    echo "listen_addresses = '${DB_HOST}'"
    echo "port = ${PORT}"
    echo "unix_socket_directories = '/tmp'"
    echo "shared_preload_libraries = 'pg_cron'"
    echo "cron.database_name = 'postgres'"
    echo "cron.use_background_workers = on"
    echo "max_worker_processes = 16"
    echo "shared_buffers = '128MB'"
    echo "log_min_messages = warning"
  } | as_pg_owner tee -a "$DATA/postgresql.conf" >/dev/null
  start_server
  psql -X -q -v ON_ERROR_STOP=1 "$ADMIN_URL" -f "$ROOT/tests/fixtures/hosted_supabase.sql" >/dev/null
}

start_server() {
  touch "$LOG_FILE"
  [[ "$(id -u)" == "0" ]] && chown postgres "$LOG_FILE"
  # No PYTHONPATH: nothing of the layer runs in PL/Python here.
  as_pg_owner "$PG_BIN/pg_ctl" -D "$DATA" -l "$LOG_FILE" -w -t 60 start >/dev/null \
    || { tail -20 "$LOG_FILE" >&2; die "the hosted-shaped database did not start"; }
}

stop() { if is_running; then pgctl -m fast -w stop >/dev/null; fi; }

case "${1:-start}" in
  start)
    if [[ ! -f "$DATA/PG_VERSION" ]]; then create; elif ! is_running; then start_server; fi ;;
  reset) stop; rm -rf "$DATA"; create ;;
  stop) stop ;;
  url) echo "$URL" ;;
  admin-url) echo "$ADMIN_URL" ;;
  *) die "usage: scripts/hosted_db.sh start|reset|stop|url|admin-url" ;;
esac
