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

# One client's agent context (also stored for get_agent_context) and its report.
client="$(psql -X -At -v ON_ERROR_STOP=1 "$url" -c "select id from public.clients where name = 'Demo client 1'")"
report_dir="$ROOT/.local/reports"
printf '\n==> Agent context of Demo client 1 (ci context %s --store)\n\n' "$client"
ci context "$client" --store --prompt all --dsn "$url"
printf '\n==> Report of Demo client 1\n'
ci report "$client" --out "$report_dir" --dsn "$url"
echo "Open it in a browser (it needs no network): file://$report_dir/ci-report-$client.html"
