"""Password guessing is slowed down per account and per client address, on every replica, without locking
the real user out."""

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import bcrypt
import httpx
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from helpers.support import LiveServer

pytestmark = pytest.mark.slow

PASSWORD = "correct horse battery"
THROTTLE = {
    "LOGIN_FREE_FAILURES_PER_ACCOUNT_CLIENT": "3",
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
    monkeypatch.setattr(auth, "verify_password", lambda *args: calls.append(args[1]) or real_verify(*args))
    register(client, "cpu@x.io")  # type: ignore[arg-type]
    free = client.app.state.settings.login_free_failures_per_account_client  # type: ignore[attr-defined]
    statuses = [login(client, "cpu@x.io", f"guess-{i}").status_code for i in range(free + 20)]  # type: ignore[arg-type]
    assert statuses == [401] * free + [429] * 20
    assert len(calls) == free


def client_at(server: LiveServer, address: str, **kwargs: object) -> httpx.Client:
    """A client whose connections come from `address` (any 127.x address is this machine's loopback)."""
    return server.client(transport=httpx.HTTPTransport(local_address=address), **kwargs)


def test_a_guesser_at_one_address_does_not_keep_the_owner_out_at_another(
    live_server_factory: Callable[..., LiveServer],
) -> None:
    server = live_server_factory()  # the default limits
    with client_at(server, "127.0.0.1") as guesser, client_at(server, "127.0.0.2") as owner:
        register(guesser, "owner@x.io")
        statuses = [login(guesser, "owner@x.io", f"guess-{i}").status_code for i in range(8)]
        assert statuses[:5] == [401] * 5 and set(statuses[5:]) == {429}
        assert login(owner, "owner@x.io", PASSWORD).status_code == 200
        assert login(guesser, "owner@x.io", PASSWORD).status_code == 429  # the guesser's pair still waits


def test_an_account_guessed_from_many_addresses_slows_them_but_not_a_first_attempt(
    live_server_factory: Callable[..., LiveServer],
) -> None:
    env = {**THROTTLE, "LOGIN_FREE_FAILURES_PER_ACCOUNT": "3", "LOGIN_FREE_FAILURES_PER_ACCOUNT_CLIENT": "5"}
    server = live_server_factory(extra_env=env)
    guessers = [client_at(server, f"127.0.1.{i}") for i in range(1, 5)]
    try:
        register(guessers[0], "spread@x.io")
        # One failure from each of four addresses: the account-wide count passes its three free failures.
        assert [login(g, "spread@x.io", "guess").status_code for g in guessers] == [401] * 4
        # A second try from an address that failed already must wait, though its own pair is far from its limit.
        assert login(guessers[0], "spread@x.io", PASSWORD).status_code == 429
        # The owner's first attempt from a new address is never held back by others' failures.
        with client_at(server, "127.0.2.1") as owner:
            assert login(owner, "spread@x.io", PASSWORD).status_code == 200
    finally:
        for guesser in guessers:
            guesser.close()


def test_a_burst_of_concurrent_guesses_gets_no_more_than_the_free_failures(
    live_server_factory: Callable[..., LiveServer],
) -> None:
    """The attempt is counted before its password is checked, under a lock: concurrent guesses cannot all pass
    the check while the first ones are still in bcrypt. Two workers, so the lock must hold across processes."""
    env = {"BCRYPT_ROUNDS": "10", "LOGIN_DELAY_BASE_S": "60", "LOGIN_DELAY_MAX_S": "60"}  # ~60 ms per bcrypt
    server = live_server_factory(workers=2, extra_env=env)
    with server.client() as setup:
        register(setup, "burst@x.io")
    free = 5  # LOGIN_FREE_FAILURES_PER_ACCOUNT_CLIENT's default

    def guess(i: int) -> int:
        with server.client() as client:
            return login(client, "burst@x.io", f"guess-{i}").status_code

    with ThreadPoolExecutor(max_workers=40) as pool:
        statuses = list(pool.map(guess, range(40)))
    assert set(statuses) <= {401, 429}
    assert statuses.count(401) <= free + 1, statuses  # 401: its password was checked
    assert statuses.count(429) >= 40 - free - 1


def test_behind_a_trusted_proxy_clients_are_counted_by_their_own_address(
    live_server_factory: Callable[..., LiveServer],
) -> None:
    """The proxy (here: this test at 127.0.0.1) appends each client's address to X-Forwarded-For; whatever a
    client wrote there itself stands to the left of it and is never the address counted."""
    env = {**THROTTLE, "TRUSTED_PROXIES": "127.0.0.1/32", "LOGIN_FREE_FAILURES_PER_CLIENT": "3"}
    server = live_server_factory(extra_env=env)

    def via_proxy(proxy: httpx.Client, forwarded: str, email: str) -> int:
        response = proxy.post(
            "/api/v1/auth/login",
            data={"username": email, "password": "wrong"},
            headers={"X-Forwarded-For": forwarded},
        )
        return response.status_code

    with server.client() as proxy:
        # Client A tries three accounts: its address must wait; client B, behind the same proxy, need not.
        assert [via_proxy(proxy, "198.51.100.7", f"a{i}@x.io") for i in range(3)] == [401] * 3
        assert via_proxy(proxy, "198.51.100.7", "a9@x.io") == 429
        assert via_proxy(proxy, "198.51.100.8", "b0@x.io") == 401
        # A spoofs B's address: the proxy appends A's real one, and A is what is counted.
        assert via_proxy(proxy, "198.51.100.8, 198.51.100.7", "a10@x.io") == 429
    # Without TRUSTED_PROXIES nobody's forwarded header is believed: all of this is the peer's own address.
    untrusting = live_server_factory(extra_env={**THROTTLE, "LOGIN_FREE_FAILURES_PER_CLIENT": "3"})
    with untrusting.client() as peer:
        statuses = [via_proxy(peer, f"198.51.100.{i}", f"c{i}@x.io") for i in range(4)]
    assert statuses == [401] * 3 + [429]


def test_bcrypt_runs_with_no_pooled_connection_or_transaction_held(
    client: TestClient, monkeypatch: pytest.MonkeyPatch, db_engine: sa.Engine
) -> None:
    from taskplatform.api.services import auth

    database = client.app.state.database  # type: ignore[attr-defined]
    all_slots_free = database.free_slots  # nothing else runs: every slot of the pool's gate is free now
    seen: list[tuple[str, int, int, int]] = []

    def observe(name: str, real: Callable[..., object]) -> Callable[..., object]:
        def spy(*args: object) -> object:
            with db_engine.connect() as conn:
                in_transaction = conn.execute(
                    sa.text(
                        "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'taskplatform-api' "
                        "AND state LIKE 'idle in transaction%'"
                    )
                ).scalar_one()
            slots_taken = all_slots_free - database.free_slots
            seen.append((name, database.pool_stats()["in_use"], slots_taken, int(in_transaction)))
            return real(*args)

        return spy

    monkeypatch.setattr(auth, "verify_password", observe("verify", auth.verify_password))
    monkeypatch.setattr(auth, "hash_password", observe("hash", auth.hash_password))
    register(client, "held@x.io")  # type: ignore[arg-type]
    with db_engine.begin() as conn:  # a legacy hash: the login rehashes it too
        conn.execute(sa.text("UPDATE users SET hashed_password = :h"), {"h": bcrypt.hashpw(PASSWORD.encode(),
                     bcrypt.gensalt(4)).decode()})  # fmt: skip
    assert login(client, "held@x.io", "wrong-password").status_code == 401  # type: ignore[arg-type]
    assert login(client, "held@x.io", PASSWORD).status_code == 200  # type: ignore[arg-type]
    tokens = login(client, "held@x.io", PASSWORD).json()  # type: ignore[arg-type]
    change = {"current_password": PASSWORD, "new_password": "another password"}
    headers = {"Authorization": f"Bearer {tokens['access_token']}"}
    assert client.patch("/api/v1/users/me/password", json=change, headers=headers).status_code == 204
    names = [name for name, *_ in seen]
    assert names.count("verify") == 4 and names.count("hash") == 3  # register, the rehash, the new password
    assert all(held == (0, 0, 0) for _, *held in seen for held in [tuple(held)]), seen
