"""Database: the one owner of the process's database connections."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any, Literal, TypeVar

from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel.ext.asyncio.session import AsyncSession

from taskplatform.api.config import Settings
from taskplatform.api.db.connections import Connection, HeldConnections
from taskplatform.api.db.engine import create_db_engine, create_probe_engine, ping, pool_stats
from taskplatform.api.db.gate import PoolGate, create_pool_gate
from taskplatform.api.db.statements import Row, Statement

T = TypeVar("T")


class Database:
    """Every connection the API uses comes from here, and nothing else opens one:

    - `fetch` (one statement) and `run` (a use of one pooled connection, a statement at a time), without an ORM
      session: on the fast path (PostgreSQL) the asyncpg connection itself, kept checked out between uses
      (db.connections.HeldConnections); otherwise a SQLAlchemy connection;
    - `session`: an ORM session, which first returns the held connections to the pool;
    - `ping`: the readiness probe's own connection.

    Each use but the probe passes the pool's gate (first come, first served; a full waiting room is a 503). The
    engine and the gate stay inside: held connections are safe only while every use goes through here, since
    the gate's slots count the pool's connections, the held ones included.

    A plain dependency of the routes (deps.DatabaseDep), where a yield dependency costs FastAPI tens of µs per
    request in its exit-stack and cancel-scope handling, on the hottest routes.
    """

    def __init__(self, engine: AsyncEngine, gate: PoolGate, settings: Settings, *, fast_path: bool = True) -> None:
        self._engine = engine
        self._gate = gate
        self._held = (
            HeldConnections(engine, settings.db_pool_ping_idle_s, settings.db_pool_recycle_s)
            if fast_path and engine.dialect.driver == "asyncpg"
            else None
        )
        self._probe_engine = create_probe_engine(settings) if engine.dialect.name == "postgresql" else None

    @classmethod
    def open(cls, settings: Settings, *, fast_path: bool = True) -> Database:
        """The process's database. `fast_path=False` sends every statement through SQLAlchemy, as on SQLite:
        the reference the fast path is compared with (tests/integration/test_fast_path_parity.py)."""
        return cls(create_db_engine(settings), create_pool_gate(settings), settings, fast_path=fast_path)

    @property
    def dialect(self) -> Literal["postgresql", "sqlite"]:
        return "postgresql" if self._engine.dialect.name == "postgresql" else "sqlite"

    @property
    def fast_path(self) -> bool:
        """Single statements go straight to asyncpg on held connections, and the services fold the access
        check into them (PostgreSQL's LATERAL and data-modifying CTEs)."""
        return self._held is not None

    async def run(self, work: Callable[[Connection], Awaitable[T]]) -> T:
        """`work` (one statement, as a rule) on a pooled connection without an ORM session."""
        async with self._gate.slot():
            if self._held is not None:
                return await self._held.run(work)
            async with self._engine.connect() as connection:
                return await work(Connection(connection=connection))

    async def fetch(self, statement: Statement, params: Mapping[str, Any]) -> list[Row]:
        """One statement's rows, on a pooled connection without an ORM session (see `run`)."""
        return await self.run(lambda connection: connection.fetch(statement, params))

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        # The gate's slot is held for the session's life: the session holds its pooled connection that long.
        async with self._gate.slot():
            if self._held is not None:
                await self._held.release_all()
            async with AsyncSession(self._engine, expire_on_commit=False) as session:
                yield session

    async def ping(self) -> None:
        """`SELECT 1` for the readiness probe, outside the gate and outside the requests' pool (on PostgreSQL:
        create_probe_engine), so that it neither queues behind the requests nor is turned away with them."""
        await ping(self._probe_engine or self._engine)

    def pool_stats(self) -> dict[str, int]:
        """Connections in use and idle; the held connections on their stack count as idle."""
        stats = pool_stats(self._engine)
        stacked = self.held_idle
        return {"in_use": stats["in_use"] - stacked, "idle": stats["idle"] + stacked}

    @property
    def held_idle(self) -> int:
        """Held connections on their stack, between uses."""
        return self._held.idle if self._held is not None else 0

    @property
    def waiting(self) -> int:
        """Uses waiting at the gate for a pooled connection."""
        return self._gate.waiting

    @property
    def free_slots(self) -> int:
        """Uses the gate would admit at once."""
        return self._gate.free

    async def close(self) -> None:
        if self._held is not None:
            await self._held.release_all()
        await self._engine.dispose()
        if self._probe_engine is not None:
            await self._probe_engine.dispose()
