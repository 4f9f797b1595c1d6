"""Engine and session lifecycle: one pooled async engine per process, one session per request.

The API talks to PostgreSQL through asyncpg (docs/benchmarks.md has the measurements that chose it over
psycopg2 in a thread pool); Alembic and the migration service use psycopg2. Both derive their URL
from the one DATABASE_URL setting.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import StaticPool
from sqlmodel.ext.asyncio.session import AsyncSession

from taskplatform.api.config import Settings
from taskplatform.api.services.sql import (
    CONNECTION_LOST_ERRORS,
    LAST_USED,
    AnySelect,
    DirectConnection,
    HeldConnections,
)

# What a lost or unreachable database raises: SQLAlchemy's wrappers, and what asyncpg raises unwrapped
# while a connection is being opened. The API answers these with 503 instead of 500.
DB_UNAVAILABLE_ERRORS: tuple[type[Exception], ...] = (
    sa.exc.OperationalError,
    sa.exc.InterfaceError,
    sa.exc.TimeoutError,  # pool exhausted for db_pool_timeout_s
    socket.gaierror,
    *CONNECTION_LOST_ERRORS,
)

T = TypeVar("T")

_ASYNC_DRIVERS = {"postgresql": "asyncpg", "sqlite": "aiosqlite"}
_SYNC_DRIVERS = {"postgresql": "psycopg2", "sqlite": "pysqlite"}


def async_url(url: str) -> str:
    """`postgresql://`, `postgresql+psycopg2://` or `sqlite://` → the asyncio driver of that database."""
    parsed = make_url(url)
    return parsed.set(
        drivername=f"{parsed.get_backend_name()}+{_ASYNC_DRIVERS[parsed.get_backend_name()]}"
    ).render_as_string(hide_password=False)


def sync_url(url: str) -> str:
    parsed = make_url(url)
    return parsed.set(
        drivername=f"{parsed.get_backend_name()}+{_SYNC_DRIVERS[parsed.get_backend_name()]}"
    ).render_as_string(hide_password=False)


def create_db_engine(settings: Settings) -> AsyncEngine:
    url = async_url(settings.database_url)
    if settings.is_sqlite:
        kwargs: dict[str, Any] = {}
        if make_url(url).database in (None, "", ":memory:"):
            kwargs["poolclass"] = StaticPool  # one shared in-memory database
        engine = create_async_engine(url, **kwargs)

        @sa.event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA busy_timeout=5000")
            cur.close()

        return engine

    engine = create_async_engine(
        url,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_timeout=settings.db_pool_timeout_s,
        pool_recycle=settings.db_pool_recycle_s,
        connect_args=_connect_args(settings),
    )
    install_idle_ping(engine, settings.db_pool_ping_idle_s)
    return engine


def _connect_args(settings: Settings) -> dict[str, Any]:
    return {
        "timeout": settings.db_connect_timeout_s,
        "server_settings": {
            "application_name": "taskplatform-api",
            "statement_timeout": str(settings.db_statement_timeout_ms),
        },
    }


def create_probe_engine(settings: Settings) -> AsyncEngine:
    """One connection of its own per process for the readiness probe (PostgreSQL): a probe that waited in the
    requests' pool would time out whenever traffic fills it, and every replica would go unready at once
    under load, taking the Service down with it. Checked before each probe (pre-ping), so a probe after a
    database restart reconnects instead of failing once."""
    return create_async_engine(
        async_url(settings.database_url),
        pool_size=1,
        max_overflow=0,
        pool_timeout=settings.db_connect_timeout_s,
        pool_pre_ping=True,
        connect_args=_connect_args(settings),
    )


def install_idle_ping(engine: AsyncEngine, idle_s: float) -> None:
    """Health-check pooled connections on checkout, but only those that sat idle for `idle_s` or longer.

    SQLAlchemy's pool_pre_ping pings on every checkout: one extra round trip per request, measured at a
    quarter of list throughput. A connection that was in use a moment ago is known to be alive; one that
    idled may have been cut by a failover, a restart or an idle timeout. A failed ping raises
    DisconnectionError, on which the pool discards the connection and checks out another (SQLAlchemy's
    documented pessimistic-disconnect recipe). Errors on busy connections still invalidate them as usual.
    """
    pool_events = engine.sync_engine.pool

    @sa.event.listens_for(pool_events, "checkin")
    def _remember_checkin(_dbapi_conn: Any, record: Any) -> None:
        record.info[LAST_USED] = time.monotonic()

    @sa.event.listens_for(pool_events, "checkout")
    def _ping_if_idle(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        last_used = record.info.get(LAST_USED)
        if last_used is None or time.monotonic() - last_used < idle_s:
            return  # new connections and recently used ones need no ping
        try:
            engine.dialect.do_ping(dbapi_conn)
        except Exception as exc:
            raise sa.exc.DisconnectionError("pooled connection failed its health check") from exc


class PoolBusyError(Exception):
    """No pooled connection could be had: the waiting room was full, or the wait reached the pool timeout."""

    def __init__(self, waited_s: float) -> None:
        super().__init__(f"no database connection free after {waited_s:.1f} s")
        self.waited_s = waited_s


class PoolGate:
    """First come, first served admission to the connection pool, with a bounded waiting room.

    SQLAlchemy's asyncio pool hands a returned connection to whoever asks next, and a waiter woken for it
    that finds it taken goes to the back of the line: under sustained load some waiters starve until the
    pool timeout (measured: p50 3 ms, p99 3.8 s and 503s after the full timeout with a pool of 2 and 64
    connections). The gate admits as many requests as the pool has connections, so the pool itself never
    has waiters; a freed slot goes to the longest waiter, and a request that finds the waiting room full
    is turned away at once (503, Retry-After) instead of queueing into a timeout.
    """

    def __init__(self, slots: int, max_waiting: int, timeout_s: float) -> None:
        self.free = slots
        self.max_waiting = max_waiting
        self.timeout_s = timeout_s
        self._waiters: deque[asyncio.Future[None]] = deque()

    @property
    def waiting(self) -> int:
        return sum(1 for waiter in self._waiters if not waiter.done())

    async def acquire(self) -> None:
        if self.free > 0 and not self.waiting:
            self.free -= 1
            return
        if self.waiting >= self.max_waiting:
            raise PoolBusyError(0.0)
        # A future of the running loop, made per wait: the gate is not bound to one event loop.
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        started = time.monotonic()
        try:
            async with asyncio.timeout(self.timeout_s):
                await waiter
        except BaseException as exc:
            if waiter.done() and not waiter.cancelled():
                self.release()  # handed a slot in the same instant we gave up: pass it on
            else:
                waiter.cancel()
                if waiter in self._waiters:  # release() may have dropped it already
                    self._waiters.remove(waiter)
            if isinstance(exc, TimeoutError):
                raise PoolBusyError(time.monotonic() - started) from None
            raise

    def release(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # the slot passes straight to the longest waiter
                return
        self.free += 1

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        await self.acquire()
        try:
            yield
        finally:
            self.release()


def create_pool_gate(settings: Settings) -> PoolGate:
    slots = settings.db_pool_size + settings.db_max_overflow
    return PoolGate(slots, settings.db_max_waiting, settings.db_pool_timeout_s)


def pool_stats(engine: AsyncEngine) -> dict[str, int]:
    pool = engine.sync_engine.pool
    checkedout = getattr(pool, "checkedout", None)
    checkedin = getattr(pool, "checkedin", None)
    if checkedout is None or checkedin is None:
        return {"in_use": 0, "idle": 0}
    return {"in_use": int(checkedout()), "idle": int(checkedin())}


_SELECT_ONE: AnySelect = sa.select(sa.literal_column("1"))


async def ping(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        await conn.execute(_SELECT_ONE)


class Database:
    """The app's engine behind its pool gate, for routes that take a connection themselves (`await
    db.run(work)`): a plain dependency, where a yield dependency costs FastAPI tens of µs per request in its
    exit-stack and cancel-scope handling, on the hottest routes."""

    def __init__(self, engine: AsyncEngine, gate: PoolGate, settings: Settings) -> None:
        self.engine = engine
        self.gate = gate
        self.held = (
            HeldConnections(engine, settings.db_pool_ping_idle_s, settings.db_pool_recycle_s)
            if engine.dialect.driver == "asyncpg"
            else None
        )
        self.probe_engine = create_probe_engine(settings) if engine.dialect.name == "postgresql" else None

    async def run(self, work: Callable[[DirectConnection], Awaitable[T]]) -> T:
        """`work` (one statement, as a rule) on a pooled connection without an ORM session
        (services.sql.DirectConnection)."""
        async with self.gate.slot():
            if self.held is not None:
                return await self.held.run(work)
            async with self.engine.connect() as connection:
                return await work(DirectConnection(self.engine.dialect.name, connection=connection))

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        # The gate's slot is held for the session's life: the session holds its pooled connection that long.
        async with self.gate.slot():
            if self.held is not None:
                await self.held.release_all()
            async with AsyncSession(self.engine, expire_on_commit=False) as session:
                yield session

    async def ping(self) -> None:
        """`SELECT 1` for the readiness probe, outside the gate and outside the requests' pool (on PostgreSQL:
        create_probe_engine), so that it neither queues behind the requests nor is turned away with them."""
        await ping(self.probe_engine or self.engine)

    def pool_stats(self) -> dict[str, int]:
        """Connections in use and idle; the held connections on their stack count as idle."""
        stats = pool_stats(self.engine)
        stacked = self.held.idle if self.held is not None else 0
        return {"in_use": stats["in_use"] - stacked, "idle": stats["idle"] + stacked}

    async def close(self) -> None:
        if self.held is not None:
            await self.held.release_all()
        await self.engine.dispose()
        if self.probe_engine is not None:
            await self.probe_engine.dispose()
