from __future__ import annotations

from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Header, Path, Query, Request, Response

from taskplatform.api.deps import (
    API_PREFIX,
    Access,
    Caller,
    DatabaseDep,
    SettingsDep,
    get_database,
    verified_access_token,
)
from taskplatform.api.limits import ID_MAX, ID_MIN
from taskplatform.api.models import Task
from taskplatform.api.routes.common import PublishedJSON, QueryParameters, problems
from taskplatform.api.schemas import NO_NUL, TaskCreate, TaskPage, TaskPublic, TaskUpdate
from taskplatform.api.services import tasks as task_service
from taskplatform.api.services.task_queries import TaskListQuery

router = APIRouter(prefix=f"{API_PREFIX}/tasks", tags=["tasks"])

TaskId = Annotated[int, Path(ge=ID_MIN, le=ID_MAX, description="Task id.")]
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
    access: Access,  # checked in the insert itself, or first with an Idempotency-Key
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


def next_page_link(request: Request, cursor: str) -> str:
    """RFC 8288 Link to the next page: this request's URL with `cursor` replaced, the other parameters kept in
    their order. What starlette's URL.include_query_params gives, built from the parsed query in one pass
    (that method parses and splits the URL twice more: ~7% of the list's CPU under load)."""
    query = [(name, value) for name, value in request.query_params.multi_items() if name != "cursor"]
    query.append(("cursor", cursor))
    url = request.url
    return f'<{url.scheme}://{url.netloc}{url.path}?{urlencode(query)}>; rel="next"'


@router.get("", response_model=TaskPage, responses=problems(400, 401, 422))
async def list_tasks(
    request: Request,
    access: Access,  # revocation is checked in the page query itself: one round trip
    db: DatabaseDep,
    query: Annotated[TaskListQuery, Query()],
) -> PublishedJSON:
    rows, next_cursor = await task_service.list_tasks(db, access, query)
    headers = {"Link": next_page_link(request, next_cursor)} if next_cursor else None
    return PublishedJSON({"items": rows, "next_cursor": next_cursor}, headers=headers)


list_query = QueryParameters(TaskListQuery)


async def list_tasks_directly(request: Request) -> Response:
    """`list_tasks` served without FastAPI's dependency solver (main.DIRECT_ROUTES): its dependencies called
    here, in the order FastAPI solves them, and the query string parsed in one validation (QueryParameters,
    which gives FastAPI's values and errors: tests/unit/test_query_parameters.py)."""
    access = await verified_access_token(request)
    db = await get_database(request)
    return await list_tasks(request, access, db, await list_query(request))


@router.get(
    "/{task_id}",
    response_model=TaskPublic,
    responses={304: {"description": "Not Modified (If-None-Match matched)"}, **problems(401, 404, 422)},
)
async def get_task(
    task_id: TaskId,
    access: Access,  # revocation is checked in the task's query itself: one round trip
    db: DatabaseDep,
    if_none_match: Annotated[str | None, Header(max_length=1024)] = None,
) -> Response:
    task = await task_service.get_task(db, access, task_id)
    etag = task_service.etag_for(task_id, task["version"])
    if if_none_match is not None and etag in {t.strip() for t in if_none_match.split(",")}:
        return Response(status_code=304, headers={"ETag": etag})
    return PublishedJSON(task, headers={"ETag": etag})


@router.patch("/{task_id}", response_model=TaskPublic, responses=problems(401, 404, 412, 422))
async def update_task(
    task_id: TaskId,
    changes: TaskUpdate,
    caller: Caller,
    db: DatabaseDep,
    response: Response,
    if_match: IfMatch = None,
) -> Task:
    task = await task_service.update_task(db, caller, task_id, changes, if_match)
    _with_etag(response, task)
    return task


@router.delete("/{task_id}", status_code=204, responses=problems(401, 404, 412, 422))
async def delete_task(task_id: TaskId, caller: Caller, db: DatabaseDep, if_match: IfMatch = None) -> Response:
    await task_service.delete_task(db, caller, task_id, if_match)
    return Response(status_code=204)
