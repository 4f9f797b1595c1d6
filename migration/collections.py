"""One description per legacy collection: its transform, its mapping fields, and its columns.

The staging table, the upsert, the verification read-back and the verification digest are all derived
from the column list below, so adding a column is one line here.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import SQLModel

from taskplatform.api.columns import PRIORITY
from taskplatform.api.models import Task, User
from taskplatform.migration.mapping import Mapping
from taskplatform.migration.transform import TaskRow, UserRow, transform_task, transform_user

Row = UserRow | TaskRow


@dataclass(frozen=True, slots=True)
class Column:
    """One row field and how it travels: staged as `staging_type`, inserted through `insert_expr` (over the
    staging alias `s`) into the table's column `target`, and read back as the row value by `load_expr`
    (over the table alias `t`)."""

    field: str
    staging_type: str
    target: str = ""
    encode: Callable[[Any], Any] | None = None
    insert_expr: str = ""
    load_expr: str = ""

    @property
    def column(self) -> str:
        return self.target or self.field

    @property
    def inserted(self) -> str:
        return self.insert_expr or f"s.{self.field}"

    @property
    def loaded(self) -> str:
        return self.load_expr or f"t.{self.column}"


@dataclass(frozen=True, slots=True)
class Kind:
    name: str  # "users" or "tasks": the key in the mapping and on the command line
    table: str
    row_type: type[UserRow] | type[TaskRow]
    transform: Callable[..., Row]
    columns: tuple[Column, ...]
    table_model: type[SQLModel]
    versioned: bool = False  # tasks carry a version that every changing upsert bumps
    # The run's options (`runner.Options` fields) that the transform takes as keywords, e.g. the users' bcrypt bound.
    transform_options: tuple[str, ...] = ()

    def options_of(self, run_options: object) -> dict[str, Any]:
        """The keywords this kind's transform takes, read from a run's options."""
        return {name: getattr(run_options, name) for name in self.transform_options}

    @property
    def secondary_indexes(self) -> list[sa.Index]:
        """The table's non-unique indexes (the models declare them): an initial load into an empty table builds
        them once at the end instead of maintaining them row by row (target.py)."""
        table: sa.Table = self.table_model.__table__  # type: ignore[attr-defined]
        return sorted((i for i in table.indexes if not i.unique), key=lambda i: str(i.name))

    def fields(self, mapping: Mapping) -> Any:
        return getattr(mapping.fields, self.name)

    def collection(self, mapping: Mapping) -> str:
        name: str = getattr(mapping.collections, self.name)
        return name

    # --- SQL derived from the columns --------------------------------------------------------------------

    @property
    def staging_table(self) -> str:
        return f"stage_{self.table}"

    @property
    def staging_ddl(self) -> str:
        columns = ", ".join(f"{c.field} {c.staging_type}" for c in self.columns)
        return f"CREATE TEMP TABLE IF NOT EXISTS {self.staging_table} ({columns}) ON COMMIT DELETE ROWS"

    @property
    def upsert_sql(self) -> str:
        """INSERT … ON CONFLICT (legacy_id) DO UPDATE, touching only rows that differ, so that a re-run leaves
        identical rows (and their versions) alone."""
        targets = [c.column for c in self.columns]
        values = [c.inserted for c in self.columns]
        if self.versioned:
            targets.append("version")
            values.append("1")
        changing = [c for c in targets if c not in ("legacy_id", "version")]
        updates = [f"{c} = EXCLUDED.{c}" for c in changing]
        if self.versioned:
            updates.append(f"version = {self.table}.version + 1")
        return (
            f"INSERT INTO {self.table} ({', '.join(targets)}) "  # noqa: S608 (identifiers from the constants below)
            f"SELECT {', '.join(values)} FROM {self.staging_table} s "
            f"ON CONFLICT (legacy_id) DO UPDATE SET {', '.join(updates)} "
            f"WHERE ({', '.join(f'{self.table}.{c}' for c in changing)}) "
            f"IS DISTINCT FROM ({', '.join(f'EXCLUDED.{c}' for c in changing)})"
        )

    @property
    def load_sql(self) -> str:
        """Every migrated row, read back as the transform's row (for --verify)."""
        columns = ", ".join(c.loaded for c in self.columns)
        return f"SELECT {columns} FROM {self.table} t WHERE t.legacy_id IS NOT NULL"  # noqa: S608 (constants)

    def staged(self, row: Row) -> tuple[Any, ...]:
        """The row's values as COPY takes them, in column order."""
        values = []
        for column in self.columns:
            value = getattr(row, column.field)
            values.append(column.encode(value) if column.encode is not None and value is not None else value)
        return tuple(values)

    def canonical(self, row: Row) -> list[Any]:
        """The row's column values as JSON-able data: what the verification digest is taken over."""
        return [_canonical(getattr(row, c.field)) for c in self.columns]


def _canonical(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


USERS = Kind(
    name="users",
    table="users",
    row_type=UserRow,
    transform=transform_user,
    table_model=User,
    transform_options=("bcrypt_max_rounds",),
    columns=(
        Column("legacy_id", "text"),
        Column("email", "text"),
        Column("full_name", "text"),
        Column("hashed_password", "text"),
        Column("is_active", "boolean"),
        Column("created_at", "timestamptz"),
    ),
)

TASKS = Kind(
    name="tasks",
    table="tasks",
    row_type=TaskRow,
    transform=transform_task,
    table_model=Task,
    columns=(
        Column("legacy_id", "text"),
        Column(
            "owner_legacy_id",
            "text",
            target="owner_id",
            insert_expr="(SELECT u.id FROM users u WHERE u.legacy_id = s.owner_legacy_id)",
            load_expr="(SELECT u.legacy_id FROM users u WHERE u.id = t.owner_id)",
        ),
        Column("title", "text"),
        Column("description", "text"),
        Column("status", "text"),
        Column("priority", "smallint", encode=PRIORITY.encode, load_expr=PRIORITY.decode_sql("t.priority")),
        Column("due_date", "timestamptz"),
        Column("tags", "jsonb", encode=json.dumps),
        Column("created_at", "timestamptz"),
        Column("updated_at", "timestamptz"),
    ),
    versioned=True,
)

# Users first: tasks resolve their owners among migrated users.
KINDS: dict[str, Kind] = {kind.name: kind for kind in (USERS, TASKS)}
