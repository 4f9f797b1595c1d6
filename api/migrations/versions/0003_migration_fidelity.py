"""Migration fidelity: the exact BSON of each reject, a note for every altered document, the import's start,
and the secondary indexes an initial load defers.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    is_pg = op.get_bind().dialect.name == "postgresql"
    json_type = postgresql.JSONB() if is_pg else sa.JSON()
    with op.batch_alter_table("migration_rejects") as rejects:
        rejects.add_column(sa.Column("raw_document", sa.LargeBinary()))
    with op.batch_alter_table("migration_checkpoints") as checkpoints:
        checkpoints.add_column(sa.Column("started_at", TS))
        checkpoints.add_column(sa.Column("deferred_indexes", sa.JSON()))
    op.create_table(
        "migration_alterations",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True),
        sa.Column("collection", sa.String(64), nullable=False),
        sa.Column("source_id", sa.String(96), nullable=False),
        sa.Column("notes", json_type, nullable=False),
        sa.Column("altered_at", TS, nullable=False),
        sa.UniqueConstraint("collection", "source_id", name="uq_migration_alterations_source"),
    )


def downgrade() -> None:
    op.drop_table("migration_alterations")
    with op.batch_alter_table("migration_checkpoints") as checkpoints:
        checkpoints.drop_column("deferred_indexes")
        checkpoints.drop_column("started_at")
    with op.batch_alter_table("migration_rejects") as rejects:
        rejects.drop_column("raw_document")
