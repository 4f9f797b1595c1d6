"""Legacy data shaped as real users' data is, not as the fixtures are: every `_id` type, NUL characters, huge
values, missing dates, dates beyond Python's range, and PostgreSQL refusing a row. FerretDB + PostgreSQL."""

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import bcrypt
import bson
import pytest
import sqlalchemy as sa
from bson import Binary, DatetimeMS, Int64, ObjectId
from helpers.mongoserver import ThrowawayMongo
from pymongo import MongoClient
from pymongo.database import Database

from taskplatform.api.limits import DESCRIPTION_MAX, TITLE_MAX
from taskplatform.migration.cli import main as migrate
from taskplatform.migration.transform import legacy_id

HASH = bcrypt.hashpw(b"legacy-secret-1", bcrypt.gensalt(rounds=4)).decode()
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
YEAR_20000_MS = 568_971_590_400_000  # a valid BSON date that Python's datetime cannot hold
CREATED = {"created": datetime(2020, 1, 1)}
SHALOM = "\u05e9\u05dc\u05d5\u05dd"  # right-to-left text


@pytest.fixture
def legacy(mongo: ThrowawayMongo) -> Iterator[tuple[str, Database]]:
    name = f"legacy_{uuid.uuid4().hex[:10]}"
    client: MongoClient = MongoClient(mongo.uri, tz_aware=True, datetime_conversion="DATETIME_AUTO")
    yield name, client[name]
    client.drop_database(name)
    client.close()


def run(mongo: ThrowawayMongo, db: str, target: str, *args: str) -> int:
    return migrate(["--source-uri", mongo.uri, "--source-db", db, "--target-url", target, "--progress", "json", *args])


def summary_of(capfd: pytest.CaptureFixture[str]) -> dict:
    events = [json.loads(line) for line in capfd.readouterr().err.splitlines() if line.startswith("{")]
    summary = next(e for e in events if e["event"] == "summary")
    return {c["collection"]: c for c in summary["collections"]}


# (a user's `_id`, how a task refers to it): the same value, another BSON number type, the hex string.
OWNERS = [
    (ObjectId(), None),
    ("legacy-user-7", None),
    (42, None),
    (43, 43.0),
    (Int64(2**40), None),
    (44, Int64(44)),  # Decimal128 too in the unit tests: FerretDB 1.24 drops the connection on Decimal128
    (2.5, None),
    (Binary(uuid.UUID("12345678-1234-5678-1234-567812345678").bytes, 4), None),
    (Binary(b"\x00\xff", 0), None),
    ({"tenant": 1, "n": 2}, None),
]


def test_owner_references_resolve_for_every_id_type_a_user_can_have(
    mongo: ThrowawayMongo, legacy: tuple[str, Database], database_url: str, db_engine: sa.Engine
) -> None:
    name, db = legacy
    db.users.insert_many([{"_id": _id, "email": f"u{i}@x.io", "password": HASH} for i, (_id, _) in enumerate(OWNERS)])
    oid = OWNERS[0][0]
    tasks = [{"_id": f"t{i}", "owner": ref if ref is not None else _id, "title": f"task {i}"}
             for i, (_id, ref) in enumerate(OWNERS)]  # fmt: skip
    tasks.append({"_id": "by-hex", "owner": str(oid), "title": "hex string owner"})
    db.tasks.insert_many(tasks)

    assert run(mongo, name, database_url, "--verify") == 0
    with db_engine.connect() as conn:
        owners = dict(
            conn.execute(
                sa.text("SELECT t.legacy_id, u.legacy_id FROM tasks t JOIN users u ON u.id = t.owner_id")
            ).all()
        )
        rejects = conn.execute(sa.text("SELECT source_id, reason FROM migration_rejects")).all()
    assert rejects == []
    for i, (_id, _) in enumerate(OWNERS):
        assert owners[f"t{i}"] == legacy_id(_id), f"owner {_id!r}"
    assert owners["by-hex"] == str(oid)


def test_a_dry_run_resolves_owners_of_every_id_type_too(
    mongo: ThrowawayMongo, legacy: tuple[str, Database], database_url: str, capfd: pytest.CaptureFixture[str]
) -> None:
    name, db = legacy
    db.users.insert_many([{"_id": _id, "email": f"u{i}@x.io", "password": HASH} for i, (_id, _) in enumerate(OWNERS)])
    db.tasks.insert_many([{"_id": i, "owner": ref if ref is not None else _id, "title": "t"}
                          for i, (_id, ref) in enumerate(OWNERS)])  # fmt: skip
    assert run(mongo, name, database_url, "--dry-run") == 0
    tasks = summary_of(capfd)["tasks"]
    assert (tasks["written"], tasks["rejected"]) == (len(OWNERS), 0)


def test_odd_documents_arrive_or_are_kept_whole_and_every_change_is_reported(
    mongo: ThrowawayMongo,
    legacy: tuple[str, Database],
    database_url: str,
    db_engine: sa.Engine,
    capfd: pytest.CaptureFixture[str],
) -> None:
    name, db = legacy
    bob = {"_id": 2, "email": "bob@x.io", "password": HASH, "name": "Bob\x00 \u202eRTL 🎉"}
    db.users.insert_many([{"_id": 1, "email": "ann@x.io", "password": HASH}, bob])
    long_text = "é" * (DESCRIPTION_MAX + 2000)
    nul_reject = {"_id": "nul-reject", "owner": 1, "title": "   ", "description": "before\x00after", "n": Int64(5)}
    db.tasks.insert_many(
        [
            {"_id": "long", "owner": 1, "title": "long", "description": long_text, "created": datetime(2019, 1, 1)},
            {"_id": 100, "owner": 1, "title": "no created, int id"},
            {"_id": 101, "owner": 2, "title": "no created, updated", "modified": "2021-06-01T00:00:00Z"},
            {"_id": "far", "owner": 2, "title": "year 20000", "due": DatetimeMS(YEAR_20000_MS), **CREATED},
            {"_id": "nul", "owner": 2, "title": "NUL\x00title", "tags": ["a\x00", "🎉", SHALOM], **CREATED},
            {"_id": "cut", "owner": 1, "title": "T" * (TITLE_MAX + 50), **CREATED},
            {"_id": "empty", "owner": 1, "title": "x", "description": "", "tags": [], **CREATED},
            nul_reject,
        ]
    )
    started = datetime.now(UTC)
    assert run(mongo, name, database_url, "--verify") == 0
    summary = summary_of(capfd)

    with db_engine.connect() as conn:
        tasks = {r.legacy_id: r for r in conn.execute(sa.text("SELECT * FROM tasks"))}
        users = {r.legacy_id: r for r in conn.execute(sa.text("SELECT * FROM users"))}
        rejects = {r.source_id: r for r in conn.execute(sa.text("SELECT * FROM migration_rejects"))}
        notes = {
            (r.collection, r.source_id): r.notes for r in conn.execute(sa.text("SELECT * FROM migration_alterations"))
        }

    assert set(tasks) == {"long", "int:100", "int:101", "far", "nul", "cut", "empty"}
    assert all(t.created_at > EPOCH for t in tasks.values())  # never an invented 1970
    assert tasks["long"].description == long_text  # history is kept whole over the API's input limit
    assert tasks["int:100"].created_at >= started.replace(microsecond=0)  # the import time, flagged
    assert tasks["int:101"].created_at == datetime(2021, 6, 1, tzinfo=UTC)
    assert tasks["far"].due_date is None
    assert (tasks["nul"].title, tasks["nul"].tags) == ("NULtitle", ["a", "🎉", SHALOM])
    assert len(tasks["cut"].title) == TITLE_MAX
    assert (tasks["empty"].description, tasks["empty"].tags) == ("", [])
    assert users["int:2"].full_name == "Bob \u202eRTL 🎉"
    assert users["int:1"].created_at >= started.replace(microsecond=0)

    # The reject holding a NUL is stored: readable as JSONB, and exactly as it was in its raw BSON.
    assert rejects["nul-reject"].reason == "missing title"
    assert rejects["nul-reject"].document["description"] == "before\ufffdafter"
    assert bson.decode(rejects["nul-reject"].raw_document) == {**nul_reject, "n": 5}

    assert set(notes) == {("tasks", k) for k in ("long", "int:100", "int:101", "far", "nul", "cut")} | {
        ("users", "int:1"),
        ("users", "int:2"),
    }
    assert notes[("tasks", "int:100")] == ["created date missing: the import time is used"]
    assert "kept whole" in notes[("tasks", "long")][0]
    assert notes[("tasks", "far")][0].startswith("unparseable due date")
    assert (summary["tasks"]["altered"], summary["users"]["altered"]) == (6, 2)
    assert (summary["tasks"]["written"], summary["tasks"]["rejected"]) == (7, 1)

    # Resuming a finished run and verifying later use the same import time: nothing changes.
    assert run(mongo, name, database_url, "--verify-only") == 0


@pytest.fixture
def poisoned_titles(db_engine: sa.Engine) -> Iterator[None]:
    """A rule PostgreSQL enforces that no transform anticipates."""
    with db_engine.begin() as conn:
        conn.execute(sa.text("ALTER TABLE tasks ADD CONSTRAINT test_no_poison CHECK (title NOT LIKE 'poison%')"))
    yield
    with db_engine.begin() as conn:
        conn.execute(sa.text("ALTER TABLE tasks DROP CONSTRAINT test_no_poison"))


@pytest.mark.usefixtures("poisoned_titles")
def test_rows_postgresql_refuses_are_isolated_by_bisection_and_the_run_goes_on(
    mongo: ThrowawayMongo, legacy: tuple[str, Database], database_url: str, db_engine: sa.Engine
) -> None:
    name, db = legacy
    db.users.insert_one({"_id": 1, "email": "ann@x.io", "password": HASH})
    poisoned = {7, 8, 55, 299}
    db.tasks.insert_many(
        [{"_id": i, "owner": 1, "title": f"poison {i}" if i in poisoned else f"task {i}"} for i in range(300)]
    )
    assert run(mongo, name, database_url, "--batch-size", "100") == 0
    with db_engine.connect() as conn:
        imported = {r[0] for r in conn.execute(sa.text("SELECT legacy_id FROM tasks"))}
        rejects = {r.source_id: r for r in conn.execute(sa.text("SELECT * FROM migration_rejects"))}
        checkpoint = conn.execute(
            sa.text("SELECT read_count, written_count, rejected_count, done FROM migration_checkpoints "
                    "WHERE collection = 'tasks'")
        ).one()  # fmt: skip
    assert imported == {f"int:{i}" for i in range(300) if i not in poisoned}
    assert set(rejects) == {f"int:{i}" for i in poisoned}
    assert all('violates check constraint "test_no_poison"' in r.reason for r in rejects.values())
    assert rejects["int:55"].document["title"] == "poison 55"
    assert tuple(checkpoint) == (300, 296, 4, True)


def test_a_storage_failure_mid_run_ends_with_a_message_not_a_traceback_and_a_rerun_resumes(
    mongo: ThrowawayMongo,
    legacy: tuple[str, Database],
    database_url: str,
    db_engine: sa.Engine,
    capfd: pytest.CaptureFixture[str],
) -> None:
    name, db = legacy
    db.users.insert_one({"_id": 1, "email": "ann@x.io", "password": HASH})
    db.tasks.insert_many([{"_id": i, "owner": 1, "title": f"task {i}"} for i in range(50)])
    with db_engine.begin() as conn:
        conn.execute(sa.text(
            "CREATE FUNCTION test_full() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            "IF NEW.collection = 'tasks' AND NEW.read_count > 20 THEN "
            "RAISE EXCEPTION 'could not extend file: No space left on device'; END IF; RETURN NEW; END $$"
        ))  # fmt: skip
        conn.execute(sa.text(
            "CREATE TRIGGER test_full BEFORE INSERT OR UPDATE ON migration_checkpoints "
            "FOR EACH ROW EXECUTE FUNCTION test_full()"
        ))  # fmt: skip
    try:
        assert run(mongo, name, database_url, "--batch-size", "10") == 4
        err = capfd.readouterr().err
        assert "Traceback" not in err
        assert "the run stopped on a PostgreSQL error" in err and "No space left on device" in err
        assert "run the same command again to resume" in err
    finally:
        with db_engine.begin() as conn:
            conn.execute(sa.text("DROP TRIGGER test_full ON migration_checkpoints"))
            conn.execute(sa.text("DROP FUNCTION test_full()"))
    with db_engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM tasks")).scalar_one() == 20  # two batches committed
    assert run(mongo, name, database_url, "--batch-size", "10", "--verify") == 0
    with db_engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM tasks")).scalar_one() == 50
