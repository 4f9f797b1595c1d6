"""Hot operations served without FastAPI's general dependency solver, generated from their own declaration.

FastAPI's request handler re-derives, on every request, each dependency's kind (generator or not, coroutine
or not), its security scopes and its cache key, and wraps the call in body, telemetry and exit-stack
handling. For the task list, whose dependencies each read nothing but the request (the bearer token, the
database handle, the query model), that machinery was ~80 µs of its ~580 µs of CPU in process
(docs/benchmarks.md). `direct_route` builds, from an APIRoute's own dependency tree, a plain Starlette route
that calls those dependencies and the endpoint itself. The APIRoute stays as declared: it is what the
OpenAPI document publishes, and what serves the operation whenever the direct route steps aside.

Only a declaration the direct route reproduces exactly is served this way: an async endpoint whose
parameters are the request and dependencies, annotated to return a Response (so no response model is
applied); each dependency async, taking only the request, with no parameters, sub-dependencies, scopes or
yield of its own, each used once. Anything else (path, query, header, cookie or body parameters, a
Response or BackgroundTasks parameter, nested dependencies) keeps FastAPI's handler. At request time the
direct route steps aside while the app has dependency overrides, so that overrides behave as documented.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import Request, Response
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from starlette.routing import Match, Route
from starlette.types import Scope

RequestDependency = tuple[str, Callable[..., Awaitable[Any]], str]  # (parameter, call, the call's request keyword)

_OWN_PARAMETERS = ("path_params", "query_params", "header_params", "cookie_params", "body_params")
_SPECIAL_PARAMETERS = (
    "websocket_param_name",
    "http_connection_param_name",
    "response_param_name",
    "background_tasks_param_name",
    "security_scopes_param_name",
)


def _is_async(call: Any) -> bool:
    # A function, or an instance whose class defines `async def __call__` (a security scheme, a query model).
    return inspect.iscoroutinefunction(call) or inspect.iscoroutinefunction(type(call).__call__)


def _declares_parameters(dependant: Dependant) -> bool:
    return any(getattr(dependant, name) for name in _OWN_PARAMETERS) or any(
        getattr(dependant, name) is not None for name in _SPECIAL_PARAMETERS
    )


def request_dependencies(route: APIRoute) -> list[RequestDependency] | None:
    """The route's dependencies in the order FastAPI solves them, when the route qualifies; else None."""
    endpoint = route.dependant.call
    if not inspect.iscoroutinefunction(endpoint) or _declares_parameters(route.dependant):
        return None
    returns = typing.get_type_hints(endpoint).get("return")
    if not (inspect.isclass(returns) and issubclass(returns, Response)):
        return None  # FastAPI would validate and serialize it against the response model
    plan: list[RequestDependency] = []
    for dependency in route.dependant.dependencies:
        call = dependency.call
        if (
            dependency.name is None  # a decorator-level dependency, run for its effect
            or call is None
            or not _is_async(call)  # sync ones run in a thread; generators need FastAPI's exit stacks
            or dependency.request_param_name is None
            or _declares_parameters(dependency)
            or dependency.dependencies
            or dependency.own_oauth_scopes
            or dependency.scope is not None
            or any(call is seen for _, seen, _ in plan)  # FastAPI would share one result between them
        ):
            return None
        plan.append((dependency.name, call, dependency.request_param_name))
    return plan


class DirectRoute(Route):
    """The Starlette route `direct_route` builds; it matches only the methods its APIRoute declares."""

    def __init__(self, route: APIRoute, plan: list[RequestDependency]) -> None:
        endpoint = route.dependant.call
        assert endpoint is not None
        request_name = route.dependant.request_param_name

        async def handle(request: Request) -> Response:
            values = {name: await call(**{keyword: request}) for name, call, keyword in plan}
            if request_name is not None:
                values[request_name] = request
            response: Response = await endpoint(**values)
            return response

        methods = set(route.methods or ())
        super().__init__(route.path, handle, methods=methods, name=route.name, include_in_schema=False)
        self.methods = methods  # exactly the declared ones: Starlette would add HEAD to a GET

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        app = scope.get("app")
        if app is not None and getattr(app, "dependency_overrides", None):
            return Match.NONE, {}
        match, child_scope = super().matches(scope)
        if match is not Match.NONE:
            child_scope["route"] = self  # as an APIRoute does: the route template for the metrics and the log line
        return match, child_scope


def direct_route(route: APIRoute) -> DirectRoute | None:
    plan = request_dependencies(route)
    return None if plan is None else DirectRoute(route, plan)
