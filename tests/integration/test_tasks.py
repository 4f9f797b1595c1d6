from datetime import UTC, datetime, timedelta
from typing import get_args

import httpx
import pytest
from fastapi.testclient import TestClient
from helpers.support import auth_headers, register_and_login

from taskplatform.api.schemas import SortKey

PROBLEM = "application/problem+json"


@pytest.fixture
def alice(client: TestClient) -> dict[str, str]:
    return auth_headers(register_and_login(client, "alice@x.io"))


@pytest.fixture
def bob(client: TestClient) -> dict[str, str]:
    return auth_headers(register_and_login(client, "bob@x.io"))


def create(client: TestClient, headers: dict[str, str], **fields: object) -> dict:
    response = client.post("/api/v1/tasks", json={"title": "task", **fields}, headers=headers)
    assert response.status_code == 201, response.text
    return response.json()


def all_pages(client: TestClient, headers: dict[str, str], **params: object) -> list[dict]:
    """Every page, following each response's Link to the next one (and checking it against next_cursor)."""
    items: list[dict] = []
    response = client.get("/api/v1/tasks", params=params, headers=headers)  # type: ignore[arg-type]
    for _ in range(100):
        assert response.status_code == 200, response.text
        page = response.json()
        items += page["items"]
        if page["next_cursor"] is None:
            assert "link" not in response.headers
            return items
        link = httpx.URL(response.headers["link"].removeprefix("<").removesuffix('>; rel="next"'))
        assert link.copy_remove_param("cursor") == response.url.copy_remove_param("cursor")
        assert link.params["cursor"] == page["next_cursor"]
        response = client.get(str(link), headers=headers)
    raise AssertionError("pagination did not terminate")


def test_create_returns_the_task_with_etag_and_location(client: TestClient, alice: dict[str, str]) -> None:
    due = "2030-01-02T03:04:05+02:00"
    response = client.post(
        "/api/v1/tasks",
        json={"title": "Write", "description": "d", "priority": "high", "due_date": due, "tags": ["a", "b"]},
        headers=alice,
    )
    assert response.status_code == 201
    task = response.json()
    assert task["status"] == "todo" and task["priority"] == "high" and task["tags"] == ["a", "b"]
    assert task["due_date"] == "2030-01-02T01:04:05Z"
    assert response.headers["etag"] == f'"{task["id"]}.1"'
    assert response.headers["location"] == f"/api/v1/tasks/{task['id']}"
    fetched = client.get(f"/api/v1/tasks/{task['id']}", headers=alice)
    assert fetched.json() == task and fetched.headers["etag"] == response.headers["etag"]


def test_patch_changes_only_given_fields_and_bumps_version(client: TestClient, alice: dict[str, str]) -> None:
    task = create(client, alice, description="keep", due_date="2030-01-01T00:00:00Z")
    response = client.patch(f"/api/v1/tasks/{task['id']}", json={"status": "in_progress"}, headers=alice)
    assert response.status_code == 200
    updated = response.json()
    assert updated["status"] == "in_progress" and updated["description"] == "keep"
    assert updated["version"] == 2 and updated["updated_at"] > task["updated_at"]
    assert response.headers["etag"] == f'"{task["id"]}.2"'
    cleared = client.patch(f"/api/v1/tasks/{task['id']}", json={"due_date": None}, headers=alice).json()
    assert cleared["due_date"] is None


def test_delete_then_gone(client: TestClient, alice: dict[str, str]) -> None:
    task = create(client, alice)
    assert client.delete(f"/api/v1/tasks/{task['id']}", headers=alice).status_code == 204
    missing = client.get(f"/api/v1/tasks/{task['id']}", headers=alice)
    assert missing.status_code == 404 and missing.headers["content-type"] == PROBLEM
    assert client.delete(f"/api/v1/tasks/{task['id']}", headers=alice).status_code == 404


def test_other_users_tasks_are_404_everywhere(client: TestClient, alice: dict[str, str], bob: dict[str, str]) -> None:
    task = create(client, alice, title="secret")
    url = f"/api/v1/tasks/{task['id']}"
    assert client.get(url, headers=bob).status_code == 404
    assert client.patch(url, json={"title": "pwned"}, headers=bob).status_code == 404
    assert client.patch(url, json={"title": "pwned"}, headers={**bob, "If-Match": '"1.1"'}).status_code == 404
    assert client.delete(url, headers=bob).status_code == 404
    assert client.get("/api/v1/tasks", headers=bob).json()["items"] == []
    assert client.get(url, headers=alice).json()["title"] == "secret"


def test_stale_if_match_is_412_and_current_one_succeeds(client: TestClient, alice: dict[str, str]) -> None:
    task = create(client, alice)
    url = f"/api/v1/tasks/{task['id']}"
    first = client.patch(url, json={"title": "v2"}, headers={**alice, "If-Match": f'"{task["id"]}.1"'})
    assert first.status_code == 200
    stale = client.patch(url, json={"title": "v3"}, headers={**alice, "If-Match": f'"{task["id"]}.1"'})
    assert stale.status_code == 412 and stale.headers["content-type"] == PROBLEM
    assert client.delete(url, headers={**alice, "If-Match": f'"{task["id"]}.1"'}).status_code == 412
    assert client.patch(url, json={"title": "v3"}, headers={**alice, "If-Match": "*"}).status_code == 200
    assert client.delete(url, headers={**alice, "If-Match": f'"{task["id"]}.3"'}).status_code == 204


def test_if_none_match_gives_304(client: TestClient, alice: dict[str, str]) -> None:
    task = create(client, alice)
    response = client.get(f"/api/v1/tasks/{task['id']}", headers={**alice, "If-None-Match": f'"{task["id"]}.1"'})
    assert response.status_code == 304 and response.content == b""


def test_idempotency_key_replays_the_first_result(client: TestClient, alice: dict[str, str]) -> None:
    headers = {**alice, "Idempotency-Key": "k-1"}
    first = client.post("/api/v1/tasks", json={"title": "once"}, headers=headers)
    second = client.post("/api/v1/tasks", json={"title": "once"}, headers=headers)
    assert first.status_code == second.status_code == 201
    assert first.json() == second.json()
    assert second.headers["idempotent-replayed"] == "true" and "idempotent-replayed" not in first.headers
    assert len(client.get("/api/v1/tasks", headers=alice).json()["items"]) == 1

    different = client.post("/api/v1/tasks", json={"title": "other"}, headers=headers)
    assert different.status_code == 422 and different.json()["type"].endswith("/idempotency-key-reused")


def test_idempotency_keys_are_per_user(client: TestClient, alice: dict[str, str], bob: dict[str, str]) -> None:
    a = client.post("/api/v1/tasks", json={"title": "a"}, headers={**alice, "Idempotency-Key": "same"})
    b = client.post("/api/v1/tasks", json={"title": "b"}, headers={**bob, "Idempotency-Key": "same"})
    assert a.status_code == b.status_code == 201
    assert a.json()["id"] != b.json()["id"] and b.json()["owner_id"] != a.json()["owner_id"]


def test_filters(client: TestClient, alice: dict[str, str]) -> None:
    now = datetime(2030, 6, 1, tzinfo=UTC)
    create(
        client,
        alice,
        title="Buy milk",
        status="todo",
        priority="low",
        tags=["home"],
        due_date=now.isoformat(),
    )
    create(
        client,
        alice,
        title="Fix 100% bug",
        status="in_progress",
        priority="urgent",
        tags=["work", "bug"],
        due_date=(now + timedelta(days=2)).isoformat(),
    )
    create(client, alice, title="Write docs", status="done", priority="medium", tags=["work"])

    def titles(**params: object) -> set[str]:
        return {t["title"] for t in all_pages(client, alice, **params)}

    assert titles(status="todo") == {"Buy milk"}
    assert titles(status=["todo", "done"]) == {"Buy milk", "Write docs"}
    assert titles(priority="urgent") == {"Fix 100% bug"}
    assert titles(tag="work") == {"Fix 100% bug", "Write docs"}
    assert titles(tag=["work", "bug"]) == {"Fix 100% bug"}
    assert titles(due_after=(now + timedelta(days=1)).isoformat()) == {"Fix 100% bug"}
    assert titles(due_before=(now + timedelta(days=1)).isoformat()) == {"Buy milk"}
    assert titles(q="MILK") == {"Buy milk"}
    assert titles(q="100%") == {"Fix 100% bug"}  # LIKE wildcards in the query are literal
    assert titles(q="%") == {"Fix 100% bug"}
    assert titles(q="_") == set()


@pytest.mark.parametrize("sort", get_args(SortKey))
def test_every_sort_pages_through_each_task_exactly_once(client: TestClient, alice: dict[str, str], sort: str) -> None:
    priorities = ["low", "medium", "high", "urgent"]
    for i in range(23):
        due = None if i % 3 == 0 else (datetime(2030, 1, 1, tzinfo=UTC) + timedelta(days=i % 5)).isoformat()
        create(client, alice, title=f"t{i % 7}", priority=priorities[i % 4], due_date=due)
    items = all_pages(client, alice, sort=sort, limit=4)
    assert sorted(t["id"] for t in items) == list(range(1, 24))

    name = sort.lstrip("-")
    rank = {p: i for i, p in enumerate(priorities)}

    def key(task: dict) -> object:
        return rank[task[name]] if name == "priority" else task[name]

    values = [key(t) for t in items]
    present = [v for v in values if v is not None]
    assert present == sorted(present, reverse=sort.startswith("-"))
    if name == "due_date":  # NULLs come last in both directions
        assert values[len(present) :] == [None] * (len(values) - len(present))


def test_limit_bounds_and_bad_cursor(client: TestClient, alice: dict[str, str]) -> None:
    assert client.get("/api/v1/tasks", params={"limit": 0}, headers=alice).status_code == 422
    assert client.get("/api/v1/tasks", params={"limit": 101}, headers=alice).status_code == 422
    bad = client.get("/api/v1/tasks", params={"cursor": "garbage"}, headers=alice)
    assert bad.status_code == 400 and bad.json()["type"].endswith("/invalid-cursor")
    bad_sort = client.get("/api/v1/tasks", params={"sort": "owner_id"}, headers=alice)
    assert bad_sort.status_code == 422 and bad_sort.json()["errors"][0]["loc"] == ["query", "sort"]


def test_cursor_survives_inserts_between_pages(client: TestClient, alice: dict[str, str]) -> None:
    for i in range(5):
        create(client, alice, title=f"old{i}")
    first = client.get("/api/v1/tasks", params={"limit": 2, "sort": "created_at"}, headers=alice).json()
    create(client, alice, title="new")
    rest = all_pages(client, alice, sort="created_at", limit=2, cursor=first["next_cursor"])
    titles = [t["title"] for t in first["items"] + rest]
    assert titles == ["old0", "old1", "old2", "old3", "old4", "new"]


def test_validation_errors_carry_field_paths(client: TestClient, alice: dict[str, str]) -> None:
    response = client.post(
        "/api/v1/tasks", json={"title": "", "status": "pending", "tags": ["ok", 5], "extra": 1}, headers=alice
    )
    assert response.status_code == 422
    locs = {tuple(e["loc"]) for e in response.json()["errors"]}
    assert {("body", "title"), ("body", "status"), ("body", "tags", 1), ("body", "extra")} <= locs


def test_out_of_range_ids_are_validation_errors_not_crashes(client: TestClient, alice: dict[str, str]) -> None:
    assert client.get(f"/api/v1/tasks/{2**63}", headers=alice).status_code == 422
    assert client.get("/api/v1/tasks/0", headers=alice).status_code == 422


def test_unknown_route_and_wrong_method_are_problems(client: TestClient) -> None:
    missing = client.get("/api/v1/nope")
    assert missing.status_code == 404 and missing.headers["content-type"] == PROBLEM
    wrong = client.put("/api/v1/tasks")
    assert wrong.status_code == 405 and wrong.json()["type"].endswith("/method-not-allowed")


def test_method_not_allowed_lists_every_method_of_the_path(client: TestClient) -> None:
    response = client.put("/api/v1/tasks/1")
    assert response.status_code == 405
    assert response.headers["allow"] == "DELETE, GET, PATCH"
    assert client.put("/api/v1/tasks").headers["allow"] == "GET, POST"


@pytest.mark.parametrize("operation", ["list", "get", "create"])
def test_hot_routes_are_one_round_trip_and_still_refuse_revoked_disabled_and_deleted_callers(
    client: TestClient,
    db_engine,  # type: ignore[no-untyped-def]
    monkeypatch,  # type: ignore[no-untyped-def]
    operation: str,
) -> None:
    """The revocation check is folded into the list's page query, the task's read and the insert: one statement
    each, and every refusal of the separate check still holds (a refused create inserts nothing)."""
    import sqlalchemy as sa

    from taskplatform.api.db import Statement

    statements: list[object] = []
    real_driver, real_sqlalchemy = Statement.fetch_driver, Statement.fetch_sqlalchemy

    async def counting_driver(self, driver, params):  # type: ignore[no-untyped-def]
        statements.append(self)
        return await real_driver(self, driver, params)

    async def counting_sqlalchemy(self, source, params):  # type: ignore[no-untyped-def]
        statements.append(self)
        return await real_sqlalchemy(self, source, params)

    # Every statement of these routes is a Statement, run one way or the other (db.statements).
    monkeypatch.setattr(Statement, "fetch_driver", counting_driver)
    monkeypatch.setattr(Statement, "fetch_sqlalchemy", counting_sqlalchemy)
    tokens = register_and_login(client, "fold@x.io")
    headers = auth_headers(tokens)
    empty = client.get("/api/v1/tasks", headers=headers)
    assert (empty.status_code, empty.json()["items"]) == (200, [])  # the NULL page row is no task
    tasks = [create(client, headers, title=f"t{i}", tags=["x", "ü"]) for i in range(3)]

    def call(headers: dict[str, str]):  # type: ignore[no-untyped-def]
        if operation == "list":
            return client.get("/api/v1/tasks", params={"sort": "title", "limit": 2}, headers=headers)
        if operation == "get":
            return client.get(f"/api/v1/tasks/{tasks[1]['id']}", headers=headers)
        return client.post("/api/v1/tasks", json={"title": "new", "priority": "high", "tags": ["a"]}, headers=headers)

    def task_count() -> int:
        with db_engine.begin() as conn:
            return int(conn.execute(sa.text("SELECT count(*) FROM tasks")).scalar_one())

    statements.clear()
    answer = call(headers)
    assert len(statements) == 1  # the access check and the work in one statement
    if operation == "list":
        assert [t["title"] for t in answer.json()["items"]] == ["t0", "t1"] and answer.json()["next_cursor"]
    elif operation == "get":
        assert (answer.status_code, answer.json()) == (200, tasks[1])
        assert answer.headers["etag"] == f'"{tasks[1]["id"]}.1"'
        assert client.get("/api/v1/tasks/999999", headers=headers).status_code == 404
    else:
        created = answer.json()
        assert (answer.status_code, created["title"], created["priority"], created["tags"]) == (
            201,
            "new",
            "high",
            ["a"],
        )
        assert answer.headers["location"] == f"/api/v1/tasks/{created['id']}"
        assert client.get(f"/api/v1/tasks/{created['id']}", headers=headers).json() == created
    before = task_count()

    login = client.post("/api/v1/auth/login", data={"username": "fold@x.io", "password": "correct horse"})
    second = {"Authorization": f"Bearer {login.json()['access_token']}"}  # another session of the same user
    assert client.post("/api/v1/auth/logout", headers=headers).status_code == 204
    revoked = call(headers)
    assert revoked.status_code == 401 and revoked.json()["detail"] == "The token has been revoked."
    with db_engine.begin() as conn:
        conn.execute(sa.text("UPDATE users SET is_active = false WHERE email = 'fold@x.io'"))
    disabled = call(second)
    assert disabled.status_code == 401 and disabled.json()["detail"] == "The account is disabled."
    assert task_count() == before  # nothing was written by a refused create
    with db_engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM users WHERE email = 'fold@x.io'"))
    assert call(second).status_code == 401


def test_a_create_with_an_idempotency_key_is_refused_for_a_revoked_token(client: TestClient) -> None:
    """That create takes the transactional path, which checks the token in a round trip of its own."""
    headers = auth_headers(register_and_login(client, "idem-revoked@x.io"))
    assert client.post("/api/v1/auth/logout", headers=headers).status_code == 204
    refused = client.post("/api/v1/tasks", json={"title": "x"}, headers={**headers, "Idempotency-Key": "k1"})
    assert refused.status_code == 401 and refused.json()["detail"] == "The token has been revoked."
