"""Opaque keyset cursors: base64url JSON of the sort key, the last row's sort value and its id."""

from __future__ import annotations

import base64
import json
import string
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from taskplatform.api.errors import ApiError
from taskplatform.api.limits import CURSOR_MAX, ID_MAX, ID_MIN

_ALPHABET = frozenset(string.ascii_letters + string.digits + "-_")


@dataclass(frozen=True, slots=True)
class Cursor:
    sort: str
    value: Any  # the sort column's value on the last row served (ISO string for datetimes)
    last_id: int


def invalid_cursor() -> ApiError:
    return ApiError(400, "invalid-cursor", "The cursor is malformed; start again without one.")


def encode_cursor(cursor: Cursor) -> str:
    value = cursor.value.isoformat() if isinstance(cursor.value, datetime) else cursor.value
    # UTF-8 rather than \u escapes: a title's non-ASCII characters take 2-4 bytes instead of 6-12, which keeps
    # the longest cursor within CURSOR_MAX.
    raw = json.dumps({"s": cursor.sort, "v": value, "i": cursor.last_id}, separators=(",", ":"), ensure_ascii=False)
    return base64.urlsafe_b64encode(raw.encode()).rstrip(b"=").decode()


def decode_cursor(token: str, expected_sort: str) -> Cursor:
    """The cursor's fields, checked for shape and the id's range; its value is checked against the sort's
    column by the caller, which knows the column."""
    # The length first (TaskListQuery bounds it too; this holds for any caller), then only the alphabet
    # encode_cursor writes: the decoder would skip any other character, taking a cursor with junk appended.
    if len(token) > CURSOR_MAX or not _ALPHABET.issuperset(token):
        raise invalid_cursor()
    try:
        data = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    # ValueError covers binascii.Error, JSONDecodeError and UnicodeDecodeError; RecursionError, JSON nested as
    # deep as CURSOR_MAX characters allow, which comes close to the stack's limit.
    except (ValueError, RecursionError) as exc:
        raise invalid_cursor() from exc
    if not isinstance(data, dict) or data.keys() != {"s", "v", "i"}:
        raise invalid_cursor()
    sort, value, last_id = data["s"], data["v"], data["i"]
    if (
        not isinstance(sort, str)
        or type(last_id) is not int  # not a bool, which is an int too
        or not ID_MIN <= last_id <= ID_MAX
        or not (value is None or isinstance(value, str) or type(value) is int)
    ):
        raise invalid_cursor()
    if sort != expected_sort:
        raise ApiError(
            400,
            "invalid-cursor",
            f"The cursor belongs to sort={sort!r}, not sort={expected_sort!r}; keep the same sort while paging.",
        )
    return Cursor(sort=sort, value=value, last_id=last_id)
