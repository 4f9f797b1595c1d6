"""Request and response shapes, apart from the table models.

No postponed annotations here: older FastAPI (0.115, the lowest allowed) reads a class dependency's (LoginForm's)
parameter annotations without its module's names (found by scripts/lowest-deps.sh).
"""

from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import Form
from fastapi.security import OAuth2PasswordRequestForm
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    EmailStr,
    Field,
    StringConstraints,
    WithJsonSchema,
    field_validator,
)
from pydantic.json_schema import SkipJsonSchema
from pydantic_core import PydanticKnownError

from taskplatform.api.columns import TaskPriority, TaskStatus
from taskplatform.api.limits import (
    DATETIME_TEXT_MAX,
    DESCRIPTION_MAX,
    EMAIL_MAX,
    FULL_NAME_MAX,
    OAUTH_FIELD_MAX,
    PASSWORD_MAX,
    PASSWORD_MIN,
    TAG_MAX,
    TAGS_MAX,
    TITLE_MAX,
    TOKEN_MAX,
)


def _as_utc(value: datetime | None) -> datetime | None:
    """Naive datetimes are taken as UTC; aware ones are converted to UTC."""
    if value is None:
        return None
    try:
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    except OverflowError as exc:
        raise ValueError("date is out of range once converted to UTC") from exc


def _too_long(max_length: int) -> PydanticKnownError:
    return PydanticKnownError("string_too_long", {"max_length": max_length})  # what max_length would say


def _bounded(max_length: int) -> BeforeValidator:
    """A length check before the type's own validation, which may cost more than linear time (email-validator,
    pydantic's regular expression for "Name <address>")."""

    def check(value: object) -> object:
        if isinstance(value, str) and len(value) > max_length:
            raise _too_long(max_length)
        return value

    return BeforeValidator(check)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _iso_only(value: object) -> object:
    """Pydantic would read a bare number as a Unix timestamp; the published schema says ISO 8601 date-time.
    The length first: float() and pydantic's parser then only ever read a short text."""
    if isinstance(value, str):
        if len(value) > DATETIME_TEXT_MAX:
            raise _too_long(DATETIME_TEXT_MAX)
        if _is_number(value):
            raise ValueError("expected an ISO 8601 date-time such as 2030-01-31T17:00:00Z")
    elif isinstance(value, int | float):
        raise ValueError("expected an ISO 8601 date-time such as 2030-01-31T17:00:00Z")
    return value


# PostgreSQL text cannot hold NUL characters; refuse them at the edge with a field path instead of a 500.
NO_NUL = r"^[^\x00]*$"

UtcDatetime = Annotated[
    datetime,
    BeforeValidator(_iso_only),
    AfterValidator(_as_utc),
    WithJsonSchema({"type": "string", "format": "date-time", "maxLength": DATETIME_TEXT_MAX}),
]
# email-validator (and pydantic's "Name <address>" regex before it) read the whole text: bound it first.
Email = Annotated[
    EmailStr, _bounded(EMAIL_MAX), WithJsonSchema({"type": "string", "format": "email", "maxLength": EMAIL_MAX})
]
Title = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=TITLE_MAX, pattern=NO_NUL)]
Description = Annotated[str, StringConstraints(max_length=DESCRIPTION_MAX, pattern=NO_NUL)]
Tag = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=TAG_MAX, pattern=NO_NUL)]
Tags = Annotated[list[Tag], Field(max_length=TAGS_MAX)]


class InputModel(BaseModel):
    # Unknown fields are an error with their path, not silently dropped.
    model_config = ConfigDict(extra="forbid")


class UserCreate(InputModel):
    email: Email
    password: str = Field(min_length=PASSWORD_MIN, max_length=PASSWORD_MAX, pattern=NO_NUL)
    full_name: (
        Annotated[str, StringConstraints(strip_whitespace=True, max_length=FULL_NAME_MAX, pattern=NO_NUL)] | None
    ) = None

    @field_validator("email")
    @classmethod
    def _lower_email(cls, value: str) -> str:
        return value.lower()


class PasswordChange(InputModel):
    current_password: str = Field(min_length=1, max_length=PASSWORD_MAX)
    new_password: str = Field(min_length=PASSWORD_MIN, max_length=PASSWORD_MAX, pattern=NO_NUL)


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
    refresh_token: str = Field(min_length=1, max_length=TOKEN_MAX)


class LoginForm(OAuth2PasswordRequestForm):
    """OAuth2PasswordRequestForm with the same published fields, each bounded: its own are not, and the
    password goes to bcrypt, the username to the database and the login throttle."""

    def __init__(
        self,
        *,
        grant_type: Annotated[str | None, Form(pattern="^password$")] = None,
        username: Annotated[str, Form(max_length=EMAIL_MAX, description="The account's email.")],
        password: Annotated[str, Form(max_length=PASSWORD_MAX, json_schema_extra={"format": "password"})],
        scope: Annotated[str, Form(max_length=OAUTH_FIELD_MAX)] = "",
        client_id: Annotated[str | None, Form(max_length=OAUTH_FIELD_MAX)] = None,
        client_secret: Annotated[
            str | None, Form(max_length=OAUTH_FIELD_MAX, json_schema_extra={"format": "password"})
        ] = None,
    ) -> None:
        super().__init__(
            grant_type=grant_type,
            username=username,
            password=password,
            scope=scope,
            client_id=client_id,
            client_secret=client_secret,
        )


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


class TaskPage(BaseModel):
    items: list[TaskPublic]
    next_cursor: str | None = Field(
        description="Pass as `cursor` to get the next page; null on the last page. Also sent in the Link header."
    )


class FieldError(BaseModel):
    loc: list[str | int] = Field(description="Path of the offending field, e.g. ['body', 'tags', 2].")
    msg: str
    type: str


class Problem(BaseModel):
    """RFC 9457 problem details."""

    type: str
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None
    request_id: str | None = None
    errors: list[FieldError] | None = None


class HealthStatus(BaseModel):
    status: Literal["ok"]


class ReadyStatus(BaseModel):
    status: Literal["ready"]
    database: Literal["ok"]
