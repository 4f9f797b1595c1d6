"""Helpers for the tests: log a user in, run the API as a real server process."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import sqlalchemy as sa
from fastapi.testclient import TestClient

from helpers.pgcluster import free_port
from helpers.throwaway import stop_process

TEST_JWT_SECRET = "test-jwt-secret-0123456789abcdef0123456789abcdef"
# A bound, not a speed: two workers took over 30 s to start on the shared two cores at a load of 9 to 12.
READY_WITHIN_S = 60


def register_and_login(client: TestClient | httpx.Client, email: str, password: str = "correct horse") -> dict:
    response = client.post("/api/v1/auth/register", json={"email": email, "password": password})
    assert response.status_code == 201, response.text
    response = client.post("/api/v1/auth/login", data={"username": email, "password": password})
    assert response.status_code == 200, response.text
    tokens = response.json()
    return {"Authorization": f"Bearer {tokens['access_token']}", "_refresh": tokens["refresh_token"]}


def auth_headers(tokens: dict) -> dict[str, str]:
    return {"Authorization": tokens["Authorization"]}


def terminate_api_connections(engine: sa.Engine) -> int:
    """End every connection the API opened, from the server's side (as a failover or an administrator does);
    how many were ended."""
    with engine.begin() as conn:
        ended = conn.execute(
            sa.text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE application_name = 'taskplatform-api' AND pid <> pg_backend_pid()"
            )
        ).scalar_one()
    return int(ended)


class LiveServer:
    """The API as a real uvicorn process on a free port, configured only through its environment."""

    def __init__(self, database_url: str, workers: int = 1, extra_env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.metrics_port = free_port()  # every server its own: several run at once
        self.metrics_url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        env = {
            **os.environ,
            "ENVIRONMENT": "test",
            "DATABASE_URL": database_url,
            "JWT_SECRET": TEST_JWT_SECRET,
            "BCRYPT_ROUNDS": "4",
            "LOG_REQUESTS": "false",
            "DB_POOL_SIZE": "20",
            "METRICS_PORT": str(self.metrics_port),
            **(extra_env or {}),
        }
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "taskplatform.api.cli",
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--workers",
                str(workers),
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            cwd=Path(__file__).resolve().parents[1],  # tests/, as before the helpers moved: no .env there
        )
        try:
            self._wait_healthy()
        except BaseException:
            self.stop()  # nobody else holds it yet: a server that never became ready is not left running
            raise

    def _wait_healthy(self) -> None:
        deadline = time.monotonic() + READY_WITHIN_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"API server exited: {self.process.stderr.read().decode()[-2000:]}")  # type: ignore[union-attr]
            try:
                if httpx.get(f"{self.base_url}/readyz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"API server did not become ready in {READY_WITHIN_S} s")

    def client(self, **kwargs: object) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, timeout=30, **kwargs)  # type: ignore[arg-type]

    def stop(self) -> None:
        stop_process(self.process)
