#!/usr/bin/env bash
# Records every migration not yet released as released: appends its sha256 to
# supabase/released.sha256 (sha256sum format, paths from the repository root).
# From then on that file is never edited: a change comes as a new migration,
# and tests/test_releases.py fails if a released file changes or disappears,
# or if a new migration sorts before the last released one.
#   scripts/release.sh VERSION    append the unreleased migrations as release VERSION
#                                 (and the release's last version to supabase/releases.txt)
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
if ((added > 0)); then
  [[ -n "${1:-}" ]] || die "name the release: scripts/release.sh VERSION"
  last="$(tail -1 "$manifest" | sed 's|.*supabase/migrations/||; s|_.*||')"
  echo "$1 $last" >>supabase/releases.txt
fi
log "released: ${added} new migration(s); ${manifest} lists $(wc -l <"$manifest")"
