"""The account endpoints people expect, sessions that end when they should, and signing keys that rotate."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from helpers.support import TEST_JWT_SECRET, auth_headers, register_and_login
from jose import jwt

from taskplatform.api.config import Settings
from taskplatform.api.main import create_app
from taskplatform.api.security import key_id

PASSWORD = "correct horse"
NEW_PASSWORD = "battery staple 42"
OTHER_SECRET = "another-jwt-secret-0123456789abcdef0123456789"


def login(client: TestClient, email: str, password: str = PASSWORD) -> dict:
    response = client.post("/api/v1/auth/login", data={"username": email, "password": password})
    assert response.status_code == 200, response.text
    tokens = response.json()
    return {"Authorization": f"Bearer {tokens['access_token']}", "_refresh": tokens["refresh_token"]}


def refresh(client: TestClient, tokens: dict) -> int:
    return client.post("/api/v1/auth/refresh", json={"refresh_token": tokens["_refresh"]}).status_code


def me(client: TestClient, tokens: dict) -> int:
    return client.get("/api/v1/users/me", headers=auth_headers(tokens)).status_code


def test_token_responses_are_never_cached(client: TestClient) -> None:
    register_and_login(client, "cache@x.io")
    logged_in = client.post("/api/v1/auth/login", data={"username": "cache@x.io", "password": PASSWORD})
    refreshed = client.post("/api/v1/auth/refresh", json={"refresh_token": logged_in.json()["refresh_token"]})
    for response in (logged_in, refreshed):
        assert response.status_code == 200
        assert response.headers["cache-control"] == "no-store"
        assert response.headers["pragma"] == "no-cache"


def test_logout_all_ends_every_session_of_the_account_and_no_one_elses(client: TestClient) -> None:
    laptop = register_and_login(client, "all@x.io")
    phone = login(client, "all@x.io")
    bystander = register_and_login(client, "other@x.io")
    assert client.post("/api/v1/auth/logout-all", headers=auth_headers(phone)).status_code == 204
    assert [me(client, laptop), me(client, phone)] == [401, 401]
    assert [refresh(client, laptop), refresh(client, phone)] == [401, 401]
    assert me(client, bystander) == 200 and refresh(client, bystander) == 200
    assert me(client, login(client, "all@x.io")) == 200  # a new sign-in is a new session


def test_changing_the_password_ends_every_other_session(client: TestClient, db_engine: sa.Engine) -> None:
    current = register_and_login(client, "pw@x.io")
    other = login(client, "pw@x.io")
    change = {"current_password": PASSWORD, "new_password": NEW_PASSWORD}
    response = client.patch("/api/v1/users/me/password", json=change, headers=auth_headers(current))
    assert response.status_code == 204, response.text
    assert [me(client, other), refresh(client, other)] == [401, 401]
    assert me(client, current) == 200 and refresh(client, current) == 200  # the session that changed it goes on
    assert client.post("/api/v1/auth/login", data={"username": "pw@x.io", "password": PASSWORD}).status_code == 401
    assert me(client, login(client, "pw@x.io", NEW_PASSWORD)) == 200
    with db_engine.connect() as conn:
        stored = conn.execute(sa.text("SELECT hashed_password FROM users WHERE email = 'pw@x.io'")).scalar_one()
    assert stored.startswith("$bcrypt-sha256$") and NEW_PASSWORD not in stored


def test_a_wrong_current_password_changes_nothing_and_is_throttled(client: TestClient) -> None:
    tokens = register_and_login(client, "guess@x.io")
    other = login(client, "guess@x.io")
    free = client.app.state.settings.login_free_failures_per_account_client  # type: ignore[attr-defined]
    statuses = [
        client.patch(
            "/api/v1/users/me/password",
            json={"current_password": f"guess-{i}", "new_password": NEW_PASSWORD},
            headers=auth_headers(tokens),
        ).status_code
        for i in range(free + 1)
    ]
    assert statuses == [403] * free + [429]
    assert me(client, other) == 200  # nothing was revoked


def test_password_change_validates_the_new_password(client: TestClient) -> None:
    tokens = register_and_login(client, "short@x.io")
    response = client.patch(
        "/api/v1/users/me/password",
        json={"current_password": PASSWORD, "new_password": "short"},
        headers=auth_headers(tokens),
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["loc"] == ["body", "new_password"]
    assert client.patch("/api/v1/users/me/password", json={"current_password": PASSWORD,
                        "new_password": NEW_PASSWORD}).status_code == 401  # fmt: skip


def test_deleting_the_account_takes_its_tasks_and_refuses_its_tokens(client: TestClient, db_engine: sa.Engine) -> None:
    tokens = register_and_login(client, "gone@x.io")
    kept = register_and_login(client, "kept@x.io")
    for headers in (tokens, kept):
        assert client.post("/api/v1/tasks", json={"title": "t"}, headers=auth_headers(headers)).status_code == 201
    assert client.delete("/api/v1/users/me", headers=auth_headers(tokens)).status_code == 204
    assert [me(client, tokens), refresh(client, tokens)] == [401, 401]
    assert client.get("/api/v1/tasks", headers=auth_headers(tokens)).status_code == 401
    with db_engine.connect() as conn:
        owners = conn.execute(sa.text("SELECT u.email FROM tasks JOIN users u ON u.id = tasks.owner_id")).scalars()
        assert list(owners) == ["kept@x.io"]
        assert conn.execute(sa.text("SELECT count(*) FROM token_families WHERE user_id = 1")).scalar_one() == 0
    # The address is free again, and the other account is untouched.
    register_and_login(client, "gone@x.io")
    assert client.get("/api/v1/tasks", headers=auth_headers(kept)).json()["items"][0]["title"] == "t"


def test_a_session_ends_at_its_absolute_lifetime_however_often_it_is_refreshed(
    client: TestClient, db_engine: sa.Engine
) -> None:
    tokens = register_and_login(client, "life@x.io")
    with db_engine.begin() as conn:  # the session's end, moved close: its refresh tokens may not outlive it
        ends = conn.execute(
            sa.text("UPDATE token_families SET expires_at = now() + interval '90 seconds' RETURNING expires_at")
        ).scalar_one()
    rotated = client.post("/api/v1/auth/refresh", json={"refresh_token": tokens["_refresh"]})
    assert rotated.status_code == 200
    body = rotated.json()
    assert body["refresh_expires_in"] <= 90
    for token in (body["refresh_token"], body["access_token"]):
        assert jwt.get_unverified_claims(token)["exp"] <= ends.timestamp()
    with db_engine.begin() as conn:  # ... and now the session's lifetime is over
        conn.execute(sa.text("UPDATE token_families SET expires_at = now() - interval '1 second'"))
    late = client.post("/api/v1/auth/refresh", json={"refresh_token": body["refresh_token"]})
    assert late.status_code == 401
    assert late.json()["type"].endswith("/unauthorized")


def signed_by(secret: str, token: str) -> str:
    """The same claims signed by another key, with that key's id."""
    claims = jwt.get_unverified_claims(token)
    return jwt.encode(claims, secret, algorithm="HS256", headers={"kid": key_id(secret)})


def app_with_keys(settings: Settings, signing: str, *additional: str) -> TestClient:
    """The same API with another key set: a replica of a later phase of the rotation."""
    keys = {"jwt_secret": signing, "jwt_additional_secrets": list(additional)}
    return TestClient(create_app(Settings(**(settings.model_dump() | keys))))


def test_tokens_name_their_key_and_a_rotation_logs_no_one_out(client: TestClient, settings: Settings) -> None:
    tokens = register_and_login(client, "keys@x.io")
    access = tokens["Authorization"].removeprefix("Bearer ")
    assert jwt.get_unverified_header(access)["kid"] == key_id(TEST_JWT_SECRET)
    # Phase 1: the next key is accepted everywhere before anything signs with it.
    with app_with_keys(settings, TEST_JWT_SECRET, OTHER_SECRET) as before_switch:
        from_new_key = {"Authorization": f"Bearer {signed_by(OTHER_SECRET, access)}"}
        assert before_switch.get("/api/v1/users/me", headers=from_new_key).status_code == 200
        assert before_switch.get("/api/v1/users/me", headers=auth_headers(tokens)).status_code == 200
    # Phase 2: the new key signs; tokens of the old one still work while it is kept as an additional key.
    with app_with_keys(settings, OTHER_SECRET, TEST_JWT_SECRET) as after_switch:
        assert after_switch.get("/api/v1/users/me", headers=auth_headers(tokens)).status_code == 200
        assert refresh(after_switch, tokens) == 200
        fresh = login(after_switch, "keys@x.io")
        fresh_access = fresh["Authorization"].removeprefix("Bearer ")
        assert jwt.get_unverified_header(fresh_access)["kid"] == key_id(OTHER_SECRET)
    # Phase 3: the old key is gone, and so are the tokens it signed.
    with app_with_keys(settings, OTHER_SECRET) as old_key_dropped:
        assert old_key_dropped.get("/api/v1/users/me", headers=auth_headers(tokens)).status_code == 401
        assert old_key_dropped.get("/api/v1/users/me", headers=auth_headers(fresh)).status_code == 200


@pytest.mark.parametrize("header", [{}, {"kid": "0000000000000000"}, {"kid": 7}])
def test_a_token_without_a_known_key_id_is_verified_or_refused_by_its_signature(
    client: TestClient, header: dict
) -> None:
    tokens = register_and_login(client, "kid@x.io")
    claims = jwt.get_unverified_claims(tokens["Authorization"].removeprefix("Bearer "))
    token = jwt.encode(claims, TEST_JWT_SECRET, algorithm="HS256", headers=header)
    if "kid" in header:
        token_header = jwt.get_unverified_header(token)
        assert token_header["kid"] == header["kid"]
    status = client.get("/api/v1/users/me", headers={"Authorization": f"Bearer {token}"}).status_code
    # A token from before key ids is checked against every key held; a key id no key has is refused.
    assert status == (200 if not header else 401)


def test_refresh_tokens_minted_before_an_upgrade_still_expire_with_the_session(
    client: TestClient, db_engine: sa.Engine
) -> None:
    """The old code gave each rotation a fresh full lifetime; the session row's end is what counts."""
    tokens = register_and_login(client, "upgrade@x.io")
    with db_engine.begin() as conn:
        conn.execute(sa.text("UPDATE token_families SET expires_at = :t"), {"t": datetime.now(UTC) - timedelta(1)})
    assert refresh(client, tokens) == 401
