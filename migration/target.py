"""Writing batches into the API's PostgreSQL schema: COPY into a staging table, then one upsert keyed by
the legacy id, the rejects and the checkpoint, all in one transaction per batch. A crash loses at most the
batch in flight, and re-running it is harmless because every write is an upsert."""

from __future__ import annotations

import io
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg2
import psycopg2.extensions
import psycopg2.extras
from bson import json_util
from sqlalchemy.engine import make_url

from taskplatform.api.db import sync_url
from taskplatform.api.models import TaskPriority
from taskplatform.migration.source import Position
from taskplatform.migration.transform import TaskRow, UserRow


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


@dataclass(frozen=True, slots=True)
class Rejected:
    source_id: str
    reason: str
    document: dict[str, Any]


def libpq_dsn(database_url: str) -> str:
    """`postgresql+psycopg2://u:p@h/db` (or any SQLAlchemy PostgreSQL URL) → a libpq URI."""
    return make_url(sync_url(database_url)).set(drivername="postgresql").render_as_string(hide_password=False)


_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _copy_field(value: Any) -> str:
    if value is None:
        return "\\N"
    if isinstance(value, str):
        return value.translate(_COPY_ESCAPES)
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)  # numbers and booleans need no escaping


def _copy_text(rows: Iterable[Sequence[Any]]) -> io.StringIO:
    """Rows in COPY's text format: tab-separated, \\N for NULL, backslash escapes."""
    return io.StringIO("".join("\t".join(map(_copy_field, row)) + "\n" for row in rows))


_USERS_STAGING = (
    "stage_users",
    "legacy_id text, email text, full_name text, hashed_password text, is_active boolean, created_at timestamptz",
)
# Only rows that differ are touched, so a re-run leaves identical rows (and their versions) alone.
_USERS_UPSERT = """
    INSERT INTO users (legacy_id, email, full_name, hashed_password, is_active, created_at)
    SELECT legacy_id, email, full_name, hashed_password, is_active, created_at FROM stage_users
    ON CONFLICT (legacy_id) DO UPDATE SET
        email = EXCLUDED.email, full_name = EXCLUDED.full_name, hashed_password = EXCLUDED.hashed_password,
        is_active = EXCLUDED.is_active, created_at = EXCLUDED.created_at
    WHERE (users.email, users.full_name, users.hashed_password, users.is_active, users.created_at)
        IS DISTINCT FROM (EXCLUDED.email, EXCLUDED.full_name, EXCLUDED.hashed_password, EXCLUDED.is_active,
                          EXCLUDED.created_at)
"""
_TASKS_STAGING = (
    "stage_tasks",
    "legacy_id text, owner_id bigint, title text, description text, status text, priority smallint, "
    "due_date timestamptz, tags jsonb, created_at timestamptz, updated_at timestamptz",
)
_TASKS_UPSERT = """
    INSERT INTO tasks (legacy_id, owner_id, title, description, status, priority, due_date, tags, version,
                       created_at, updated_at)
    SELECT legacy_id, owner_id, title, description, status, priority, due_date, tags, 1, created_at, updated_at
    FROM stage_tasks
    ON CONFLICT (legacy_id) DO UPDATE SET
        owner_id = EXCLUDED.owner_id, title = EXCLUDED.title, description = EXCLUDED.description,
        status = EXCLUDED.status, priority = EXCLUDED.priority, due_date = EXCLUDED.due_date, tags = EXCLUDED.tags,
        created_at = EXCLUDED.created_at, updated_at = EXCLUDED.updated_at, version = tasks.version + 1
    WHERE (tasks.owner_id, tasks.title, tasks.description, tasks.status, tasks.priority, tasks.due_date, tasks.tags,
           tasks.created_at, tasks.updated_at)
        IS DISTINCT FROM (EXCLUDED.owner_id, EXCLUDED.title, EXCLUDED.description, EXCLUDED.status,
                          EXCLUDED.priority, EXCLUDED.due_date, EXCLUDED.tags, EXCLUDED.created_at,
                          EXCLUDED.updated_at)
"""


def document_json(doc: dict[str, Any]) -> str:
    return json_util.dumps(doc, json_options=json_util.RELAXED_JSON_OPTIONS)


class Target:
    def __init__(self, database_url: str) -> None:
        self.conn = psycopg2.connect(libpq_dsn(database_url), application_name="taskplatform-migrate")
        self.conn.autocommit = False

    def close(self) -> None:
        self.conn.close()

    # --- checkpoints ---------------------------------------------------------------------------------

    def load_checkpoint(self, collection: str) -> Checkpoint | None:
        with self.conn.cursor() as cur:
            cur.execute(
                "SELECT position, read_count, written_count, rejected_count, done "
                "FROM migration_checkpoints WHERE collection = %s",
                (collection,),
            )
            row = cur.fetchone()
        self.conn.rollback()
        if row is None:
            return None
        position = row[0] if isinstance(row[0], dict) else json.loads(row[0])
        return Checkpoint(Position.from_json(position), Counts(row[1], row[2], row[3]), row[4])

    def reset(self, collections: Iterable[str]) -> None:
        with self.conn.cursor() as cur:
            for collection in collections:
                cur.execute("DELETE FROM migration_checkpoints WHERE collection = %s", (collection,))
                cur.execute("DELETE FROM migration_rejects WHERE collection = %s", (collection,))
        self.conn.commit()

    def _save_checkpoint(self, cur: Any, collection: str, position: Position, counts: Counts, done: bool) -> None:
        cur.execute(
            """
            INSERT INTO migration_checkpoints
                (collection, position, read_count, written_count, rejected_count, done, updated_at)
            VALUES (%s, %s, %s, %s, %s, %s, %s)
            ON CONFLICT (collection) DO UPDATE SET
                position = EXCLUDED.position, read_count = EXCLUDED.read_count,
                written_count = EXCLUDED.written_count, rejected_count = EXCLUDED.rejected_count,
                done = EXCLUDED.done, updated_at = EXCLUDED.updated_at
            """,
            (collection, json.dumps(position.to_json()), counts.read, counts.written, counts.rejected, done,
             datetime.now(UTC)),
        )  # fmt: skip

    def mark_done(self, collection: str, checkpoint: Checkpoint) -> None:
        with self.conn.cursor() as cur:
            self._save_checkpoint(cur, collection, checkpoint.position, checkpoint.counts, True)
        self.conn.commit()

    def _save_rejects(self, cur: Any, collection: str, rejects: Sequence[Rejected]) -> None:
        if not rejects:
            return
        psycopg2.extras.execute_values(
            cur,
            """
            INSERT INTO migration_rejects (collection, source_id, reason, document, rejected_at)
            VALUES %s
            ON CONFLICT (collection, source_id) DO UPDATE SET
                reason = EXCLUDED.reason, document = EXCLUDED.document, rejected_at = EXCLUDED.rejected_at
            """,
            [(collection, r.source_id[:96], r.reason, document_json(r.document), datetime.now(UTC)) for r in rejects],
        )

    def _forget_rejects(self, cur: Any, collection: str, legacy_ids: list[str]) -> None:
        # A document that failed before and imports now (the source was fixed) is no longer a reject.
        cur.execute(
            "DELETE FROM migration_rejects WHERE collection = %s AND source_id = ANY(%s)", (collection, legacy_ids)
        )

    # --- users ---------------------------------------------------------------------------------------

    def users_taking_emails(self, emails: list[str]) -> dict[str, str | None]:
        """email → legacy id (None for accounts created through the API) among existing users."""
        with self.conn.cursor() as cur:
            cur.execute("SELECT email, legacy_id FROM users WHERE email = ANY(%s)", (emails,))
            return dict(cur.fetchall())

    def _write_batch(
        self,
        collection: str,
        staging: tuple[str, str],
        rows: Iterable[Sequence[Any]],
        upsert: str,
        legacy_ids: list[str],
        rejects: Sequence[Rejected],
        position: Position,
        counts: Counts,
    ) -> None:
        """One transaction: COPY the rows into the staging table, upsert them, record rejects and checkpoint."""
        table, columns = staging
        with self.conn.cursor() as cur:
            if legacy_ids:
                cur.execute(f"CREATE TEMP TABLE IF NOT EXISTS {table} ({columns}) ON COMMIT DELETE ROWS")
                cur.copy_expert(f"COPY {table} FROM STDIN", _copy_text(rows))
                cur.execute(upsert)
                self._forget_rejects(cur, collection, legacy_ids)
            self._save_rejects(cur, collection, rejects)
            self._save_checkpoint(cur, collection, position, counts, False)
        self.conn.commit()

    def write_users(
        self,
        collection: str,
        rows: Sequence[UserRow],
        rejects: Sequence[Rejected],
        position: Position,
        counts: Counts,
    ) -> None:
        self._write_batch(
            collection,
            _USERS_STAGING,
            ((r.legacy_id, r.email, r.full_name, r.hashed_password, r.is_active, r.created_at) for r in rows),
            _USERS_UPSERT,
            [r.legacy_id for r in rows],
            rejects,
            position,
            counts,
        )

    # --- tasks ---------------------------------------------------------------------------------------

    def user_ids(self, legacy_ids: list[str]) -> dict[str, int]:
        with self.conn.cursor() as cur:
            cur.execute("SELECT legacy_id, id FROM users WHERE legacy_id = ANY(%s)", (legacy_ids,))
            return dict(cur.fetchall())

    def write_tasks(
        self,
        collection: str,
        rows: Sequence[tuple[TaskRow, int]],
        rejects: Sequence[Rejected],
        position: Position,
        counts: Counts,
    ) -> None:
        self._write_batch(
            collection,
            _TASKS_STAGING,
            (
                (r.legacy_id, owner_id, r.title, r.description, r.status, TaskPriority(r.priority).rank,
                 r.due_date, json.dumps(r.tags), r.created_at, r.updated_at)
                for r, owner_id in rows
            ),
            _TASKS_UPSERT,
            [r.legacy_id for r, _ in rows],
            rejects,
            position,
            counts,
        )  # fmt: skip

    # --- verification reads ----------------------------------------------------------------------------

    def iter_users(self) -> Iterable[UserRow]:
        with self.conn.cursor(name="verify_users") as cur:
            cur.itersize = 5000
            cur.execute(
                "SELECT legacy_id, email, full_name, hashed_password, is_active, created_at "
                "FROM users WHERE legacy_id IS NOT NULL"
            )
            for row in cur:
                yield UserRow(*row)
        self.conn.rollback()

    def iter_tasks(self) -> Iterable[TaskRow]:
        ranks = {p.rank: p.value for p in TaskPriority}
        with self.conn.cursor(name="verify_tasks") as cur:
            cur.itersize = 5000
            cur.execute(
                "SELECT t.legacy_id, u.legacy_id, t.title, t.description, t.status, t.priority, t.due_date, t.tags, "
                "t.created_at, t.updated_at FROM tasks t JOIN users u ON u.id = t.owner_id "
                "WHERE t.legacy_id IS NOT NULL"
            )
            for row in cur:
                yield TaskRow(row[0], row[1], row[2], row[3], row[4], ranks[row[5]], row[6], row[7], row[8], row[9])
        self.conn.rollback()

    def rejected_ids(self, collection: str) -> set[str]:
        with self.conn.cursor() as cur:
            cur.execute("SELECT source_id FROM migration_rejects WHERE collection = %s", (collection,))
            ids = {row[0] for row in cur.fetchall()}
        self.conn.rollback()
        return ids
