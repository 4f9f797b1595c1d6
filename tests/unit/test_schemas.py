from datetime import UTC, datetime, timedelta, timezone

import pytest
from pydantic import ValidationError

from taskplatform.api.limits import EMAIL_MAX, PAGE_SIZE_MAX, TAG_FILTERS_MAX
from taskplatform.api.schemas import TaskCreate, TaskUpdate, UserCreate
from taskplatform.api.services.task_queries import TaskListQuery


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


# --- bounds checked before anything reads the value (issue 28) ------------------------------------------


@pytest.mark.parametrize(
    "value", ["1" * 8000 + "x", " " * 4000 + "1" * 4000 + "x", "2030-01-01T00:00:00" + "0" * 100, "x" * 65]
)
def test_date_times_are_bounded_in_length_before_they_are_parsed(value: str) -> None:
    with pytest.raises(ValidationError) as info:
        TaskCreate.model_validate({"title": "t", "due_date": value})
    assert [(e["loc"], e["type"]) for e in info.value.errors()] == [(("due_date",), "string_too_long")]
    with pytest.raises(ValidationError) as info:
        TaskListQuery.model_validate({"due_after": value})
    assert [(e["loc"], e["type"]) for e in info.value.errors()] == [(("due_after",), "string_too_long")]


@pytest.mark.parametrize("value", ["2030-01-31T17:00:00Z", "2030-01-31T17:00:00.123456+05:30", "2030-01-31"])
def test_iso_date_times_are_still_taken(value: str) -> None:
    assert TaskCreate.model_validate({"title": "t", "due_date": value}).due_date is not None


@pytest.mark.parametrize("value", [" 1e9 ", "-.5", "+7", "1_000", "nan"])
def test_number_spellings_are_not_taken_as_timestamps(value: str) -> None:
    with pytest.raises(ValidationError) as info:
        TaskCreate.model_validate({"title": "t", "due_date": value})
    assert _locs(info.value) == [("due_date",)]


def test_emails_are_bounded_before_they_are_validated() -> None:
    longest = "a" * 64 + "@" + ("b" * 62 + ".") * 3 + "c" * (EMAIL_MAX - 64 - 1 - 63 * 3)
    assert len(longest) == EMAIL_MAX
    with pytest.raises(ValidationError) as info:
        UserCreate(email=longest + "c", password="password1")
    assert [(e["loc"], e["type"]) for e in info.value.errors()] == [(("email",), "string_too_long")]
    with pytest.raises(ValidationError) as info:
        UserCreate(email=" " * 100_000 + "a@example.com", password="password1")
    assert [(e["loc"], e["type"]) for e in info.value.errors()] == [(("email",), "string_too_long")]
    assert UserCreate.model_json_schema()["properties"]["email"]["maxLength"] == EMAIL_MAX


def test_the_list_bounds_its_tag_filters_and_page_size() -> None:
    assert len(TaskListQuery.model_validate({"tag": ["t"] * TAG_FILTERS_MAX}).tag or ()) == TAG_FILTERS_MAX
    with pytest.raises(ValidationError) as info:
        TaskListQuery.model_validate({"tag": ["t"] * (TAG_FILTERS_MAX + 1)})
    assert _locs(info.value) == [("tag",)]
    assert TaskListQuery.model_validate({"limit": PAGE_SIZE_MAX}).limit == PAGE_SIZE_MAX
    with pytest.raises(ValidationError) as info:
        TaskListQuery.model_validate({"limit": PAGE_SIZE_MAX + 1})
    assert _locs(info.value) == [("limit",)]
