"""Statement helpers shared by the services: dialect-aware inserts and the hot-path read executor."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql.asyncpg import PGDialect_asyncpg
from sqlmodel import SQLModel
from sqlmodel.ext.asyncio.session import AsyncSession

AnySelect = sa.Select[*tuple[Any, ...]]

_ASYNCPG_DIALECT = PGDialect_asyncpg()  # type: ignore[no-untyped-call]


async def insert_ignoring_conflicts(session: AsyncSession, model: type[SQLModel], values: dict[str, Any]) -> None:
    """INSERT ... ON CONFLICT DO NOTHING, for writes that two replicas may race on harmlessly."""
    dialect = session.get_bind().dialect.name
    table = model.__table__  # type: ignore[attr-defined]
    stmt = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table).values(**values)
    await session.exec(stmt.on_conflict_do_nothing())


@lru_cache(maxsize=512)
def _compile_for_asyncpg(statement: AnySelect) -> tuple[str, tuple[str, ...]]:
    compiled = statement.compile(dialect=_ASYNCPG_DIALECT)
    return compiled.string, tuple(compiled.positiontup or ())


async def fetch_mappings(
    session: AsyncSession, statement: AnySelect, params: Mapping[str, Any]
) -> Sequence[Mapping[str, Any]]:
    """Run a read-only SELECT whose parameters are all named bindparams; rows as mappings.

    On PostgreSQL the statement goes straight to the asyncpg connection behind the session (same pool,
    same health checks, bound parameters), compiled once per statement object: SQLAlchemy's per-execution
    work (cache key, greenlet hop, result processing) measured at ~2/3 of the API's CPU per query
    (docs/benchmarks.md). So callers pass values already in column form (priority ranks, aware datetimes)
    and get raw column values back; no TypeDecorator runs on this path. Elsewhere (SQLite for a quick local
    run) SQLAlchemy executes the same statement.

    Outside a transaction on PostgreSQL: fine for the single-statement reads that use it.
    """
    connection = await session.connection()
    if connection.dialect.driver != "asyncpg":
        result = await connection.execute(statement, dict(params))
        return [dict(row) for row in result.mappings()]
    sql, order = _compile_for_asyncpg(statement)
    raw = await connection.get_raw_connection()
    driver: Any = raw.driver_connection
    records: Sequence[Mapping[str, Any]] = await driver.fetch(sql, *(params[name] for name in order))
    return records
