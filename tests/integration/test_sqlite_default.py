"""`make run` uses the embedded SQLite default: the same app and migrations must work there too."""

from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from helpers.support import TEST_JWT_SECRET, auth_headers, register_and_login

from taskplatform.api.config import Settings
from taskplatform.api.main import create_app


@pytest.fixture
def sqlite_settings(tmp_path: Path) -> Settings:
    return Settings(
        database_url=f"sqlite:///{tmp_path / 'local.db'}",
        jwt_secret=TEST_JWT_SECRET,  # type: ignore[arg-type]
        bcrypt_rounds=4,
        db_auto_migrate=True,  # what `make run` does with `taskplatform-api migrate`
    )


def test_quick_local_run_on_sqlite(sqlite_settings: Settings) -> None:
    with TestClient(create_app(sqlite_settings)) as client:
        assert client.get("/readyz").status_code == 200
        headers = auth_headers(register_and_login(client, "local@x.io"))
        for title, tags in (("a", ["home"]), ("b", ["work", "home"]), ("c", [])):
            assert client.post("/api/v1/tasks", json={"title": title, "tags": tags}, headers=headers).status_code == 201
        tagged = client.get("/api/v1/tasks", params={"tag": ["home", "work"]}, headers=headers).json()
        assert [t["title"] for t in tagged["items"]] == ["b"]
        page = client.get("/api/v1/tasks", params={"limit": 2, "sort": "title"}, headers=headers).json()
        rest = client.get(
            "/api/v1/tasks", params={"limit": 2, "sort": "title", "cursor": page["next_cursor"]}, headers=headers
        ).json()
        assert [t["title"] for t in page["items"] + rest["items"]] == ["a", "b", "c"]
        first = page["items"][0]
        one = client.get(f"/api/v1/tasks/{first['id']}", headers=headers)
        assert (one.status_code, one.json(), one.headers["etag"]) == (200, first, f'"{first["id"]}.1"')
        assert client.get("/api/v1/tasks/999", headers=headers).status_code == 404
        assert client.post("/api/v1/auth/logout", headers=headers).status_code == 204
        assert client.get("/api/v1/users/me", headers=headers).status_code == 401
        assert client.get(f"/api/v1/tasks/{first['id']}", headers=headers).status_code == 401
        assert client.post("/api/v1/tasks", json={"title": "late"}, headers=headers).status_code == 401


def test_sqlite_list_filters_and_cursors(sqlite_settings: Settings) -> None:
    with TestClient(create_app(sqlite_settings)) as client:
        headers = auth_headers(register_and_login(client, "filters@x.io"))
        specs = [
            ("a", "todo", "low", "2030-01-01T00:00:00Z"),
            ("b", "done", "urgent", None),
            ("c", "in_progress", "high", "2030-01-03T00:00:00Z"),
            ("d", "todo", "urgent", None),
        ]
        for title, status, priority, due in specs:
            body = {"title": title, "status": status, "priority": priority, "due_date": due}
            assert client.post("/api/v1/tasks", json=body, headers=headers).status_code == 201

        def titles(**params: object) -> list[str]:
            out: list[str] = []
            cursor = None
            while True:
                query = {**params, "limit": 1, **({"cursor": cursor} if cursor else {})}
                page = client.get("/api/v1/tasks", params=query, headers=headers).json()
                out += [t["title"] for t in page["items"]]
                cursor = page["next_cursor"]
                if not cursor:
                    return out

        assert titles(status=["todo", "done"], sort="title") == ["a", "b", "d"]
        assert titles(priority="urgent", sort="title") == ["b", "d"]
        assert titles(sort="-priority") == ["d", "b", "c", "a"]  # ties broken by id, descending
        assert titles(sort="due_date") == ["a", "c", "b", "d"]  # NULLs last, then by id
        assert titles(due_before="2030-01-02T00:00:00Z") == ["a"]
        assert titles(q="C") == ["c"]
