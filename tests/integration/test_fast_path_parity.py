"""The fast path answers byte for byte as the reference path does, on PostgreSQL.

Fast: the access check folded into one statement sent straight to asyncpg on a held connection, the column
codecs applied by db.statements, the list served directly (main.DIRECT_ROUTES) with its one-pass query parser.
Reference (`create_app(fast_path=False)`): FastAPI's handlers, every statement through SQLAlchemy, the check in a
round trip of its own, and a create through the ORM. Both apps serve one database; the same requests (the list
with every filter, every sort and cursor pages, errors included; one task; a create) must get the same status,
headers and body bytes.
"""

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, get_args

import pytest
from fastapi.testclient import TestClient
from helpers.support import auth_headers, register_and_login

from taskplatform.api.config import Settings
from taskplatform.api.main import create_app
from taskplatform.api.pagination import Cursor, encode_cursor
from taskplatform.api.schemas import SortKey
from taskplatform.api.services.task_queries import FILTERS

PRIORITIES = ("low", "medium", "high", "urgent")
STATUSES = ("todo", "in_progress", "done")
DUE = datetime(2030, 6, 1, 12, 30, tzinfo=UTC)


@pytest.fixture(scope="module")
def apps(settings: Settings) -> Iterator[tuple[TestClient, TestClient]]:
    with (
        TestClient(create_app(settings), raise_server_exceptions=False) as fast,
        TestClient(create_app(settings, fast_path=False), raise_server_exceptions=False) as reference,
    ):
        yield fast, reference


def _task(n: int) -> dict[str, Any]:
    """Varied tasks: repeated and NULL due dates, repeated titles, every status and priority, LIKE wildcards,
    RTL text and emoji, NULL and long descriptions, tags shared and not."""
    return {
        "title": ["Buy milk", "Fix 100% bug", "under_score", "שלום 🎉", "Buy milk!"][n % 5] + f" {n % 7}",
        "description": None if n % 4 == 0 else "d" * (n * 37 % 300),
        "status": STATUSES[n % 3],
        "priority": PRIORITIES[n % 4],
        "due_date": None if n % 3 == 0 else (DUE + timedelta(days=n % 5, hours=n % 2)).isoformat(),
        "tags": [["work"], ["home", "work"], [], ["ü", "work", "x"]][n % 4],
    }


@pytest.fixture
def owners(apps: tuple[TestClient, TestClient], database_url: str) -> list[dict[str, str]]:
    """Two users with tasks, half created through each path (the tables are emptied after each test)."""
    fast, reference = apps
    headers = [auth_headers(register_and_login(fast, f"parity{i}@x.io")) for i in range(2)]
    for n in range(24):
        client = fast if n % 2 else reference
        created = client.post("/api/v1/tasks", json=_task(n), headers=headers[0 if n % 6 else 1])
        assert created.status_code == 201, created.text
    return headers


def _same(apps: tuple[TestClient, TestClient], method: str, url: str, **kwargs: Any) -> Any:
    """One request to both apps, answered alike (status, headers, body bytes); the fast path's answer."""
    headers = {**kwargs.pop("headers", {}), "X-Request-ID": "parity"}
    fast, reference = (app.request(method, url, headers=headers, **kwargs) for app in apps)
    assert (fast.status_code, fast.headers.multi_items(), fast.content) == (
        reference.status_code,
        reference.headers.multi_items(),
        reference.content,
    ), f"{method} {url} {kwargs}"
    return fast


FILTER_SETS: list[dict[str, Any]] = [
    {},
    {"status": "todo"},
    {"status": ["todo", "done"]},
    {"priority": ["urgent", "low"]},
    {"tag": "work"},
    {"tag": ["work", "ü"]},
    {"tag": ["nowhere"]},
    {"due_after": (DUE + timedelta(days=2)).isoformat()},
    {"due_before": "2030-06-03T00:00:00+02:00"},
    {"q": "100%"},
    {"q": "_"},
    {"q": "k!"},
    {"q": "שלום"},
    {"status": ["todo", "in_progress"], "priority": ["high", "medium"], "tag": "work", "q": "milk",
     "due_after": DUE.isoformat(), "due_before": (DUE + timedelta(days=4)).isoformat()},
]  # fmt: skip


def test_every_filter_is_in_a_filter_set() -> None:
    assert {name for params in FILTER_SETS for name in params} == {f.name for f in FILTERS}


@pytest.mark.parametrize("sort", get_args(SortKey))
def test_the_list_with_every_filter_and_sort_and_its_cursor_pages(
    apps: tuple[TestClient, TestClient], owners: list[dict[str, str]], sort: str
) -> None:
    for params in FILTER_SETS:
        url = "/api/v1/tasks"
        response = _same(apps, "GET", url, params={**params, "sort": sort, "limit": 3}, headers=owners[0])
        for _ in range(30):  # follow the pages, through the Link header as a client would
            assert response.status_code == 200, response.text
            if "link" not in response.headers:
                break
            response = _same(apps, "GET", response.headers["link"][1:].split(">")[0], headers=owners[0])
        else:
            raise AssertionError("pagination did not end")


def test_the_lists_refusals(apps: tuple[TestClient, TestClient], owners: list[dict[str, str]]) -> None:
    alice = owners[0]
    other_sort = encode_cursor(Cursor(sort="title", value="a", last_id=1))
    null_tail_of_a_not_null_sort = encode_cursor(Cursor(sort="title", value=None, last_id=1))
    for params, headers in [
        ({"cursor": "garbage"}, alice),
        ({"cursor": other_sort}, alice),
        ({"cursor": null_tail_of_a_not_null_sort, "sort": "title"}, alice),
        ({"cursor": encode_cursor(Cursor(sort="priority", value="nope", last_id=1)), "sort": "priority"}, alice),
        ({"cursor": encode_cursor(Cursor(sort="due_date", value="2030-13-01", last_id=1)), "sort": "due_date"}, alice),
        ({"limit": 0, "status": "nope", "sort": "owner_id"}, alice),
        ({"tag": ["", "a" * 51], "q": "a\x00b", "due_after": "123"}, alice),
        ({}, {}),
        ({"limit": "x"}, {}),  # the token is checked first
        ({}, {"Authorization": "Bearer nonsense"}),
    ]:
        assert _same(apps, "GET", "/api/v1/tasks", params=params, headers=headers).status_code in {400, 401, 422}
    assert _same(apps, "HEAD", "/api/v1/tasks", headers=alice).status_code == 405
    assert _same(apps, "PUT", "/api/v1/tasks", headers=alice).status_code == 405


def test_one_task(apps: tuple[TestClient, TestClient], owners: list[dict[str, str]]) -> None:
    alice, bob = owners
    listed = _same(apps, "GET", "/api/v1/tasks", params={"limit": 100}, headers=alice).json()["items"]
    assert len(listed) >= 10
    for task in listed:
        one = _same(apps, "GET", f"/api/v1/tasks/{task['id']}", headers=alice)
        assert one.status_code == 200 and one.json() == task
        assert _same(apps, "GET", f"/api/v1/tasks/{task['id']}", headers=bob).status_code == 404
        etag = one.headers["etag"]
        assert (
            _same(apps, "GET", f"/api/v1/tasks/{task['id']}", headers={**alice, "If-None-Match": etag}).status_code
            == 304
        )
    for refused in ("999999", "0", str(2**63)):
        assert _same(apps, "GET", f"/api/v1/tasks/{refused}", headers=alice).status_code in {404, 422}
    assert _same(apps, "GET", f"/api/v1/tasks/{listed[0]['id']}").status_code == 401


CREATES = [
    {"title": "minimal"},
    {"title": "  padded  ", "description": "", "status": "done", "priority": "urgent", "tags": ["b", "a", "b"]},
    {"title": "שלום 🎉", "description": "line\nbreak \u2028", "due_date": "2030-01-02T03:04:05.123456+05:30"},
    {"title": "naive due", "due_date": "2030-01-02T03:04:05", "tags": ["x" * 50] * 20},
    {"title": "far", "due_date": "9999-12-31T23:59:59Z", "priority": "low", "status": "in_progress"},
]
# What differs between two creates of the same body: the row's own id and instants.
OWN = ("id", "created_at", "updated_at")


def _without_own(task: dict[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in task.items() if name not in OWN}


@pytest.mark.parametrize("body", CREATES, ids=range(len(CREATES)))
def test_a_create(apps: tuple[TestClient, TestClient], owners: list[dict[str, str]], body: dict[str, Any]) -> None:
    fast, reference = apps
    headers = {**owners[0], "X-Request-ID": "parity"}
    made = [app.post("/api/v1/tasks", json=body, headers=headers) for app in apps]
    assert [response.status_code for response in made] == [201, 201]
    by_fast, by_reference = (response.json() for response in made)
    assert _without_own(by_fast) == _without_own(by_reference)
    assert [sorted(set(r.headers) - {"content-length"}) for r in made] == [["content-type", "etag", "location",
                                                                           "x-request-id"]] * 2  # fmt: skip
    for response in made:
        task = response.json()
        # Each path reads back, byte for byte, what the other one created (and the create's own answer).
        for app in (fast, reference):
            again = app.get(f"/api/v1/tasks/{task['id']}", headers=headers)
            assert again.content == response.content
            assert again.headers["etag"] == response.headers["etag"]
        assert response.headers["location"] == f"/api/v1/tasks/{task['id']}"
    refused = _same(apps, "POST", "/api/v1/tasks", json={**body, "status": "nope"}, headers=owners[0])
    assert refused.status_code == 422
