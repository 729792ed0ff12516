"""Released migrations are never edited (README, "Releases").

`supabase/released.sha256` lists every released migration with its sha256, in
`sha256sum` format (the repository itself carries it: git tags may not travel
with the code). `supabase db push` skips a version a database has already
applied, so an edit to a released file would never reach a deployed database;
a change comes as a new migration instead, and these checks keep it so.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MANIFEST = ROOT / "supabase" / "released.sha256"
MIGRATIONS = ROOT / "supabase" / "migrations"


def released() -> list[tuple[str, Path]]:
    """(sha256, path) per manifest line, in manifest order."""
    out: list[tuple[str, Path]] = []
    for number, line in enumerate(MANIFEST.read_text().splitlines(), start=1):
        digest, sep, name = line.partition("  ")
        assert sep and len(digest) == 64 and name, f"released.sha256 line {number} is not sha256sum format"
        out.append((digest, ROOT / name))
    return out


def version(path: Path) -> str:
    return path.name.split("_", 1)[0]


def test_manifest_lists_migration_files_once() -> None:
    entries = released()
    assert entries, "no release recorded"
    paths = [p for _, p in entries]
    assert len(set(paths)) == len(paths)
    for path in paths:
        assert path.parent == MIGRATIONS, f"{path} is not a migration"
    versions = [version(p) for p in paths]
    assert len(set(versions)) == len(versions), "two released migrations share a version"


def test_released_migrations_are_unchanged() -> None:
    for digest, path in released():
        assert path.exists(), f"released migration {path.name} was removed"
        assert hashlib.sha256(path.read_bytes()).hexdigest() == digest, (
            f"released migration {path.name} was edited: restore it and put the change in a new migration"
        )


def test_new_migrations_sort_after_the_release() -> None:
    listed = {p for _, p in released()}
    last = max(version(p) for p in listed)
    for path in sorted(MIGRATIONS.glob("*.sql")):
        if path not in listed:
            assert version(path) > last, (
                f"{path.name} sorts before the released {last}: a database that has the release would apply "
                "it out of order"
            )
