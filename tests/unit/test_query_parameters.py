"""routes.common.QueryParameters against FastAPI's own handling of the same model as query parameters.

The list route parses its query string in one validation instead of FastAPI's per-parameter path; what a
client sees (the published parameters, the values read, the errors with their field paths) must not change.
"""

from typing import Annotated, Any

import pytest
from fastapi import Depends, FastAPI, Query
from fastapi.testclient import TestClient
from helpers.support import TEST_JWT_SECRET

from taskplatform.api.config import Settings
from taskplatform.api.main import create_app
from taskplatform.api.routes.tasks import list_query
from taskplatform.api.services.task_queries import TaskListQuery

# FastAPI's way (the reference) and ours, side by side on one throwaway app.
reference = FastAPI()


@reference.get("/fastapi")
async def parsed_by_fastapi(query: Annotated[TaskListQuery, Query()]) -> dict[str, Any]:
    return query.model_dump(mode="json")


@reference.get("/ours")
async def parsed_by_us(query: Annotated[TaskListQuery, Depends(list_query)]) -> dict[str, Any]:
    return query.model_dump(mode="json")


@pytest.fixture(scope="module")
def client() -> TestClient:
    return TestClient(reference)


def _published(document: dict[str, Any], path: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    parameters = document["paths"][path]["get"]["parameters"]
    components = document["components"]["schemas"]
    refs = {p["schema"]["anyOf"][0]["items"]["$ref"] for p in parameters if "$ref" in str(p["schema"])}
    return parameters, {ref.rsplit("/", 1)[1]: components[ref.rsplit("/", 1)[1]] for ref in refs}


def test_the_list_publishes_the_parameters_fastapi_would() -> None:
    app = create_app(Settings(environment="test", jwt_secret=TEST_JWT_SECRET, database_url="sqlite://"))  # type: ignore[arg-type]
    ours, our_refs = _published(app.openapi(), "/api/v1/tasks")
    theirs, their_refs = _published(reference.openapi(), "/fastapi")
    assert [p["name"] for p in ours] == list(TaskListQuery.model_fields)
    assert ours == theirs
    assert our_refs == their_refs and set(our_refs) == {"TaskStatus", "TaskPriority"}


@pytest.mark.parametrize(
    "query",
    [
        "",
        "limit=5",
        "limit=5&limit=7",  # a repeated single-valued parameter: the last one
        "status=todo&status=done&priority=high",
        "tag=a&tag=b&tag=a&unknown=1",  # unknown names ignored
        "due_after=2030-01-01T00:00:00&due_before=2030-02-01T00:00:00%2B02:00",
        "sort=title&cursor=abc&q=%D7%A9%D7%9C%D7%95%D7%9D%20%F0%9F%8E%89",  # RTL and emoji
        "q=%20padded%20",
        "status=nope",
        "status=todo&status=nope",
        "limit=0",
        "limit=101",
        "limit=abc&status=x&sort=owner_id",
        "tag=&tag=a",
        "tag=" + "a" * 51,
        "q=",
        "q=a%00b",
        "due_after=123",
        "due_before=yesterday",
        "cursor=" + "c" * 1025,
    ],
)
def test_values_and_errors_are_fastapis(client: TestClient, query: str) -> None:
    theirs = client.get(f"/fastapi?{query}")
    ours = client.get(f"/ours?{query}")
    assert ours.status_code == theirs.status_code
    if theirs.status_code == 200:
        assert ours.json() == theirs.json()
    else:
        assert theirs.status_code == 422
        assert [(e["loc"], e["type"], e["msg"]) for e in ours.json()["detail"]] == [
            (e["loc"], e["type"], e["msg"]) for e in theirs.json()["detail"]
        ]
