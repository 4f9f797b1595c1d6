import base64
import json
from datetime import UTC, datetime

import pytest

from taskplatform.api.errors import ApiError
from taskplatform.api.pagination import Cursor, decode_cursor, encode_cursor
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
