"""The task queries: the list's filters and sorts, and the statements of the hot routes.

A list filter is one `ListFilter`: its query parameter (name, type, bounds, description), its SQL clause over one
statement parameter of the same name, and the encoder from the query parameter's value to that parameter's. The
query model (TaskListQuery), the statement and its parameters are all derived from FILTERS, so a new filter is
one entry here and its test. The values then go through the columns' own codecs (api/columns.py) on either way
a statement runs.

Every statement is a db.Statement, built once per shape with its parameters checked when it is built
(tests/unit/test_task_queries.py builds every shape). The caller's id is the `caller_id()` parameter: bound
with the access check folded in on the fast path (services.access.fetch_checked), or after it otherwise.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import TYPE_CHECKING, Annotated, Any, Literal, get_args

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, create_model
from sqlalchemy.dialects.postgresql import JSONB

from taskplatform.api.columns import TaskPriority, TaskStatus, ValueList
from taskplatform.api.db import Row, Statement
from taskplatform.api.limits import CURSOR_MAX, DATETIME_TEXT_MAX, PAGE_SIZE_MAX, TAG_FILTERS_MAX, TAG_MAX, TITLE_MAX
from taskplatform.api.models import Task
from taskplatform.api.pagination import Cursor, decode_cursor, encode_cursor, invalid_cursor
from taskplatform.api.schemas import NO_NUL, SortKey, TaskCreate, TaskPublic, UtcDatetime
from taskplatform.api.services.access import (
    ACCESS_CHECK_QUERY,
    CALLER_ID,
    access_allowed,
    caller_id,
    folded,
)

TASKS: Any = Task.__table__  # type: ignore[attr-defined]
COLUMNS: Any = TASKS.c

# What a task response carries, in its order: the table's columns but the internal ones (legacy_id).
PUBLIC_TASK_FIELDS = tuple(TaskPublic.model_fields)
_PUBLISHED = [COLUMNS[name] for name in PUBLIC_TASK_FIELDS]


def public_task(row: Row) -> Row:
    """A row holding a task's columns (among others) as the published task."""
    return {name: row[name] for name in PUBLIC_TASK_FIELDS}


# --- the list's filters ---------------------------------------------------------------------------------

Dialect = Literal["postgresql", "sqlite"]
# (the tasks' columns, the filter's statement parameter, the dialect) -> the filter's condition
Clause = Callable[[Any, sa.BindParameter[Any], Dialect], sa.ColumnElement[bool]]


def _same(value: Any) -> Any:
    return value


@dataclass(frozen=True, slots=True)
class ListFilter:
    """One filter of the task list."""

    name: str  # the query parameter, the query model's field and the statement's parameter
    annotation: Any  # the query parameter's type
    field: Any  # a FieldInfo: its default (None: the filter is off), bounds and description
    bind_type: Callable[[Any], sa.types.TypeEngine[Any]]  # the statement parameter's type, from the columns
    clause: Clause
    encode: Callable[[Any], Any] = _same  # the query parameter's value -> the statement parameter's


def any_of(column: Any, values: sa.BindParameter[Any], dialect: Dialect) -> sa.ColumnElement[bool]:
    """The column holds one of the values (a ValueList parameter)."""
    if dialect == "postgresql":
        return column == sa.any_(values)  # type: ignore[no-any-return]
    listed = sa.func.json_each(values).table_valued("value")
    return column.in_(sa.select(listed.c.value))  # type: ignore[no-any-return]


def carries_all(column: Any, values: sa.BindParameter[Any], dialect: Dialect) -> sa.ColumnElement[bool]:
    """The JSON array column holds each of the values (a JSON array parameter)."""
    if dialect == "postgresql":
        return sa.type_coerce(column, JSONB).contains(values)  # jsonb @> '["a","b"]', served by the GIN index
    wanted = sa.func.json_each(values).table_valued("value").alias("wanted")
    held = sa.func.json_each(column).table_valued("value").alias("held")
    return ~sa.exists(sa.select(1).select_from(wanted).where(wanted.c.value.not_in(sa.select(held.c.value))))


# LIKE's escape character. Not a backslash: SQLAlchemy 2.0.30 (the lowest allowed) doubles it in the ESCAPE
# clause on PostgreSQL, which then refuses the statement (found by scripts/lowest-deps.sh).
LIKE_ESCAPE = "!"


def escape_like(text: str) -> str:
    """`text` matched literally by LIKE: its wildcards and the escape character escaped."""
    return text.replace(LIKE_ESCAPE, LIKE_ESCAPE * 2).replace("%", LIKE_ESCAPE + "%").replace("_", LIKE_ESCAPE + "_")


TagFilter = Annotated[str, StringConstraints(min_length=1, max_length=TAG_MAX, pattern=NO_NUL)]
TitleSearch = Annotated[str, StringConstraints(min_length=1, max_length=TITLE_MAX, pattern=NO_NUL)]


def one_of_the_column(column: str, values: type[enum.Enum], description: str) -> ListFilter:
    """A repeatable query parameter named after a column, whose values the column may hold: any of them."""
    return ListFilter(
        column,
        list[values] | None,  # type: ignore[valid-type]
        Field(None, description=description),
        bind_type=lambda c: ValueList(c[column].type),
        clause=lambda c, given, dialect: any_of(c[column], given, dialect),
        encode=list,
    )


FILTERS: tuple[ListFilter, ...] = (
    one_of_the_column("status", TaskStatus, "Any of these statuses."),
    one_of_the_column("priority", TaskPriority, "Any of these priorities."),
    ListFilter(
        "tag",
        list[TagFilter] | None,
        Field(None, max_length=TAG_FILTERS_MAX, description="Tasks carrying all of these tags."),
        bind_type=lambda c: c.tags.type,
        clause=lambda c, tags, dialect: carries_all(c.tags, tags, dialect),
        encode=lambda tags: list(dict.fromkeys(tags)),
    ),
    ListFilter(
        "due_after",
        UtcDatetime | None,
        Field(None, description="due_date >= this."),
        bind_type=lambda c: c.due_date.type,
        clause=lambda c, after, _: c.due_date >= after,
    ),
    ListFilter(
        "due_before",
        UtcDatetime | None,
        Field(None, description="due_date < this."),
        bind_type=lambda c: c.due_date.type,
        clause=lambda c, before, _: c.due_date < before,
    ),
    ListFilter(
        "q",
        TitleSearch | None,
        Field(None, description="Text in the title."),
        bind_type=lambda c: c.title.type,
        clause=lambda c, pattern, _: c.title.ilike(pattern, escape=LIKE_ESCAPE),
        encode=lambda text: f"%{escape_like(text)}%",
    ),
)
_FILTERS_BY_NAME = {f.name: f for f in FILTERS}

# The fields every page request has, after the filters.
_PAGE_FIELDS: dict[str, Any] = {
    "sort": (SortKey, Field("-created_at", description="Sort key; '-' for descending.")),
    "limit": (int, Field(20, ge=1, le=PAGE_SIZE_MAX)),
    "cursor": (str | None, Field(None, max_length=CURSOR_MAX, description="next_cursor of the previous page.")),
}

if TYPE_CHECKING:  # the fields read by name; the filters' are read through FILTERS

    class TaskListQuery(BaseModel):
        sort: SortKey
        limit: int
        cursor: str | None

else:
    TaskListQuery = create_model(
        "TaskListQuery",
        __config__=ConfigDict(frozen=True),
        __doc__="The task list's query parameters, derived from FILTERS.",
        **{f.name: (f.annotation, f.field) for f in FILTERS},
        **_PAGE_FIELDS,
    )


# --- the list's sorts and cursors ------------------------------------------------------------------------


def _instant(text: str) -> datetime:
    # Only the spelling encode_cursor writes (isoformat): fromisoformat alone also takes a digit run or a
    # trailing NUL. Converted to UTC here, where a year-1 or year-9999 value with an offset overflows.
    if len(text) > DATETIME_TEXT_MAX:
        raise invalid_cursor()
    try:
        value = datetime.fromisoformat(text)
        if value.isoformat() != text:
            raise ValueError("not a cursor's spelling")
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    except (ValueError, OverflowError):
        raise invalid_cursor() from None


def _priority(text: str) -> TaskPriority:
    try:
        return TaskPriority(text)
    except ValueError:
        raise invalid_cursor() from None


def _title(text: str) -> str:
    # No stored title is longer, holds NUL (PostgreSQL text cannot) or a lone surrogate (not UTF-8).
    if len(text) > TITLE_MAX or "\x00" in text:
        raise invalid_cursor()
    try:
        text.encode()
    except UnicodeEncodeError:
        raise invalid_cursor() from None
    return text


# A cursor's sort value read back, per sort column, as its column's value or a 400: a value the driver cannot
# encode or PostgreSQL cannot take would otherwise be a DataError.
_CURSOR_VALUES: dict[str, Callable[[str], Any]] = {
    "created_at": _instant,
    "updated_at": _instant,
    "due_date": _instant,
    "priority": _priority,
    "title": _title,
}
SORT_COLUMNS = tuple(dict.fromkeys(key.lstrip("-") for key in get_args(SortKey)))
if set(SORT_COLUMNS) != set(_CURSOR_VALUES):
    raise RuntimeError(f"a cursor rule per sort column: {sorted(SORT_COLUMNS)} against {sorted(_CURSOR_VALUES)}")
# The sort columns that may be NULL (NULLs come last in either direction).
NULLABLE_SORTS = frozenset(name for name in SORT_COLUMNS if COLUMNS[name].nullable)

CursorKind = Literal["none", "value", "null-tail"]


def _page_order(sort: SortKey, column: Any, by_id: Any) -> list[Any]:
    """(sort column, id) in the sort's direction, NULLs last. NULLS LAST is spelled only for a nullable column:
    on a NOT NULL one, `DESC NULLS LAST` keeps PostgreSQL from reading the (owner_id, column, id) index
    backwards, and it sorts all of the owner's rows for every page instead."""
    descending = sort.startswith("-")
    key = column.desc() if descending else column.asc()
    if sort.lstrip("-") in NULLABLE_SORTS:
        key = key.nulls_last()
    return [key, by_id.desc() if descending else by_id.asc()]


# --- the list's statements -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ListShape:
    """Which clauses a list statement has. Equal shapes share one statement (and its compiled SQL)."""

    filters: tuple[str, ...]  # the filters given, in FILTERS' order
    sort: SortKey
    cursor: CursorKind
    dialect: Dialect

    @property
    def parameters(self) -> frozenset[str]:
        cursor = {"none": (), "value": ("last_id", "last_value"), "null-tail": ("last_id",)}[self.cursor]
        return frozenset((CALLER_ID, "row_limit", *self.filters, *cursor))


@lru_cache(maxsize=512)
def _page_query(shape: ListShape) -> sa.Select[Any]:
    c = COLUMNS
    clauses: list[Any] = [c.owner_id == caller_id()]
    for name in shape.filters:
        given = _FILTERS_BY_NAME[name]
        clauses.append(given.clause(c, sa.bindparam(name, type_=given.bind_type(c)), shape.dialect))
    descending = shape.sort.startswith("-")
    column = c[shape.sort.lstrip("-")]
    last_id = sa.bindparam("last_id", type_=c.id.type)
    if shape.cursor == "null-tail":
        # Already inside the NULL tail: only the id orders what is left.
        clauses.append(sa.and_(column.is_(None), c.id < last_id if descending else c.id > last_id))
    elif shape.cursor == "value":
        # A row comparison, which PostgreSQL takes as where to start reading the (owner_id, column, id) index.
        key = sa.tuple_(column, c.id)
        last = sa.tuple_(sa.bindparam("last_value", type_=column.type), last_id)
        clause = key < last if descending else key > last
        if column.name in NULLABLE_SORTS:
            clause = sa.or_(clause, column.is_(None))
        clauses.append(clause)
    return (
        sa.select(*_PUBLISHED)
        .where(*clauses)
        .order_by(*_page_order(shape.sort, column, c.id))
        .limit(sa.bindparam("row_limit", type_=sa.Integer))
    )


@lru_cache(maxsize=512)
def page_statement(shape: ListShape) -> Statement:
    """One page of the caller's tasks; the caller already checked."""
    return Statement(_page_query(shape), shape.parameters)


@lru_cache(maxsize=512)
def page_statement_with_access_check(shape: ListShape) -> Statement:
    """The access check and the page in one statement (PostgreSQL): the check's row, joined laterally to the
    page's rows (a NULL page row when the page is empty), in the page's order."""
    access = ACCESS_CHECK_QUERY.subquery("access")
    page = _page_query(shape).lateral("page")
    order = _page_order(shape.sort, page.c[shape.sort.lstrip("-")], page.c.id)
    query = sa.select(access, page).select_from(access.outerjoin(page, sa.true())).order_by(*order)
    return folded(query, shape.parameters - {CALLER_ID})


def list_request(query: TaskListQuery, dialect: Dialect) -> tuple[ListShape, dict[str, Any]]:
    """The list statement's shape and parameters for a query, but the caller's id; a bad cursor is a 400."""
    params: dict[str, Any] = {"row_limit": query.limit + 1}
    given: list[str] = []
    for each in FILTERS:
        value = getattr(query, each.name)
        if value is not None and value != []:
            given.append(each.name)
            params[each.name] = each.encode(value)
    cursor_kind: CursorKind = "none"
    if query.cursor:
        cursor = decode_cursor(query.cursor, query.sort)
        params["last_id"] = cursor.last_id
        column = query.sort.lstrip("-")
        if cursor.value is None:
            if column not in NULLABLE_SORTS:
                raise invalid_cursor()
            cursor_kind = "null-tail"
        elif isinstance(cursor.value, str):
            cursor_kind = "value"
            params["last_value"] = _CURSOR_VALUES[column](cursor.value)
        else:
            raise invalid_cursor()
    return ListShape(tuple(given), query.sort, cursor_kind, dialect), params


def page_of(rows: Sequence[Row], query: TaskListQuery) -> tuple[list[Row], str | None]:
    """The published tasks of a page's rows (one more than the page, if there is a next page), and the cursor
    for the next page."""
    tasks = [public_task(row) for row in rows[: query.limit]]
    if len(rows) <= query.limit:
        return tasks, None
    last = tasks[-1]
    return tasks, encode_cursor(Cursor(sort=query.sort, value=last[query.sort.lstrip("-")], last_id=last["id"]))


# --- one task ---------------------------------------------------------------------------------------------

_TASK_BY_ID_QUERY = sa.select(*_PUBLISHED).where(
    COLUMNS.id == sa.bindparam("task_id", type_=COLUMNS.id.type), COLUMNS.owner_id == caller_id()
)
TASK_BY_ID = Statement(_TASK_BY_ID_QUERY, {"task_id", CALLER_ID})


def _task_by_id_with_access_check() -> Statement:
    """The access check and the task in one statement (PostgreSQL), as the list does: the check's row with the
    task's columns, NULL when the caller has no such task."""
    access = ACCESS_CHECK_QUERY.subquery("access")
    task = _TASK_BY_ID_QUERY.lateral("task")
    return folded(sa.select(access, task).select_from(access.outerjoin(task, sa.true())), {"task_id"})


TASK_BY_ID_WITH_ACCESS_CHECK = _task_by_id_with_access_check()


# --- a new task -------------------------------------------------------------------------------------------

# A new task's parameters: TaskCreate's fields, and the instant it is created (and updated) at.
NEW_TASK_PARAMETERS = frozenset((*TaskCreate.model_fields, "now"))


def new_task_params(data: TaskCreate, now: datetime) -> dict[str, Any]:
    return {**data.model_dump(), "now": now}


def _insert_with_access_check() -> Statement:
    """The access check and the insert in one statement (PostgreSQL): the row is inserted only if the check
    passes (access_allowed), and the check's row comes back with the new task's columns, NULL when refused, so
    that the check names the reason."""
    c = COLUMNS
    access = ACCESS_CHECK_QUERY.cte("access")
    now = sa.bindparam("now", type_=c.created_at.type)
    values = {
        "owner_id": caller_id(),
        **{name: sa.bindparam(name, type_=c[name].type) for name in TaskCreate.model_fields},
        "version": sa.literal_column("1", sa.Integer),  # the first version
        "created_at": now,
        "updated_at": now,
    }
    selected = sa.select(*values.values()).select_from(access).where(access_allowed(access))
    inserted = (
        TASKS.insert()
        .from_select(list(values), selected, include_defaults=False)
        .returning(*_PUBLISHED)
        .cte("inserted")
    )
    query = sa.select(access, inserted).select_from(access.outerjoin(inserted, sa.true()))
    return folded(query, NEW_TASK_PARAMETERS)


INSERT_WITH_ACCESS_CHECK = _insert_with_access_check()
