"""Writing batches into the API's PostgreSQL schema: COPY into a staging table, then one upsert keyed by
the legacy id, the rejects and the checkpoint, all in one transaction per batch. A crash loses at most the
batch in flight, and re-running it is harmless because every write is an upsert."""

from __future__ import annotations

import io
import json
import re
import threading
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import bson
import bson.errors
import psycopg2
import psycopg2.extensions
import psycopg2.extras
import sqlalchemy as sa
from bson import json_util
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import make_url

from taskplatform.api.db import sync_url
from taskplatform.api.limits import LEGACY_ID_MAX
from taskplatform.migration.collections import Kind, Row
from taskplatform.migration.source import Position


@dataclass(slots=True)
class Counts:
    read: int = 0
    written: int = 0
    rejected: int = 0


@dataclass(frozen=True, slots=True)
class Checkpoint:
    position: Position
    counts: Counts
    done: bool
    # When the collection's import began: the creation time given to documents that have none, kept
    # across resumes so that --verify computes the same rows.
    started_at: datetime | None = None
    # Secondary indexes this (initial) load dropped and builds at its end; empty for an incremental run.
    deferred_indexes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Rejected:
    source_id: str
    reason: str
    document: dict[str, Any]


def libpq_dsn(database_url: str) -> str:
    """`postgresql+psycopg2://u:p@h/db` (or any SQLAlchemy PostgreSQL URL) → a libpq URI."""
    return make_url(sync_url(database_url)).set(drivername="postgresql").render_as_string(hide_password=False)


_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})
_COPY_SPECIAL = re.compile("[" + re.escape("".join(map(chr, _COPY_ESCAPES))) + "]")


def _copy_field(value: Any) -> str:
    if value is None:
        return "\\N"
    if isinstance(value, str):
        # Most text holds none of them: the search costs a sixth of translating character by character.
        return value.translate(_COPY_ESCAPES) if _COPY_SPECIAL.search(value) else value
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)  # numbers and booleans need no escaping


def _copy_text(rows: Iterable[Sequence[Any]]) -> io.StringIO:
    """Rows in COPY's text format: tab-separated, \\N for NULL, backslash escapes."""
    return io.StringIO("".join("\t".join(map(_copy_field, row)) + "\n" for row in rows))


def _jsonb_safe(value: Any) -> Any:
    """JSONB refuses the NUL character; the readable copy shows U+FFFD instead (the raw BSON keeps it)."""
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, list):
        return [_jsonb_safe(v) for v in value]
    if isinstance(value, dict):
        return {_jsonb_safe(k): _jsonb_safe(v) for k, v in value.items()}
    return value


def document_json(doc: dict[str, Any]) -> str:
    """The document as MongoDB relaxed extended JSON, storable in JSONB whatever its strings hold."""
    return json.dumps(_jsonb_safe(json.loads(json_util.dumps(doc, json_options=json_util.RELAXED_JSON_OPTIONS))))


def document_bson(doc: dict[str, Any]) -> bytes | None:
    """The document exactly, for recovery: `bson.decode(raw_document)` gives it back."""
    try:
        return bson.encode(doc)
    except (bson.errors.BSONError, TypeError, ValueError, OverflowError):
        return None


_POSTGRESQL = postgresql.dialect()  # type: ignore[no-untyped-call]


def _ddl(statement: sa.schema.ExecutableDDLElement) -> str:
    """An index's DDL as the models declare it (one definition for the API's tables and this loader)."""
    return str(statement.compile(dialect=_POSTGRESQL))


# A lost connection ends the run (it resumes from the checkpoint); any other refusal is about the rows.
_CONNECTION_ERRORS = (psycopg2.OperationalError, psycopg2.InterfaceError)


def _refusal(exc: psycopg2.Error) -> str:
    diag = getattr(exc, "diag", None)
    message = (diag.message_primary if diag is not None else None) or str(exc).splitlines()[0]
    detail = diag.message_detail if diag is not None else None
    return f"refused by PostgreSQL: {message}" + (f" ({detail})" if detail else "")


# Deferred indexes are built on this many connections at once, the slowest (GIN: trigram, tags) first: one
# CREATE INDEX of a GIN index runs on one core, and the B-tree builds fit beside it (pgloader also builds a
# table's indexes in parallel). 500k tasks on two cores: 2.0-2.4 s against 3.3 s one after another.
INDEX_BUILD_CONNECTIONS = 2


class Target:
    def __init__(self, database_url: str) -> None:
        self._dsn = libpq_dsn(database_url)
        self.conn = self._connect()

    def _connect(self) -> Any:
        conn = psycopg2.connect(self._dsn, application_name="taskplatform-migrate")
        conn.autocommit = False
        return conn

    def close(self) -> None:
        self.conn.close()

    # --- checkpoints ---------------------------------------------------------------------------------

    def load_checkpoint(self, collection: str) -> Checkpoint | None:
        with self.conn.cursor() as cur:
            cur.execute(
                "SELECT position, read_count, written_count, rejected_count, done, started_at, deferred_indexes "
                "FROM migration_checkpoints WHERE collection = %s",
                (collection,),
            )
            row = cur.fetchone()
        self.conn.rollback()
        if row is None:
            return None
        position = row[0] if isinstance(row[0], dict) else json.loads(row[0])
        deferred = tuple(row[6] if isinstance(row[6], list) else json.loads(row[6] or "[]"))
        return Checkpoint(Position.from_json(position), Counts(row[1], row[2], row[3]), row[4], row[5], deferred)

    def reset(self, collections: Iterable[str]) -> None:
        """Start over: forget the position, counts, rejects and notes, but keep the import's start time, so
        that documents without a creation date import exactly as before."""
        with self.conn.cursor() as cur:
            for collection in collections:
                cur.execute(
                    "UPDATE migration_checkpoints SET position = '{}', read_count = 0, written_count = 0, "
                    "rejected_count = 0, done = false WHERE collection = %s",
                    (collection,),
                )
                for table in ("migration_rejects", "migration_alterations"):
                    cur.execute(f"DELETE FROM {table} WHERE collection = %s", (collection,))  # noqa: S608 (constant names)
        self.conn.commit()

    def _save_checkpoint(self, cur: Any, collection: str, checkpoint: Checkpoint) -> None:
        counts = checkpoint.counts
        cur.execute(
            """
            INSERT INTO migration_checkpoints (collection, position, read_count, written_count, rejected_count,
                                               done, started_at, deferred_indexes, updated_at)
            VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)
            ON CONFLICT (collection) DO UPDATE SET
                position = EXCLUDED.position, read_count = EXCLUDED.read_count,
                written_count = EXCLUDED.written_count, rejected_count = EXCLUDED.rejected_count,
                done = EXCLUDED.done, updated_at = EXCLUDED.updated_at, deferred_indexes = EXCLUDED.deferred_indexes,
                started_at = COALESCE(migration_checkpoints.started_at, EXCLUDED.started_at)
            """,
            (collection, json.dumps(checkpoint.position.to_json()), counts.read, counts.written, counts.rejected,
             checkpoint.done, checkpoint.started_at, json.dumps(list(checkpoint.deferred_indexes)),
             datetime.now(UTC)),
        )  # fmt: skip

    # --- index deferral for initial loads ---------------------------------------------------------------

    def defer_indexes(self, kind: Kind, collection: str, checkpoint: Checkpoint) -> tuple[str, ...]:
        """On an empty table, drop its secondary indexes and record them in the checkpoint, in one transaction:
        maintaining GIN, trigram and B-tree indexes row by row costs more than building them once at the end
        (pgloader does the same). A table that holds rows keeps its indexes (an incremental run)."""
        names = tuple(str(index.name) for index in kind.secondary_indexes)
        with self.conn.cursor() as cur:
            cur.execute(f"SELECT EXISTS (SELECT 1 FROM {kind.table})")  # noqa: S608 (a constant name)
            row = cur.fetchone()
            if not names or (row and row[0]):
                self.conn.rollback()
                return ()
            for index in kind.secondary_indexes:
                cur.execute(_ddl(sa.schema.DropIndex(index, if_exists=True)))
            deferred = Checkpoint(checkpoint.position, checkpoint.counts, False, checkpoint.started_at, names)
            self._save_checkpoint(cur, collection, deferred)
        self.conn.commit()
        return names

    def build_indexes(self, kind: Kind, names: Iterable[str]) -> None:
        """Build the deferred indexes, each in its own transaction (IF NOT EXISTS: after a crash mid-way, a
        re-run builds only what is missing), on up to INDEX_BUILD_CONNECTIONS connections, GIN first."""
        wanted = set(names)
        pending = sorted(
            (index for index in kind.secondary_indexes if index.name in wanted),
            key=lambda index: index.dialect_options["postgresql"].get("using") != "gin",
        )
        statements = [_ddl(sa.schema.CreateIndex(index, if_not_exists=True)) for index in pending]
        lock = threading.Lock()

        def build_on(conn: Any) -> None:
            while True:
                with lock:
                    if not statements:
                        return
                    statement = statements.pop(0)
                with conn.cursor() as cur:
                    cur.execute("SET LOCAL maintenance_work_mem = '256MB'")
                    cur.execute(statement)
                conn.commit()

        extra = [self._connect() for _ in range(min(INDEX_BUILD_CONNECTIONS, len(statements)) - 1)]
        try:
            with ThreadPoolExecutor(max_workers=len(extra) + 1, thread_name_prefix="index-build") as pool:
                for done in [pool.submit(build_on, conn) for conn in [self.conn, *extra]]:
                    done.result()  # the first failure is raised; the others' builds finish or fail on their own
        finally:
            for conn in extra:
                conn.close()

    def mark_done(self, collection: str, checkpoint: Checkpoint) -> None:
        with self.conn.cursor() as cur:
            self._save_checkpoint(cur, collection, checkpoint)
        self.conn.commit()

    # --- rejects and alterations -----------------------------------------------------------------------

    _REJECTS_UPSERT = """
        INSERT INTO migration_rejects (collection, source_id, reason, document, raw_document, rejected_at)
        VALUES %s
        ON CONFLICT (collection, source_id) DO UPDATE SET
            reason = EXCLUDED.reason, document = EXCLUDED.document, raw_document = EXCLUDED.raw_document,
            rejected_at = EXCLUDED.rejected_at
    """

    def _save_rejects(self, cur: Any, collection: str, rejects: Sequence[Rejected]) -> None:
        """Every reject is kept. Should a document still be unstorable as JSONB (a shape no conversion
        foresaw), its reject row holds the reason and the exact BSON, never failing the batch."""
        if not rejects:
            return
        now = datetime.now(UTC)
        cur.execute("SAVEPOINT rejects")
        try:
            rows = [(collection, r.source_id[:LEGACY_ID_MAX], r.reason, document_json(r.document),
                     document_bson(r.document), now) for r in rejects]  # fmt: skip
            psycopg2.extras.execute_values(cur, self._REJECTS_UPSERT, rows)
        except _CONNECTION_ERRORS:
            raise
        except (psycopg2.Error, ValueError, TypeError) as exc:
            cur.execute("ROLLBACK TO SAVEPOINT rejects")
            unstorable = json.dumps({"unstorable": _shown_error(exc)})
            rows = [(collection, r.source_id[:LEGACY_ID_MAX], r.reason, unstorable, document_bson(r.document), now)
                    for r in rejects]  # fmt: skip
            psycopg2.extras.execute_values(cur, self._REJECTS_UPSERT, rows)
        cur.execute("RELEASE SAVEPOINT rejects")

    def _save_alterations(self, cur: Any, collection: str, rows: Sequence[Row]) -> None:
        """The alteration notes of the written rows (their old notes went in `_forget_staged`)."""
        altered = [(collection, r.legacy_id, json.dumps(list(r.notes)), datetime.now(UTC)) for r in rows if r.notes]
        if altered:
            psycopg2.extras.execute_values(
                cur,
                "INSERT INTO migration_alterations (collection, source_id, notes, altered_at) VALUES %s",
                altered,
            )

    def _forget_staged(self, cur: Any, kind: Kind, collection: str) -> None:
        """The staged rows were written: a document that failed before and imports now (the source was fixed) is
        no longer a reject, and its old alteration notes go (`_save_alterations` writes the current ones). The
        ids are taken from the staging table, not sent again: a 5000-id array cost the client ~1.5 µs per id."""
        for table in ("migration_rejects", "migration_alterations"):
            cur.execute(
                f"DELETE FROM {table} WHERE collection = %s "  # noqa: S608 (constant names)
                f"AND source_id IN (SELECT legacy_id FROM {kind.staging_table})",
                (collection,),
            )

    # --- batches -------------------------------------------------------------------------------------

    def users_taking_emails(self, emails: list[str]) -> dict[str, str | None]:
        """email → legacy id (None for accounts created through the API) among existing users."""
        with self.conn.cursor() as cur:
            cur.execute("SELECT email, legacy_id FROM users WHERE email = ANY(%s)", (emails,))
            return dict(cur.fetchall())

    def user_ids(self, legacy_ids: list[str]) -> dict[str, int]:
        with self.conn.cursor() as cur:
            cur.execute("SELECT legacy_id, id FROM users WHERE legacy_id = ANY(%s)", (legacy_ids,))
            return dict(cur.fetchall())

    def _upsert(
        self, cur: Any, kind: Kind, collection: str, rows: Sequence[tuple[Row, dict[str, Any]]]
    ) -> list[Rejected]:
        """COPY and upsert `rows` inside a savepoint. When PostgreSQL refuses them, the rows are bisected (as
        pgloader does) until each refused row stands alone; those come back as rejects with PostgreSQL's
        reason and every other row is written."""
        cur.execute("SAVEPOINT batch_rows")
        try:
            cur.execute(kind.staging_ddl)
            cur.copy_expert(f"COPY {kind.staging_table} FROM STDIN", _copy_text(kind.staged(r) for r, _ in rows))
            cur.execute(kind.upsert_sql)
            self._forget_staged(cur, kind, collection)
            cur.execute(f"TRUNCATE {kind.staging_table}")  # the next slice of a bisected batch starts empty
        except _CONNECTION_ERRORS:
            raise
        except psycopg2.Error as exc:
            cur.execute("ROLLBACK TO SAVEPOINT batch_rows")
            if len(rows) == 1:
                row, doc = rows[0]
                return [Rejected(row.legacy_id, _refusal(exc), doc)]
            middle = len(rows) // 2
            return self._upsert(cur, kind, collection, rows[:middle]) + self._upsert(
                cur, kind, collection, rows[middle:]
            )
        cur.execute("RELEASE SAVEPOINT batch_rows")
        return []

    def write_batch(
        self,
        kind: Kind,
        collection: str,
        rows: Sequence[tuple[Row, dict[str, Any]]],
        rejects: Sequence[Rejected],
        checkpoint: Checkpoint,
    ) -> list[Rejected]:
        """One transaction: the rows, their alteration notes, the rejects and the checkpoint. Returns the rows
        PostgreSQL refused (already counted as rejects in the checkpoint)."""
        with self.conn.cursor() as cur:
            refused = self._upsert(cur, kind, collection, rows) if rows else []
            if refused:
                checkpoint.counts.written -= len(refused)
                checkpoint.counts.rejected += len(refused)
            refused_ids = {r.source_id for r in refused}
            written = [row for row, _ in rows if row.legacy_id not in refused_ids]
            if written:
                self._save_alterations(cur, collection, written)
            self._save_rejects(cur, collection, [*rejects, *refused])
            self._save_checkpoint(cur, collection, checkpoint)
        self.conn.commit()
        return refused

    # --- verification reads ----------------------------------------------------------------------------

    def iter_rows(self, kind: Kind) -> Iterable[Row]:
        with self.conn.cursor(name=f"verify_{kind.name}") as cur:
            cur.itersize = 5000
            cur.execute(kind.load_sql)
            for values in cur:
                yield kind.row_type(*values)
        self.conn.rollback()

    def rejected_ids(self, collection: str) -> set[str]:
        with self.conn.cursor() as cur:
            cur.execute("SELECT source_id FROM migration_rejects WHERE collection = %s", (collection,))
            ids = {row[0] for row in cur.fetchall()}
        self.conn.rollback()
        return ids

    def altered_count(self, collection: str) -> int:
        with self.conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM migration_alterations WHERE collection = %s", (collection,))
            row = cur.fetchone()
        self.conn.rollback()
        return int(row[0]) if row else 0


def _shown_error(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:500]
