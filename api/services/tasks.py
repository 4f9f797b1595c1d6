"""Per-user task operations. Every statement is scoped by owner, so another user's task is simply not found.

The hot operations (list, one task, a create without Idempotency-Key) take the caller's token unchecked and, on
the fast path, fold the revocation check into their one statement (services.access.fetch_checked); elsewhere they
check first. The others take a checked caller and run in an ORM session.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from taskplatform.api.db import Database, Row
from taskplatform.api.errors import ApiError, not_found
from taskplatform.api.models import IdempotencyRecord, Task
from taskplatform.api.schemas import TaskCreate, TaskPublic, TaskUpdate
from taskplatform.api.services import access as access_service
from taskplatform.api.services import task_queries as queries
from taskplatform.api.services.access import CheckedAccess, UncheckedAccess
from taskplatform.api.services.task_queries import TaskListQuery


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
    db: Database, access: UncheckedAccess, data: TaskCreate, idempotency_key: str | None, idempotency_ttl_s: int
) -> CreateResult:
    """A new task of the caller's. Without an Idempotency-Key on the fast path: one round trip that checks the
    token and inserts. With one (or elsewhere): the check, then the task and its idempotency record in one
    transaction."""
    if idempotency_key is None and db.fast_path:
        params = queries.new_task_params(data, datetime.now(UTC))
        # One statement outside an explicit transaction: atomic and committed on its own.
        _, rows = await access_service.fetch_checked(db, access, queries.INSERT_WITH_ACCESS_CHECK, params)
        return CreateResult(task=TaskPublic.model_validate(queries.public_task(rows[0])), replayed=False)
    caller = await access_service.check(db, access)
    async with db.session() as session:
        return await _create_in_transaction(session, caller.user_id, data, idempotency_key, idempotency_ttl_s)


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


async def get_task(db: Database, access: UncheckedAccess, task_id: int) -> Row:
    """The caller's task, published; on the fast path the token is checked against revocation in the same round
    trip."""
    if db.fast_path:
        _, rows = await access_service.fetch_checked(
            db, access, queries.TASK_BY_ID_WITH_ACCESS_CHECK, {"task_id": task_id}
        )
        found = [row for row in rows if row["id"] is not None]
    else:  # the check, then the task (SQLite has no LATERAL)
        caller = await access_service.check(db, access)
        found = await db.fetch(queries.TASK_BY_ID, {"task_id": task_id, **caller.caller()})
    if not found:
        raise not_found("Task")
    return queries.public_task(found[0])


async def list_tasks(db: Database, access: UncheckedAccess, query: TaskListQuery) -> tuple[list[Row], str | None]:
    """One page of the caller's tasks in (sort column, id) order, NULL sort values last, and the cursor for the
    next page; on the fast path the token is checked against revocation in the same round trip as the page."""
    shape, params = queries.list_request(query, db.dialect)
    if db.fast_path:
        statement = queries.page_statement_with_access_check(shape)
        _, rows = await access_service.fetch_checked(db, access, statement, params)
        rows = [row for row in rows if row["id"] is not None]  # the NULL page row of an empty page is no task
    else:  # the check, then the page (SQLite has no LATERAL)
        caller = await access_service.check(db, access)
        rows = await db.fetch(queries.page_statement(shape), {**params, **caller.caller()})
    return queries.page_of(rows, query)


# --- update / delete ---------------------------------------------------------------------------------


def _precondition_failed() -> ApiError:
    return ApiError(412, "precondition-failed", "The task has changed since the ETag given in If-Match.")


async def _missing_or_stale(session: AsyncSession, owner_id: int, task_id: int) -> ApiError:
    exists = (await session.exec(select(Task.id).where(Task.id == task_id, Task.owner_id == owner_id))).first()
    if exists is None:
        return not_found("Task")
    return _precondition_failed()


async def update_task(
    db: Database, caller: CheckedAccess, task_id: int, changes: TaskUpdate, if_match: str | None
) -> Task:
    async with db.session() as session:
        return await _update_task(session, caller.user_id, task_id, changes, if_match)


async def _update_task(
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


async def delete_task(db: Database, caller: CheckedAccess, task_id: int, if_match: str | None) -> None:
    async with db.session() as session:
        await _delete_task(session, caller.user_id, task_id, if_match)


async def _delete_task(session: AsyncSession, owner_id: int, task_id: int, if_match: str | None) -> None:
    expected = parse_if_match(if_match, task_id)
    conditions: list[Any] = [Task.id == task_id, Task.owner_id == owner_id]
    if isinstance(expected, int):
        conditions.append(Task.version == expected)
    result = await session.exec(sa.delete(Task).where(*conditions))
    if result.rowcount != 1:
        await session.rollback()
        raise await _missing_or_stale(session, owner_id, task_id)
    await session.commit()
