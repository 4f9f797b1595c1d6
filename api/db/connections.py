"""The connections the hot routes use a statement at a time, and those they keep checked out between uses."""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.util import greenlet_spawn

from taskplatform.api.db.engine import CONNECTION_LOST_ERRORS, DB_UNAVAILABLE_ERRORS, LAST_USED, ConnectFailed
from taskplatform.api.db.statements import Row, Statement

T = TypeVar("T")


class Connection:
    """A pooled connection for one use of Database.run, a statement at a time, without an ORM session.

    On the fast path (PostgreSQL) it is the asyncpg connection itself, checked out of the engine's pool and kept
    by HeldConnections (same pool, same idle health check, same server settings): an AsyncSession around it
    costs ~140 µs of CPU per request for nothing a single statement needs (docs/benchmarks.md). Otherwise
    (SQLite, the reference path) it wraps a SQLAlchemy connection.
    """

    __slots__ = ("_connection", "_driver")

    def __init__(self, *, driver: Any = None, connection: AsyncConnection | None = None) -> None:
        self._driver = driver
        self._connection = connection

    async def fetch(self, statement: Statement, params: Mapping[str, Any]) -> list[Row]:
        if self._driver is not None:
            return await statement.fetch_driver(self._driver, params)
        assert self._connection is not None
        return await statement.fetch_sqlalchemy(self._connection, params)


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
        self._idle_s = idle_s
        self._recycle_s = recycle_s if recycle_s >= 0 else math.inf
        self._stack: list[_Held] = []  # the most recently used last
        self._borrowing = 0  # uses waiting for the pool's checkout right now

    @property
    def idle(self) -> int:
        return len(self._stack)

    def _fresh(self, held: _Held, now: float) -> bool:
        return now - held.returned_at < self._idle_s and now - held.borrowed_at < self._recycle_s

    async def run(self, work: Callable[[Connection], Awaitable[T]]) -> T:
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
            result = await work(Connection(driver=held.driver))
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
        try:
            fairy: Any = self._engine.pool.connect()
        except DB_UNAVAILABLE_ERRORS:
            raise  # already answered with 503, under its own name
        except Exception as exc:  # the driver's own classes (a refused role...): see ConnectFailed
            raise ConnectFailed(exc) from exc
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


def _connection_lost(exc: BaseException) -> bool:
    return isinstance(exc, CONNECTION_LOST_ERRORS)
