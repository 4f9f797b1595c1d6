"""Request and response shapes, apart from the table models."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    EmailStr,
    Field,
    StringConstraints,
    field_validator,
)
from pydantic.json_schema import SkipJsonSchema

from taskplatform.api.limits import (
    DESCRIPTION_MAX,
    FULL_NAME_MAX,
    PASSWORD_MAX,
    PASSWORD_MIN,
    TAG_MAX,
    TAGS_MAX,
    TITLE_MAX,
)
from taskplatform.api.models import TaskPriority, TaskStatus


def _as_utc(value: datetime | None) -> datetime | None:
    """Naive datetimes are taken as UTC; aware ones are converted to UTC."""
    if value is None:
        return None
    try:
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    except OverflowError as exc:
        raise ValueError("date is out of range once converted to UTC") from exc


_NUMBER = re.compile(r"\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*")


def _iso_only(value: object) -> object:
    """Pydantic would read a bare number as a Unix timestamp; the published schema says ISO 8601 date-time."""
    if isinstance(value, int | float) or (isinstance(value, str) and _NUMBER.fullmatch(value)):
        raise ValueError("expected an ISO 8601 date-time such as 2030-01-31T17:00:00Z")
    return value


# PostgreSQL text cannot hold NUL characters; refuse them at the edge with a field path instead of a 500.
NO_NUL = r"^[^\x00]*$"

UtcDatetime = Annotated[datetime, BeforeValidator(_iso_only), AfterValidator(_as_utc)]
Title = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=TITLE_MAX, pattern=NO_NUL)]
Description = Annotated[str, StringConstraints(max_length=DESCRIPTION_MAX, pattern=NO_NUL)]
Tag = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=TAG_MAX, pattern=NO_NUL)]
Tags = Annotated[list[Tag], Field(max_length=TAGS_MAX)]


class InputModel(BaseModel):
    # Unknown fields are an error with their path, not silently dropped.
    model_config = ConfigDict(extra="forbid")


class UserCreate(InputModel):
    email: EmailStr
    password: str = Field(min_length=PASSWORD_MIN, max_length=PASSWORD_MAX, pattern=NO_NUL)
    full_name: (
        Annotated[str, StringConstraints(strip_whitespace=True, max_length=FULL_NAME_MAX, pattern=NO_NUL)] | None
    ) = None

    @field_validator("email")
    @classmethod
    def _lower_email(cls, value: str) -> str:
        return value.lower()


class UserPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    email: str
    full_name: str | None
    is_active: bool
    created_at: datetime


class TokenPair(BaseModel):
    access_token: str
    refresh_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int = Field(description="Seconds until the access token expires.")
    refresh_expires_in: int = Field(description="Seconds until the refresh token expires.")


class RefreshRequest(InputModel):
    refresh_token: str = Field(min_length=1, max_length=4096)


class TaskCreate(InputModel):
    title: Title
    description: Description | None = None
    status: TaskStatus = TaskStatus.todo
    priority: TaskPriority = TaskPriority.medium
    due_date: UtcDatetime | None = None
    tags: Tags = Field(default_factory=list)

    @field_validator("tags")
    @classmethod
    def _dedupe_tags(cls, value: list[str]) -> list[str]:
        return list(dict.fromkeys(value))


class TaskUpdate(InputModel):
    """Only the fields present are changed; `null` clears description and due_date."""

    # SkipJsonSchema keeps `null` out of the published schema for fields that may be omitted but not nulled.
    title: Title | SkipJsonSchema[None] = None
    description: Description | None = None
    status: TaskStatus | SkipJsonSchema[None] = None
    priority: TaskPriority | SkipJsonSchema[None] = None
    due_date: UtcDatetime | None = None
    tags: Tags | SkipJsonSchema[None] = None

    @field_validator("title", "status", "priority", "tags")
    @classmethod
    def _not_null(cls, value: object) -> object:
        if value is None:
            raise ValueError("may be omitted but not null")
        return value

    @field_validator("tags")
    @classmethod
    def _dedupe_tags(cls, value: list[str]) -> list[str]:
        return list(dict.fromkeys(value))


class TaskPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    owner_id: int
    title: str
    description: str | None
    status: TaskStatus
    priority: TaskPriority
    due_date: datetime | None
    tags: list[str]
    version: int = Field(description="Incremented on every change; the ETag is derived from it.")
    created_at: datetime
    updated_at: datetime


SortKey = Literal[
    "created_at",
    "-created_at",
    "updated_at",
    "-updated_at",
    "due_date",
    "-due_date",
    "priority",
    "-priority",
    "title",
    "-title",
]


class TaskListQuery(BaseModel):
    """The task list's query parameters (routes.common.QueryParameters parses and publishes them)."""

    model_config = ConfigDict(frozen=True)

    status: list[TaskStatus] | None = Field(None, description="Any of these statuses.")
    priority: list[TaskPriority] | None = Field(None, description="Any of these priorities.")
    tag: list[Annotated[str, StringConstraints(min_length=1, max_length=TAG_MAX, pattern=NO_NUL)]] | None = Field(
        None, description="Tasks carrying all of these tags."
    )
    due_after: UtcDatetime | None = Field(None, description="due_date >= this.")
    due_before: UtcDatetime | None = Field(None, description="due_date < this.")
    q: Annotated[str, StringConstraints(min_length=1, max_length=TITLE_MAX, pattern=NO_NUL)] | None = Field(
        None, description="Text in the title."
    )
    sort: SortKey = Field("-created_at", description="Sort key; '-' for descending.")
    limit: int = Field(20, ge=1, le=100)
    cursor: str | None = Field(None, max_length=1024, description="next_cursor of the previous page.")


class TaskPage(BaseModel):
    items: list[TaskPublic]
    next_cursor: str | None = Field(
        description="Pass as `cursor` to get the next page; null on the last page. Also sent in the Link header."
    )


class Problem(BaseModel):
    """RFC 9457 problem details."""

    type: str
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None
    request_id: str | None = None
    errors: list[FieldError] | None = None


class FieldError(BaseModel):
    loc: list[str | int] = Field(description="Path of the offending field, e.g. ['body', 'tags', 2].")
    msg: str
    type: str


class HealthStatus(BaseModel):
    status: Literal["ok"]


class ReadyStatus(BaseModel):
    status: Literal["ready"]
    database: Literal["ok"]
