"""The engine: one pooled async engine per process (asyncpg on PostgreSQL, aiosqlite for a quick local run),
the readiness probe's own, and what a lost database raises.

The API talks to PostgreSQL through asyncpg (docs/benchmarks.md has the measurements that chose it over
psycopg2 in a thread pool); Alembic and the migration service use psycopg2. Both derive their URL from the one
DATABASE_URL setting. Only db.Database opens these engines' connections (db/database.py).
"""

from __future__ import annotations

import socket
import time
from typing import Any

import asyncpg
import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import StaticPool

from taskplatform.api.config import Settings

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
    # The server answers but refuses the role (pg_hba, a password or a role not yet in place, as while an upgrade
    # moves the pods onto their roles): this replica cannot reach its data either.
    asyncpg.exceptions.InvalidAuthorizationSpecificationError,
    asyncpg.exceptions.InterfaceError,
    # A connection whose server ended it while it sat in the pool can fail its next use this way ("cannot
    # switch to state …; another operation is in progress") before it reports the loss itself.
    asyncpg.exceptions.InternalClientError,
)


class ConnectFailed(Exception):
    """The pool could not open a connection for the direct path (which takes connections from the pool itself,
    below SQLAlchemy's wrapping of driver errors): whatever the driver's reason, this replica cannot use its
    database. `orig`: the driver's error, whose class name the 503 names."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(type(cause).__name__)
        self.orig = cause.__cause__ or cause


# What a lost or unreachable database raises: SQLAlchemy's wrappers, and what asyncpg raises unwrapped
# while a connection is being opened. The API answers these with 503 instead of 500.
DB_UNAVAILABLE_ERRORS: tuple[type[Exception], ...] = (
    sa.exc.OperationalError,
    sa.exc.InterfaceError,
    sa.exc.TimeoutError,  # pool exhausted for db_pool_timeout_s
    socket.gaierror,
    ConnectFailed,
    *CONNECTION_LOST_ERRORS,
)

# The same told by SQLSTATE, for SQLAlchemy's generic DBAPIError around a driver error its adapter maps to no
# narrower class (asyncpg's refusal of a role arrives so): a connection exception (class 08), a refused
# authorization (28), the server shutting down or starting (57P01-57P03), too many connections (53300).
DB_UNAVAILABLE_SQLSTATE_PREFIXES = ("08", "28", "57P01", "57P02", "57P03", "53300")

# The pool's record of a connection (its `info`) keeps, under this key, when a use last finished with it
# (time.monotonic()): the idle health check on checkout (install_idle_ping) reads it.
LAST_USED = "last_used_at"

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


def pool_stats(engine: AsyncEngine) -> dict[str, int]:
    pool = engine.sync_engine.pool
    checkedout = getattr(pool, "checkedout", None)
    checkedin = getattr(pool, "checkedin", None)
    if checkedout is None or checkedin is None:
        return {"in_use": 0, "idle": 0}
    return {"in_use": int(checkedout()), "idle": int(checkedin())}


_SELECT_ONE = sa.select(sa.literal_column("1", sa.Integer))


async def ping(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        await conn.execute(_SELECT_ONE)
