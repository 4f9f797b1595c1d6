import contextlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from helpers.support import TEST_JWT_SECRET, auth_headers, register_and_login, terminate_api_connections

from taskplatform.api.config import Settings
from taskplatform.api.main import create_app


def _unreachable_database_settings() -> Settings:
    return Settings(
        environment="test",
        jwt_secret=TEST_JWT_SECRET,  # type: ignore[arg-type]
        database_url="postgresql+psycopg2://nobody@127.0.0.1:1/none",
        db_connect_timeout_s=1,
    )


def test_healthz_needs_no_database() -> None:
    settings = _unreachable_database_settings()
    with TestClient(create_app(settings)) as client:
        assert client.get("/healthz").json() == {"status": "ok"}
        ready = client.get("/readyz")
    assert ready.status_code == 503
    assert ready.headers["content-type"] == "application/problem+json"
    assert ready.json()["type"].endswith("/database-unavailable")
    assert "ConnectionRefusedError" in ready.json()["detail"]
    assert ready.headers["retry-after"] == "1"


def test_requests_needing_an_unreachable_database_get_503_not_500() -> None:
    settings = _unreachable_database_settings()
    with TestClient(create_app(settings)) as client:
        response = client.post("/api/v1/auth/login", data={"username": "a@x.io", "password": "whatever1"})
    assert response.status_code == 503
    assert response.json()["type"].endswith("/database-unavailable")
    assert "127.0.0.1" not in response.text


def test_readyz_is_ready_with_a_database(client: TestClient) -> None:
    assert client.get("/readyz").json() == {"status": "ready", "database": "ok"}


def test_request_id_is_echoed_or_minted(client: TestClient) -> None:
    assert client.get("/healthz", headers={"X-Request-ID": "abc-123"}).headers["x-request-id"] == "abc-123"
    minted = client.get("/healthz", headers={"X-Request-ID": "bad id\twith spaces"}).headers["x-request-id"]
    assert len(minted) == 32 and minted != "bad id\twith spaces"
    problem = client.get("/api/v1/users/me", headers={"X-Request-ID": "req-9"})
    assert problem.json()["request_id"] == "req-9"


def test_metrics_report_requests_by_route_template_and_the_pool(settings: Settings, database_url: str) -> None:
    app = create_app(settings)  # a fresh app: its own counters start at zero
    with TestClient(app) as client, TestClient(app, base_url=f"http://testserver:{settings.metrics_port}") as scraper:
        headers = auth_headers(register_and_login(client, "m@x.io"))
        client.get("/api/v1/tasks/12345", headers=headers)
        text = scraper.get("/metrics").text
    assert 'http_requests_total{method="GET",route="/api/v1/tasks/{task_id}",status="404"} 1.0' in text
    assert 'http_requests_total{method="POST",route="/api/v1/auth/register",status="201"} 1.0' in text
    assert 'http_request_duration_seconds_bucket{le="0.05",method="GET",route="/api/v1/tasks/{task_id}"}' in text
    assert 'db_pool_connections{state="idle"}' in text
    assert 'db_pool_connections{state="in_use"} 0.0' in text


def test_metrics_are_not_served_on_the_api_port_and_nothing_else_on_theirs(settings: Settings) -> None:
    app = create_app(settings)
    with TestClient(app) as client, TestClient(app, base_url=f"http://testserver:{settings.metrics_port}") as scraper:
        public = client.get("/metrics")
        assert public.status_code == 404 and public.headers["content-type"] == "application/problem+json"
        for path in ("/healthz", "/api/v1/tasks", "/openapi.json", "/metrics/"):
            refused = scraper.get(path)
            assert refused.status_code == 404 and refused.headers["content-type"] == "application/problem+json"
        wrong = scraper.post("/metrics")
        assert (wrong.status_code, wrong.headers["allow"]) == (405, "GET")
        assert scraper.get("/metrics").headers["content-type"].startswith("text/plain")
        assert "/metrics" not in client.get("/openapi.json").json()["paths"]
    without = create_app(settings.model_copy(update={"metrics_port": 0}))
    with TestClient(without, base_url=f"http://testserver:{settings.metrics_port}") as nowhere:
        assert nowhere.get("/metrics").status_code == 404


def _crashing_app(settings: Settings, log_file: Path) -> FastAPI:
    app = create_app(settings.model_copy(update={"log_file": str(log_file)}))

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError("secret internals: password=hunter2")

    return app


def test_unhandled_errors_are_opaque_500_problems_logged_with_request_id(settings: Settings, tmp_path: Path) -> None:
    log_file = tmp_path / "api.log"
    with TestClient(_crashing_app(settings, log_file), raise_server_exceptions=False) as client:
        response = client.get("/boom", headers={"X-Request-ID": "crash-1"})
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["x-request-id"] == "crash-1"
    body = response.json()
    assert body["type"].endswith("/internal-error") and body["request_id"] == "crash-1"
    assert "hunter2" not in response.text and "Traceback" not in response.text

    records = [json.loads(line) for line in log_file.read_text().splitlines()]
    error = next(r for r in records if r["message"] == "unhandled error")
    assert error["request_id"] == "crash-1" and "RuntimeError" in error["exc_info"]
    access = next(r for r in records if r["message"] == "request")
    assert access["status"] == 500 and access["route"] == "/boom"


def test_one_json_access_line_per_request(settings: Settings, tmp_path: Path) -> None:
    log_file = tmp_path / "api.log"
    app = create_app(settings.model_copy(update={"log_file": str(log_file)}))
    with TestClient(app) as client:
        headers = auth_headers(register_and_login(client, "log@x.io"))
        client.get("/api/v1/tasks", headers={**headers, "X-Request-ID": "list-1"})
    lines = [json.loads(line) for line in log_file.read_text().splitlines()]
    access = [r for r in lines if r["message"] == "request"]
    assert [r["route"] for r in access] == ["/api/v1/auth/register", "/api/v1/auth/login", "/api/v1/tasks"]
    listing = access[-1]
    assert listing["request_id"] == "list-1" and listing["status"] == 200 and listing["user_id"] == 1
    assert isinstance(listing["latency_ms"], float) and listing["level"] == "INFO"
    assert "correct horse" not in log_file.read_text()
    assert "Bearer" not in log_file.read_text()


@pytest.mark.parametrize("log_format", ["json", "text"])
def test_log_file_rotates(settings: Settings, tmp_path: Path, log_format: str) -> None:
    log_file = tmp_path / "api.log"
    app = create_app(
        settings.model_copy(
            update={
                "log_file": str(log_file),
                "log_file_max_bytes": 2048,
                "log_file_backups": 2,
                "log_format": log_format,
            }
        )
    )
    with TestClient(app) as client:
        for _ in range(40):
            client.get("/healthz")
    assert (tmp_path / "api.log.1").exists() and (tmp_path / "api.log.2").exists()
    assert not (tmp_path / "api.log.3").exists()


@contextlib.contextmanager
def _dropped_pool(settings: Settings, db_engine, ping_idle_s: float) -> Iterator[tuple[TestClient, dict, int]]:  # type: ignore[no-untyped-def]
    """An API whose pooled connections the server has just ended, as a failover or an administrator does:
    the client, a user's headers, and how many connections were ended."""
    app = create_app(settings.model_copy(update={"db_pool_ping_idle_s": ping_idle_s}))
    with TestClient(app) as client:
        headers = auth_headers(register_and_login(client, "pool@x.io"))
        assert client.get("/api/v1/tasks", headers=headers).status_code == 200
        killed = terminate_api_connections(db_engine)
        assert killed >= 1
        yield client, headers, killed


def test_pool_replaces_connections_the_server_dropped(settings: Settings, db_engine) -> None:  # type: ignore[no-untyped-def]
    """With the idle health check on every checkout, the next requests do not see it at all."""
    with _dropped_pool(settings, db_engine, ping_idle_s=0.0) as (client, headers, _):
        for _ in range(3):
            assert client.get("/api/v1/tasks", headers=headers).status_code == 200
        assert client.get("/readyz").status_code == 200


def test_a_connection_lost_under_a_read_is_discarded_not_pooled_again(settings: Settings, db_engine) -> None:  # type: ignore[no-untyped-def]
    """Without the idle health check (a busy pool never idles), the request that meets a dropped connection
    gets a 503; the dead connection must leave the pool, so that the next requests get a live one."""
    with _dropped_pool(settings, db_engine, ping_idle_s=3600.0) as (client, headers, killed):
        answers = [client.get("/api/v1/tasks", headers=headers) for _ in range(killed + 3)]
        failed = [a for a in answers if a.status_code != 200]
        assert len(failed) <= killed  # each dead connection fails at most one request
        assert all(a.status_code == 503 and a.headers["content-type"] == "application/problem+json" for a in failed)
        assert [a.status_code for a in answers[-3:]] == [200, 200, 200]


def test_a_database_that_refuses_the_apis_role_gets_503_not_500(
    client: TestClient, settings: Settings, database_url: str
) -> None:
    """The database answers but refuses the role (pg_hba, a password or role not yet in place): as while an upgrade
    moves pods onto their roles. Every path answers 503, the ORM's (login) and the direct one (the task list)."""
    headers = auth_headers(register_and_login(client, "refused@x.io"))
    user, host = database_url.split("://", 1)[1].split("@", 1)
    refused = database_url.replace(f"{user}@{host}", f"no_such_role@{host}", 1)
    with TestClient(create_app(settings.model_copy(update={"database_url": refused}))) as other:
        answers = {
            "login": other.post("/api/v1/auth/login", data={"username": "refused@x.io", "password": "whatever1"}),
            "list": other.get("/api/v1/tasks", headers=headers),
            "create": other.post("/api/v1/tasks", json={"title": "t"}, headers=headers),
            "ready": other.get("/readyz"),
        }
    for path, answer in answers.items():
        assert (path, answer.status_code) == (path, 503), answer.text
        assert answer.json()["type"].endswith("/database-unavailable")
        assert "no_such_role" not in answer.text
