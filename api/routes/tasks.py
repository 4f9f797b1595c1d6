from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Path, Query, Request, Response

from taskplatform.api.deps import (
    API_PREFIX,
    CurrentUserId,
    DatabaseDep,
    SessionDep,
    SettingsDep,
    UncheckedAccessClaims,
)
from taskplatform.api.limits import TAG_MAX, TITLE_MAX
from taskplatform.api.models import Task, TaskPriority, TaskStatus
from taskplatform.api.routes.common import problems
from taskplatform.api.schemas import NO_NUL, TaskCreate, TaskPage, TaskPublic, TaskUpdate, UtcDatetime
from taskplatform.api.services import tasks as task_service

router = APIRouter(prefix=f"{API_PREFIX}/tasks", tags=["tasks"])

TaskId = Annotated[int, Path(ge=1, le=2**63 - 1, description="Task id.")]
IfMatch = Annotated[
    str | None,
    Header(max_length=1024, description="ETag from a previous read; a stale one gives 412."),
]


def _with_etag(response: Response, task: Task | TaskPublic) -> None:
    assert task.id is not None
    response.headers["ETag"] = task_service.etag_for(task.id, task.version)


@router.post(
    "",
    status_code=201,
    response_model=TaskPublic,
    responses=problems(401, 422),
)
async def create_task(
    data: TaskCreate,
    access: UncheckedAccessClaims,  # checked in the insert itself, or first with an Idempotency-Key
    db: DatabaseDep,
    settings: SettingsDep,
    response: Response,
    idempotency_key: Annotated[
        str | None,
        Header(
            min_length=1,
            max_length=255,
            pattern=NO_NUL,
            description="Repeat a POST with the same key to get the first result instead of a duplicate.",
        ),
    ] = None,
) -> TaskPublic:
    result = await task_service.create_task(db, access, data, idempotency_key, settings.idempotency_ttl_s)
    _with_etag(response, result.task)
    response.headers["Location"] = f"{API_PREFIX}/tasks/{result.task.id}"
    if result.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return result.task


@router.get("", response_model=TaskPage, responses=problems(400, 401, 422))
async def list_tasks(
    request: Request,
    response: Response,
    access: UncheckedAccessClaims,  # revocation is checked in the page query itself: one round trip
    db: DatabaseDep,
    status: Annotated[list[TaskStatus] | None, Query(description="Any of these statuses.")] = None,
    priority: Annotated[list[TaskPriority] | None, Query(description="Any of these priorities.")] = None,
    tag: Annotated[
        list[Annotated[str, Query(min_length=1, max_length=TAG_MAX, pattern=NO_NUL)]] | None,
        Query(description="Tasks carrying all of these tags."),
    ] = None,
    due_after: Annotated[UtcDatetime | None, Query(description="due_date >= this.")] = None,
    due_before: Annotated[UtcDatetime | None, Query(description="due_date < this.")] = None,
    q: Annotated[
        str | None, Query(min_length=1, max_length=TITLE_MAX, pattern=NO_NUL, description="Text in the title.")
    ] = None,
    sort: Annotated[task_service.SortKey, Query(description="Sort key; '-' for descending.")] = "-created_at",
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=1024, description="next_cursor of the previous page.")] = None,
) -> dict[str, Any]:
    filters = task_service.TaskFilters(
        status=status, priority=priority, tags=tag, due_after=due_after, due_before=due_before, q=q
    )
    async with db.direct() as conn:
        rows, next_cursor = await task_service.list_tasks(conn, access, filters, sort, limit, cursor)
    if next_cursor:
        response.headers["Link"] = f'<{request.url.include_query_params(cursor=next_cursor)}>; rel="next"'
    # Plain dicts: FastAPI validates them once against TaskPage (validating here too would double the cost).
    return {"items": rows, "next_cursor": next_cursor}


@router.get(
    "/{task_id}",
    response_model=TaskPublic,
    responses={304: {"description": "Not Modified (If-None-Match matched)"}, **problems(401, 404, 422)},
)
async def get_task(
    task_id: TaskId,
    access: UncheckedAccessClaims,  # revocation is checked in the task's query itself: one round trip
    db: DatabaseDep,
    response: Response,
    if_none_match: Annotated[str | None, Header(max_length=1024)] = None,
) -> dict[str, Any] | Response:
    async with db.direct() as conn:
        task = await task_service.get_task(conn, access, task_id)
    etag = task_service.etag_for(task_id, task["version"])
    if if_none_match is not None and etag in {t.strip() for t in if_none_match.split(",")}:
        return Response(status_code=304, headers={"ETag": etag})
    response.headers["ETag"] = etag
    return task


@router.patch("/{task_id}", response_model=TaskPublic, responses=problems(401, 404, 412, 422))
async def update_task(
    task_id: TaskId,
    changes: TaskUpdate,
    user_id: CurrentUserId,
    session: SessionDep,
    response: Response,
    if_match: IfMatch = None,
) -> Task:
    task = await task_service.update_task(session, user_id, task_id, changes, if_match)
    _with_etag(response, task)
    return task


@router.delete("/{task_id}", status_code=204, responses=problems(401, 404, 412, 422))
async def delete_task(
    task_id: TaskId, user_id: CurrentUserId, session: SessionDep, if_match: IfMatch = None
) -> Response:
    await task_service.delete_task(session, user_id, task_id, if_match)
    return Response(status_code=204)
