"""Per-user task operations. Every query is scoped by owner, so another user's task is simply not found."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any, Literal, get_args

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from taskplatform.api.db import Database
from taskplatform.api.errors import ApiError, not_found
from taskplatform.api.limits import DATETIME_TEXT_MAX, TITLE_MAX
from taskplatform.api.models import RANK_PRIORITY, IdempotencyRecord, Task, TaskPriority, TaskStatus
from taskplatform.api.pagination import Cursor, decode_cursor, encode_cursor, invalid_cursor
from taskplatform.api.schemas import SortKey, TaskCreate, TaskPublic, TaskUpdate
from taskplatform.api.security import TokenClaims
from taskplatform.api.services import auth as auth_service
from taskplatform.api.services.sql import AnySelect, DirectConnection, fetch_mappings

# The sort keys whose column may be NULL (NULLs come last in either direction).
_TASK_COLUMNS: Any = Task.__table__.c  # type: ignore[attr-defined]
_NULLABLE_SORTS = {name for name in (key.lstrip("-") for key in get_args(SortKey)) if _TASK_COLUMNS[name].nullable}


def etag_for(task_id: int, version: int) -> str:
    return f'"{task_id}.{version}"'


def parse_if_match(header: str | None, task_id: int) -> int | Literal["*"] | None:
    """The version an If-Match header demands: None without the header, "*" for any, -1 if none can match."""
    if header is None:
        return None
    header = header.strip()
    if header == "*":
        return "*"
    for raw in header.split(","):
        tag = raw.strip().removeprefix("W/").strip('"')
        tag_id, _, tag_version = tag.partition(".")
        if tag_id == str(task_id) and tag_version.isdigit():
            return int(tag_version)
    return -1


# --- create --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CreateResult:
    task: TaskPublic
    replayed: bool


def _request_hash(data: TaskCreate) -> str:
    canonical = json.dumps(data.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def _replay(record: IdempotencyRecord, request_hash: str) -> CreateResult:
    if record.request_hash != request_hash:
        raise ApiError(
            422,
            "idempotency-key-reused",
            "This Idempotency-Key was already used with a different request body.",
        )
    return CreateResult(task=TaskPublic.model_validate(record.response_body), replayed=True)


@lru_cache(maxsize=1)
def _authenticated_insert_statement() -> AnySelect:
    """The access check and the insert in one statement (PostgreSQL): the row is inserted only if the check
    passes (auth_service.access_allowed), and the check's row comes back with the new task's columns, NULL
    when refused, so that check_access names the reason. Zero rows: no such user."""
    table: Any = Task.__table__  # type: ignore[attr-defined]
    access = auth_service.ACCESS_CHECK.cte("access")
    instant = sa.DateTime(timezone=True)
    values = (
        sa.select(
            sa.bindparam("owner_id", type_=sa.BigInteger),
            sa.bindparam("title", type_=sa.String),
            sa.bindparam("description", type_=sa.Text),
            sa.bindparam("status", type_=sa.String),
            sa.bindparam("priority", type_=sa.SmallInteger),
            sa.bindparam("due_date", type_=instant),
            sa.cast(sa.bindparam("tags_json", type_=sa.String), JSONB),
            sa.literal_column("1", sa.Integer),  # the first version
            sa.bindparam("created_at", type_=instant),
            sa.bindparam("created_at", type_=instant),
        )
        .select_from(access)
        .where(auth_service.access_allowed(access))
    )
    columns = ["owner_id", "title", "description", "status", "priority", "due_date", "tags", "version",
               "created_at", "updated_at"]  # fmt: skip
    inserted = table.insert().from_select(columns, values).returning(*table.columns).cte("inserted")
    return sa.select(access, inserted).select_from(access.outerjoin(inserted, sa.true()))


async def _create_in_one_statement(conn: DirectConnection, access: TokenClaims, data: TaskCreate) -> TaskPublic:
    params = {
        **auth_service.access_params(access),
        "owner_id": access.sub,
        "title": data.title,
        "description": data.description,
        "status": data.status.value,
        "priority": data.priority.rank,
        "due_date": data.due_date,
        "tags_json": json.dumps(data.tags),
        "created_at": datetime.now(UTC),
    }
    # One statement outside an explicit transaction: atomic and committed on its own.
    fetched = await fetch_mappings(conn, _authenticated_insert_statement(), params)
    auth_service.check_access(fetched[0] if fetched else None)
    return TaskPublic.model_validate(_public_task(fetched[0]))


async def create_task(
    db: Database, access: TokenClaims, data: TaskCreate, idempotency_key: str | None, idempotency_ttl_s: int
) -> CreateResult:
    """A new task of the caller's. Without an Idempotency-Key on PostgreSQL: one round trip that checks the
    token and inserts. With one (or on SQLite): the check, then the task and its idempotency record in one
    transaction."""
    if idempotency_key is None and db.engine.dialect.name == "postgresql":
        task = await db.run(lambda conn: _create_in_one_statement(conn, access, data))
        return CreateResult(task=task, replayed=False)
    async with db.session() as session:
        await auth_service.authorize_claims(session, access)
        return await _create_in_transaction(session, access.sub, data, idempotency_key, idempotency_ttl_s)


async def _create_in_transaction(
    session: AsyncSession, owner_id: int, data: TaskCreate, idempotency_key: str | None, idempotency_ttl_s: int
) -> CreateResult:
    now = datetime.now(UTC)
    request_hash = _request_hash(data) if idempotency_key else ""
    if idempotency_key:
        record = await session.get(IdempotencyRecord, (owner_id, idempotency_key))
        if record is not None and record.expires_at > now:
            return _replay(record, request_hash)
        if record is not None:
            await session.delete(record)
            await session.flush()

    task = Task(owner_id=owner_id, created_at=now, updated_at=now, **data.model_dump())
    session.add(task)
    await session.flush()
    public = TaskPublic.model_validate(task)
    if idempotency_key:
        # Same transaction as the task: either both exist or neither. A concurrent request with the same
        # key blocks on the primary key until this commits, then fails and replays the stored response.
        session.add(
            IdempotencyRecord(
                user_id=owner_id,
                key=idempotency_key,
                request_hash=request_hash,
                status_code=201,
                response_body=public.model_dump(mode="json"),
                expires_at=now + timedelta(seconds=idempotency_ttl_s),
            )
        )
    try:
        await session.commit()
    except IntegrityError:
        await session.rollback()
        assert idempotency_key is not None  # the only unique constraint a plain create can hit
        record = await session.get(IdempotencyRecord, (owner_id, idempotency_key))
        if record is None:
            raise
        return _replay(record, request_hash)
    return CreateResult(task=public, replayed=False)


# --- read ----------------------------------------------------------------------------------------------


_TASK_BY_ID: AnySelect = sa.select(*Task.__table__.columns).where(  # type: ignore[attr-defined]
    col(Task.id) == sa.bindparam("task_id", type_=sa.BigInteger),
    col(Task.owner_id) == sa.bindparam("owner_id", type_=sa.BigInteger),
)


@lru_cache(maxsize=1)
def _authenticated_get_statement() -> AnySelect:
    """The access check and the task in one statement (PostgreSQL), as the list does: the check's row with
    the task's columns, NULL when the caller has no such task. Zero rows: no such user."""
    access = auth_service.ACCESS_CHECK.subquery("access")
    task = _TASK_BY_ID.lateral("task")
    return sa.select(access, task).select_from(access.outerjoin(task, sa.true()))


async def get_task(conn: DirectConnection, access: TokenClaims, task_id: int) -> dict[str, Any]:
    """The caller's task as a dict of column values; the token is checked against revocation in the same
    round trip on PostgreSQL (the route takes it unchecked: deps.UncheckedAccessClaims)."""
    params = {"task_id": task_id, "owner_id": access.sub, **auth_service.access_params(access)}
    if conn.dialect == "postgresql":
        fetched = await fetch_mappings(conn, _authenticated_get_statement(), params)
        auth_service.check_access(fetched[0] if fetched else None)
        row: Mapping[str, Any] | None = fetched[0] if fetched[0]["id"] is not None else None
    else:  # SQLite (a local run) has no LATERAL: two statements
        checked = await fetch_mappings(conn, auth_service.ACCESS_CHECK, auth_service.access_params(access))
        auth_service.check_access(checked[0] if checked else None)
        found = await fetch_mappings(conn, _TASK_BY_ID, params)
        row = found[0] if found else None
    if row is None:
        raise not_found("Task")
    return _public_task(row)


@dataclass(frozen=True, slots=True)
class TaskFilters:
    status: list[TaskStatus] | None = None
    priority: list[TaskPriority] | None = None
    tags: list[str] | None = None
    due_after: datetime | None = None
    due_before: datetime | None = None
    q: str | None = None


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


@dataclass(frozen=True, slots=True)
class _ListShape:
    """Which clauses a list query has. Equal shapes share one statement object (and its compiled SQL)."""

    dialect: str
    statuses: bool
    priorities: bool
    tag_count: int
    due_after: bool
    due_before: bool
    title_search: bool
    sort: SortKey
    cursor: Literal["none", "value", "null-tail"]


@lru_cache(maxsize=512)
def _list_statement(shape: _ListShape) -> AnySelect:
    """The page query for a shape, with every value a named bindparam (see fetch_mappings)."""
    table: Any = Task.__table__  # type: ignore[attr-defined]
    c = table.c
    pg = shape.dialect == "postgresql"
    clauses: list[Any] = [c.owner_id == sa.bindparam("owner_id")]
    if shape.statuses:
        clauses.append(
            c.status == sa.any_(sa.bindparam("statuses", type_=ARRAY(sa.String)))
            if pg
            else c.status.in_(sa.bindparam("statuses", expanding=True))
        )
    if shape.priorities:
        clauses.append(
            c.priority == sa.any_(sa.bindparam("priorities", type_=ARRAY(sa.SmallInteger)))
            if pg
            else sa.type_coerce(c.priority, sa.SmallInteger).in_(sa.bindparam("priorities", expanding=True))
        )
    if shape.due_after:
        clauses.append(c.due_date >= sa.bindparam("due_after", type_=c.due_date.type))
    if shape.due_before:
        clauses.append(c.due_date < sa.bindparam("due_before", type_=c.due_date.type))
    if shape.title_search:
        clauses.append(c.title.ilike(sa.bindparam("title_pattern"), escape="\\"))
    if shape.tag_count and pg:
        # jsonb @> '["a","b"]', served by the GIN index.
        clauses.append(
            sa.type_coerce(c.tags, JSONB).contains(sa.cast(sa.bindparam("tags_json", type_=sa.String), JSONB))
        )
    for i in range(shape.tag_count if not pg else 0):
        each = sa.func.json_each(c.tags).table_valued("value")
        clauses.append(sa.exists(sa.select(1).select_from(each).where(each.c.value == sa.bindparam(f"tag_{i}"))))

    descending = shape.sort.startswith("-")
    name = shape.sort.lstrip("-")
    column = c[name]
    if name == "priority":
        column = sa.type_coerce(column, sa.SmallInteger)  # compared and paged by rank
    if shape.cursor == "null-tail":
        # Already inside the NULL tail: only the id orders what is left.
        after_id = c.id < sa.bindparam("last_id") if descending else c.id > sa.bindparam("last_id")
        clauses.append(sa.and_(column.is_(None), after_id))
    elif shape.cursor == "value":
        # A row comparison, which PostgreSQL takes as where to start reading the (owner_id, column, id) index.
        key = sa.tuple_(column, c.id)
        last = sa.tuple_(sa.bindparam("last_value", type_=column.type), sa.bindparam("last_id"))
        clause = key < last if descending else key > last
        if name in _NULLABLE_SORTS:
            clause = sa.or_(clause, column.is_(None))
        clauses.append(clause)
    published = [table.c[name] for name in PUBLIC_TASK_FIELDS]
    return (
        sa.select(*published)
        .where(*clauses)
        .order_by(*_page_order(shape.sort, column, c.id))
        .limit(sa.bindparam("row_limit"))
    )


def _page_order(sort: SortKey, column: Any, by_id: Any) -> list[Any]:
    """(sort column, id) in the sort's direction, NULLs last. NULLS LAST is spelled only for a nullable column:
    on a NOT NULL one, `DESC NULLS LAST` keeps PostgreSQL from reading the (owner_id, column, id) index
    backwards, and it sorts all of the owner's rows for every page instead."""
    descending = sort.startswith("-")
    key = column.desc() if descending else column.asc()
    if sort.lstrip("-") in _NULLABLE_SORTS:
        key = key.nulls_last()
    return [key, by_id.desc() if descending else by_id.asc()]


_INSTANT_SORTS = {"created_at", "updated_at", "due_date"}


def _cursor_value(sort: str, cursor: Cursor) -> Any:
    """The cursor's sort value as the column's bind value, or a 400: a value the driver cannot encode or
    PostgreSQL cannot take would otherwise be a DataError."""
    name = sort.lstrip("-")
    value = cursor.value
    if not isinstance(value, str):
        raise invalid_cursor()
    if name in _INSTANT_SORTS:
        return _cursor_instant(value)
    if name == "priority":
        try:
            return TaskPriority(value).rank
        except ValueError:
            raise invalid_cursor() from None
    if name == "title":
        # No stored title is longer, holds NUL (PostgreSQL text cannot) or a lone surrogate (not UTF-8).
        if len(value) > TITLE_MAX or "\x00" in value or not _encodable(value):
            raise invalid_cursor()
        return value
    raise AssertionError(f"no cursor rule for sort {sort!r}")  # a new SortKey needs one here


def _cursor_instant(text: str) -> datetime:
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


def _encodable(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


# What a task response carries, in its order: the table's columns but the internal ones (legacy_id).
PUBLIC_TASK_FIELDS = tuple(TaskPublic.model_fields)


def _public_task(row: Mapping[str, Any]) -> dict[str, Any]:
    """A task row (its columns among others) as the published task: TaskPublic's fields, the priority by name."""
    task = {name: row[name] for name in PUBLIC_TASK_FIELDS}
    priority = task["priority"]
    if isinstance(priority, int):  # a rank straight from the database (asyncpg path)
        task["priority"] = RANK_PRIORITY[priority]
    return task


@lru_cache(maxsize=512)
def _authenticated_list_statement(shape: _ListShape) -> AnySelect:
    """The access check and the page in one statement (PostgreSQL): the check's row, joined laterally to the
    page's rows (a NULL page row when the page is empty), in the page's order. Zero rows: no such user."""
    access = auth_service.ACCESS_CHECK.subquery("access")
    page = _list_statement(shape).lateral("page")
    order = _page_order(shape.sort, page.c[shape.sort.lstrip("-")], page.c.id)
    return sa.select(access, page).select_from(access.outerjoin(page, sa.true())).order_by(*order)


async def list_tasks(
    conn: DirectConnection,
    access: TokenClaims,
    filters: TaskFilters,
    sort: SortKey,
    limit: int,
    cursor_token: str | None,
) -> tuple[list[dict[str, Any]], str | None]:
    """One page of the caller's tasks in (sort column, id) order, NULL sort values last, and the cursor for
    the next page. The caller's token is checked against revocation here, in the same round trip as the page
    on PostgreSQL (the route takes the token unchecked: deps.UncheckedAccessClaims)."""
    owner_id = access.sub
    dialect = conn.dialect
    cursor = decode_cursor(cursor_token, sort) if cursor_token else None
    cursor_kind: Literal["none", "value", "null-tail"] = "none"
    params: dict[str, Any] = {"owner_id": owner_id, "row_limit": limit + 1}
    if cursor is not None:
        params["last_id"] = cursor.last_id
        if cursor.value is None:
            if sort.lstrip("-") not in _NULLABLE_SORTS:
                raise invalid_cursor()
            cursor_kind = "null-tail"
        else:
            cursor_kind = "value"
            params["last_value"] = _cursor_value(sort, cursor)
    if filters.status:
        params["statuses"] = [s.value for s in filters.status]
    if filters.priority:
        params["priorities"] = [p.rank for p in filters.priority]
    if filters.due_after is not None:
        params["due_after"] = filters.due_after
    if filters.due_before is not None:
        params["due_before"] = filters.due_before
    if filters.q:
        params["title_pattern"] = f"%{_escape_like(filters.q)}%"
    tags = list(dict.fromkeys(filters.tags or ()))
    if dialect == "postgresql" and tags:
        params["tags_json"] = json.dumps(tags)
    else:
        params.update({f"tag_{i}": tag for i, tag in enumerate(tags)})
    shape = _ListShape(
        dialect=dialect,
        statuses=bool(filters.status),
        priorities=bool(filters.priority),
        tag_count=len(tags),
        due_after=filters.due_after is not None,
        due_before=filters.due_before is not None,
        title_search=bool(filters.q),
        sort=sort,
        cursor=cursor_kind,
    )
    if dialect == "postgresql":
        fetched = await fetch_mappings(
            conn, _authenticated_list_statement(shape), {**params, **auth_service.access_params(access)}
        )
        auth_service.check_access(fetched[0] if fetched else None)
        page: Sequence[Mapping[str, Any]] = [row for row in fetched if row["id"] is not None]
    else:  # SQLite (a local run) has no LATERAL: two statements
        checked = await fetch_mappings(conn, auth_service.ACCESS_CHECK, auth_service.access_params(access))
        auth_service.check_access(checked[0] if checked else None)
        page = await fetch_mappings(conn, _list_statement(shape), params)
    rows = [_public_task(row) for row in page]
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        last = rows[-1]
        value = last[sort.lstrip("-")]
        if isinstance(value, TaskPriority):
            value = value.value
        next_cursor = encode_cursor(Cursor(sort=sort, value=value, last_id=last["id"]))
    return rows, next_cursor


# --- update / delete ---------------------------------------------------------------------------------


def _precondition_failed() -> ApiError:
    return ApiError(412, "precondition-failed", "The task has changed since the ETag given in If-Match.")


async def _missing_or_stale(session: AsyncSession, owner_id: int, task_id: int) -> ApiError:
    exists = (await session.exec(select(Task.id).where(Task.id == task_id, Task.owner_id == owner_id))).first()
    if exists is None:
        return not_found("Task")
    return _precondition_failed()


async def update_task(
    session: AsyncSession, owner_id: int, task_id: int, changes: TaskUpdate, if_match: str | None
) -> Task:
    expected = parse_if_match(if_match, task_id)
    values: dict[str, Any] = changes.model_dump(exclude_unset=True)
    values["version"] = col(Task.version) + 1
    values["updated_at"] = datetime.now(UTC)
    conditions: list[Any] = [Task.id == task_id, Task.owner_id == owner_id]
    if isinstance(expected, int):
        # The version check and the write are one statement: of N concurrent PATCHes with the same
        # If-Match, the row lock lets exactly one match the old version.
        conditions.append(Task.version == expected)
    result = await session.exec(sa.update(Task).where(*conditions).values(**values).returning(Task))
    task: Task | None = result.scalars().first()
    if task is None:
        await session.rollback()
        raise await _missing_or_stale(session, owner_id, task_id)
    await session.commit()
    return task


async def delete_task(session: AsyncSession, owner_id: int, task_id: int, if_match: str | None) -> None:
    expected = parse_if_match(if_match, task_id)
    conditions: list[Any] = [Task.id == task_id, Task.owner_id == owner_id]
    if isinstance(expected, int):
        conditions.append(Task.version == expected)
    result = await session.exec(sa.delete(Task).where(*conditions))
    if result.rowcount != 1:
        await session.rollback()
        raise await _missing_or_stale(session, owner_id, task_id)
    await session.commit()
