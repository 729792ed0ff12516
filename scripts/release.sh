#!/usr/bin/env bash
# Records every migration not yet released as released: appends its sha256 to
# supabase/released.sha256 (sha256sum format, paths from the repository root).
# From then on that file is never edited: a change comes as a new migration,
# and tests/test_releases.py fails if a released file changes or disappears,
# or if a new migration sorts before the last released one.
#   scripts/release.sh            append the unreleased migrations
#   scripts/release.sh --check    verify the manifest only (sha256sum -c)
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"
manifest="supabase/released.sha256"
touch "$manifest"
check() { [[ ! -s "$manifest" ]] || sha256sum --check --quiet --strict "$manifest"; }
if [[ "${1:-}" == "--check" ]]; then
  check
  log "released migrations: $(wc -l <"$manifest") files unchanged"
  exit 0
fi
check || die "a released migration was edited: restore it, then release"
added=0
for f in supabase/migrations/*.sql; do
  grep -q "  ${f}\$" "$manifest" && continue
  sha256sum "$f" >>"$manifest"
  added=$((added + 1))
done
log "released: ${added} new migration(s); ${manifest} lists $(wc -l <"$manifest")"
