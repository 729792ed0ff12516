#!/usr/bin/env bash
# The main job on the embedded default, from a fresh machine: set-up, the
# database up, migrations, the demo history loaded, and a summary printed.
# Set DATABASE_URL to run it against another database instead.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

bash "$ROOT/scripts/setup.sh"
if [[ -z "${DATABASE_URL:-}" ]]; then
  bash "$ROOT/scripts/db.sh" start
fi
url="$(target_url)"
bash "$ROOT/scripts/migrate.sh" "$url"
activate_venv
python -m ci_sidecar.demo --dsn "$url"
