"""A dump an attacker who can write to the store crafts: its first SQL leaves pg_restore's transaction and creates a
marker table, then it is altered further on. Used by the dumpstore tests (tests/integration/test_dumpstore.py) and
the restore on the real node (tests/e2e/test_backup.py): restored, it leaves the marker; refused, nothing."""

from __future__ import annotations

# The first SQL a dump gives pg_restore: its SEARCHPATH entry, which pg_restore runs as it is when it connects,
# before any object. An attacker rewrites it to MARKER_SQL, padded to the same length (so that nothing else in the
# archive moves). Its COMMIT ends a --single-transaction: the marker table is committed at once, whatever then
# happens to the rest of the restore. (A SCHEMA entry would not do: with --no-owner pg_restore writes its own
# CREATE SCHEMA instead of the entry's SQL.)
SEARCHPATH_SQL = "SELECT pg_catalog.set_config('search_path', '', false);\n"
MARKER_SQL = "COMMIT; CREATE TABLE public.marker ();"
MARKER_EXISTS = "SELECT to_regclass('public.marker') IS NOT NULL"


def craft_marker_dump(dump: bytes) -> bytes:
    """The dump with its SEARCHPATH entry's SQL replaced by MARKER_SQL (padded to the same length)."""
    definition = SEARCHPATH_SQL.encode()
    assert dump.count(definition) == 1  # the entry, as pg_dump wrote it
    payload = MARKER_SQL.encode().ljust(len(definition) - 1) + b"\n"
    return dump.replace(definition, payload)


def altered_near_the_end(dump: bytes) -> bytes:
    """One byte flipped 100 bytes before the end: past the part a downloader streaming all but its last MiB (the
    previous one) had already handed pg_restore when it found the mismatch."""
    altered = bytearray(dump)
    altered[-100] ^= 0xFF
    return bytes(altered)
