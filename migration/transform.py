"""Legacy document → target row, as pure functions; nothing here touches a database, so every legacy
variant is unit-tested directly.

The rule (docs/migration.md): a document is rejected only when it cannot be a row at all (no usable `_id`,
owner, title, email or password hash). Any other field that does not fit is defaulted, converted or cut
to fit a column, and every such change is recorded as a note on the row, so that the summary and the
`migration_alterations` table name every altered document. Limits that only guard new input through the
API (description length, tag count and length) do not apply to history: such values are kept whole and
noted.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping as MappingABC
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from bson import Binary, DatetimeMS, DBRef, Decimal128, ObjectId, Timestamp, json_util
from bson.errors import InvalidBSON

from taskplatform.api.limits import (
    BCRYPT_MAX_ROUNDS_DEFAULT,
    BCRYPT_ROUNDS_LIMIT,
    BCRYPT_ROUNDS_MIN,
    DESCRIPTION_MAX,
    EMAIL_MAX,
    FULL_NAME_MAX,
    LEGACY_ID_MAX,
    TAG_MAX,
    TAGS_MAX,
    TITLE_MAX,
)
from taskplatform.migration.mapping import TaskFields, UserFields

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
# Anchored at both ends by fullmatch (not `$`, which also matches before a final newline), no nested quantifiers:
# linear, over at most 60 characters. `[0-9]`, not `\d`, which takes any Unicode digit.
_BCRYPT = re.compile(r"\$2[abxy]\$([0-9]{2})\$[./A-Za-z0-9]{53}")
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
_TRUE_WORDS = {"true": True, "yes": True, "y": True, "1": True, "false": False, "no": False, "n": False, "0": False}


class RejectError(ValueError):
    """This document cannot be imported; the message is the reason kept with it."""


Notes = list[str]


@dataclass(frozen=True, slots=True)
class UserRow:
    legacy_id: str
    email: str
    full_name: str | None
    hashed_password: str
    is_active: bool
    created_at: datetime
    # What the transform changed to make the document fit (not a column; never part of the checksum).
    notes: tuple[str, ...] = field(default=(), compare=False)


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
    notes: tuple[str, ...] = field(default=(), compare=False)


def _number_key(value: int | float | Decimal) -> str:
    """MongoDB compares numbers by value whatever their BSON type (`5`, `5.0` and `Decimal128("5")` are one
    `_id`), so an integral number is `int:N` however it is stored; other numbers keep their type."""
    if isinstance(value, float) and value.is_integer():
        return f"int:{int(value)}"
    if isinstance(value, Decimal) and value.is_finite() and value == value.to_integral_value():
        return f"int:{int(value)}"
    if isinstance(value, Decimal) and value.is_finite() and Decimal(float(value)) == value:
        return f"double:{float(value)!r}"  # 2.5 and Decimal128("2.5") are one value
    if isinstance(value, Decimal):
        return f"decimal:{value}"
    if isinstance(value, float):
        return f"double:{value!r}"
    return f"int:{value}"


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
    elif isinstance(value, int | float | Decimal):
        key = _number_key(value)
    elif isinstance(value, Decimal128):
        key = _number_key(value.to_decimal())
    elif isinstance(value, datetime):
        key = f"date:{_utc(value).isoformat()}"
    elif isinstance(value, DatetimeMS):
        key = f"datems:{int(value)}"
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
    if not key or len(key) > LEGACY_ID_MAX:
        raise RejectError(f"_id is empty or longer than {LEGACY_ID_MAX} characters once encoded")
    return key


def owner_reference(value: Any) -> Any:
    """The `_id` an owner field refers to: the value itself, or the `$id` of a DBRef (`bson.DBRef`, or the
    `{"$ref": ..., "$id": ...}` shape when a driver did not decode it)."""
    if isinstance(value, DBRef):
        return value.id
    if isinstance(value, MappingABC) and "$id" in value:
        return value["$id"]
    return value


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
        if isinstance(value, DatetimeMS):  # a BSON date outside Python's years 1-9999
            return _utc(value.as_datetime())
        if isinstance(value, bool):
            raise TypeError
        if isinstance(value, int | float):
            seconds = value / 1000 if abs(value) >= 100_000_000_000 else value
            return datetime.fromtimestamp(seconds, UTC)
        if isinstance(value, str):
            text = value.strip()
            parsed = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text)
            return _utc(parsed)
    except (ValueError, OverflowError, OSError, InvalidBSON) as exc:
        raise RejectError(f"unparseable {what} {_shown(value)}") from exc
    except TypeError:
        pass
    raise RejectError(f"unparseable {what} {_shown(value)} (a {type(value).__name__})")


def _shown(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _optional_date(value: Any, what: str, notes: Notes) -> datetime | None:
    """An optional date that cannot be read is left empty and noted, not a reason to lose the document."""
    try:
        return parse_date(value, what)
    except RejectError as exc:
        notes.append(f"{exc}: left empty")
        return None


def _created(doc: MappingABC[str, Any], value: Any, fallback: datetime | None, import_time: datetime,
             notes: Notes) -> datetime:  # fmt: skip
    """The creation time, else the ObjectId's creation second, else `fallback` (a task's update time), else
    the import time. Never an invented 1970: each fallback but the ObjectId's is noted."""
    created = _optional_date(value, "created date", notes)
    if created is not None:
        return created
    _id = doc.get("_id")
    if isinstance(_id, ObjectId):
        return _utc(_id.generation_time)
    if fallback is not None:
        notes.append("created date missing: the updated date is used")
        return fallback
    notes.append("created date missing: the import time is used")
    return import_time


def _text(value: Any, what: str, notes: Notes) -> str:
    """A string field. Numbers become their text; NUL characters (which PostgreSQL cannot store) are removed.
    Both are noted. Anything else (objects, arrays, binary) is not text: RejectError."""
    if isinstance(value, int | float | Decimal128) and not isinstance(value, bool):
        notes.append(f"{what} was a number ({value}): stored as text")
        value = str(value)
    if not isinstance(value, str):
        raise RejectError(f"{what} has wrong type {type(value).__name__}, expected a string")
    text: str = value
    if "\x00" in text:
        notes.append(f"{what} contained NUL characters: removed")
        text = text.replace("\x00", "")
    return text


def _cut(value: str, limit: int, what: str, notes: Notes) -> str:
    """Fit a column limit: cut, with an ellipsis so that readers see it was cut."""
    if len(value) <= limit:
        return value
    notes.append(f"{what} of {len(value)} characters cut to the column limit of {limit}")
    return value[: limit - 1] + "…"


def _flag(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        return _TRUE_WORDS.get(value.strip().lower())
    return None


def _bcrypt_hash(hashed: Any, max_rounds: int) -> str:
    """A bcrypt hash the API will verify: `$2a$`, `$2b$`, `$2y$`, or `$2x$` (crypt_blowfish's variant that kept
    its old 8-bit bug; the API verifies it as `$2a$`, the same algorithm for a pure ASCII password, and rehashes
    it at that login), of a cost from bcrypt's floor to `max_rounds`, the API's BCRYPT_MAX_ROUNDS. A costlier
    hash would never be verified (one of cost 31 takes about a day of CPU per attempt): RejectError, saying what
    to do."""
    match = _BCRYPT.fullmatch(hashed) if isinstance(hashed, str) else None
    if match is None:
        raise RejectError("password is not a bcrypt hash ($2a$/$2b$/$2x$/$2y$)")
    cost = int(match.group(1))
    if BCRYPT_ROUNDS_MIN <= cost <= max_rounds:
        return str(hashed)
    outside = f"bcrypt cost {cost} is outside {BCRYPT_ROUNDS_MIN}-{max_rounds} (BCRYPT_MAX_ROUNDS)"
    if cost < BCRYPT_ROUNDS_MIN:
        raise RejectError(f"{outside}: bcrypt refuses it; the user needs a new password")
    if cost > BCRYPT_ROUNDS_LIMIT:
        raise RejectError(
            f"{outside}: the API would not verify it; no setting verifies more than {BCRYPT_ROUNDS_LIMIT}, "
            "the user needs a new password"
        )
    raise RejectError(
        f"{outside}: the API would not verify it; raise BCRYPT_MAX_ROUNDS (API and migration, at most "
        f"{BCRYPT_ROUNDS_LIMIT}) and run again with --restart"
    )


def transform_user(
    doc: MappingABC[str, Any],
    fields: UserFields,
    import_time: datetime,
    *,
    bcrypt_max_rounds: int = BCRYPT_MAX_ROUNDS_DEFAULT,
) -> UserRow:
    notes: Notes = []
    key = legacy_id(doc.get("_id"))
    email = _first(doc, fields.email)
    if email is None:
        raise RejectError("missing email")
    email = _text(email, "email", notes).strip().lower()
    if len(email) > EMAIL_MAX or not _EMAIL.match(email):
        raise RejectError(f"invalid email {_shown(email)}")
    hashed = _first(doc, fields.password_hash)
    if hashed is None:
        raise RejectError("missing password hash")
    hashed = _bcrypt_hash(hashed, bcrypt_max_rounds)
    name = _first(doc, fields.full_name)
    full_name = None
    if name is not None:
        try:
            full_name = _cut(_text(name, "name", notes).strip(), FULL_NAME_MAX, "name", notes) or None
        except RejectError as exc:
            notes.append(f"{exc}: left empty")
    active_value = _first(doc, fields.is_active)
    active = True if active_value is None else _flag(active_value)
    if active is None:
        # Guessing could re-activate a disabled account: this one is a reason to reject, not a default.
        raise RejectError(f"active flag {_shown(active_value)} is not a boolean")
    created = _created(doc, _first(doc, fields.created_at), None, import_time, notes)
    return UserRow(key, email, full_name, hashed, active, created, tuple(notes))


def _status(value: Any, notes: Notes) -> str:
    if value is None:
        return "todo"
    text = value.strip().lower().replace("-", "_").replace(" ", "_") if isinstance(value, str) else None
    if text in _STATUS:
        return _STATUS[text]
    notes.append(f"unknown status {_shown(value)}: todo is used")
    return "todo"


def _priority(value: Any, notes: Notes) -> str:
    if value is None:
        return "medium"
    if isinstance(value, str):
        word = value.strip().lower()
        if word in _PRIORITY_WORDS:
            return _PRIORITY_WORDS[word]
        if word.isdigit() and int(word) in _PRIORITY_NUMBERS:
            return _PRIORITY_NUMBERS[int(word)]
    is_number = isinstance(value, int | float) and not isinstance(value, bool)
    if is_number and float(value).is_integer() and int(value) in _PRIORITY_NUMBERS:
        return _PRIORITY_NUMBERS[int(value)]
    notes.append(f"unknown priority {_shown(value)}: medium is used")
    return "medium"


def _tags(value: Any, notes: Notes) -> list[str]:
    if value is None:
        return []
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list):
        notes.append(f"tags have wrong type {type(value).__name__}, expected a list of strings: left empty")
        return []
    tags = []
    for item in items:
        try:
            tags.append(_text(item, "tag", notes).strip())
        except RejectError as exc:
            notes.append(f"{exc}: dropped")
    tags = list(dict.fromkeys(t for t in tags if t))
    if len(tags) > TAGS_MAX or any(len(t) > TAG_MAX for t in tags):
        notes.append(f"tags over the API's input limits ({TAGS_MAX} of at most {TAG_MAX} characters): kept whole")
    return tags


def transform_task(doc: MappingABC[str, Any], fields: TaskFields, import_time: datetime) -> TaskRow:
    notes: Notes = []
    key = legacy_id(doc.get("_id"))
    owner = owner_reference(_first(doc, fields.owner))
    if owner is None:
        raise RejectError("missing owner")
    try:
        owner_key = legacy_id(owner)
    except RejectError as exc:
        raise RejectError(f"owner reference cannot name a user: {exc}") from exc
    title = _first(doc, fields.title)
    if title is None or (isinstance(title, str) and not title.strip()):
        raise RejectError("missing title")
    title = _cut(_text(title, "title", notes).strip(), TITLE_MAX, "title", notes)
    if not title:
        raise RejectError("missing title")
    description = _first(doc, fields.description)
    if description is not None:
        try:
            description = _text(description, "description", notes)
        except RejectError as exc:
            notes.append(f"{exc}: left empty")
            description = None
    if description is not None and len(description) > DESCRIPTION_MAX:
        notes.append(f"description of {len(description)} characters is over the API's input limit of "
                     f"{DESCRIPTION_MAX}: kept whole")  # fmt: skip
    updated = _optional_date(_first(doc, fields.updated_at), "updated date", notes)
    created = _created(doc, _first(doc, fields.created_at), updated, import_time, notes)
    return TaskRow(
        legacy_id=key,
        owner_legacy_id=owner_key,
        title=title,
        description=description,
        status=_status(_first(doc, fields.status), notes),
        priority=_priority(_first(doc, fields.priority), notes),
        due_date=_optional_date(_first(doc, fields.due_date), "due date", notes),
        tags=_tags(_first(doc, fields.tags), notes),
        created_at=created,
        updated_at=updated or created,
        notes=tuple(notes),
    )
