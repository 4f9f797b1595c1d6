"""Statement helpers shared by the services: dialect-aware inserts and the hot-path read executor."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from functools import lru_cache
from typing import Any, TypeVar

import asyncpg
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql.asyncpg import PGDialect_asyncpg
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.util import await_only, greenlet_spawn
from sqlmodel import SQLModel
from sqlmodel.ext.asyncio.session import AsyncSession

AnySelect = sa.Select[*tuple[Any, ...]]
T = TypeVar("T")

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


class DirectConnection:
    """A pooled connection for the hot routes' single statements (the list, one task, a plain create), without
    an ORM session.

    On PostgreSQL it is the asyncpg connection itself, checked out of the engine's pool (same pool, same
    idle health check, same server settings): an AsyncSession around it costs ~140 µs of CPU per request
    for nothing a single SELECT needs (docs/benchmarks.md). Elsewhere (SQLite for a quick local run) it
    wraps a SQLAlchemy connection.
    """

    def __init__(self, dialect: str, driver: Any = None, connection: AsyncConnection | None = None) -> None:
        self.dialect = dialect
        self._driver = driver
        self._connection = connection

    async def fetch(self, statement: AnySelect, params: Mapping[str, Any]) -> Sequence[Mapping[str, Any]]:
        if self._driver is None:
            assert self._connection is not None
            result = await self._connection.execute(statement, dict(params))
            return [dict(row) for row in result.mappings()]
        return await _driver_fetch(self._driver, statement, params)


async def run_on_direct_connection(engine: AsyncEngine, work: Callable[[DirectConnection], Awaitable[T]]) -> T:
    """`work` on a pooled connection, checked out for it and returned after it.

    On PostgreSQL the checkout, the work and the return share one greenlet. The pool is synchronous code
    that may do I/O (a new connection, a recycle, the idle health check, closing an overflow connection on
    return), so it runs in a greenlet; each one costs ~45 µs of CPU at a request's depth, and a checkout
    and a return in greenlets of their own cost the task list ~90 µs of its ~490 (docs/benchmarks.md).
    """
    if engine.dialect.driver != "asyncpg":
        async with engine.connect() as connection:
            return await work(DirectConnection(engine.dialect.name, connection=connection))
    pool = engine.sync_engine.pool

    def checked_out() -> T:
        fairy: Any = pool.connect()
        try:
            return await_only(work(DirectConnection(engine.dialect.name, driver=fairy.driver_connection)))
        except BaseException as exc:
            if _connection_lost(exc):
                # Not back into the pool: the next request would meet the same dead socket.
                fairy.invalidate(exc)
            raise
        finally:
            fairy.close()

    return await greenlet_spawn(checked_out)


# What asyncpg raises, unwrapped, when the server side of a connection is gone (a restart, a failover, an
# administrator's pg_terminate_backend) or it cannot be opened: such a connection is never pooled again.
CONNECTION_LOST_ERRORS: tuple[type[Exception], ...] = (
    ConnectionError,
    TimeoutError,  # the connection's state is unknown after one
    asyncpg.exceptions.PostgresConnectionError,  # ConnectionDoesNotExistError among them
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CrashShutdownError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.TooManyConnectionsError,
    asyncpg.exceptions.InterfaceError,
    # A connection whose server ended it while it sat in the pool can fail its next use this way ("cannot
    # switch to state …; another operation is in progress") before it reports the loss itself.
    asyncpg.exceptions.InternalClientError,
)


def _connection_lost(exc: BaseException) -> bool:
    return isinstance(exc, CONNECTION_LOST_ERRORS)


async def _driver_fetch(driver: Any, statement: AnySelect, params: Mapping[str, Any]) -> Sequence[Mapping[str, Any]]:
    sql, order = _compile_for_asyncpg(statement)
    records: Sequence[Mapping[str, Any]] = await driver.fetch(sql, *(params[name] for name in order))
    return records


async def fetch_mappings(
    source: AsyncSession | DirectConnection, statement: AnySelect, params: Mapping[str, Any]
) -> Sequence[Mapping[str, Any]]:
    """Run one statement whose parameters are all named bindparams (a SELECT, or a write inside one that
    returns rows); rows as mappings.

    On PostgreSQL the statement goes straight to the asyncpg connection (same pool, same health checks,
    bound parameters), compiled once per statement object: SQLAlchemy's per-execution work (cache key,
    greenlet hop, result processing) measured at ~2/3 of the API's CPU per query (docs/benchmarks.md). So
    callers pass values already in column form (priority ranks, aware datetimes) and get raw column values
    back; no TypeDecorator runs on this path. Elsewhere (SQLite for a quick local run) SQLAlchemy executes
    the same statement.

    On a DirectConnection it runs outside any transaction on PostgreSQL: one statement is atomic and commits
    on its own, which is what its callers want.
    """
    if isinstance(source, DirectConnection):
        return await source.fetch(statement, params)
    connection = await source.connection()
    if connection.dialect.driver != "asyncpg":
        result = await connection.execute(statement, dict(params))
        return [dict(row) for row in result.mappings()]
    raw = await connection.get_raw_connection()
    try:
        return await _driver_fetch(raw.driver_connection, statement, params)
    except CONNECTION_LOST_ERRORS as exc:
        await connection.invalidate(exc)  # SQLAlchemy did not see it: keep the dead connection out of the pool
        raise
