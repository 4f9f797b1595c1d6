"""Which collections and fields the legacy documents use. Defaults in docs/migration.md; a TOML file
(`--mapping`) overrides any of them:

    [collections]
    users = "accounts"

    [fields.tasks]
    owner = ["owner", "user"]      # first field present wins
"""

from __future__ import annotations

import tomllib
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

FieldNames = list[str]


def _names(*names: str) -> FieldNames:
    return list(names)


class UserFields(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: FieldNames = Field(default_factory=lambda: _names("email", "mail"))
    full_name: FieldNames = Field(default_factory=lambda: _names("name", "full_name", "fullName"))
    password_hash: FieldNames = Field(
        default_factory=lambda: _names("password_hash", "passwordHash", "password", "hashed_password")
    )
    created_at: FieldNames = Field(default_factory=lambda: _names("created_at", "createdAt", "created"))
    is_active: FieldNames = Field(default_factory=lambda: _names("active", "is_active", "isActive"))


class TaskFields(BaseModel):
    model_config = ConfigDict(extra="forbid")

    owner: FieldNames = Field(default_factory=lambda: _names("owner", "owner_id", "ownerId", "user_id", "userId"))
    title: FieldNames = Field(default_factory=lambda: _names("title", "name"))
    description: FieldNames = Field(default_factory=lambda: _names("description", "desc", "notes"))
    status: FieldNames = Field(default_factory=lambda: _names("status", "state"))
    priority: FieldNames = Field(default_factory=lambda: _names("priority"))
    due_date: FieldNames = Field(default_factory=lambda: _names("due_date", "dueDate", "due"))
    tags: FieldNames = Field(default_factory=lambda: _names("tags", "labels"))
    created_at: FieldNames = Field(default_factory=lambda: _names("created_at", "createdAt", "created"))
    updated_at: FieldNames = Field(default_factory=lambda: _names("updated_at", "updatedAt", "modified"))


class Collections(BaseModel):
    model_config = ConfigDict(extra="forbid")

    users: str = "users"
    tasks: str = "tasks"


class Fields(BaseModel):
    model_config = ConfigDict(extra="forbid")

    users: UserFields = Field(default_factory=UserFields)
    tasks: TaskFields = Field(default_factory=TaskFields)


class Mapping(BaseModel):
    model_config = ConfigDict(extra="forbid")

    collections: Collections = Field(default_factory=Collections)
    fields: Fields = Field(default_factory=Fields)

    @field_validator("fields", mode="before")
    @classmethod
    def _single_names_become_lists(cls, value: object) -> object:
        if isinstance(value, dict):
            for group in value.values():
                if isinstance(group, dict):
                    for key, names in list(group.items()):
                        if isinstance(names, str):
                            group[key] = [names]
        return value


class MappingError(ValueError):
    """The mapping file cannot be read or does not describe a mapping."""


def load_mapping(path: Path | None) -> Mapping:
    if path is None:
        return Mapping()
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise MappingError(f"cannot read mapping file {path}: {exc}") from exc
    try:
        return Mapping.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise MappingError(f"invalid mapping file {path}: {problems}") from exc
