import bcrypt
import sqlalchemy as sa
from fastapi.testclient import TestClient
from helpers.support import auth_headers, register_and_login

PROBLEM = "application/problem+json"


def test_register_returns_the_user_without_the_hash(client: TestClient) -> None:
    response = client.post(
        "/api/v1/auth/register",
        json={"email": "Ann@Example.com", "password": "password1", "full_name": "Ann"},
    )
    assert response.status_code == 201
    body = response.json()
    assert body["email"] == "ann@example.com"
    assert body["full_name"] == "Ann"
    assert "password" not in str(body) and "hashed" not in str(body)
    assert response.headers["location"] == "/api/v1/users/me"


def test_password_is_stored_as_bcrypt(client: TestClient, db_engine: sa.Engine) -> None:
    client.post("/api/v1/auth/register", json={"email": "b@example.com", "password": "password1"})
    with db_engine.connect() as conn:
        stored = conn.execute(sa.text("SELECT hashed_password FROM users")).scalar_one()
    assert stored.startswith("$bcrypt-sha256$v=2,t=2b,r=4$") and "password1" not in stored


def test_duplicate_email_is_409_whatever_the_case(client: TestClient) -> None:
    assert client.post("/api/v1/auth/register", json={"email": "d@x.io", "password": "password1"}).status_code == 201
    response = client.post("/api/v1/auth/register", json={"email": "D@X.io", "password": "password2"})
    assert response.status_code == 409
    assert response.headers["content-type"] == PROBLEM
    assert response.json()["type"].endswith("/email-taken")


def test_register_validation_lists_field_paths(client: TestClient) -> None:
    response = client.post("/api/v1/auth/register", json={"email": "not-an-email", "password": "x"})
    assert response.status_code == 422
    assert response.headers["content-type"] == PROBLEM
    body = response.json()
    assert body["type"].endswith("/validation-error")
    assert sorted(tuple(e["loc"]) for e in body["errors"]) == [("body", "email"), ("body", "password")]


def test_login_returns_access_and_refresh_tokens(client: TestClient) -> None:
    client.post("/api/v1/auth/register", json={"email": "l@x.io", "password": "password1"})
    response = client.post("/api/v1/auth/login", data={"username": "L@x.io", "password": "password1"})
    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 900
    me = client.get("/api/v1/users/me", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert me.status_code == 200 and me.json()["email"] == "l@x.io"


def test_wrong_password_and_unknown_email_answer_identically(client: TestClient) -> None:
    client.post("/api/v1/auth/register", json={"email": "w@x.io", "password": "password1"})
    wrong_password = client.post("/api/v1/auth/login", data={"username": "w@x.io", "password": "password2"})
    unknown_email = client.post("/api/v1/auth/login", data={"username": "nobody@x.io", "password": "password1"})
    assert wrong_password.status_code == unknown_email.status_code == 401
    strip = lambda r: {k: v for k, v in r.json().items() if k != "request_id"}  # noqa: E731
    assert strip(wrong_password) == strip(unknown_email)
    assert wrong_password.headers["www-authenticate"] == "Bearer"


def test_unknown_email_still_pays_for_a_bcrypt_verification(client: TestClient, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from taskplatform.api.services import auth

    calls: list[str] = []
    real_verify = auth.verify_password
    monkeypatch.setattr(auth, "verify_password", lambda *args: calls.append(args[1]) or real_verify(*args))
    client.post("/api/v1/auth/login", data={"username": "ghost@x.io", "password": "password1"})
    assert len(calls) == 1 and calls[0].startswith("$bcrypt-sha256$")


def test_missing_or_bad_token_is_401_problem(client: TestClient) -> None:
    for headers in ({}, {"Authorization": "Bearer nonsense"}, {"Authorization": "Basic abc"}):
        response = client.get("/api/v1/users/me", headers=headers)
        assert response.status_code == 401
        assert response.headers["content-type"] == PROBLEM
        assert response.headers["www-authenticate"] == "Bearer"


def test_refresh_rotates_and_the_new_pair_works(client: TestClient) -> None:
    tokens = register_and_login(client, "r@x.io")
    response = client.post("/api/v1/auth/refresh", json={"refresh_token": tokens["_refresh"]})
    assert response.status_code == 200
    new = response.json()
    assert new["refresh_token"] != tokens["_refresh"]
    me = client.get("/api/v1/users/me", headers={"Authorization": f"Bearer {new['access_token']}"})
    assert me.status_code == 200
    again = client.post("/api/v1/auth/refresh", json={"refresh_token": new["refresh_token"]})
    assert again.status_code == 200


def test_reusing_a_rotated_refresh_token_revokes_the_whole_family(client: TestClient) -> None:
    tokens = register_and_login(client, "reuse@x.io")
    rotated = client.post("/api/v1/auth/refresh", json={"refresh_token": tokens["_refresh"]}).json()

    replay = client.post("/api/v1/auth/refresh", json={"refresh_token": tokens["_refresh"]})
    assert replay.status_code == 401
    assert "reuse" in replay.json()["detail"]

    # Everything issued in that session is now dead: the newest refresh token and both access tokens.
    assert client.post("/api/v1/auth/refresh", json={"refresh_token": rotated["refresh_token"]}).status_code == 401
    for access in (tokens["Authorization"], f"Bearer {rotated['access_token']}"):
        assert client.get("/api/v1/users/me", headers={"Authorization": access}).status_code == 401


def test_other_sessions_survive_a_family_revocation(client: TestClient) -> None:
    first = register_and_login(client, "two@x.io")
    second = client.post("/api/v1/auth/login", data={"username": "two@x.io", "password": "correct horse"}).json()
    client.post("/api/v1/auth/refresh", json={"refresh_token": first["_refresh"]})
    client.post("/api/v1/auth/refresh", json={"refresh_token": first["_refresh"]})  # reuse: kills session 1
    me = client.get("/api/v1/users/me", headers={"Authorization": f"Bearer {second['access_token']}"})
    assert me.status_code == 200


def test_access_token_is_not_a_refresh_token(client: TestClient) -> None:
    tokens = register_and_login(client, "type@x.io")
    access = tokens["Authorization"].removeprefix("Bearer ")
    assert client.post("/api/v1/auth/refresh", json={"refresh_token": access}).status_code == 401


def test_logout_revokes_the_access_token_and_its_refresh_family(client: TestClient, db_engine: sa.Engine) -> None:
    tokens = register_and_login(client, "out@x.io")
    headers = auth_headers(tokens)
    assert client.post("/api/v1/auth/logout", headers=headers).status_code == 204

    me = client.get("/api/v1/users/me", headers=headers)
    assert me.status_code == 401 and "revoked" in me.json()["detail"]
    assert client.post("/api/v1/auth/refresh", json={"refresh_token": tokens["_refresh"]}).status_code == 401
    with db_engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM revoked_tokens")).scalar_one() == 1
    # Logging out twice with the same token is simply unauthorized, not an error.
    assert client.post("/api/v1/auth/logout", headers=headers).status_code == 401


def test_disabled_user_cannot_use_tokens_or_log_in(client: TestClient, db_engine: sa.Engine) -> None:
    tokens = register_and_login(client, "off@x.io")
    with db_engine.begin() as conn:
        conn.execute(sa.text("UPDATE users SET is_active = false"))
    assert client.get("/api/v1/users/me", headers=auth_headers(tokens)).status_code == 401
    login = client.post("/api/v1/auth/login", data={"username": "off@x.io", "password": "correct horse"})
    assert login.status_code == 401


def test_legacy_bcrypt_hash_logs_in_and_is_upgraded(client: TestClient, db_engine: sa.Engine) -> None:
    legacy = bcrypt.hashpw(b"legacy-password", bcrypt.gensalt(rounds=4)).decode()
    with db_engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO users (email, hashed_password, is_active, created_at) VALUES ('old@x.io', :h, true, now())"
            ),
            {"h": legacy},
        )
    login = client.post("/api/v1/auth/login", data={"username": "old@x.io", "password": "legacy-password"})
    assert login.status_code == 200
    with db_engine.connect() as conn:
        stored = conn.execute(sa.text("SELECT hashed_password FROM users")).scalar_one()
    assert stored.startswith("$bcrypt-sha256$")
    again = client.post("/api/v1/auth/login", data={"username": "old@x.io", "password": "legacy-password"})
    assert again.status_code == 200


def test_login_with_nul_characters_is_a_plain_401(client: TestClient) -> None:
    response = client.post("/api/v1/auth/login", data={"username": "a\x00@x.io", "password": "p\x00ssword"})
    assert response.status_code == 401
    assert response.json()["type"].endswith("/invalid-credentials")


def test_a_legacy_hash_too_costly_to_verify_fails_quickly_and_a_2x_hash_logs_in(
    client: TestClient, db_engine: sa.Engine
) -> None:
    """`$2b$31$` would cost about a day of CPU per attempt; `$2x$` used to be refused by passlib at every login."""
    day_per_login = "$2b$31$" + bcrypt.gensalt(4).decode()[7:] + "a" * 31
    legacy_2x = "$2x$" + bcrypt.hashpw(b"ascii password", bcrypt.gensalt(4, prefix=b"2a")).decode()[4:]
    with db_engine.begin() as conn:
        for email, hashed in (("slow@x.io", day_per_login), ("old@x.io", legacy_2x)):
            conn.execute(
                sa.text(
                    "INSERT INTO users (email, hashed_password, is_active, created_at) VALUES (:e, :h, true, now())"
                ),
                {"e": email, "h": hashed},
            )
    slow = client.post("/api/v1/auth/login", data={"username": "slow@x.io", "password": "anything"})
    assert slow.status_code == 401 and slow.json()["type"].endswith("/invalid-credentials")
    old = client.post("/api/v1/auth/login", data={"username": "old@x.io", "password": "ascii password"})
    assert old.status_code == 200
    with db_engine.connect() as conn:
        stored = conn.execute(sa.text("SELECT hashed_password FROM users WHERE email = 'old@x.io'")).scalar_one()
    assert stored.startswith("$bcrypt-sha256$v=2,t=2b,r=4$")  # rehashed at the configured cost
    again = client.post("/api/v1/auth/login", data={"username": "old@x.io", "password": "ascii password"})
    assert again.status_code == 200
