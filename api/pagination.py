"""Opaque keyset cursors: base64url JSON of the sort key, the last row's sort value and its id."""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from taskplatform.api.errors import ApiError


@dataclass(frozen=True, slots=True)
class Cursor:
    sort: str
    value: Any  # the sort column's value on the last row served (ISO string for datetimes)
    last_id: int


def encode_cursor(cursor: Cursor) -> str:
    value = cursor.value.isoformat() if isinstance(cursor.value, datetime) else cursor.value
    raw = json.dumps({"s": cursor.sort, "v": value, "i": cursor.last_id}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).rstrip(b"=").decode()


def decode_cursor(token: str, expected_sort: str) -> Cursor:
    try:
        padded = token + "=" * (-len(token) % 4)
        data = json.loads(base64.urlsafe_b64decode(padded.encode()))
        sort, value, last_id = data["s"], data["v"], data["i"]
        if not isinstance(sort, str) or not isinstance(last_id, int) or isinstance(last_id, bool):
            raise ValueError("bad cursor fields")
        if value is not None and not isinstance(value, str | int):
            raise ValueError("bad cursor value")
    except (ValueError, KeyError, TypeError, binascii.Error, UnicodeDecodeError) as exc:
        raise ApiError(400, "invalid-cursor", "The cursor is malformed; start again without one.") from exc
    if sort != expected_sort:
        raise ApiError(
            400,
            "invalid-cursor",
            f"The cursor belongs to sort={sort!r}, not sort={expected_sort!r}; keep the same sort while paging.",
        )
    return Cursor(sort=sort, value=value, last_id=last_id)
