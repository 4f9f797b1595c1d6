"""Operations served without FastAPI's dependency solver, each by a handler written for it.

FastAPI's request handler re-derives, on every request, each dependency's kind, its security scopes and its
cache key, validates each field of a query model on its own, and wraps the call in body, telemetry and
exit-stack handling. For the task list that machinery costs more than its statement does (docs/benchmarks.md
has the measurements). A `DirectRoute` serves a declared APIRoute's path and methods with a handler that calls
the operation's dependencies and its endpoint itself; which operations are served this way is a named list
(main.DIRECT_ROUTES), never inferred. The APIRoute stays as declared: it is what the OpenAPI document publishes,
and it serves the operation whenever the app has dependency overrides, so that overrides behave as documented.
tests/integration/test_fast_path_parity.py compares the answers of both.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import Request, Response
from fastapi.routing import APIRoute
from starlette.routing import Match, Route
from starlette.types import Scope

DirectHandler = Callable[[Request], Awaitable[Response]]


class DirectRoute(Route):
    """A Starlette route for an APIRoute's path, matching exactly the methods it declares (Starlette would add
    HEAD to a GET)."""

    def __init__(self, route: APIRoute, handler: DirectHandler) -> None:
        methods = set(route.methods or ())
        super().__init__(route.path, handler, methods=methods, name=route.name, include_in_schema=False)
        self.methods = methods

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        app = scope.get("app")
        if app is not None and getattr(app, "dependency_overrides", None):
            return Match.NONE, {}
        match, child_scope = super().matches(scope)
        if match is not Match.NONE:
            child_scope["route"] = self  # as an APIRoute does: the route template for the metrics and the log line
        return match, child_scope


def direct_routes(routes: list[APIRoute], handlers: dict[Callable[..., object], DirectHandler]) -> list[DirectRoute]:
    """A DirectRoute for each APIRoute whose endpoint has a handler; each handler must find its route."""
    served = [DirectRoute(route, handlers[route.endpoint]) for route in routes if route.endpoint in handlers]
    if len(served) != len(handlers):
        found = {route.endpoint for route in routes}
        missing = [getattr(endpoint, "__name__", endpoint) for endpoint in handlers if endpoint not in found]
        raise ValueError(f"direct handlers for endpoints no route declares: {missing}")
    return served
