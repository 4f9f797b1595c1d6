"""Per-user task operations. Every query is scoped by owner, so another user's task is simply not found."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from taskplatform.api.errors import ApiError, not_found
from taskplatform.api.models import IdempotencyRecord, Task, TaskPriority, TaskStatus
from taskplatform.api.pagination import Cursor, decode_cursor, encode_cursor
from taskplatform.api.schemas import TaskCreate, TaskPublic, TaskUpdate

SortKey = Literal[
    "created_at",
    "-created_at",
    "updated_at",
    "-updated_at",
    "due_date",
    "-due_date",
    "priority",
    "-priority",
    "title",
    "-title",
]
_SORT_COLUMNS: dict[str, Any] = {
    "created_at": Task.created_at,
    "updated_at": Task.updated_at,
    "due_date": Task.due_date,
    "priority": Task.priority,
    "title": Task.title,
}
_NULLABLE_SORTS = {"due_date"}


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


async def create_task(
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


async def get_task(session: AsyncSession, owner_id: int, task_id: int) -> Task:
    task = (await session.exec(select(Task).where(Task.id == task_id, Task.owner_id == owner_id))).first()
    if task is None:
        raise not_found("Task")
    return task


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


def _filter_clauses(session: AsyncSession, owner_id: int, filters: TaskFilters) -> list[Any]:
    clauses: list[Any] = [Task.owner_id == owner_id]
    if filters.status:
        clauses.append(col(Task.status).in_([s.value for s in filters.status]))
    if filters.priority:
        clauses.append(col(Task.priority).in_(filters.priority))
    if filters.due_after is not None:
        clauses.append(col(Task.due_date) >= filters.due_after)
    if filters.due_before is not None:
        clauses.append(col(Task.due_date) < filters.due_before)
    if filters.q:
        clauses.append(col(Task.title).ilike(f"%{_escape_like(filters.q)}%", escape="\\"))
    if filters.tags:
        tags_col: Any = col(Task.tags)
        if session.get_bind().dialect.name == "postgresql":
            # jsonb @> '["a","b"]', served by the GIN index.
            clauses.append(sa.type_coerce(tags_col, JSONB).contains(filters.tags))
        else:
            for tag in filters.tags:
                each = sa.func.json_each(tags_col).table_valued("value")
                clauses.append(sa.exists(sa.select(1).select_from(each).where(each.c.value == tag)))
    return clauses


def _keyset_clause(sort: str, cursor: Cursor) -> Any:
    """Rows strictly after the cursor in (sort column, id) order, with NULL sort values last."""
    descending = sort.startswith("-")
    name = sort.lstrip("-")
    column: Any = _SORT_COLUMNS[name]
    id_col: Any = col(Task.id)
    value: Any = cursor.value
    if value is not None and name in {"created_at", "updated_at", "due_date"}:
        value = datetime.fromisoformat(value)
    elif value is not None and name == "priority":
        value = TaskPriority(value)
    if value is None:
        if name not in _NULLABLE_SORTS:
            raise ApiError(400, "invalid-cursor", "The cursor is malformed; start again without one.")
        # Already inside the NULL tail: only the id orders what is left.
        return sa.and_(column.is_(None), id_col < cursor.last_id if descending else id_col > cursor.last_id)
    beyond = column < value if descending else column > value
    tie = sa.and_(column == value, id_col < cursor.last_id if descending else id_col > cursor.last_id)
    clause = sa.or_(beyond, tie)
    if name in _NULLABLE_SORTS:
        clause = sa.or_(clause, column.is_(None))
    return clause


async def list_tasks(
    session: AsyncSession, owner_id: int, filters: TaskFilters, sort: SortKey, limit: int, cursor_token: str | None
) -> tuple[list[sa.Row[Any]], str | None]:
    clauses = _filter_clauses(session, owner_id, filters)
    if cursor_token:
        clauses.append(_keyset_clause(sort, decode_cursor(cursor_token, sort)))
    name = sort.lstrip("-")
    column: Any = _SORT_COLUMNS[name]
    id_col: Any = col(Task.id)
    if sort.startswith("-"):
        order = [column.desc().nulls_last(), id_col.desc()]
    else:
        order = [column.asc().nulls_last(), id_col.asc()]
    # Plain rows, not ORM entities: a page is read-only, and identity-map bookkeeping for 21 objects costs
    # more than the query. TaskPublic validates from the rows' attributes all the same.
    statement = sa.select(*Task.__table__.columns).where(*clauses).order_by(*order).limit(limit + 1)  # type: ignore[attr-defined]
    rows = list((await session.exec(statement)).all())  # type: ignore[call-overload]
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        last = rows[-1]
        assert last.id is not None
        value = getattr(last, name)
        if isinstance(value, TaskPriority):
            value = value.value
        next_cursor = encode_cursor(Cursor(sort=sort, value=value, last_id=last.id))
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
