"""Application factory. Run with `taskplatform-api serve`, which also listens on METRICS_PORT (`uvicorn --factory
taskplatform.api.main:create_app` serves the API alone)."""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from anyio import to_thread
from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute
from prometheus_client import CollectorRegistry

from taskplatform.api import __doc__ as api_doc
from taskplatform.api.bodylimit import BodyLimitMiddleware
from taskplatform.api.config import Settings, get_settings
from taskplatform.api.db import Database
from taskplatform.api.errors import install_error_handlers
from taskplatform.api.gc_tuning import raised_gc_thresholds
from taskplatform.api.logging_setup import configure_logging
from taskplatform.api.observability import Metrics, MetricsPortMiddleware, PoolCollector, RequestContextMiddleware
from taskplatform.api.routes import auth, health, tasks, users
from taskplatform.api.routes.common import REF_TEMPLATE, problems
from taskplatform.api.routes.direct import DirectHandler, direct_routes
from taskplatform.api.schemas import Problem
from taskplatform.api.services.cleanup import prune_periodically

# The document reads from health and sign-in to the tasks; requests are matched the hot router first.
PUBLISHED_ORDER = (health.router, auth.router, users.router, tasks.router)
MATCHED_ORDER = (tasks.router, *(router for router in PUBLISHED_ORDER if router is not tasks.router))

# The operations served without FastAPI's dependency solver (routes.direct), by endpoint: the task list, whose
# dependencies and query model cost FastAPI's handler more CPU than its statement (docs/benchmarks.md).
DIRECT_ROUTES: dict[Callable[..., object], DirectHandler] = {tasks.list_tasks: tasks.list_tasks_directly}


def create_app(settings: Settings | None = None, *, fast_path: bool = True) -> FastAPI:
    """The API. `fast_path=False` serves every route through FastAPI's handler and every statement through
    SQLAlchemy: the reference the fast path is compared with (tests/integration/test_fast_path_parity.py)."""
    settings = settings or get_settings()
    configure_logging(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if settings.db_auto_migrate:
            from taskplatform.api.migrate import upgrade_head

            await to_thread.run_sync(upgrade_head, settings.database_url)
        # What exists now (modules, the app, its routes and schemas) lives as long as the process: moved out
        # of the collector's way, a full collection under load walks only what requests allocate.
        gc.freeze()
        pruning = (
            asyncio.create_task(prune_periodically(database.session, settings))
            if settings.cleanup_interval_s > 0
            else None
        )
        with raised_gc_thresholds():  # requests' garbage is freed by reference counting (gc_tuning.py)
            yield
        if pruning is not None:
            pruning.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pruning
        await database.close()

    docs = settings.serves_api_docs
    app = FastAPI(
        title="TaskPlatform API",
        version="0.1.0",
        description=api_doc,
        lifespan=lifespan,
        openapi_url="/openapi.json" if docs else None,
        docs_url="/docs" if docs else None,
        redoc_url="/redoc" if docs else None,
    )
    registry = CollectorRegistry()
    database = Database.open(settings, fast_path=fast_path)
    registry.register(PoolCollector(lambda: {**database.pool_stats(), "waiting": database.waiting}))
    app.state.settings = settings
    app.state.database = database
    app.state.metrics = Metrics(registry)

    install_error_handlers(app)
    # Inside the request context (request id, log line, metrics read no body): its 413s are logged and counted,
    # and a refusal escaping the app reaches this middleware, not that one's catch-all 500.
    app.add_middleware(BodyLimitMiddleware, max_body_bytes=settings.max_body_bytes)
    app.add_middleware(RequestContextMiddleware, metrics=app.state.metrics, log_requests=settings.log_requests)
    if settings.metrics_port:  # outermost: a scrape is no API request
        app.add_middleware(MetricsPortMiddleware, port=settings.metrics_port, registry=registry)
    # Routers carry their full prefix themselves, so route templates (metric labels) are full paths. They are
    # matched in the order they are included, and FastAPI tries every route of a router before the next one:
    # the task routes, which take nearly all traffic, come first (4% of a list's CPU when they came last).
    # Before them, the operations served directly (DIRECT_ROUTES): their handlers call the operations' own
    # dependencies, so only while the app adds none of its own.
    api_routes = [route for router in MATCHED_ORDER for route in router.routes if isinstance(route, APIRoute)]
    if fast_path and not app.router.dependencies:
        app.router.routes.extend(direct_routes(api_routes, DIRECT_ROUTES))
    for router in MATCHED_ORDER:
        app.include_router(router)
    app.state.route_methods = [(route.path_regex, set(route.methods or ())) for route in api_routes]

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            published = [route for router in PUBLISHED_ORDER for route in router.routes]
            schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=published)
            problem = Problem.model_json_schema(ref_template=REF_TEMPLATE)
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            components.update(problem.pop("$defs", {}))
            components["Problem"] = problem
            for operations in schema.get("paths", {}).values():
                for operation in operations.values():
                    if "requestBody" in operation:
                        # A body that is not even parseable (bad encoding, truncated form) is a 400; one over
                        # MAX_BODY_BYTES a 413 (bodylimit.py).
                        operation["responses"].setdefault("400", problems(400)[400])
                        operation["responses"].setdefault("413", problems(413)[413])
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app
