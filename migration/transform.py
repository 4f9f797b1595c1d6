"""Legacy document → target row, as pure functions. Anything that cannot be mapped is a Reject with a
reason; nothing here touches a database, so every legacy variant is unit-tested directly."""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping as MappingABC
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from bson import Binary, Decimal128, ObjectId, Timestamp, json_util

from taskplatform.migration.mapping import TaskFields, UserFields

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MAX_LEGACY_ID = 96
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_BCRYPT = re.compile(r"^\$2[abxy]\$\d{2}\$[./A-Za-z0-9]{53}$")
_STATUS = {
    **dict.fromkeys(("todo", "to_do", "pending", "open", "new", "backlog"), "todo"),
    **dict.fromkeys(("in_progress", "inprogress", "started", "doing", "active", "wip"), "in_progress"),
    **dict.fromkeys(("done", "completed", "complete", "closed", "finished", "resolved"), "done"),
}
_PRIORITY_WORDS = {
    "low": "low",
    "minor": "low",
    "medium": "medium",
    "normal": "medium",
    "high": "high",
    "major": "high",
    "urgent": "urgent",
    "critical": "urgent",
}
_PRIORITY_NUMBERS = {0: "low", 1: "low", 2: "medium", 3: "high", 4: "urgent", 5: "urgent"}


class RejectError(ValueError):
    """This document cannot be imported; the message is the reason kept with it."""


@dataclass(frozen=True, slots=True)
class UserRow:
    legacy_id: str
    email: str
    full_name: str | None
    hashed_password: str
    is_active: bool
    created_at: datetime


@dataclass(frozen=True, slots=True)
class TaskRow:
    legacy_id: str
    owner_legacy_id: str
    title: str
    description: str | None
    status: str
    priority: str
    due_date: datetime | None
    tags: list[str]
    created_at: datetime
    updated_at: datetime


def legacy_id(value: Any) -> str:
    """A stable text key for any `_id`. ObjectIds are their hex and strings themselves, so an owner
    reference stored as the hex string resolves to the user whose `_id` is that ObjectId; other types
    carry a prefix so that `5` and `"5"` stay distinct."""
    if isinstance(value, ObjectId):
        key = str(value)
    elif isinstance(value, str):
        key = value
    elif isinstance(value, bool):
        key = f"bool:{str(value).lower()}"
    elif isinstance(value, int):
        key = f"int:{value}"
    elif isinstance(value, float):
        key = f"double:{value!r}"
    elif isinstance(value, Decimal128 | Decimal):
        key = f"decimal:{value}"
    elif isinstance(value, datetime):
        key = f"date:{_utc(value).isoformat()}"
    elif isinstance(value, uuid.UUID):
        key = f"uuid:{value}"
    elif isinstance(value, Binary | bytes):
        key = f"bin:{bytes(value).hex()}"
    elif isinstance(value, Timestamp):
        key = f"ts:{value.time}.{value.inc}"
    elif isinstance(value, MappingABC):
        key = "object:" + json_util.dumps(value, sort_keys=True)
    elif value is None:
        key = "null"
    else:
        raise RejectError(f"unsupported _id type {type(value).__name__}")
    if not key or len(key) > MAX_LEGACY_ID:
        raise RejectError(f"_id is empty or longer than {MAX_LEGACY_ID} characters once encoded")
    return key


def _first(doc: MappingABC[str, Any], names: list[str]) -> Any:
    for name in names:
        if name in doc and doc[name] is not None:
            return doc[name]
    return None


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def parse_date(value: Any, what: str) -> datetime | None:
    """BSON dates, ISO 8601 strings and Unix epochs (seconds, or milliseconds when that large)."""
    if value is None or value == "":
        return None
    try:
        if isinstance(value, datetime):
            return _utc(value)
        if isinstance(value, bool):
            raise TypeError
        if isinstance(value, int | float):
            seconds = value / 1000 if abs(value) >= 100_000_000_000 else value
            return datetime.fromtimestamp(seconds, UTC)
        if isinstance(value, str):
            text = value.strip()
            parsed = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text)
            return _utc(parsed)
    except (ValueError, OverflowError, OSError) as exc:
        raise RejectError(f"unparseable {what} {value!r}") from exc
    except TypeError:
        pass
    raise RejectError(f"unparseable {what} {value!r} (a {type(value).__name__})")


def _id_time(doc: MappingABC[str, Any]) -> datetime:
    """When a document lacks its timestamp: the ObjectId's creation second, else the Unix epoch."""
    _id = doc.get("_id")
    return _utc(_id.generation_time) if isinstance(_id, ObjectId) else EPOCH


def _text(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise RejectError(f"{what} has wrong type {type(value).__name__}, expected a string")
    if "\x00" in value:
        raise RejectError(f"{what} contains a NUL character")
    return value


def transform_user(doc: MappingABC[str, Any], fields: UserFields) -> UserRow:
    key = legacy_id(doc.get("_id"))
    email = _first(doc, fields.email)
    if email is None:
        raise RejectError("missing email")
    email = _text(email, "email").strip().lower()
    if len(email) > 320 or not _EMAIL.match(email):
        raise RejectError(f"invalid email {email!r}")
    hashed = _first(doc, fields.password_hash)
    if hashed is None:
        raise RejectError("missing password hash")
    if not isinstance(hashed, str) or not _BCRYPT.match(hashed):
        raise RejectError("password is not a bcrypt hash ($2a$/$2b$/$2y$)")
    name = _first(doc, fields.full_name)
    full_name = None if name is None else _text(name, "name").strip()[:200] or None
    active = _first(doc, fields.is_active)
    if active is not None and not isinstance(active, bool):
        raise RejectError(f"active flag has wrong type {type(active).__name__}")
    created = parse_date(_first(doc, fields.created_at), "created date") or _id_time(doc)
    return UserRow(key, email, full_name, hashed, True if active is None else active, created)


def _status(value: Any) -> str:
    if value is None:
        return "todo"
    text = _text(value, "status").strip().lower().replace("-", "_").replace(" ", "_")
    if text not in _STATUS:
        raise RejectError(f"unknown status {value!r}")
    return _STATUS[text]


def _priority(value: Any) -> str:
    if value is None:
        return "medium"
    if isinstance(value, str):
        word = value.strip().lower()
        if word in _PRIORITY_WORDS:
            return _PRIORITY_WORDS[word]
        if word.isdigit() and int(word) in _PRIORITY_NUMBERS:
            return _PRIORITY_NUMBERS[int(word)]
        raise RejectError(f"unknown priority {value!r}")
    is_number = isinstance(value, int | float) and not isinstance(value, bool)
    if is_number and float(value).is_integer() and int(value) in _PRIORITY_NUMBERS:
        return _PRIORITY_NUMBERS[int(value)]
    raise RejectError(f"unknown priority {value!r}")


def _tags(value: Any) -> list[str]:
    if value is None:
        return []
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list):
        raise RejectError(f"tags have wrong type {type(value).__name__}, expected a list of strings")
    tags = [_text(item, "tag").strip() for item in items]
    tags = list(dict.fromkeys(t for t in tags if t))
    if len(tags) > 20 or any(len(t) > 50 for t in tags):
        raise RejectError("more than 20 tags, or a tag longer than 50 characters")
    return tags


def transform_task(doc: MappingABC[str, Any], fields: TaskFields) -> TaskRow:
    key = legacy_id(doc.get("_id"))
    owner = _first(doc, fields.owner)
    if owner is None:
        raise RejectError("missing owner")
    if not isinstance(owner, ObjectId | str):
        raise RejectError(f"owner reference has wrong type {type(owner).__name__}")
    title = _first(doc, fields.title)
    if title is None or (isinstance(title, str) and not title.strip()):
        raise RejectError("missing title")
    title = _text(title, "title").strip()
    if len(title) > 200:
        raise RejectError("title longer than 200 characters")
    description = _first(doc, fields.description)
    if description is not None:
        description = _text(description, "description")
        if len(description) > 10_000:
            raise RejectError("description longer than 10000 characters")
    created = parse_date(_first(doc, fields.created_at), "created date") or _id_time(doc)
    updated = parse_date(_first(doc, fields.updated_at), "updated date") or created
    return TaskRow(
        legacy_id=key,
        owner_legacy_id=legacy_id(owner),
        title=title,
        description=description,
        status=_status(_first(doc, fields.status)),
        priority=_priority(_first(doc, fields.priority)),
        due_date=parse_date(_first(doc, fields.due_date), "due date"),
        tags=_tags(_first(doc, fields.tags)),
        created_at=created,
        updated_at=updated,
    )
