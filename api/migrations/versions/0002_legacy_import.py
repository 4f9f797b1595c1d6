"""Legacy MongoDB import: legacy ids on users and tasks, checkpoints and rejects of the migration service.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    is_pg = op.get_bind().dialect.name == "postgresql"
    json_type = postgresql.JSONB() if is_pg else sa.JSON()
    with op.batch_alter_table("users") as users:
        users.add_column(sa.Column("legacy_id", sa.String(96)))
        users.create_unique_constraint("uq_users_legacy_id", ["legacy_id"])
    with op.batch_alter_table("tasks") as tasks:
        tasks.add_column(sa.Column("legacy_id", sa.String(96)))
        tasks.create_unique_constraint("uq_tasks_legacy_id", ["legacy_id"])
    op.create_table(
        "migration_checkpoints",
        sa.Column("collection", sa.String(64), primary_key=True),
        sa.Column("position", sa.JSON(), nullable=False),
        sa.Column("read_count", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("written_count", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("rejected_count", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("done", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("updated_at", TS, nullable=False),
    )
    op.create_table(
        "migration_rejects",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True),
        sa.Column("collection", sa.String(64), nullable=False),
        sa.Column("source_id", sa.String(96), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("document", json_type, nullable=False),
        sa.Column("rejected_at", TS, nullable=False),
        sa.UniqueConstraint("collection", "source_id", name="uq_migration_rejects_source"),
    )


def downgrade() -> None:
    op.drop_table("migration_rejects")
    op.drop_table("migration_checkpoints")
    with op.batch_alter_table("tasks") as tasks:
        tasks.drop_constraint("uq_tasks_legacy_id", type_="unique")
        tasks.drop_column("legacy_id")
    with op.batch_alter_table("users") as users:
        users.drop_constraint("uq_users_legacy_id", type_="unique")
        users.drop_column("legacy_id")
