#!/usr/bin/env bash
# The embedded database: a private PostgreSQL 15 cluster served the way
# `supabase start` serves its own (127.0.0.1, port 54322, user postgres),
# with pg_cron preloaded and the server able to import plpython/.
#
#   scripts/db.sh start    create the cluster if needed, start it (idempotent)
#   scripts/db.sh stop     stop it
#   scripts/db.sh reset    stop, delete the cluster, create and start it anew
#   scripts/db.sh status   is it running, where
#   scripts/db.sh url      print its connection URL
#   scripts/db.sh psql     open psql on it
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
load_db_config

# As root the server runs as the postgres OS user, which must reach the data
# directory. A checkout it cannot reach (under /root, say) gets its cluster
# under /var/lib/conversion-intel instead, at a path fixed by the checkout.
if [[ "$(id -u)" == "0" && -z "${CI_DB_DATA_DIR:-}" ]]; then
  mkdir -p "$(dirname "$DB_DATA")"
  if ! runuser -u postgres -- test -x "$(dirname "$DB_DATA")" 2>/dev/null; then
    DB_DATA="/var/lib/conversion-intel/$(printf '%s' "$ROOT" | sha256sum | cut -c1-12)/$(basename "$DB_DATA")"
    export DB_DATA
  fi
fi

PY_DIR="$(dirname "$DB_DATA")/python-${DB_PORT}"
LOG_FILE="$(dirname "$DB_DATA")/postgres-${DB_PORT}.log"

pgctl() { as_pg_owner "$PG_BIN/pg_ctl" -D "$DB_DATA" "$@"; }

is_running() { [[ -f "$DB_DATA/postmaster.pid" ]] && pgctl status >/dev/null 2>&1; }

ensure_dirs() {
  mkdir -p "$(dirname "$DB_DATA")"
  if [[ "$(id -u)" == "0" ]]; then
    # The server runs as the postgres OS user: it must reach its files.
    chown postgres:postgres "$(dirname "$DB_DATA")"
    runuser -u postgres -- test -x "$(dirname "$DB_DATA")" \
      || die "the postgres user cannot reach $(dirname "$DB_DATA"); set CI_DB_DATA_DIR to a path it can reach"
  fi
}

# sync_python: the copy of plpython/ that the server imports (refreshed on every start).
sync_python() {
  rm -rf "$PY_DIR.tmp"
  mkdir -p "$PY_DIR.tmp"
  cp -r "$ROOT/plpython/." "$PY_DIR.tmp/"
  find "$PY_DIR.tmp" -name '__pycache__' -prune -exec rm -rf {} +
  rm -rf "$PY_DIR"
  mv "$PY_DIR.tmp" "$PY_DIR"
  [[ "$(id -u)" == "0" ]] && chown -R postgres:postgres "$PY_DIR"
  return 0
}

write_conf() {
  local conf="$DB_DATA/conf.d/conversion-intel.conf"
  mkdir -p "$DB_DATA/conf.d"
  {
    echo "# Written by scripts/db.sh from supabase.toml; rewritten on every start."
    echo "listen_addresses = '${DB_HOST}'"
    echo "port = ${DB_PORT}"
    echo "unix_socket_directories = '/tmp'"
    echo "shared_preload_libraries = 'pg_cron'"
    echo "max_connections = 100"
    echo "password_encryption = 'scram-sha-256'"
    echo "log_min_messages = warning"
    toml_settings
  } >"$conf.tmp"
  mv "$conf.tmp" "$conf"
  [[ "$(id -u)" == "0" ]] && chown -R postgres:postgres "$DB_DATA/conf.d"
  return 0
}

create_cluster() {
  log "creating cluster in $DB_DATA"
  ensure_dirs
  local pwfile
  pwfile="$(mktemp)"
  printf '%s\n' "$DB_PASSWORD" >"$pwfile"
  [[ "$(id -u)" == "0" ]] && chown postgres "$pwfile"
  as_pg_owner "$PG_BIN/initdb" -D "$DB_DATA" -U "$DB_USER" --pwfile="$pwfile" \
    --auth-local=trust --auth-host=scram-sha-256 -E UTF8 --locale=C.UTF-8 >/dev/null
  rm -f "$pwfile"
  echo "include_dir = 'conf.d'" | as_pg_owner tee -a "$DB_DATA/postgresql.conf" >/dev/null
}

start() {
  [[ -x "$PG_BIN/postgres" ]] || die "PostgreSQL ${PG_MAJOR} is not installed: run scripts/setup.sh"
  [[ -f "$DB_DATA/PG_VERSION" ]] || create_cluster
  ensure_dirs
  sync_python
  write_conf
  if is_running; then
    log "database already running on ${DB_HOST}:${DB_PORT}"
    return
  fi
  touch "$LOG_FILE"
  [[ "$(id -u)" == "0" ]] && chown postgres "$LOG_FILE"
  # PYTHONPATH lets PL/Python import the maths module from plpython/.
  as_pg_owner env PYTHONPATH="$PY_DIR" "$PG_BIN/pg_ctl" -D "$DB_DATA" -l "$LOG_FILE" -w -t 60 start >/dev/null \
    || { tail -20 "$LOG_FILE" >&2; die "the database did not start"; }
  log "database running on ${DB_HOST}:${DB_PORT} (data: $DB_DATA)"
}

stop() {
  if is_running; then
    pgctl -m fast -w stop >/dev/null
    log "database stopped"
  else
    log "database not running"
  fi
}

case "${1:-start}" in
  start) start ;;
  stop) stop ;;
  reset)
    stop
    rm -rf "$DB_DATA" "$PY_DIR"
    start
    ;;
  status)
    if is_running; then echo "running on ${DB_HOST}:${DB_PORT} (data: $DB_DATA)"; else echo "stopped"; exit 3; fi
    ;;
  url) echo "$DB_URL" ;;
  psql) shift; exec psql "$DB_URL" "$@" ;;
  *) die "usage: scripts/db.sh start|stop|reset|status|url|psql" ;;
esac
