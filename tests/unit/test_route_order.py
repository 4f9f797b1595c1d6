"""Routes are matched hot router first, while the published document keeps its reading order."""

from fastapi.routing import APIRoute
from helpers.support import TEST_JWT_SECRET

from taskplatform.api.config import Settings
from taskplatform.api.main import MATCHED_ORDER, PUBLISHED_ORDER, create_app
from taskplatform.api.routes import tasks


def test_the_same_routers_are_served_and_published_and_tasks_are_matched_first() -> None:
    assert sorted(map(id, MATCHED_ORDER)) == sorted(map(id, PUBLISHED_ORDER))
    assert MATCHED_ORDER[0] is tasks.router


def test_the_document_lists_paths_from_health_to_tasks() -> None:
    app = create_app(Settings(environment="test", jwt_secret=TEST_JWT_SECRET, database_url="sqlite://"))  # type: ignore[arg-type]
    published = list(app.openapi()["paths"])
    assert published[:2] == ["/healthz", "/readyz"]  # /metrics is on a port of its own, unpublished
    assert published[-2:] == ["/api/v1/tasks", "/api/v1/tasks/{task_id}"]
    in_reading_order = [
        route.path
        for router in PUBLISHED_ORDER
        for route in router.routes
        if isinstance(route, APIRoute) and route.include_in_schema
    ]
    assert published == list(dict.fromkeys(in_reading_order))
