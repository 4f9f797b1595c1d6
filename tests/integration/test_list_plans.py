"""Every page of every sort is served by an index: PostgreSQL reads the page's rows (and one more), never all
of the owner's tasks to sort them. Checked on the plans PostgreSQL actually runs (EXPLAIN ANALYZE of the
list's own statements), not on timings."""

import asyncio
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, get_args

import asyncpg
import pytest
import sqlalchemy as sa
from helpers.pgcluster import ThrowawayPostgres

from taskplatform.api.columns import PRIORITY
from taskplatform.api.db import Statement
from taskplatform.api.migrate import upgrade_head
from taskplatform.api.schemas import SortKey
from taskplatform.api.services.task_queries import ListShape, page_statement_with_access_check

TASKS_PER_OWNER = 3000
LIMIT = 20


@pytest.fixture(scope="module")
def seeded(pg: ThrowawayPostgres) -> Iterator[tuple[sa.Engine, str, int, sa.Table]]:
    """Two owners with many tasks each (NULL and repeated due dates, repeated titles), analyzed: the engine,
    the database's libpq URL (for asyncpg), the first owner's id and the tasks table as stored."""
    url = pg.create_database("list_plans")
    upgrade_head(url)
    engine = sa.create_engine(url)
    meta = sa.MetaData()
    meta.reflect(engine, only=["users", "tasks"])  # the columns as stored (priority as its rank)
    users, tasks = meta.tables["users"], meta.tables["tasks"]
    now = datetime.now(UTC)
    with engine.begin() as conn:
        owners = [
            conn.execute(
                users.insert().returning(users.c.id),
                {"email": f"owner{n}@plans.io", "hashed_password": "!", "is_active": True, "created_at": now},
            ).scalar_one()
            for n in range(2)
        ]
        conn.execute(
            tasks.insert(),
            [
                {
                    "owner_id": owner,
                    "title": f"task {n % 500}",
                    "status": "todo",
                    "priority": 1 + n % 4,
                    "due_date": None if n % 3 == 0 else now + timedelta(days=n % 40),
                    "tags": [],
                    "version": 1,
                    "created_at": now - timedelta(seconds=n),
                    "updated_at": now - timedelta(seconds=n),
                }
                for owner in owners
                for n in range(TASKS_PER_OWNER)
            ],
        )
        conn.execute(sa.text("ANALYZE"))
    yield engine, engine.url.set(drivername="postgresql").render_as_string(hide_password=False), owners[0], tasks
    engine.dispose()


def _tasks_rows_read(plan: dict[str, Any]) -> int:
    """Rows the plan's scans of the tasks table produced (an index scan stops at the LIMIT; a scan that
    feeds a sort produces every row of the owner's)."""
    own = plan["Actual Rows"] * plan["Actual Loops"] if plan.get("Relation Name") == "tasks" else 0
    return own + sum(_tasks_rows_read(child) for child in plan.get("Plans", ()))


async def _explain(dsn: str, statement: Statement, params: dict[str, Any]) -> dict[str, Any]:
    conn = await asyncpg.connect(dsn)
    try:
        result = await conn.fetchval(
            f"EXPLAIN (ANALYZE, FORMAT JSON) {statement.sql}", *statement.driver_arguments(params)
        )
    finally:
        await conn.close()
    plan: dict[str, Any] = json.loads(result)[0]["Plan"]
    return plan


@pytest.mark.parametrize("cursor", ["none", "value"])
@pytest.mark.parametrize("sort", get_args(SortKey))
def test_a_page_reads_its_rows_not_the_owners(
    seeded: tuple[sa.Engine, str, int, sa.Table], sort: str, cursor: str
) -> None:
    engine, dsn, owner, tasks = seeded
    shape = ListShape(filters=(), sort=sort, cursor=cursor, dialect="postgresql")  # type: ignore[arg-type]
    params: dict[str, Any] = {"jti": "j" * 32, "family_id": "f" * 32, "user_id": owner, "row_limit": LIMIT + 1}
    if cursor == "value":  # somewhere in the middle of the owner's tasks, on a non-NULL value
        params["last_value"], params["last_id"] = _middle_row(engine, tasks, owner, sort.lstrip("-"))
    plan = asyncio.run(_explain(dsn, page_statement_with_access_check(shape), params))
    assert plan["Actual Rows"] == LIMIT + 1
    assert _tasks_rows_read(plan) <= LIMIT + 1, plan


def _middle_row(engine: sa.Engine, tasks: sa.Table, owner: int, column: str) -> tuple[Any, int]:
    """A row a third of the way along the sort, with a non-NULL value: pages remain in either direction."""
    query = (
        sa.select(tasks.c[column], tasks.c.id)
        .where(tasks.c.owner_id == owner, tasks.c[column].is_not(None))
        .order_by(tasks.c[column], tasks.c.id)
        .offset(TASKS_PER_OWNER // 3)
        .limit(1)
    )
    with engine.connect() as conn:
        value, task_id = conn.execute(query).one()
    return (PRIORITY.decode(value) if column == "priority" else value), task_id  # as the cursor gives it
