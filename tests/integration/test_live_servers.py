"""Real uvicorn processes on one real database: what replicas and concurrent clients see."""

import os
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from helpers.pgcluster import free_port
from helpers.support import TEST_JWT_SECRET, LiveServer, auth_headers, register_and_login

pytestmark = pytest.mark.slow


def test_logout_through_one_replica_is_refused_by_the_other(
    live_server_factory: Callable[..., LiveServer],
) -> None:
    replica_a, replica_b = live_server_factory(), live_server_factory()
    with replica_a.client() as a, replica_b.client() as b:
        tokens = register_and_login(a, "replica@x.io")
        headers = auth_headers(tokens)
        assert b.get("/api/v1/users/me", headers=headers).status_code == 200
        assert a.post("/api/v1/auth/logout", headers=headers).status_code == 204
        refused = b.get("/api/v1/users/me", headers=headers)
        assert refused.status_code == 401 and "revoked" in refused.json()["detail"]
        listed = b.get("/api/v1/tasks", headers=headers)  # the list checks revocation inside its page query
        assert listed.status_code == 401 and "revoked" in listed.json()["detail"]
        # The refresh family is dead on the other replica too.
        refresh = b.post("/api/v1/auth/refresh", json={"refresh_token": tokens["_refresh"]})
        assert refresh.status_code == 401


def _parallel(count: int, fn: Callable[[int], Any]) -> list[Any]:
    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(fn, range(count)))


def test_fifty_concurrent_patches_with_one_etag_exactly_one_wins(
    live_server_factory: Callable[..., LiveServer],
) -> None:
    servers = [live_server_factory(), live_server_factory()]
    with servers[0].client() as c:
        headers = auth_headers(register_and_login(c, "race@x.io"))
        created = c.post("/api/v1/tasks", json={"title": "contended"}, headers=headers)
    etag = created.headers["etag"]
    task_url = f"/api/v1/tasks/{created.json()['id']}"

    def patch(i: int) -> int:
        with servers[i % 2].client() as client:
            response = client.patch(task_url, json={"title": f"writer {i}"}, headers={**headers, "If-Match": etag})
            return response.status_code

    statuses = _parallel(50, patch)
    assert sorted(statuses) == [200] + [412] * 49
    with servers[0].client() as c:
        final = c.get(task_url, headers=headers)
    assert final.json()["version"] == 2 and final.headers["etag"] != etag


def test_concurrent_registrations_of_one_email_yield_one_account(
    live_server_factory: Callable[..., LiveServer], db_engine: sa.Engine
) -> None:
    servers = [live_server_factory(), live_server_factory()]

    def register(i: int) -> int:
        with servers[i % 2].client() as client:
            body = {"email": "same@x.io", "password": f"password-{i}"}
            return client.post("/api/v1/auth/register", json=body).status_code

    statuses = _parallel(20, register)
    assert sorted(statuses) == [201] + [409] * 19
    with db_engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM users")).scalar_one() == 1


def test_hundred_concurrent_users_creating_tasks_see_only_their_own(
    live_server_factory: Callable[..., LiveServer],
) -> None:
    servers = [live_server_factory(), live_server_factory()]
    per_user = 5

    def user_session(i: int) -> tuple[int, list[str], int]:
        with servers[i % 2].client() as client:
            headers = auth_headers(register_and_login(client, f"user{i}@x.io"))
            for n in range(per_user):
                response = client.post("/api/v1/tasks", json={"title": f"u{i}-t{n}"}, headers=headers)
                assert response.status_code == 201
            listing = client.get("/api/v1/tasks", params={"limit": 100}, headers=headers).json()
            owners = {t["owner_id"] for t in listing["items"]}
            return i, sorted(t["title"] for t in listing["items"]), len(owners)

    for i, titles, distinct_owners in _parallel(100, user_session):
        assert titles == sorted(f"u{i}-t{n}" for n in range(per_user))
        assert distinct_owners == 1


def test_idempotency_key_under_concurrency_creates_one_task(
    live_server_factory: Callable[..., LiveServer], db_engine: sa.Engine
) -> None:
    servers = [live_server_factory(), live_server_factory()]
    with servers[0].client() as c:
        headers = auth_headers(register_and_login(c, "idem@x.io"))

    def post(i: int) -> tuple[int, int]:
        with servers[i % 2].client() as client:
            response = client.post(
                "/api/v1/tasks", json={"title": "once"}, headers={**headers, "Idempotency-Key": "order-42"}
            )
            return response.status_code, response.json()["id"]

    results = _parallel(20, post)
    assert {status for status, _ in results} == {201}
    assert len({task_id for _, task_id in results}) == 1
    with db_engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM tasks")).scalar_one() == 1


@pytest.mark.parametrize("workers", [1, 2])
def test_metrics_are_served_on_their_own_port_only(
    live_server_factory: Callable[..., LiveServer], workers: int
) -> None:
    """Every worker serves both ports; the API's port, the one a Service publishes, has no /metrics."""
    server = live_server_factory(workers=workers)
    with server.client() as client:
        for _ in range(2 * workers):  # new connections, spread over the workers by the kernel
            assert client.get("/healthz", headers={"Connection": "close"}).status_code == 200
        public = client.get("/metrics")
        assert public.status_code == 404 and public.headers["content-type"] == "application/problem+json"
    scraped = [httpx.get(server.metrics_url) for _ in range(4 * workers)]
    assert {response.status_code for response in scraped} == {200}
    assert all("http_requests_total" in response.text for response in scraped)
    assert 'route="/healthz",status="200"' in "".join(response.text for response in scraped)
    other = httpx.get(server.metrics_url.replace("/metrics", "/api/v1/tasks"))
    assert other.status_code == 404 and other.headers["content-type"] == "application/problem+json"


def test_a_metrics_port_equal_to_the_api_port_is_refused(database_url: str) -> None:
    port = free_port()
    env = {**os.environ, "ENVIRONMENT": "test", "DATABASE_URL": database_url, "JWT_SECRET": TEST_JWT_SECRET,
           "METRICS_PORT": str(port)}  # fmt: skip
    command = [sys.executable, "-m", "taskplatform.api.cli", "serve", "--host", "127.0.0.1", "--port", str(port)]
    refused = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2 and "METRICS_PORT" in refused.stderr


def test_server_process_serves_openapi_and_docs(live_server_factory: Callable[..., LiveServer]) -> None:
    server = live_server_factory()
    assert httpx.get(f"{server.base_url}/docs").status_code == 200
    spec = httpx.get(f"{server.base_url}/openapi.json").json()
    assert "/api/v1/tasks/{task_id}" in spec["paths"]
    assert "Problem" in spec["components"]["schemas"]


def test_production_publishes_no_api_document_unless_asked(live_server_factory: Callable[..., LiveServer]) -> None:
    production = live_server_factory(extra_env={"ENVIRONMENT": "prod"})
    for path in ("/openapi.json", "/docs", "/redoc"):
        response = httpx.get(f"{production.base_url}{path}")
        assert response.status_code == 404 and response.headers["content-type"] == "application/problem+json"
    assert httpx.get(f"{production.base_url}/healthz").status_code == 200
    asked = live_server_factory(extra_env={"ENVIRONMENT": "prod", "API_DOCS": "true"})
    assert "/api/v1/tasks" in httpx.get(f"{asked.base_url}/openapi.json").json()["paths"]
