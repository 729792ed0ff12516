#!/usr/bin/env bash
# Installs everything the project needs on a Debian machine, idempotently:
# the PostgreSQL 15 server with plpython3 (numpy, scipy), pg_cron, pgTAP with
# pg_prove and plpgsql_check from Debian's packages; headless Chromium for the
# report test; the Supabase CLI pinned through npm; the project's Python environment in .venv.
# A second run installs nothing and changes nothing.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

APT_PACKAGES=(
  "postgresql-${PG_MAJOR}" "postgresql-client-${PG_MAJOR}"
  "postgresql-plpython3-${PG_MAJOR}" python3-numpy python3-scipy
  "postgresql-${PG_MAJOR}-cron"
  "postgresql-${PG_MAJOR}-pgtap" pgtap libtap-parser-sourcehandler-pgtap-perl
  "postgresql-${PG_MAJOR}-plpgsql-check"
  python3 python3-venv python3-pip nodejs npm util-linux
  chromium fonts-dejavu-core
)

sudo_cmd() {
  if [[ "$(id -u)" == "0" ]]; then "$@"; else sudo "$@"; fi
}

install_debian_packages() {
  local missing=()
  local pkg
  for pkg in "${APT_PACKAGES[@]}"; do
    # nodejs/npm may come from elsewhere (nvm, NodeSource): a working npm is enough.
    if [[ "$pkg" == "nodejs" || "$pkg" == "npm" ]] && command -v npm >/dev/null 2>&1; then
      continue
    fi
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  if ((${#missing[@]} == 0)); then
    log "Debian packages: all present"
    return
  fi
  log "Debian packages: installing ${missing[*]}"
  sudo_cmd env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  sudo_cmd env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

install_supabase_cli() {
  if [[ -x "$ROOT/node_modules/.bin/supabase" ]] \
    && [[ "$("$ROOT/node_modules/.bin/supabase" --version 2>/dev/null)" == "$(node -p "require('$ROOT/package.json').devDependencies.supabase")" ]]; then
    log "Supabase CLI: $("$ROOT/node_modules/.bin/supabase" --version) present"
    return
  fi
  log "Supabase CLI: npm ci"
  (cd "$ROOT" && npm ci --no-audit --no-fund --loglevel=error)
}

install_python_env() {
  local stamp="$VENV/.installed-$(sha256sum "$ROOT/pyproject.toml" | cut -c1-16)"
  if [[ -f "$stamp" ]]; then
    log "Python environment: .venv up to date"
    return
  fi
  log "Python environment: creating .venv"
  local py=python3
  # Prefer a Python >= 3.11 for tomllib; Debian 12's is 3.11.
  [[ -x "$VENV/bin/python" ]] || "$py" -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --upgrade pip >/dev/null
  "$VENV/bin/python" -m pip install -q -e "$ROOT[dev]"
  rm -f "$VENV"/.installed-*
  touch "$stamp"
}

install_debian_packages
install_supabase_cli
install_python_env
log "setup: done"
