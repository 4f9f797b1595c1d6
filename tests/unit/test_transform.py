from datetime import UTC, datetime

import pytest
from bson import Binary, Int64, ObjectId, Timestamp

from taskplatform.migration.mapping import Mapping, MappingError, load_mapping
from taskplatform.migration.transform import RejectError, legacy_id, parse_date, transform_task, transform_user

FIELDS = Mapping().fields
HASH = "$2b$12$" + "a" * 53
OID = ObjectId("65a1b2c3d4e5f60718293a4b")


def user(**fields: object) -> dict:
    return {"_id": OID, "email": "Ann@Example.com", "password": HASH, **fields}


def task(**fields: object) -> dict:
    return {"_id": ObjectId(), "owner": OID, "title": "Write", **fields}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (OID, "65a1b2c3d4e5f60718293a4b"),
        ("65a1b2c3d4e5f60718293a4b", "65a1b2c3d4e5f60718293a4b"),  # hex string owner = that ObjectId
        ("abc", "abc"),
        (5, "int:5"),
        (Int64(5), "int:5"),
        (2.5, "double:2.5"),
        (True, "bool:true"),
        (datetime(2020, 1, 1), "date:2020-01-01T00:00:00+00:00"),
        (Binary(b"\x01"), "bin:01"),
        (Timestamp(5, 1), "ts:5.1"),
        (None, "null"),
    ],
)
def test_legacy_ids_are_stable_text_keys(value: object, expected: str) -> None:
    assert legacy_id(value) == expected


def test_int_and_string_ids_do_not_collide() -> None:
    assert legacy_id(5) != legacy_id("5")


def test_user_mapping() -> None:
    row = transform_user(user(name=" Ann Lee ", createdAt="2021-03-04T05:06:07Z"), FIELDS.users)
    assert row.legacy_id == str(OID)
    assert row.email == "ann@example.com"
    assert row.full_name == "Ann Lee"
    assert row.hashed_password == HASH
    assert row.created_at == datetime(2021, 3, 4, 5, 6, 7, tzinfo=UTC)
    assert row.is_active is True


def test_user_without_created_date_takes_the_objectid_time() -> None:
    assert transform_user(user(), FIELDS.users).created_at == OID.generation_time


@pytest.mark.parametrize(
    ("doc", "reason"),
    [
        ({"_id": OID, "password": HASH}, "missing email"),
        (user(email="not-an-email"), "invalid email"),
        (user(email=42), "email has wrong type int"),
        (user(password="plaintext"), "not a bcrypt hash"),
        ({"_id": OID, "email": "a@b.io"}, "missing password hash"),
        (user(createdAt="31/12/2020"), "unparseable created date"),
        (user(active="yes"), "active flag has wrong type"),
        ({"_id": [1], "email": "a@b.io", "password": HASH}, "unsupported _id type"),
    ],
)
def test_bad_users_are_rejected_with_a_reason(doc: dict, reason: str) -> None:
    with pytest.raises(RejectError, match=reason):
        transform_user(doc, FIELDS.users)


@pytest.mark.parametrize(
    ("legacy", "status"),
    [("pending", "todo"), ("In-Progress", "in_progress"), ("in progress", "in_progress"), ("completed", "done"),
     ("done", "done"), (None, "todo")],
)  # fmt: skip
def test_status_spellings(legacy: str | None, status: str) -> None:
    assert transform_task(task(status=legacy), FIELDS.tasks).status == status


@pytest.mark.parametrize(
    ("legacy", "priority"),
    [("high", "high"), ("Critical", "urgent"), ("normal", "medium"), (1, "low"), (4, "urgent"), (3.0, "high"),
     ("2", "medium"), (None, "medium")],
)  # fmt: skip
def test_priority_as_word_or_number(legacy: object, priority: str) -> None:
    assert transform_task(task(priority=legacy), FIELDS.tasks).priority == priority


@pytest.mark.parametrize(
    "legacy",
    [datetime(2030, 1, 2, 3, 4, 5), "2030-01-02T03:04:05Z", "2030-01-02T05:04:05+02:00", 1893553445, 1893553445000],
)
def test_due_date_as_bson_date_iso_string_or_epoch(legacy: object) -> None:
    assert transform_task(task(due=legacy), FIELDS.tasks).due_date == datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)


def test_date_only_strings_are_midnight_utc() -> None:
    assert parse_date("2030-01-02", "due date") == datetime(2030, 1, 2, tzinfo=UTC)


def test_tags_from_list_or_comma_string() -> None:
    assert transform_task(task(tags=["a", " b", "a", ""]), FIELDS.tasks).tags == ["a", "b"]
    assert transform_task(task(tags="x, y"), FIELDS.tasks).tags == ["x", "y"]


def test_owner_as_objectid_or_hex_string_is_the_same_user() -> None:
    by_oid = transform_task(task(owner=OID), FIELDS.tasks)
    by_hex = transform_task(task(owner=str(OID)), FIELDS.tasks)
    assert by_oid.owner_legacy_id == by_hex.owner_legacy_id == str(OID)


def test_updated_defaults_to_created() -> None:
    row = transform_task(task(created="2020-01-01T00:00:00Z"), FIELDS.tasks)
    assert row.updated_at == row.created_at == datetime(2020, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"title": None}, "missing title"),
        ({"title": "   "}, "missing title"),
        ({"title": 5}, "title has wrong type int"),
        ({"title": "x" * 201}, "title longer than 200"),
        ({"owner": None}, "missing owner"),
        ({"owner": 12}, "owner reference has wrong type int"),
        ({"status": "blocked"}, "unknown status"),
        ({"priority": "whenever"}, "unknown priority"),
        ({"priority": 9}, "unknown priority"),
        ({"due": "next tuesday"}, "unparseable due date"),
        ({"due": True}, "unparseable due date"),
        ({"tags": {"a": 1}}, "tags have wrong type dict"),
        ({"tags": ["a", 1]}, "tag has wrong type int"),
        ({"description": ["x"]}, "description has wrong type list"),
    ],
)
def test_bad_tasks_are_rejected_with_a_reason(fields: dict, reason: str) -> None:
    with pytest.raises(RejectError, match=reason):
        transform_task(task(**fields), FIELDS.tasks)


def test_mapping_file_overrides_names(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "mapping.toml"
    path.write_text('[collections]\nusers = "accounts"\n\n[fields.tasks]\ntitle = "subject"\nowner = ["uid"]\n')
    mapping = load_mapping(path)
    assert mapping.collections.users == "accounts"
    assert mapping.collections.tasks == "tasks"
    assert mapping.fields.tasks.title == ["subject"]
    row = transform_task({"_id": 1, "uid": OID, "subject": "Hi"}, mapping.fields.tasks)
    assert row.title == "Hi"


def test_bad_mapping_file_names_the_problem(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "mapping.toml"
    path.write_text('[fields.tasks]\ntitel = "subject"\n')
    with pytest.raises(MappingError, match=r"fields\.tasks\.titel"):
        load_mapping(path)
    path.write_text("not = [toml")
    with pytest.raises(MappingError, match="cannot read mapping file"):
        load_mapping(path)
