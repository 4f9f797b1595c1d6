"""Every authenticated route refuses a revoked (logged-out) token, and changes nothing.

The routes are enumerated from the app's route table: an operation is authenticated when it declares the bearer
scheme (its published `security`), and every other route must be named public here. So a new route either
comes with a request below, and is then sent a revoked token, or fails `test_every_route_is_public_or_sent_a_
revoked_token`. Both ways of serving are checked: the fast path (the check folded into the statement, the list
served directly) and the reference path (FastAPI's handlers, the check in a round trip of its own).
"""

from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.openapi.utils import get_openapi
from fastapi.testclient import TestClient
from helpers.support import TEST_JWT_SECRET

from taskplatform.api.config import Settings
from taskplatform.api.main import create_app

PASSWORD = "correct horse"
PUBLIC = {
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("POST", "/api/v1/auth/register"),
    ("POST", "/api/v1/auth/login"),
    ("POST", "/api/v1/auth/refresh"),
}
# A request each authenticated operation accepts from a live token; {task_id} is a task of the caller's.
REQUESTS: dict[tuple[str, str], dict[str, Any]] = {
    ("POST", "/api/v1/auth/logout"): {},
    ("POST", "/api/v1/auth/logout-all"): {},
    ("GET", "/api/v1/users/me"): {},
    ("PATCH", "/api/v1/users/me/password"): {"json": {"current_password": PASSWORD, "new_password": "new password"}},
    ("DELETE", "/api/v1/users/me"): {},
    ("POST", "/api/v1/tasks"): {"json": {"title": "new", "tags": ["a"]}},
    ("GET", "/api/v1/tasks"): {"params": {"status": "todo", "tag": "a", "sort": "title", "limit": 1}},
    ("GET", "/api/v1/tasks/{task_id}"): {},
    ("PATCH", "/api/v1/tasks/{task_id}"): {"json": {"title": "changed"}},
    ("DELETE", "/api/v1/tasks/{task_id}"): {},
}
TABLES = ("users", "tasks", "token_families", "refresh_tokens", "revoked_tokens", "idempotency_records",
          "login_failures")  # fmt: skip


def _route_table() -> tuple[set[tuple[str, str]], set[tuple[str, str]]]:
    """The app's operations: (those that declare the bearer scheme, the others). Read from everything the app
    routes (FastAPI's own document of `app.routes`, whatever routers they came from), not only from what
    main publishes."""
    app = create_app(Settings(environment="test", jwt_secret=TEST_JWT_SECRET, database_url="sqlite://"))  # type: ignore[arg-type]
    served = get_openapi(title=app.title, version=app.version, routes=app.routes)
    assert served["paths"].keys() == app.openapi()["paths"].keys()  # and all of it is published
    authenticated: set[tuple[str, str]] = set()
    others: set[tuple[str, str]] = set()
    for path, operations in served["paths"].items():
        for method, operation in operations.items():
            (authenticated if operation.get("security") else others).add((method.upper(), path))
    return authenticated, others


AUTHENTICATED, OTHERS = _route_table()


def test_every_route_is_public_or_sent_a_revoked_token() -> None:
    assert OTHERS == PUBLIC
    assert set(REQUESTS) == AUTHENTICATED


@pytest.fixture(params=["fast", "reference"])
def api(request: pytest.FixtureRequest, settings: Settings, database_url: str) -> Iterator[TestClient]:
    with TestClient(create_app(settings, fast_path=request.param == "fast"), raise_server_exceptions=False) as client:
        yield client


def _login(client: TestClient, email: str) -> dict[str, str]:
    response = client.post("/api/v1/auth/login", data={"username": email, "password": PASSWORD})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def _snapshot(engine: sa.Engine) -> dict[str, list[Any]]:
    with engine.connect() as conn:
        return {table: sorted(map(tuple, conn.execute(sa.text(f"SELECT * FROM {table}")))) for table in TABLES}  # noqa: S608


@pytest.mark.parametrize(("method", "path"), sorted(AUTHENTICATED))
def test_a_revoked_token_is_refused_and_changes_nothing(
    api: TestClient, db_engine: sa.Engine, method: str, path: str
) -> None:
    email = "revoked@x.io"
    assert api.post("/api/v1/auth/register", json={"email": email, "password": PASSWORD}).status_code == 201
    revoked, live = _login(api, email), _login(api, email)  # two sessions of one user
    task = api.post("/api/v1/tasks", json={"title": "mine", "tags": ["a"]}, headers=live)
    assert task.status_code == 201, task.text
    assert api.post("/api/v1/auth/logout", headers=revoked).status_code == 204
    url = path.replace("{task_id}", str(task.json()["id"]))

    before = _snapshot(db_engine)
    refused = api.request(method, url, headers=revoked, **REQUESTS[(method, path)])
    assert refused.status_code == 401, refused.text
    assert refused.json()["detail"] == "The token has been revoked."
    assert _snapshot(db_engine) == before
    # The same request from the session still live is served: the refusal was the revocation's.
    served = api.request(method, url, headers=live, **REQUESTS[(method, path)])
    assert 200 <= served.status_code < 300, served.text
