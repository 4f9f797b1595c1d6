import base64
import json
from datetime import UTC, datetime

import pytest
from starlette.requests import Request

from taskplatform.api.errors import ApiError
from taskplatform.api.limits import CURSOR_MAX, ID_MAX, TITLE_MAX
from taskplatform.api.pagination import Cursor, decode_cursor, encode_cursor
from taskplatform.api.routes.tasks import next_page_link
from taskplatform.api.services.task_queries import TaskListQuery
from taskplatform.api.services.tasks import etag_for, parse_if_match


@pytest.mark.parametrize("value", [datetime(2030, 5, 1, 8, 30, tzinfo=UTC), "title", 3, None])
def test_cursor_round_trip(value: object) -> None:
    token = encode_cursor(Cursor(sort="-created_at", value=value, last_id=17))
    decoded = decode_cursor(token, "-created_at")
    expected = value.isoformat() if isinstance(value, datetime) else value
    assert (decoded.sort, decoded.value, decoded.last_id) == ("-created_at", expected, 17)
    assert "=" not in token  # URL-safe without padding


@pytest.mark.parametrize(
    "token",
    [
        "!!!",
        base64.urlsafe_b64encode(b"not json").decode(),
        base64.urlsafe_b64encode(json.dumps({"s": "title"}).encode()).decode(),
        base64.urlsafe_b64encode(json.dumps({"s": "title", "v": [], "i": 1}).encode()).decode(),
        base64.urlsafe_b64encode(json.dumps({"s": "title", "v": "a", "i": "1"}).encode()).decode(),
    ],
)
def test_malformed_cursor_is_a_400_problem(token: str) -> None:
    with pytest.raises(ApiError) as info:
        decode_cursor(token, "title")
    assert (info.value.status, info.value.problem) == (400, "invalid-cursor")


def test_cursor_from_another_sort_is_refused() -> None:
    token = encode_cursor(Cursor(sort="title", value="a", last_id=1))
    with pytest.raises(ApiError, match="keep the same sort"):
        decode_cursor(token, "-created_at")


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("*", "*"),
        ('"7.3"', 3),
        ('W/"7.3"', 3),
        ('"8.1", "7.4"', 4),
        ('"8.1"', -1),
        ("garbage", -1),
        ('"7.x"', -1),
    ],
)
def test_if_match_parsing(header: str | None, expected: object) -> None:
    assert parse_if_match(header, 7) == expected


def test_etag_is_quoted_and_changes_with_version() -> None:
    assert etag_for(7, 1) == '"7.1"'
    assert etag_for(7, 1) != etag_for(7, 2)


@pytest.mark.parametrize(
    "query",
    [
        b"",
        b"limit=5",
        b"status=todo&status=done&limit=5&cursor=old",
        b"cursor=old&q=%D7%A9%D7%9C%D7%95%D7%9D+%F0%9F%8E%89&tag=a%26b&tag=",
        b"due_after=2030-01-01T00%3A00%3A00%2B02%3A00&sort=-title",
    ],
)
def test_next_page_link_is_starlettes_include_query_params(query: bytes) -> None:
    scope = {
        "type": "http", "method": "GET", "scheme": "https", "path": "/api/v1/tasks", "root_path": "",
        "query_string": query, "headers": [(b"host", b"api.example.com:8443")], "server": ("10.0.0.1", 8000),
    }  # fmt: skip
    request = Request(scope)
    cursor = encode_cursor(Cursor(sort="-created_at", value=datetime(2030, 5, 1, tzinfo=UTC), last_id=9))
    expected = f'<{request.url.include_query_params(cursor=cursor)}>; rel="next"'
    assert next_page_link(request, cursor) == expected


@pytest.mark.parametrize("character", ["x", "ü", "\U0001f600", "\x01", '"'])
def test_the_longest_cursors_the_api_writes_are_within_the_bound_it_reads(character: str) -> None:
    """A title of TITLE_MAX characters that JSON spells longest, and the largest id: the next page's cursor
    must still pass TaskListQuery's bound and decode."""
    cursor = Cursor(sort="-title", value=character * TITLE_MAX, last_id=ID_MAX)
    token = encode_cursor(cursor)
    assert len(token) <= CURSOR_MAX
    TaskListQuery.model_validate({"sort": "-title", "cursor": token})
    assert decode_cursor(token, "-title") == cursor
