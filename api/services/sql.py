"""Statement helpers shared by the services: dialect-aware inserts and the hot-path read executor."""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, TypeVar

import asyncpg
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql.asyncpg import PGDialect_asyncpg
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.util import greenlet_spawn
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


# The pool's record of a connection (its `info`) keeps, under this key, when a use last finished with it
# (time.monotonic()): the idle health check on checkout (db.install_idle_ping) reads it.
LAST_USED = "last_used_at"


@dataclass(slots=True)
class _Held:
    fairy: Any  # SQLAlchemy's PoolProxiedConnection, checked out of the engine's pool
    driver: Any  # its asyncpg connection
    borrowed_at: float
    returned_at: float = 0.0

    def return_to_pool(self) -> None:
        """Back into the pool (in a greenlet: the pool may do I/O), with the time it was last used: the pool
        sets the time of its own checkin, and a connection that idled here must still be health-checked there."""
        info = self.fairy.info  # the record's, as the pool events see it
        self.fairy.close()
        info[LAST_USED] = self.returned_at


class HeldConnections:
    """Connections of the engine's pool that the one-statement routes keep checked out between uses.

    Taking a connection out of SQLAlchemy's pool and putting it back runs the pool's synchronous code in a
    greenlet, because it may do I/O (a new connection, a recycle, the idle health check, closing an overflow
    connection): ~90 µs of the task list's ~490 µs of CPU (docs/benchmarks.md). Here a connection the hot
    routes used goes onto a stack instead, and the next use takes it from there without a greenlet. It is
    still the engine's one pool: the pool counts every held connection as checked out, so the process never
    opens more than `db_pool_size + db_max_overflow`, and the pool's own rules still run whenever a
    connection passes through it:

    - one that idled on the stack for `idle_s` or longer, or was held for `recycle_s`, goes back to the pool
      and the use borrows again (the pool's idle health check and recycle apply to that checkout); the
      coldest one on the stack goes back the same way, so that after a burst the pool closes its overflow;
    - one whose server side is lost is invalidated, never stacked; one whose use was cancelled mid-statement
      goes back to the pool, which resets it (an ordinary error, a 404 or a constraint, leaves it usable);
    - a session (`release_all`, before it takes a connection of its own) returns every stacked one, so that
      the gate's slot count is also the number of connections the pool can hand out; and while a use waits
      for the pool's checkout, connections go back to the pool.

    Everything here runs on the event loop's thread: the stack needs no lock.
    """

    def __init__(self, engine: AsyncEngine, idle_s: float, recycle_s: float) -> None:
        self._engine = engine.sync_engine  # its pool is looked up on use: dispose() replaces it
        self._dialect = engine.dialect.name
        self._idle_s = idle_s
        self._recycle_s = recycle_s if recycle_s >= 0 else math.inf
        self._stack: list[_Held] = []  # the most recently used last
        self._borrowing = 0  # uses waiting for the pool's checkout right now

    @property
    def idle(self) -> int:
        return len(self._stack)

    def _fresh(self, held: _Held, now: float) -> bool:
        return now - held.returned_at < self._idle_s and now - held.borrowed_at < self._recycle_s

    async def run(self, work: Callable[[DirectConnection], Awaitable[T]]) -> T:
        now = time.monotonic()
        going_back: list[_Held] = []
        if self._stack and not self._fresh(self._stack[0], now):
            going_back.append(self._stack.pop(0))  # the coldest
        held = self._stack.pop() if self._stack else None
        if held is not None and not self._fresh(held, now):
            going_back.append(held)
            held = None
        if held is None:
            self._borrowing += 1
            try:
                held = await greenlet_spawn(self._borrow, going_back)
            finally:
                self._borrowing -= 1
        elif going_back:
            await greenlet_spawn(_return_all, going_back)
        try:
            result = await work(DirectConnection(self._dialect, driver=held.driver))
        except Exception as exc:
            if _connection_lost(exc):
                await greenlet_spawn(self._give_back, held, exc)
            else:
                await self._put_back(held)  # the statement or the route failed (a 404, a constraint): not the link
            raise
        except BaseException:
            await greenlet_spawn(self._give_back, held, None)  # cancelled mid-statement: the pool resets it
            raise
        await self._put_back(held)
        return result

    async def _put_back(self, held: _Held) -> None:
        if self._borrowing:
            # Someone waits in the pool itself (a use found it exhausted): the pool, not the stack, must get
            # this connection.
            await greenlet_spawn(held.fairy.close)
        else:
            held.returned_at = time.monotonic()
            self._stack.append(held)

    def _borrow(self, going_back: list[_Held]) -> _Held:
        # In a greenlet: the pool may do I/O.
        _return_all(going_back)
        fairy: Any = self._engine.pool.connect()
        return _Held(fairy, fairy.driver_connection, borrowed_at=time.monotonic())

    @staticmethod
    def _give_back(held: _Held, lost: BaseException | None) -> None:
        if lost is not None:
            # Not back into the pool: the next request would meet the same dead socket.
            held.fairy.invalidate(lost)
        held.fairy.close()

    async def release_all(self) -> None:
        if self._stack:
            stacked, self._stack = self._stack, []
            await greenlet_spawn(_return_all, stacked)


def _return_all(stacked: list[_Held]) -> None:
    for held in stacked:
        held.return_to_pool()


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
