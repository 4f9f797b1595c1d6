"""db.statements: a statement's parameters are checked when it is built and whenever it runs, on SQLite as on
PostgreSQL, and the raw path applies the column types' codecs as SQLAlchemy does."""

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from taskplatform.api.columns import PriorityType, TaskPriority, UTCDateTime
from taskplatform.api.db import Statement, StatementError

PRIORITY_AND_WHEN = sa.select(
    sa.bindparam("priority", type_=PriorityType).label("priority"),
    sa.bindparam("when", type_=UTCDateTime).label("when"),
)


def test_a_parameter_the_declaration_lacks_fails_when_built() -> None:
    with pytest.raises(StatementError, match=r"used but not declared: \['when'\]"):
        Statement(PRIORITY_AND_WHEN, ["priority"])


def test_a_declared_parameter_the_sql_does_not_use_fails_when_built() -> None:
    with pytest.raises(StatementError, match=r"declared but not used: \['extra'\]"):
        Statement(PRIORITY_AND_WHEN, ["priority", "when", "extra"])


def test_a_value_in_the_sql_instead_of_a_parameter_fails_when_built() -> None:
    with pytest.raises(StatementError, match="values in the statement"):
        Statement(sa.select(sa.literal(7).label("seven")), [])


def test_result_columns_sharing_a_name_fail_when_built() -> None:
    with pytest.raises(StatementError, match="share a name"):
        Statement(sa.select(sa.literal_column("1").label("a"), sa.literal_column("2").label("a")), [])


def _on_sqlite(statement: Statement, params: dict[str, Any]) -> list[dict[str, Any]]:
    async def run() -> list[dict[str, Any]]:
        engine = create_async_engine("sqlite+aiosqlite://")
        try:
            async with engine.connect() as connection:
                return await statement.fetch_sqlalchemy(connection, params)
        finally:
            await engine.dispose()

    return asyncio.run(run())


NOW = datetime(2030, 1, 31, 17, 0, tzinfo=UTC)


@pytest.mark.parametrize("params", [{"priority": "high"}, {"priority": "high", "when": NOW, "extra": 1}])
def test_binding_other_names_than_declared_fails_on_either_path(params: dict[str, Any]) -> None:
    statement = Statement(PRIORITY_AND_WHEN, ["priority", "when"])
    with pytest.raises(StatementError, match="the statement takes"):
        _on_sqlite(statement, params)
    with pytest.raises(StatementError, match="the statement takes"):
        statement.driver_arguments(params)


def test_the_raw_path_runs_the_column_codecs_sqlalchemy_runs() -> None:
    statement = Statement(PRIORITY_AND_WHEN, ["priority", "when"])
    assert statement.driver_arguments({"priority": TaskPriority.high, "when": NOW}) == [3, NOW]
    with pytest.raises(ValueError, match="naive datetime"):
        statement.driver_arguments({"priority": "low", "when": NOW.replace(tzinfo=None)})
    assert statement.decoded([(3, NOW)]) == [{"priority": TaskPriority.high, "when": NOW}]  # a record's values
    assert _on_sqlite(statement, {"priority": TaskPriority.high, "when": NOW}) == [
        {"priority": TaskPriority.high, "when": NOW}
    ]


def test_a_name_used_twice_is_bound_once() -> None:
    twice = sa.select(sa.bindparam("n", type_=sa.Integer).label("a"), sa.bindparam("n", type_=sa.Integer).label("b"))
    statement = Statement(twice, ["n"])
    assert statement.driver_arguments({"n": 5}) == [5]
    assert _on_sqlite(statement, {"n": 5}) == [{"a": 5, "b": 5}]
