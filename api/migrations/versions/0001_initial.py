"""Initial schema: users, tasks, token families, refresh tokens, deny-list, idempotency records.

Revision ID: 0001
Revises:
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    is_pg = op.get_bind().dialect.name == "postgresql"
    tags_type = postgresql.JSONB() if is_pg else sa.JSON()

    op.create_table(
        "users",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True),
        sa.Column("email", sa.String(320), nullable=False),
        sa.Column("hashed_password", sa.String(255), nullable=False),
        sa.Column("full_name", sa.String(200)),
        sa.Column("is_active", sa.Boolean(), nullable=False, server_default=sa.true()),
        sa.Column("created_at", TS, nullable=False),
        sa.UniqueConstraint("email", name="uq_users_email"),
    )
    op.create_table(
        "tasks",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True),
        sa.Column("owner_id", sa.BigInteger(), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("description", sa.Text()),
        sa.Column("status", sa.String(16), nullable=False, server_default="todo"),
        sa.Column("priority", sa.SmallInteger(), nullable=False, server_default="2"),
        sa.Column("due_date", TS),
        sa.Column("tags", tags_type, nullable=False, server_default=sa.text("'[]'")),
        sa.Column("version", sa.Integer(), nullable=False, server_default="1"),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.CheckConstraint("status IN ('todo', 'in_progress', 'done')", name="ck_tasks_status"),
        sa.CheckConstraint("priority BETWEEN 1 AND 4", name="ck_tasks_priority"),
    )
    # Keyset pagination: one (owner, sort column, id) index per sort key.
    op.create_index("ix_tasks_owner_created", "tasks", ["owner_id", "created_at", "id"])
    op.create_index("ix_tasks_owner_updated", "tasks", ["owner_id", "updated_at", "id"])
    op.create_index("ix_tasks_owner_due", "tasks", ["owner_id", "due_date", "id"])
    op.create_index("ix_tasks_owner_priority", "tasks", ["owner_id", "priority", "id"])
    op.create_index("ix_tasks_owner_status", "tasks", ["owner_id", "status"])
    if is_pg:
        # Tag containment (tags @> '["x"]') and substring title search (ILIKE '%x%').
        op.create_index(
            "ix_tasks_tags",
            "tasks",
            ["tags"],
            postgresql_using="gin",
            postgresql_ops={"tags": "jsonb_path_ops"},
        )
        op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        op.create_index(
            "ix_tasks_title_trgm",
            "tasks",
            ["title"],
            postgresql_using="gin",
            postgresql_ops={"title": "gin_trgm_ops"},
        )

    op.create_table(
        "token_families",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("user_id", sa.BigInteger(), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("expires_at", TS, nullable=False),
        sa.Column("revoked_at", TS),
        sa.Column("revoked_reason", sa.String(32)),
    )
    op.create_index("ix_token_families_expires_at", "token_families", ["expires_at"])
    op.create_index("ix_token_families_user_id", "token_families", ["user_id"])

    op.create_table(
        "refresh_tokens",
        sa.Column("jti", sa.String(32), primary_key=True),
        sa.Column("family_id", sa.String(32), sa.ForeignKey("token_families.id", ondelete="CASCADE"), nullable=False),
        sa.Column("expires_at", TS, nullable=False),
        sa.Column("used_at", TS),
    )
    op.create_index("ix_refresh_tokens_family_id", "refresh_tokens", ["family_id"])
    op.create_index("ix_refresh_tokens_expires_at", "refresh_tokens", ["expires_at"])

    op.create_table(
        "revoked_tokens",
        sa.Column("jti", sa.String(32), primary_key=True),
        sa.Column("expires_at", TS, nullable=False),
        sa.Column("revoked_at", TS, nullable=False),
    )
    op.create_index("ix_revoked_tokens_expires_at", "revoked_tokens", ["expires_at"])

    op.create_table(
        "idempotency_records",
        sa.Column("user_id", sa.BigInteger(), sa.ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("key", sa.String(255), primary_key=True),
        sa.Column("request_hash", sa.String(64), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=False),
        sa.Column("response_body", sa.JSON(), nullable=False),
        sa.Column("expires_at", TS, nullable=False),
    )
    op.create_index("ix_idempotency_records_expires_at", "idempotency_records", ["expires_at"])


def downgrade() -> None:
    for table in (
        "idempotency_records",
        "revoked_tokens",
        "refresh_tokens",
        "token_families",
        "tasks",
        "users",
    ):
        op.drop_table(table)
