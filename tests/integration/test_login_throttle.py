"""Password guessing is slowed down per account and per client address, on every replica, without locking
the real user out."""

import time
from collections.abc import Callable

import httpx
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from support import LiveServer

pytestmark = pytest.mark.slow

PASSWORD = "correct horse battery"
THROTTLE = {
    "LOGIN_FREE_FAILURES_PER_ACCOUNT": "3",
    "LOGIN_FREE_FAILURES_PER_CLIENT": "6",
    "LOGIN_DELAY_BASE_S": "2",
    "LOGIN_DELAY_MAX_S": "2",
    "LOGIN_THROTTLE_WINDOW_S": "600",
}


def login(client: httpx.Client, email: str, password: str) -> httpx.Response:
    return client.post("/api/v1/auth/login", data={"username": email, "password": password})


def register(client: httpx.Client, email: str) -> None:
    assert client.post("/api/v1/auth/register", json={"email": email, "password": PASSWORD}).status_code == 201


def test_guessing_one_account_is_throttled_across_replicas_and_the_owner_gets_in_after_the_wait(
    live_server_factory: Callable[..., LiveServer], db_engine: sa.Engine
) -> None:
    replica_a, replica_b = live_server_factory(extra_env=THROTTLE), live_server_factory(extra_env=THROTTLE)
    with replica_a.client() as a, replica_b.client() as b:
        register(a, "target@x.io")
        register(a, "bystander@x.io")
        # Three free failures, spread over both replicas.
        assert [login(c, "target@x.io", f"guess-{i}").status_code for i, c in enumerate((a, b, a))] == [401] * 3
        throttled = login(b, "target@x.io", "guess-4")
        assert throttled.status_code == 429
        assert throttled.headers["content-type"] == "application/problem+json"
        assert throttled.json()["type"].endswith("/too-many-login-attempts")
        retry_after = int(throttled.headers["retry-after"])
        assert 1 <= retry_after <= 2
        # Even the right password waits: the other replica refuses it too, without checking it.
        assert login(a, "target@x.io", PASSWORD).status_code == 429
        # Another account from the same client is not affected by this account's failures.
        assert login(b, "bystander@x.io", PASSWORD).status_code == 200

        time.sleep(retry_after + 0.2)  # what the client was told to wait
        assert login(a, "target@x.io", PASSWORD).status_code == 200
    with db_engine.connect() as conn:
        stored = [row[0] for row in conn.execute(sa.text("SELECT scope FROM login_failures"))]
    assert stored and all(len(scope) == 64 and "@" not in scope for scope in stored)  # digests, no emails


def test_guessing_across_many_accounts_from_one_client_is_throttled_by_its_address(
    live_server_factory: Callable[..., LiveServer],
) -> None:
    server = live_server_factory(extra_env=THROTTLE)
    with server.client() as client:
        statuses = [login(client, f"user{i}@x.io", "wrong-password").status_code for i in range(7)]
    # Six free failures from 127.0.0.1 (each account only once), then the address must wait.
    assert statuses == [401] * 6 + [429]


def test_a_guesser_is_slowed_not_locked_out(live_server_factory: Callable[..., LiveServer]) -> None:
    env = {**THROTTLE, "LOGIN_DELAY_BASE_S": "1", "LOGIN_DELAY_MAX_S": "1"}
    server = live_server_factory(extra_env=env)
    with server.client() as client:
        register(client, "slow@x.io")
        for i in range(3):
            assert login(client, "slow@x.io", f"guess-{i}").status_code == 401
        assert [login(client, "slow@x.io", "guess").status_code for _ in range(10)] == [429] * 10
        time.sleep(1.2)
        # The delay stays at its ceiling however long the guessing went on: the owner waits at most that.
        assert login(client, "slow@x.io", PASSWORD).status_code == 200


def test_a_throttled_attempt_costs_no_bcrypt_verification(client: TestClient, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """A login flood must not be a cheap way to burn the API's CPU."""
    from taskplatform.api.services import auth

    calls: list[str] = []
    real_verify = auth.verify_password
    monkeypatch.setattr(auth, "verify_password", lambda p, h, r: calls.append(h) or real_verify(p, h, r))
    register(client, "cpu@x.io")  # type: ignore[arg-type]
    free = client.app.state.settings.login_free_failures_per_account  # type: ignore[attr-defined]
    statuses = [login(client, "cpu@x.io", f"guess-{i}").status_code for i in range(free + 20)]  # type: ignore[arg-type]
    assert statuses == [401] * free + [429] * 20
    assert len(calls) == free
