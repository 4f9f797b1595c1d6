"""services.task_queries: the list's query model, statements and parameters all come from FILTERS, and every
statement shape builds (each one's parameters checked when it is built, db.statements) with its filters'
encoders giving exactly its parameters. What each filter selects is tested on PostgreSQL
(tests/integration/test_tasks.py::test_filters) and SQLite (tests/integration/test_sqlite_default.py)."""

from datetime import UTC, datetime
from typing import Any, get_args

import pytest
from sqlalchemy.dialects import sqlite

from taskplatform.api.pagination import Cursor, encode_cursor
from taskplatform.api.schemas import SortKey
from taskplatform.api.services import task_queries as queries
from taskplatform.api.services.access import CALLER_ID
from taskplatform.api.services.task_queries import FILTERS, ListShape, TaskListQuery

FILTER_NAMES = tuple(f.name for f in FILTERS)
# A value for every filter, as a client would send it.
EVERY_FILTER = {
    "status": ["todo", "done"],
    "priority": ["high", "low"],
    "tag": ["a", "b", "a"],
    "due_after": "2030-01-01T00:00:00Z",
    "due_before": "2030-02-01T00:00:00+02:00",
    "q": "100%_!",
}
SHAPES_OF_FILTERS = [(), FILTER_NAMES, *((name,) for name in FILTER_NAMES)]


def test_every_filter_has_a_test_value() -> None:
    assert set(EVERY_FILTER) == set(FILTER_NAMES)


def test_the_query_model_is_the_filters_then_the_page() -> None:
    assert list(TaskListQuery.model_fields) == [*FILTER_NAMES, "sort", "limit", "cursor"]
    for each in FILTERS:
        field = TaskListQuery.model_fields[each.name]
        assert field.default is None and field.description == each.field.description


@pytest.mark.parametrize("dialect", ["postgresql", "sqlite"])
@pytest.mark.parametrize("cursor", ["none", "value", "null-tail"])
@pytest.mark.parametrize("sort", get_args(SortKey))
def test_every_shape_builds_with_its_parameters_checked(sort: str, cursor: str, dialect: str) -> None:
    for filters in SHAPES_OF_FILTERS:
        shape = ListShape(filters=filters, sort=sort, cursor=cursor, dialect=dialect)  # type: ignore[arg-type]
        statement = queries.page_statement(shape)
        assert statement.parameters == shape.parameters
        if dialect == "sqlite":
            statement.query.compile(dialect=sqlite.dialect())
        else:
            folded = queries.page_statement_with_access_check(shape)
            assert folded.parameters == shape.parameters | {"jti", "family_id"}


@pytest.mark.parametrize("dialect", ["postgresql", "sqlite"])
@pytest.mark.parametrize("sort", get_args(SortKey))
def test_a_request_gives_its_statement_exactly_its_parameters(sort: str, dialect: str) -> None:
    column = sort.lstrip("-")
    value: Any = {"priority": "high", "title": "t"}.get(column, datetime(2030, 1, 1, tzinfo=UTC))
    cursor = encode_cursor(Cursor(sort=sort, value=value, last_id=9))
    query = TaskListQuery.model_validate({**EVERY_FILTER, "sort": sort, "limit": 5, "cursor": cursor})
    shape, params = queries.list_request(query, dialect)  # type: ignore[arg-type]
    assert shape.filters == FILTER_NAMES and shape.cursor == "value"
    statement = queries.page_statement(shape)
    arguments = statement.driver_arguments({**params, CALLER_ID: 1})  # checked against its parameters
    assert len(arguments) == len(statement.parameters)
    assert params["tag"] == ["a", "b"] and params["q"] == "%100!%!_!!%" and params["row_limit"] == 6


def test_no_filter_given_is_no_clause() -> None:
    shape, params = queries.list_request(TaskListQuery.model_validate({}), "postgresql")
    assert shape == ListShape(filters=(), sort="-created_at", cursor="none", dialect="postgresql")
    assert params == {"row_limit": 21}
