"""The value types of the task columns and their codecs, each defined once.

The ORM and the hot routes' raw statements (db.statements) run the same SQLAlchemy column types: the raw path
applies each type's bind and result processors as SQLAlchemy would, so a codec written here holds on both.
The migration (a bulk COPY) and the benchmark's floor read the priority's rank from here too.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY, JSONB


class TaskStatus(enum.StrEnum):
    todo = "todo"
    in_progress = "in_progress"
    done = "done"


class TaskPriority(enum.StrEnum):
    low = "low"
    medium = "medium"
    high = "high"
    urgent = "urgent"


Member = TypeVar("Member", bound=enum.Enum)


class RankCodec(Generic[Member]):
    """An enum stored as its 1-based rank in declaration order: a SMALLINT, so that sorting by it is an index
    scan in the enum's order, not a CASE."""

    def __init__(self, members: type[Member]) -> None:
        self.members = members
        self._rank = {member: rank for rank, member in enumerate(members, start=1)}
        self._member = {rank: member for member, rank in self._rank.items()}
        self.highest = len(self._rank)
        # decode as one C call per value, NULL to None: what the raw path runs on every row.
        or_none: dict[int | None, Member | None] = {None: None}
        for rank, member in self._member.items():
            or_none[rank] = member
        self.decode_or_none: Callable[[int | None], Member | None] = or_none.__getitem__

    def encode(self, value: Member | str) -> int:
        return self._rank[self.members(value)]

    def decode(self, rank: int) -> Member:
        return self._member[rank]

    def check_sql(self, column: str) -> str:
        """A CHECK constraint's condition: the column holds a rank."""
        return f"{column} BETWEEN 1 AND {self.highest}"

    def decode_sql(self, expression: str) -> str:
        """PostgreSQL SQL for the member's value of a rank (its arrays are 1-based too)."""
        values = ", ".join(f"'{member.value}'" for member in self.members)
        return f"(ARRAY[{values}])[{expression}]"


PRIORITY = RankCodec(TaskPriority)


class PriorityType(sa.types.TypeDecorator[TaskPriority]):
    """A task's priority, stored as its rank (PRIORITY)."""

    impl = sa.SmallInteger
    cache_ok = True

    def process_bind_param(self, value: TaskPriority | str | None, dialect: sa.Dialect) -> int | None:
        return None if value is None else PRIORITY.encode(value)

    def process_result_value(self, value: int | None, dialect: sa.Dialect) -> TaskPriority | None:
        return PRIORITY.decode_or_none(value)

    def result_processor(self, dialect: sa.Dialect, coltype: Any) -> Any:
        # process_result_value without TypeDecorator's wrapper: a page of tasks decodes twenty of them.
        return PRIORITY.decode_or_none


class UTCDateTime(sa.types.TypeDecorator[datetime]):
    """TIMESTAMPTZ on PostgreSQL; on SQLite (naive storage) values come back tagged as UTC. A naive value is
    refused on its way in, on every dialect."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        if value is not None and dialect.name == "sqlite":
            return value.astimezone(UTC).replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value

    def result_processor(self, dialect: sa.Dialect, coltype: Any) -> Any:
        # PostgreSQL's timestamptz values arrive aware from every driver: no call per value (a page of tasks has
        # sixty of them).
        return None if dialect.name == "postgresql" else super().result_processor(dialect, coltype)


# JSONB on PostgreSQL (GIN-indexable containment, e.g. tag filters); plain JSON elsewhere (SQLite).
JsonbType = sa.JSON().with_variant(JSONB(), "postgresql")


class ValueList(sa.types.TypeDecorator[list[Any]]):
    """A list of one column type's values as a single parameter (an `any of` filter): an ARRAY on PostgreSQL, a
    JSON array on SQLite (read there with json_each). Each value goes through the column type's own codec."""

    impl = sa.JSON
    cache_ok = True

    def __init__(self, item_type: sa.types.TypeEngine[Any]) -> None:
        super().__init__()
        self.item_type = item_type

    def load_dialect_impl(self, dialect: sa.Dialect) -> sa.types.TypeEngine[Any]:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(ARRAY(self.item_type))
        return dialect.type_descriptor(sa.JSON())

    def process_bind_param(self, value: list[Any] | None, dialect: sa.Dialect) -> list[Any] | None:
        if value is None or dialect.name == "postgresql":
            return value  # the ARRAY applies the item type's codec to each value
        encode = self.item_type.dialect_impl(dialect).bind_processor(dialect)
        return [encode(item) for item in value] if encode is not None else list(value)
