"""The hot routes' held connections (db.connections.HeldConnections) against a real PostgreSQL: reused without
a pool checkout, still the pool's connections for sessions and the readiness probe, and sent back through
the pool when they idled, failed mid-statement or the app closes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Any

import pytest
import sqlalchemy as sa
from helpers.support import terminate_api_connections

from taskplatform.api.config import Settings
from taskplatform.api.db import Database, Statement
from taskplatform.api.db.connections import Connection
from taskplatform.api.db.engine import create_db_engine
from taskplatform.api.db.gate import create_pool_gate

BACKEND_PID_QUERY = sa.select(sa.func.pg_backend_pid().label("pid"))
BACKEND_PID = Statement(BACKEND_PID_QUERY, ())
SLEEP = Statement(sa.select(sa.func.pg_sleep(sa.bindparam("seconds", type_=sa.Float)).label("slept")), ("seconds",))
# A bound on waits that take milliseconds when the code is right, and the pool timeout when it is not.
LIVENESS_S = 10.0


@asynccontextmanager
async def _database(settings: Settings, **overrides: Any) -> AsyncIterator[tuple[Database, list[int]]]:
    """A Database on its own engine and gate, and the list its pool's checkouts are counted in; closed after,
    with every connection back in the pool (checked)."""
    settings = settings.model_copy(update={"db_pool_timeout_s": 60.0, **overrides})
    engine = create_db_engine(settings)
    checkouts: list[int] = []
    sa.event.listen(engine.sync_engine.pool, "checkout", lambda *_: checkouts.append(1))
    database = Database(engine, create_pool_gate(settings), settings)
    try:
        yield database, checkouts
    finally:
        await database.close()
    assert engine.sync_engine.pool.checkedout() == 0  # type: ignore[attr-defined]


async def _pid(conn: Connection) -> int:
    return int((await conn.fetch(BACKEND_PID, {}))[0]["pid"])


async def _select_in_session(database: Database, statement: Any) -> int:
    async with database.session() as session:
        await asyncio.sleep(0)  # let other uses interleave while the session holds its connection
        return int((await session.exec(statement)).scalar_one())


def _run(test: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(test())


def test_uses_one_after_another_take_the_stacked_connection_without_a_checkout(settings: Settings) -> None:
    async def scenario() -> None:
        async with _database(settings) as (database, checkouts):
            pids = [await database.run(_pid) for _ in range(5)]
            assert len(set(pids)) == 1 and len(checkouts) == 1
            assert database.pool_stats() == {"in_use": 0, "idle": 1}

    _run(scenario)


async def _stack_connections(database: Database, count: int) -> None:
    """`count` concurrent uses, each holding its connection until all have one: `count` stacked after."""
    arrived = asyncio.Barrier(count)

    async def use(conn: Connection) -> None:
        await arrived.wait()

    await asyncio.gather(*(database.run(use) for _ in range(count)))
    assert database.pool_stats() == {"in_use": 0, "idle": count}


def test_a_session_gets_a_connection_while_every_connection_is_stacked(settings: Settings) -> None:
    """Every connection of a pool of two is held on the stack: the session must still get one at once, not
    wait out the pool timeout."""

    async def scenario() -> None:
        async with _database(settings, db_pool_size=2, db_max_overflow=0) as (database, _):
            await _stack_connections(database, 2)
            selected = _select_in_session(database, sa.select(sa.literal(7)))
            assert await asyncio.wait_for(selected, LIVENESS_S) == 7
            assert await database.run(_pid) > 0  # and the hot path borrows again afterwards

    _run(scenario)


def test_the_readiness_ping_answers_while_every_pooled_connection_is_busy(settings: Settings) -> None:
    """The probe passes no gate and waits in no pool of the requests': with the one connection busy it still
    answers at once (a probe that waited would time out, and every replica go unready together under load),
    and the requests' pool is left as it was."""

    async def scenario() -> None:
        async with _database(settings, db_pool_size=1, db_max_overflow=0) as (database, _):
            release = asyncio.Event()

            async def busy(conn: Connection) -> int:
                await release.wait()
                return await _pid(conn)

            holder = asyncio.create_task(database.run(busy))
            await asyncio.sleep(0.1)  # the holder has the connection (the order, not the time, is asserted)
            assert database.pool_stats()["in_use"] == 1
            await asyncio.wait_for(database.ping(), LIVENESS_S)
            assert not holder.done() and database.pool_stats()["in_use"] == 1
            release.set()
            await asyncio.wait_for(holder, LIVENESS_S)
            assert database.pool_stats() == {"in_use": 0, "idle": 1}

    _run(scenario)


def test_connections_that_idled_go_back_through_the_pool_and_its_health_check(settings: Settings) -> None:
    async def scenario() -> None:
        async with _database(settings, db_pool_ping_idle_s=0.2) as (database, checkouts):
            await _stack_connections(database, 3)
            assert len(checkouts) == 3
            await asyncio.sleep(0.3)
            await database.run(_pid)
            # The most recent one idled too long: it went back and the use checked one out (pinged by the
            # pool's idle health check); the coldest went back as well, so the pool can close an overflow.
            assert len(checkouts) == 4
            assert database.held_idle == 2
            assert database.pool_stats() == {"in_use": 0, "idle": 3}

    _run(scenario)


def test_a_use_cancelled_mid_statement_returns_its_connection_to_the_pool(settings: Settings) -> None:
    async def scenario() -> None:
        async with _database(settings) as (database, checkouts):
            slow = asyncio.create_task(database.run(lambda conn: conn.fetch(SLEEP, {"seconds": 30.0})))
            await asyncio.sleep(0.3)
            slow.cancel()
            with pytest.raises(asyncio.CancelledError):
                await slow
            assert database.held_idle == 0  # not stacked
            assert await asyncio.wait_for(database.run(_pid), LIVENESS_S) > 0
            assert len(checkouts) == 2
            assert database.pool_stats()["in_use"] == 0

    _run(scenario)


def test_a_use_that_fails_with_an_ordinary_error_keeps_its_connection(settings: Settings) -> None:
    """A 404 or a constraint violation is raised inside the use; the connection itself is fine."""

    async def missing(conn: Connection) -> None:
        await _pid(conn)
        raise LookupError("no such task")

    async def scenario() -> None:
        async with _database(settings) as (database, checkouts):
            with pytest.raises(LookupError):
                await database.run(missing)
            await database.run(_pid)
            assert len(checkouts) == 1
            assert database.pool_stats() == {"in_use": 0, "idle": 1}

    _run(scenario)


def test_hot_uses_and_sessions_mixed_share_the_pools_bound(settings: Settings) -> None:
    """Forty uses, hot and session alternating, on a pool of two: all are served, and the process never holds
    more than the pool's two connections."""

    async def scenario() -> None:
        async with _database(settings, db_pool_size=2, db_max_overflow=0) as (database, _):
            uses = [database.run(_pid) if n % 2 else _select_in_session(database, BACKEND_PID_QUERY) for n in range(40)]
            pids = await asyncio.wait_for(asyncio.gather(*uses), LIVENESS_S)
            assert len(set(pids)) <= 2
            assert database.pool_stats()["in_use"] == 0

    _run(scenario)


def test_held_connections_the_server_ended_are_health_checked_when_a_session_gets_them(
    settings: Settings, db_engine: sa.Engine
) -> None:
    """The database restarted while connections sat on the stack: a session returns them to the pool, which
    must still know they idled (and ping them), not take them for just used."""

    async def scenario() -> None:
        overrides = {"db_pool_size": 2, "db_max_overflow": 0, "db_pool_ping_idle_s": 0.2}
        async with _database(settings, **overrides) as (database, _):
            await _stack_connections(database, 2)
            assert terminate_api_connections(db_engine) == 2
            await asyncio.sleep(0.3)  # longer than the idle health check's interval
            assert await _select_in_session(database, sa.select(sa.literal(1))) == 1

    _run(scenario)
