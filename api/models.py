"""Database tables (SQLModel). Request/response shapes live apart, in schemas.py."""

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, Relationship, SQLModel

from taskplatform.api.columns import PRIORITY, JsonbType, PriorityType, TaskPriority, TaskStatus, UTCDateTime
from taskplatform.api.limits import EMAIL_MAX, FULL_NAME_MAX, LEGACY_ID_MAX, TITLE_MAX


def utcnow() -> datetime:
    return datetime.now(UTC)


class User(SQLModel, table=True):
    __tablename__ = "users"

    id: int | None = Field(default=None, primary_key=True, sa_type=sa.BigInteger)
    email: str = Field(max_length=EMAIL_MAX, sa_column_kwargs={"unique": True, "nullable": False})
    hashed_password: str = Field(max_length=255)
    full_name: str | None = Field(default=None, max_length=FULL_NAME_MAX)
    is_active: bool = Field(default=True)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    # The `_id` of the MongoDB document this user was migrated from (see migration/); NULL for API sign-ups.
    legacy_id: str | None = Field(default=None, max_length=LEGACY_ID_MAX, sa_column_kwargs={"unique": True})

    tasks: list["Task"] = Relationship(
        back_populates="owner", sa_relationship_kwargs={"passive_deletes": True, "lazy": "raise"}
    )


class Task(SQLModel, table=True):
    __tablename__ = "tasks"
    __table_args__ = (
        sa.Index("ix_tasks_owner_created", "owner_id", "created_at", "id"),
        sa.Index("ix_tasks_owner_updated", "owner_id", "updated_at", "id"),
        sa.Index("ix_tasks_owner_due", "owner_id", "due_date", "id"),
        sa.Index("ix_tasks_owner_priority", "owner_id", "priority", "id"),
        sa.Index("ix_tasks_owner_title", "owner_id", "title", "id"),
        sa.Index("ix_tasks_owner_status", "owner_id", "status"),
        # PostgreSQL only (migration 0001): tag containment (tags @> '["x"]') and substring title search.
        sa.Index("ix_tasks_tags", "tags", postgresql_using="gin", postgresql_ops={"tags": "jsonb_path_ops"}).ddl_if(
            dialect="postgresql"
        ),
        sa.Index(
            "ix_tasks_title_trgm", "title", postgresql_using="gin", postgresql_ops={"title": "gin_trgm_ops"}
        ).ddl_if(dialect="postgresql"),
        sa.CheckConstraint("status IN ('todo', 'in_progress', 'done')", name="ck_tasks_status"),
        sa.CheckConstraint(PRIORITY.check_sql("priority"), name="ck_tasks_priority"),
    )

    id: int | None = Field(default=None, primary_key=True, sa_type=sa.BigInteger)
    owner_id: int = Field(
        sa_column=sa.Column(sa.BigInteger, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False)
    )
    title: str = Field(max_length=TITLE_MAX)
    description: str | None = Field(default=None, sa_type=sa.Text)
    status: TaskStatus = Field(default=TaskStatus.todo, sa_type=sa.String(16))
    priority: TaskPriority = Field(default=TaskPriority.medium, sa_type=PriorityType)
    due_date: datetime | None = Field(default=None, sa_type=UTCDateTime)
    tags: list[str] = Field(default_factory=list, sa_column=sa.Column(JsonbType, nullable=False))
    # Bumped on every write; the ETag is derived from it and If-Match compares against it.
    version: int = Field(default=1)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    legacy_id: str | None = Field(default=None, max_length=LEGACY_ID_MAX, sa_column_kwargs={"unique": True})

    owner: User | None = Relationship(back_populates="tasks", sa_relationship_kwargs={"lazy": "raise"})


# Keyset pagination reads one (owner_id, sort column, id) index per sort key, forwards or backwards. A
# descending due_date sort keeps NULLs last, which the ascending index read backwards cannot give (NULLs
# would come first): it has an index in that order of its own (PostgreSQL; SQLite has no NULLS LAST in
# an index and sorts).
_tasks = Task.__table__.c  # type: ignore[attr-defined]
sa.Index("ix_tasks_owner_due_desc", _tasks.owner_id, _tasks.due_date.desc().nulls_last(), _tasks.id.desc()).ddl_if(
    dialect="postgresql"
)


class TokenFamily(SQLModel, table=True):
    """One login session: every refresh token rotated from one login shares a family.

    Revoking the family (logout, or reuse of a rotated refresh token) invalidates the access and
    refresh tokens of that session on every replica, since all replicas read this table.
    """

    __tablename__ = "token_families"

    id: str = Field(primary_key=True, max_length=32)
    user_id: int = Field(
        sa_column=sa.Column(sa.BigInteger, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True)
    )
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    expires_at: datetime = Field(sa_type=UTCDateTime, index=True)
    revoked_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    revoked_reason: str | None = Field(default=None, max_length=32)


class RefreshToken(SQLModel, table=True):
    __tablename__ = "refresh_tokens"

    jti: str = Field(primary_key=True, max_length=32)
    family_id: str = Field(
        sa_column=sa.Column(
            sa.String(32), sa.ForeignKey("token_families.id", ondelete="CASCADE"), nullable=False, index=True
        )
    )
    expires_at: datetime = Field(sa_type=UTCDateTime, index=True)
    used_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class RevokedToken(SQLModel, table=True):
    """The access-token deny-list, keyed by jti; rows are pruned once the token would have expired anyway."""

    __tablename__ = "revoked_tokens"

    jti: str = Field(primary_key=True, max_length=32)
    expires_at: datetime = Field(sa_type=UTCDateTime, index=True)
    revoked_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class LoginFailure(SQLModel, table=True):
    """One failed login, counted against the account and the client address (api/services/throttle.py).

    `scope` is a digest of "account:<email>" or "client:<address>": the table names no one, and an email
    that has no account is throttled exactly like one that has. Rows older than the window are pruned.
    """

    __tablename__ = "login_failures"
    __table_args__ = (sa.Index("ix_login_failures_scope_failed_at", "scope", "failed_at"),)

    id: int | None = Field(default=None, primary_key=True, sa_type=sa.BigInteger)
    scope: str = Field(max_length=64)
    failed_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, index=True)


class IdempotencyRecord(SQLModel, table=True):
    """The first response to a POST carrying an Idempotency-Key, replayed for repeats of that key."""

    __tablename__ = "idempotency_records"

    user_id: int = Field(
        sa_column=sa.Column(
            sa.BigInteger, sa.ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, nullable=False
        )
    )
    key: str = Field(primary_key=True, max_length=255)
    request_hash: str = Field(max_length=64)
    status_code: int
    response_body: dict[str, Any] = Field(sa_column=sa.Column(sa.JSON, nullable=False))
    expires_at: datetime = Field(sa_type=UTCDateTime, index=True)


class MigrationCheckpoint(SQLModel, table=True):
    """Where the MongoDB migration of one collection stands, written in the same transaction as each batch.

    `position` holds the read order and the last `_id` done (extended JSON): in natural order with how many
    documents of the scan were consumed up to it, in `_id` order with the BSON type bucket being read, since a
    `$gt` on `_id` alone would skip the documents whose `_id` has another BSON type
    (`taskplatform.migration.source.Position`).
    """

    __tablename__ = "migration_checkpoints"

    collection: str = Field(primary_key=True, max_length=64)
    position: dict[str, Any] = Field(sa_column=sa.Column(sa.JSON, nullable=False))
    read_count: int = Field(default=0, sa_type=sa.BigInteger)
    written_count: int = Field(default=0, sa_type=sa.BigInteger)
    rejected_count: int = Field(default=0, sa_type=sa.BigInteger)
    done: bool = Field(default=False)
    # When the import of this collection began: the creation time of documents that have none.
    started_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    # Secondary indexes dropped for an initial load into an empty table, to be built once at its end.
    deferred_indexes: list[str] | None = Field(default=None, sa_column=sa.Column(sa.JSON))
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class MigrationReject(SQLModel, table=True):
    """A legacy document the migration could not import, kept whole with the reason."""

    __tablename__ = "migration_rejects"
    __table_args__ = (sa.UniqueConstraint("collection", "source_id", name="uq_migration_rejects_source"),)

    id: int | None = Field(default=None, primary_key=True, sa_type=sa.BigInteger)
    collection: str = Field(max_length=64)
    source_id: str = Field(max_length=LEGACY_ID_MAX)
    reason: str = Field(sa_type=sa.Text)
    # Relaxed extended JSON to read and query (a NUL character shows as U+FFFD, which JSONB can hold) ...
    document: dict[str, Any] = Field(sa_column=sa.Column(JsonbType, nullable=False))
    # ... and the document's exact BSON, to recover it as it was: bson.decode(raw_document).
    raw_document: bytes | None = Field(default=None, sa_type=sa.LargeBinary)
    rejected_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class MigrationAlteration(SQLModel, table=True):
    """A legacy document imported with changes (a default for an unreadable field, text cut to a column,
    a value kept over an API input limit), with a note per change. The source still holds the original."""

    __tablename__ = "migration_alterations"
    __table_args__ = (sa.UniqueConstraint("collection", "source_id", name="uq_migration_alterations_source"),)

    id: int | None = Field(default=None, primary_key=True, sa_type=sa.BigInteger)
    collection: str = Field(max_length=64)
    source_id: str = Field(max_length=LEGACY_ID_MAX)
    notes: list[str] = Field(sa_column=sa.Column(JsonbType, nullable=False))
    altered_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
