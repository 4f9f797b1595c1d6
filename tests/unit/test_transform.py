import uuid
from datetime import UTC, datetime

import pytest
from bson import Binary, DatetimeMS, DBRef, Decimal128, Int64, ObjectId, Timestamp

from taskplatform.api.limits import DESCRIPTION_MAX, TITLE_MAX
from taskplatform.migration.mapping import Mapping, MappingError, load_mapping
from taskplatform.migration.transform import RejectError, legacy_id, parse_date
from taskplatform.migration.transform import transform_task as _transform_task
from taskplatform.migration.transform import transform_user as _transform_user

FIELDS = Mapping().fields
IMPORT_TIME = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def transform_user(doc: dict, fields: object = FIELDS.users, **options: int):  # type: ignore[no-untyped-def]
    return _transform_user(doc, fields, IMPORT_TIME, **options)  # type: ignore[arg-type]


def transform_task(doc: dict, fields: object = FIELDS.tasks):  # type: ignore[no-untyped-def]
    return _transform_task(doc, fields, IMPORT_TIME)  # type: ignore[arg-type]


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
        (3.0, "int:3"),
        (Decimal128("2.5"), "double:2.5"),
        (Decimal128("0.1"), "decimal:0.1"),
        (DatetimeMS(-(2**62)), f"datems:{-(2**62)}"),
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
        (user(email=42), "invalid email '42'"),
        (user(email=["a@b.io"]), "email has wrong type list"),
        (user(password="plaintext"), r"not a bcrypt hash \(\$2a\$/\$2b\$/\$2x\$/\$2y\$\)"),
        (user(password=HASH + "\n"), "not a bcrypt hash"),
        (user(password="$2b$\u0661\u0662$" + "a" * 53), "not a bcrypt hash"),  # Arabic-Indic digits: no cost
        ({"_id": OID, "email": "a@b.io"}, "missing password hash"),
        (user(active="maybe"), "active flag 'maybe' is not a boolean"),
        ({"_id": [1], "email": "a@b.io", "password": HASH}, "unsupported _id type"),
    ],
)
def test_users_that_cannot_be_a_row_are_rejected_with_a_reason(doc: dict, reason: str) -> None:
    with pytest.raises(RejectError, match=reason):
        transform_user(doc, FIELDS.users)


@pytest.mark.parametrize("cost", ["04", "10", "14"])
@pytest.mark.parametrize("variant", ["2a", "2b", "2x", "2y"])
def test_bcrypt_hashes_of_every_variant_and_a_cost_the_api_verifies_are_kept_as_they_are(
    cost: str, variant: str
) -> None:
    """`$2x$` too: the API verifies it as `$2a$` for an ASCII password (the same algorithm for 7-bit input)."""
    hashed = f"${variant}${cost}$" + "a" * 53
    row = transform_user(user(password=hashed))
    assert row.hashed_password == hashed
    assert row.notes == ()


@pytest.mark.parametrize(
    ("cost", "reason"),
    [
        ("03", "bcrypt cost 3 is outside 4-14 (BCRYPT_MAX_ROUNDS): bcrypt refuses it; the user needs a new password"),
        ("15", "bcrypt cost 15 is outside 4-14 (BCRYPT_MAX_ROUNDS): the API would not verify it; raise "
               "BCRYPT_MAX_ROUNDS (API and migration, at most 16) and run again with --restart"),
        ("31", "bcrypt cost 31 is outside 4-14 (BCRYPT_MAX_ROUNDS): the API would not verify it; no setting "
               "verifies more than 16, the user needs a new password"),
        ("00", "bcrypt cost 0 is outside 4-14"),
        ("99", "bcrypt cost 99 is outside 4-14"),
    ],
)  # fmt: skip
def test_a_bcrypt_cost_outside_the_verified_range_is_rejected_with_what_to_do(cost: str, reason: str) -> None:
    """One `$2b$31$` hash costs about a day of CPU per login attempt: the API would refuse to verify it."""
    with pytest.raises(RejectError) as rejected:
        transform_user(user(password=f"$2b${cost}$" + "a" * 53))
    assert str(rejected.value).startswith(reason)


def test_a_raised_bcrypt_bound_accepts_costlier_hashes_up_to_it() -> None:
    fifteen = "$2b$15$" + "a" * 53
    assert transform_user(user(password=fifteen), bcrypt_max_rounds=15).hashed_password == fifteen
    assert transform_user(user(password=fifteen), bcrypt_max_rounds=16).hashed_password == fifteen
    with pytest.raises(RejectError, match=r"^bcrypt cost 16 is outside 4-15 \(BCRYPT_MAX_ROUNDS\)"):
        transform_user(user(password="$2y$16$" + "a" * 53), bcrypt_max_rounds=15)
    with pytest.raises(RejectError, match=r"^bcrypt cost 12 is outside 4-10 "):
        transform_user(user(), bcrypt_max_rounds=10)  # HASH is cost 12


@pytest.mark.parametrize(("legacy", "active"), [("yes", True), ("No", False), (0, False), (1, True), (False, False)])
def test_active_flags_in_words_and_numbers(legacy: object, active: bool) -> None:
    assert transform_user(user(active=legacy)).is_active is active


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
        ({"title": "\x00\x00"}, "missing title"),
        ({"title": ["x"]}, "title has wrong type list"),
        ({"owner": None}, "missing owner"),
        ({"owner": [1, 2]}, "owner reference cannot name a user: unsupported _id type list"),
    ],
)
def test_tasks_that_cannot_be_a_row_are_rejected_with_a_reason(fields: dict, reason: str) -> None:
    with pytest.raises(RejectError, match=reason):
        transform_task(task(**fields), FIELDS.tasks)


USER_IDS = [
    OID,
    "legacy-user-7",
    42,
    Int64(42),
    2.5,
    Decimal128("7.25"),
    uuid.UUID("12345678-1234-5678-1234-567812345678"),
    Binary(b"\x00\x01\x02", 4),
    Binary(b"\xff", 0),
    datetime(2020, 1, 1, tzinfo=UTC),
    {"tenant": 1, "n": 2},
    True,
]


@pytest.mark.parametrize("user_id", USER_IDS, ids=lambda v: type(v).__name__)
def test_an_owner_reference_resolves_for_every_user_id_type_and_as_a_dbref(user_id: object) -> None:
    """Tasks name their owner through the same legacy_id keying the users get, however the reference is stored."""
    key = transform_user(user(_id=user_id)).legacy_id
    for reference in (user_id, DBRef("users", user_id), {"$ref": "users", "$id": user_id}):
        assert transform_task(task(owner=reference)).owner_legacy_id == key


@pytest.mark.parametrize(
    ("stored", "referenced"),
    [(42, 42.0), (42, Decimal128("42")), (Int64(7), 7), (3.0, 3), (2.5, Decimal128("2.50"))],
)
def test_numeric_ids_are_one_key_whatever_their_bson_number_type(stored: object, referenced: object) -> None:
    """MongoDB compares numbers by value: a user with _id 42 is the owner that a task's 42.0 names."""
    assert legacy_id(stored) == legacy_id(referenced)


def test_created_date_falls_back_to_the_objectid_then_the_updated_date_then_the_import_time() -> None:
    assert transform_task(task()).created_at == task()["_id"].generation_time
    updated = transform_task(task(_id=7, modified="2022-02-02T00:00:00Z"))
    assert updated.created_at == updated.updated_at == datetime(2022, 2, 2, tzinfo=UTC)
    assert updated.notes == ("created date missing: the updated date is used",)
    bare = transform_task(task(_id="no-date"))
    assert bare.created_at == bare.updated_at == IMPORT_TIME
    assert bare.notes == ("created date missing: the import time is used",)
    assert transform_user(user(_id=9)).created_at == IMPORT_TIME
    unreadable = transform_task(task(_id=8, created="31/12/2020"))
    assert unreadable.created_at == IMPORT_TIME
    assert any("unparseable created date" in note for note in unreadable.notes)


def test_history_over_the_api_input_limits_is_kept_whole_and_noted() -> None:
    long = "d" * (DESCRIPTION_MAX + 5)
    tags = [f"t{i}" for i in range(25)] + ["x" * 80]
    row = transform_task(task(description=long, tags=tags))
    assert row.description == long
    assert row.tags == tags
    assert len(row.notes) == 2
    assert f"description of {DESCRIPTION_MAX + 5} characters" in row.notes[0]
    assert "kept whole" in row.notes[0] and "kept whole" in row.notes[1]


def test_text_over_a_column_limit_is_cut_and_noted() -> None:
    row = transform_task(task(title="T" * 250))
    assert len(row.title) == TITLE_MAX and row.title.endswith("…")
    assert row.notes == (f"title of 250 characters cut to the column limit of {TITLE_MAX}",)


def test_nul_characters_and_numbers_in_text_fields_are_converted_and_noted() -> None:
    row = transform_task(task(title="a\x00b", description="x\x00", tags=["t\x00", 5]))
    assert (row.title, row.description, row.tags) == ("ab", "x", ["t", "5"])
    assert len(row.notes) == 4
    assert transform_task(task(title=12)).title == "12"
    assert transform_user(user(name="An\x00n")).full_name == "Ann"


@pytest.mark.parametrize(
    ("fields", "column", "value", "note"),
    [
        ({"due": "next tuesday"}, "due_date", None, "unparseable due date 'next tuesday': left empty"),
        ({"due": True}, "due_date", None, "unparseable due date True (a bool): left empty"),
        ({"due": DatetimeMS(-(2**62))}, "due_date", None, "unparseable due date"),
        ({"status": "blocked"}, "status", "todo", "unknown status 'blocked': todo is used"),
        ({"priority": "whenever"}, "priority", "medium", "unknown priority 'whenever': medium is used"),
        ({"priority": 9}, "priority", "medium", "unknown priority 9"),
        ({"tags": {"a": 1}}, "tags", [], "tags have wrong type dict"),
        ({"tags": ["a", ["b"]]}, "tags", ["a"], "tag has wrong type list, expected a string: dropped"),
        ({"description": ["x"]}, "description", None, "description has wrong type list"),
    ],
)
def test_an_unreadable_optional_field_is_defaulted_and_noted_not_a_lost_task(
    fields: dict, column: str, value: object, note: str
) -> None:
    row = transform_task(task(**fields))
    assert getattr(row, column) == value
    assert any(n.startswith(note) for n in row.notes), row.notes


def test_a_clean_document_has_no_notes() -> None:
    assert transform_task(task(status="done", priority=2, tags=["a"], due="2030-01-01")).notes == ()
    assert transform_user(user(name="Ann", active=True)).notes == ()


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
