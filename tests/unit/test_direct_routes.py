"""routes.direct: the operations served without FastAPI's dependency solver are the named ones, and a client sees
the same thing either way (statuses, bodies, headers, overrides honoured). The app's own direct route is compared
with FastAPI's handler on the real database in tests/integration/test_fast_path_parity.py."""

from typing import Annotated, Any

import fastapi.routing
import pytest
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request, Response
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from helpers.support import TEST_JWT_SECRET

from taskplatform.api.config import Settings
from taskplatform.api.main import DIRECT_ROUTES, create_app
from taskplatform.api.routes import tasks
from taskplatform.api.routes.direct import DirectRoute, direct_routes


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


async def page_directly(request: Request) -> Response:
    """`page` with its dependencies called in the order FastAPI solves them."""
    return await page(request, await token(request), await limit(request))


def _routed(endpoint: Any, path: str = "/p", **kwargs: Any) -> tuple[APIRouter, APIRoute]:
    router = APIRouter()
    router.add_api_route(path, endpoint, methods=["GET"], **kwargs)
    route = router.routes[0]
    assert isinstance(route, APIRoute)
    return router, route


def test_the_apps_directly_served_operations_are_the_named_ones() -> None:
    app = create_app(Settings(environment="test", jwt_secret=TEST_JWT_SECRET, database_url="sqlite://"))  # type: ignore[arg-type]
    served = sorted(
        (route.path, tuple(sorted(route.methods))) for route in app.router.routes if isinstance(route, DirectRoute)
    )
    assert served == [("/api/v1/tasks", ("GET",))]
    assert {tasks.list_tasks: tasks.list_tasks_directly} == DIRECT_ROUTES


def test_the_reference_app_serves_nothing_directly() -> None:
    settings = Settings(environment="test", jwt_secret=TEST_JWT_SECRET, database_url="sqlite://")  # type: ignore[arg-type]
    app = create_app(settings, fast_path=False)
    assert not [route for route in app.router.routes if isinstance(route, DirectRoute)]


def test_a_handler_for_an_endpoint_no_route_declares_is_refused() -> None:
    _, route = _routed(page)
    with pytest.raises(ValueError, match="page_directly"):
        direct_routes([route], {page: page_directly, page_directly: page_directly})


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
        app.router.routes.extend(direct_routes([route], {page: page_directly}))
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
