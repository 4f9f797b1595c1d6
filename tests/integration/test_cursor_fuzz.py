"""Tampered cursors on the real PostgreSQL app: whatever a client puts in one, the list answers 400
invalid-cursor, never a 5xx; genuine cursors, boundary values included, still page. And the list request's
other bounds: how many tags it may require, how large a page it may ask."""

from __future__ import annotations

import base64
import json
from typing import get_args

import pytest
from fastapi.testclient import TestClient
from helpers.support import auth_headers, register_and_login

from taskplatform.api.limits import CURSOR_MAX, PAGE_SIZE_MAX, TAG_FILTERS_MAX, TITLE_MAX
from taskplatform.api.schemas import SortKey

PROBLEM = "application/problem+json"
SORTS: tuple[str, ...] = get_args(SortKey)
DATETIME_SORTS = {"created_at", "updated_at", "due_date"}
NULLABLE_SORTS = {"due_date"}
ID_MAX = 2**63 - 1


def token(payload: object) -> str:
    """A cursor as the API spells one (unpadded base64url of JSON); ensure_ascii carries NUL and lone
    surrogates through JSON as \\u escapes."""
    return base64.urlsafe_b64encode(json.dumps(payload).encode()).rstrip(b"=").decode()


def raw(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def readable(cursor: str) -> str:
    try:
        text = repr(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except ValueError:
        text = repr(cursor)
    return text if len(text) <= 80 else text[:77] + "..."


def good_value(sort: str) -> object:
    name = sort.lstrip("-")
    if name in DATETIME_SORTS:
        return "2030-01-01T00:00:00+00:00"
    return "high" if name == "priority" else "t"


def bad_values(sort: str) -> list[object]:
    """Sort values no genuine cursor of this sort holds, or that the database cannot take."""
    name = sort.lstrip("-")
    wrong_types: list[object] = [[], [1], {}, {"a": {"b": 1}}, 1.5, True, False, 10**30, -1]
    strings = ["\x00", "a\x00b", "\ud800", "x\udfffy", "1" * 700]
    if name in DATETIME_SORTS:
        return [
            *wrong_types,
            *strings,
            0,
            "",
            "0001-01-01T00:00:00+05:00",  # before year 1 once converted to UTC
            "9999-12-31T23:59:59-05:00",  # after year 9999 once converted to UTC
            "2030-13-01T00:00:00Z",
            "2030-01-01T25:00:00Z",
            "not a date",
            "2030-01-01T00:00:00\x00",
            *([] if name in NULLABLE_SORTS else [None]),
        ]
    if name == "priority":
        return [*wrong_types, *strings, 0, 2, None, "", "urgent ", "HIGH", "critical"]
    return [*wrong_types, *strings, 0, None, "x" * (TITLE_MAX + 1)]  # title


BAD_IDS: list[object] = [0, -1, -(2**63), 2**63, 2**64 + 1, 10**40, 1.0, 1.5, True, False, "1", None, [], {}]


def cursor_cases() -> list[tuple[str, str]]:
    cases: list[tuple[str, str]] = []
    for sort in SORTS:
        value = good_value(sort)
        cases += [(sort, token({"s": sort, "v": bad, "i": 1})) for bad in bad_values(sort)]
        cases += [(sort, token({"s": sort, "v": value, "i": bad})) for bad in BAD_IDS]
        cases += [
            (sort, token({"s": sort, "v": value})),
            (sort, token({"s": sort, "i": 1})),
            (sort, token({"v": value, "i": 1})),
            (sort, token({"s": [sort], "v": value, "i": 1})),
            (sort, token({"s": sort.lstrip("-") if sort.startswith("-") else "-" + sort, "v": value, "i": 1})),
            (sort, token({"s": {"nested": sort}, "v": value, "i": 1})),
            (sort, token([sort, value, 1])),
            (sort, token(sort)),
            (sort, token(1)),
            (sort, token(None)),
            (sort, token({"s": sort, "v": {"s": sort, "v": value, "i": 1}, "i": 1})),
            (sort, raw(b'{"s": "%s", "v": "t", "i": NaN}' % sort.encode())),
            (sort, raw(b'{"s": "%s", "v": "t", "i": Infinity}' % sort.encode())),
            (sort, raw(b'{"s": "%s", "v": "t", "i": 1' % sort.encode())),
            (sort, raw(b"[" * (CURSOR_MAX * 3 // 4))),  # as deep as a cursor's length lets JSON nest
            (sort, raw(b'{"s":' * (CURSOR_MAX * 3 // 4 // 5))),
            (sort, raw(b"\xff\xfe\xfd\x00")),
            (sort, raw(b"not json")),
            (sort, "!!!"),
            (sort, "a"),
            (sort, "===="),
            (sort, "é"),
            (sort, "\x00"),
            (sort, token({"s": sort, "v": value, "i": 1}) + "*"),
        ]
    return cases


CASES = cursor_cases()


@pytest.fixture
def alice(client: TestClient) -> dict[str, str]:
    return auth_headers(register_and_login(client, "alice@x.io"))


def test_every_tampered_cursor_is_a_400_problem_never_a_5xx(client: TestClient, alice: dict[str, str]) -> None:
    for i in range(3):
        response = client.post(
            "/api/v1/tasks",
            json={"title": f"t{i}", "priority": "high", "due_date": "2030-01-01T00:00:00Z"},
            headers=alice,
        )
        assert response.status_code == 201, response.text
    assert {sort for sort, _ in CASES} == set(SORTS)
    unexpected = []
    for sort, cursor in CASES:
        response = client.get("/api/v1/tasks", params={"sort": sort, "cursor": cursor}, headers=alice)
        content_type = response.headers.get("content-type")
        problem = response.json() if content_type == PROBLEM else {}
        if response.status_code != 400 or not problem.get("type", "").endswith("/invalid-cursor"):
            unexpected.append(f"{response.status_code} sort={sort} cursor={readable(cursor)}")
    summary = f"{len(unexpected)} of {len(CASES)} cursors were not a 400 invalid-cursor:"
    assert not unexpected, "\n".join([summary, *unexpected])


@pytest.mark.parametrize("sort", SORTS)
def test_genuine_cursors_and_boundary_values_still_page(client: TestClient, alice: dict[str, str], sort: str) -> None:
    for i in range(5):
        due = None if i == 0 else f"2030-01-0{i}T00:00:00Z"
        response = client.post(
            "/api/v1/tasks",
            json={"title": f"t{i}", "priority": ["low", "medium", "high"][i % 3], "due_date": due},
            headers=alice,
        )
        assert response.status_code == 201, response.text
    seen: list[int] = []
    params: dict[str, object] = {"sort": sort, "limit": 2}
    for _ in range(10):
        response = client.get("/api/v1/tasks", params=params, headers=alice)  # type: ignore[arg-type]
        assert response.status_code == 200, response.text
        page = response.json()
        seen += [task["id"] for task in page["items"]]
        if page["next_cursor"] is None:
            break
        params["cursor"] = page["next_cursor"]
    assert sorted(seen) == [1, 2, 3, 4, 5]

    # Hand-made cursors at the edges of what is valid are served, not refused.
    name = sort.lstrip("-")
    if name in DATETIME_SORTS:
        values: list[object] = ["0001-01-01T00:00:00+00:00", "9999-12-31T23:59:59.999999+00:00",
                                "2030-01-01T00:00:00", "2030-01-01T05:00:00+05:00"]  # fmt: skip
        values += [None] if name in NULLABLE_SORTS else []
    elif name == "priority":
        values = ["low", "medium", "high", "urgent"]
    else:
        values = ["", "t", "x" * TITLE_MAX, "ü\U0001f600"]
    for value in values:
        for last_id in (1, ID_MAX):
            cursor = token({"s": sort, "v": value, "i": last_id})
            response = client.get("/api/v1/tasks", params={"sort": sort, "cursor": cursor}, headers=alice)
            assert response.status_code == 200, (value, last_id, response.text)


def test_the_list_requires_at_most_tag_filters_max_tags(client: TestClient, alice: dict[str, str]) -> None:
    tags = [f"tag{i}" for i in range(TAG_FILTERS_MAX)]
    assert client.get("/api/v1/tasks", params={"tag": tags}, headers=alice).status_code == 200
    response = client.get("/api/v1/tasks", params={"tag": [*tags, "one-more"]}, headers=alice)
    assert response.status_code == 422 and response.headers["content-type"] == PROBLEM
    assert [error["loc"] for error in response.json()["errors"]] == [["query", "tag"]]


def test_the_page_size_is_bounded_by_page_size_max(client: TestClient, alice: dict[str, str]) -> None:
    assert client.get("/api/v1/tasks", params={"limit": PAGE_SIZE_MAX}, headers=alice).status_code == 200
    response = client.get("/api/v1/tasks", params={"limit": PAGE_SIZE_MAX + 1}, headers=alice)
    assert response.status_code == 422 and response.headers["content-type"] == PROBLEM
    assert [error["loc"] for error in response.json()["errors"]] == [["query", "limit"]]
