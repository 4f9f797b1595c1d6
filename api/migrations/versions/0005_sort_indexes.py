"""Indexes for the two sorts that had none: by title, and by due date descending with NULLs last.

Without them PostgreSQL read and sorted all of an owner's tasks for every page of those sorts.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_tasks_owner_title", "tasks", ["owner_id", "title", "id"])
    if op.get_bind().dialect.name == "postgresql":
        # SQLite has no NULLS LAST in an index; it sorts that page.
        op.create_index(
            "ix_tasks_owner_due_desc",
            "tasks",
            [sa.text("owner_id"), sa.text("due_date DESC NULLS LAST"), sa.text("id DESC")],
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.drop_index("ix_tasks_owner_due_desc", table_name="tasks")
    op.drop_index("ix_tasks_owner_title", table_name="tasks")
