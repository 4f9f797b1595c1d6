"""routes.direct: which declarations are served without FastAPI's dependency solver, and that a client sees the
same thing either way (statuses, bodies, headers, overrides honoured)."""

from collections.abc import AsyncIterator
from typing import Annotated, Any

import fastapi.routing
import pytest
from fastapi import APIRouter, BackgroundTasks, Depends, FastAPI, Header, HTTPException, Request, Response
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from pydantic import BaseModel
from support import TEST_JWT_SECRET

from taskplatform.api.config import Settings
from taskplatform.api.main import create_app
from taskplatform.api.routes.direct import DirectRoute, direct_route, request_dependencies


async def token(request: Request) -> str:
    value = request.headers.get("x-token")
    if value is None:
        raise HTTPException(401, "no token", headers={"WWW-Authenticate": "Bearer"})
    return value


class Limit:
    """A callable instance, as a security scheme or a query model is."""

    async def __call__(self, request: Request) -> int:
        return int(request.query_params.get("limit", "10"))


limit = Limit()


async def page(request: Request, who: Annotated[str, Depends(token)], n: Annotated[int, Depends(limit)]) -> Response:
    return Response(f"{who}:{n}:{request.url.path}", headers={"X-Seen": "1"}, media_type="text/plain")


def _routed(endpoint: Any, path: str = "/p", **kwargs: Any) -> tuple[APIRouter, APIRoute]:
    router = APIRouter()
    router.add_api_route(path, endpoint, methods=["GET"], **kwargs)
    route = router.routes[0]
    assert isinstance(route, APIRoute)
    return router, route


def test_the_plan_is_the_dependencies_in_declaration_order() -> None:
    plan = request_dependencies(_routed(page)[1])
    assert plan == [("who", token, "request"), ("n", limit, "request")]


async def run_for_its_effect(request: Request) -> str:
    return "x"


def _sync(request: Request) -> str:
    return "x"


async def _yielding(request: Request) -> AsyncIterator[str]:
    yield "x"


async def _nested(who: Annotated[str, Depends(token)]) -> str:
    return who


class Body(BaseModel):
    title: str


async def with_path(task_id: int, who: Annotated[str, Depends(token)]) -> Response:
    return Response()


async def with_query(q: str, who: Annotated[str, Depends(token)]) -> Response:
    return Response()


async def with_header(x_thing: Annotated[str | None, Header()] = None) -> Response:
    return Response()


async def with_body(body: Body) -> Response:
    return Response()


async def with_response_parameter(response: Response, who: Annotated[str, Depends(token)]) -> Response:
    return response


async def with_background(tasks: BackgroundTasks) -> Response:
    return Response()


async def with_nested(who: Annotated[str, Depends(_nested)]) -> Response:
    return Response()


async def with_yield(who: Annotated[str, Depends(_yielding)]) -> Response:
    return Response()


async def with_sync_dependency(who: Annotated[str, Depends(_sync)]) -> Response:
    return Response()


def sync_endpoint(who: Annotated[str, Depends(token)]) -> Response:
    return Response()


async def returns_a_model(who: Annotated[str, Depends(token)]) -> dict[str, str]:
    return {"who": who}


async def same_dependency_twice(a: Annotated[str, Depends(token)], b: Annotated[str, Depends(token)]) -> Response:
    return Response()


@pytest.mark.parametrize(
    ("endpoint", "kwargs"),
    [
        (with_path, {"path": "/p/{task_id}"}),
        (with_query, {}),
        (with_header, {}),
        (with_body, {}),
        (with_response_parameter, {}),
        (with_background, {}),
        (with_nested, {}),
        (with_yield, {}),
        (with_sync_dependency, {}),
        (sync_endpoint, {}),
        (returns_a_model, {}),
        (same_dependency_twice, {}),  # FastAPI calls it once and shares the result
        (page, {"dependencies": [Depends(run_for_its_effect)]}),  # run for its effect, without a parameter
    ],
    ids=lambda value: getattr(value, "__name__", "kwargs"),
)
def test_declarations_it_cannot_reproduce_keep_fastapis_handler(endpoint: Any, kwargs: dict[str, Any]) -> None:
    _, route = _routed(endpoint, **kwargs)
    assert request_dependencies(route) is None
    assert direct_route(route) is None


def test_the_apps_directly_served_operations_are_the_task_list_and_the_metrics() -> None:
    app = create_app(Settings(environment="test", jwt_secret=TEST_JWT_SECRET, database_url="sqlite://"))  # type: ignore[arg-type]
    served = sorted(
        (route.path, tuple(sorted(route.methods))) for route in app.router.routes if isinstance(route, DirectRoute)
    )
    assert served == [("/api/v1/tasks", ("GET",)), ("/metrics", ("GET",))]


@pytest.fixture
def solver_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Counts FastAPI's dependency-solver runs, to tell which path served a request."""
    calls: list[str] = []
    original = fastapi.routing.solve_dependencies

    async def counting(*args: Any, **kwargs: Any) -> Any:
        calls.append("solved")
        return await original(*args, **kwargs)

    monkeypatch.setattr(fastapi.routing, "solve_dependencies", counting)
    return calls


def _app(direct: bool) -> FastAPI:
    app = FastAPI()
    router, route = _routed(page)
    if direct:
        served = direct_route(route)
        assert served is not None
        app.router.routes.append(served)
    app.include_router(router)
    return app


@pytest.mark.parametrize(
    ("method", "headers", "query"),
    [
        ("GET", {"x-token": "alice"}, "limit=5"),
        ("GET", {"x-token": "alice"}, ""),
        ("GET", {}, ""),  # the dependency's 401, with its header
        ("GET", {"x-token": "alice"}, "limit=x"),  # the dependency's own error: a 500 either way
        ("HEAD", {"x-token": "alice"}, ""),  # not declared: 405 either way, not a GET without a body
        ("POST", {"x-token": "alice"}, ""),
    ],
)
def test_a_client_sees_the_same_as_through_fastapis_handler(
    solver_calls: list[str], method: str, headers: dict[str, str], query: str
) -> None:
    seen = []
    for direct in (True, False):
        with TestClient(_app(direct), raise_server_exceptions=False) as client:
            response = client.request(method, f"/p?{query}", headers=headers)
        seen.append((response.status_code, response.content, sorted(response.headers.items())))
    assert seen[0] == seen[1]
    if method == "GET":
        assert solver_calls == ["solved"]  # only the app without the direct route solved dependencies


def test_overrides_make_the_direct_route_step_aside(solver_calls: list[str]) -> None:
    app = _app(direct=True)
    with TestClient(app) as client:
        assert client.get("/p", headers={"x-token": "alice"}).text == "alice:10:/p"
        assert solver_calls == []
        app.dependency_overrides[token] = lambda: "mallory"
        assert client.get("/p").text == "mallory:10:/p"
        assert solver_calls == ["solved"]
        app.dependency_overrides.clear()
        assert client.get("/p", headers={"x-token": "bob"}).text == "bob:10:/p"
        assert solver_calls == ["solved"]
