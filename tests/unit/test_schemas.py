from datetime import UTC, datetime, timedelta, timezone

import pytest
from pydantic import ValidationError

from taskplatform.api.schemas import TaskCreate, TaskUpdate, UserCreate


def _locs(exc: ValidationError) -> list[tuple[str | int, ...]]:
    return [tuple(e["loc"]) for e in exc.errors()]


def test_email_is_normalised_to_lower_case() -> None:
    assert UserCreate(email="Alice@Example.COM", password="password1").email == "alice@example.com"


@pytest.mark.parametrize("password", ["short", "x" * 257, "nul\x00in-the-middle"])
def test_password_length_and_characters_are_checked(password: str) -> None:
    with pytest.raises(ValidationError) as info:
        UserCreate(email="a@example.com", password=password)
    assert _locs(info.value) == [("password",)]


def test_unknown_fields_are_errors_with_their_path() -> None:
    with pytest.raises(ValidationError) as info:
        TaskCreate.model_validate({"title": "x", "titel": "typo"})
    assert _locs(info.value) == [("titel",)]


def test_nested_field_paths_are_reported() -> None:
    with pytest.raises(ValidationError) as info:
        TaskCreate.model_validate({"title": "x", "tags": ["ok", "", "y" * 51]})
    assert sorted(_locs(info.value)) == [("tags", 1), ("tags", 2)]


def test_title_is_stripped_and_must_not_be_blank() -> None:
    assert TaskCreate(title="  Write report  ").title == "Write report"
    with pytest.raises(ValidationError):
        TaskCreate(title="   ")


def test_nul_characters_are_refused() -> None:
    with pytest.raises(ValidationError) as info:
        TaskCreate(title="a\x00b")
    assert _locs(info.value) == [("title",)]


def test_tags_are_deduplicated_in_order() -> None:
    assert TaskCreate(title="t", tags=["b", "a", "b"]).tags == ["b", "a"]


def test_due_date_is_normalised_to_utc() -> None:
    naive = TaskCreate(title="t", due_date=datetime(2030, 1, 1, 12, 0))
    assert naive.due_date == datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
    offset = TaskCreate(title="t", due_date=datetime(2030, 1, 1, 12, 0, tzinfo=timezone(timedelta(hours=2))))
    assert offset.due_date == datetime(2030, 1, 1, 10, 0, tzinfo=UTC)


def test_update_may_omit_but_not_null_required_fields() -> None:
    assert TaskUpdate.model_validate({}).model_dump(exclude_unset=True) == {}
    assert TaskUpdate.model_validate({"due_date": None}).model_dump(exclude_unset=True) == {"due_date": None}
    with pytest.raises(ValidationError) as info:
        TaskUpdate.model_validate({"title": None})
    assert _locs(info.value) == [("title",)]


def test_unknown_status_is_rejected() -> None:
    with pytest.raises(ValidationError) as info:
        TaskCreate.model_validate({"title": "t", "status": "pending"})
    assert _locs(info.value) == [("status",)]


@pytest.mark.parametrize("value", [0, 1.5, "0", "1700000000", "0.5", "1e9"])
def test_numbers_are_not_taken_as_timestamps(value: object) -> None:
    with pytest.raises(ValidationError) as info:
        TaskCreate.model_validate({"title": "t", "due_date": value})
    assert _locs(info.value) == [("due_date",)]
