"""The migration service against a real MongoDB wire-protocol server (FerretDB) and a real PostgreSQL."""

import gc
import json
import os
import random
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import bcrypt
import bson
import psycopg2.errors
import pytest
import sqlalchemy as sa
from bson import Binary, Int64, ObjectId, Timestamp
from fastapi import FastAPI
from fastapi.testclient import TestClient
from helpers.kubecluster import wait_for
from helpers.mongoserver import ThrowawayMongo
from pymongo import MongoClient
from pymongo.database import Database

from taskplatform.api.gc_tuning import RAISED_GC_THRESHOLDS
from taskplatform.api.limits import EMAIL_MAX
from taskplatform.migration import runner
from taskplatform.migration.cli import main as migrate
from taskplatform.migration.collections import TASKS, USERS
from taskplatform.migration.read_order import ReadOrder
from taskplatform.migration.source import Position, PositionLost, bucket_of, read_batches
from taskplatform.migration.target import Checkpoint, Counts, Rejected, Target
from taskplatform.migration.transform import UserRow

LEGACY_PASSWORD = "legacy-secret-1"
HASH = bcrypt.hashpw(LEGACY_PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()


@pytest.fixture
def source(mongo: ThrowawayMongo) -> Iterator[tuple[str, Database]]:
    name = f"legacy_{uuid.uuid4().hex[:10]}"
    client: MongoClient = MongoClient(mongo.uri, tz_aware=True)
    yield name, client[name]
    client.drop_database(name)
    client.close()


def run(mongo: ThrowawayMongo, db: str, target: str, *args: str) -> int:
    return migrate(["--source-uri", mongo.uri, "--source-db", db, "--target-url", target, "--progress", "json", *args])


def seed_variants(db: Database) -> dict[str, ObjectId]:
    ann, bob, cy = ObjectId(), ObjectId(), ObjectId()
    db.users.insert_many(
        [
            {"_id": ann, "email": "Ann@Example.com", "name": "Ann", "password": HASH,
             "createdAt": datetime(2020, 1, 2, tzinfo=UTC)},
            {"_id": bob, "email": "bob@example.com", "full_name": "Bob", "passwordHash": HASH,
             "created": "2021-05-06T07:08:09Z"},
            {"_id": cy, "email": "cy@example.com", "password": HASH.replace("$2b$", "$2a$"), "created_at": 1600000000},
            {"_id": "legacy-user-7", "email": "str@example.com", "password": HASH},
            {"_id": 42, "email": "int@example.com", "password": HASH},
            {"_id": ObjectId(), "password": HASH},  # missing email
            {"_id": ObjectId(), "email": "plain@example.com", "password": "hunter2"},  # not bcrypt
            {"_id": ObjectId(), "email": "ann@example.com", "password": HASH},  # duplicate email
        ]
    )  # fmt: skip
    db.tasks.insert_many(
        [
            {"_id": ObjectId(), "owner": ann, "title": "Pending one", "status": "pending", "priority": "high",
             "due": datetime(2030, 1, 2, tzinfo=UTC), "tags": ["a", "b"], "description": "tab\there\r\nnew \\N line"},
            {"_id": 1, "owner": str(bob), "title": "Int id", "status": "in-progress", "priority": 4,
             "dueDate": "2030-02-03T04:05:06Z", "tags": "x, y"},
            {"_id": "task-s", "owner": "legacy-user-7", "title": "String id", "status": "completed",
             "priority": "3", "due_date": 1893553445},
            {"_id": 2.5, "owner": cy, "title": "Double id", "state": "done", "due": 1893553445000},
            {"_id": ObjectId(), "owner": ann, "title": "   "},  # missing title
            {"_id": ObjectId(), "owner": ObjectId(), "title": "Orphan"},  # unknown owner
            {"_id": ObjectId(), "owner": ann, "title": "Bad date", "due": "someday"},
            {"_id": ObjectId(), "owner": ann, "title": 12},  # wrong type
            {"_id": ObjectId(), "owner": ann, "title": "Weird status", "status": "blocked"},
        ]
    )  # fmt: skip
    return {"ann": ann, "bob": bob, "cy": cy}


def counts(engine: sa.Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {
            table: conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one()  # noqa: S608 (constant names)
            for table in ("users", "tasks", "migration_rejects", "migration_checkpoints")
        }


def reject_reasons(engine: sa.Engine) -> dict[str, str]:
    """source id → reason, for every kept reject."""
    with engine.connect() as conn:
        return {r.source_id: r.reason for r in conn.execute(sa.text("SELECT source_id, reason FROM migration_rejects"))}


def test_every_legacy_variant_is_mapped_and_bad_documents_are_kept_with_reasons(
    mongo: ThrowawayMongo, source: tuple[str, Database], database_url: str, db_engine: sa.Engine
) -> None:
    name, db = source
    ids = seed_variants(db)
    started = datetime.now(UTC)
    assert run(mongo, name, database_url) == 0

    with db_engine.connect() as conn:
        users = {r.legacy_id: r for r in conn.execute(sa.text("SELECT * FROM users"))}
        tasks = {r.legacy_id: r for r in conn.execute(sa.text("SELECT * FROM tasks"))}
        rejects = {
            (r.collection, r.reason.split(" '")[0]): r for r in conn.execute(sa.text("SELECT * FROM migration_rejects"))
        }
    assert set(users) == {str(ids["ann"]), str(ids["bob"]), str(ids["cy"]), "legacy-user-7", "int:42"}
    assert users[str(ids["ann"])].email == "ann@example.com"
    assert users[str(ids["ann"])].created_at == datetime(2020, 1, 2, tzinfo=UTC)
    assert users[str(ids["bob"])].full_name == "Bob"
    assert users[str(ids["cy"])].created_at == datetime.fromtimestamp(1600000000, UTC)

    assert len(tasks) == 7
    assert {"int:1", "task-s", "double:2.5"} < set(tasks)
    pending = next(t for t in tasks.values() if t.title == "Pending one")
    assert (pending.status, pending.priority, pending.tags) == ("todo", 3, ["a", "b"])
    assert pending.description == "tab\there\r\nnew \\N line"  # COPY escaping round-trips
    assert pending.owner_id == users[str(ids["ann"])].id
    int_id = tasks["int:1"]
    assert (int_id.status, int_id.priority, int_id.tags) == ("in_progress", 4, ["x", "y"])
    assert int_id.owner_id == users[str(ids["bob"])].id  # owner given as the hex string
    assert int_id.due_date == datetime(2030, 2, 3, 4, 5, 6, tzinfo=UTC)
    assert tasks["task-s"].owner_id == users["legacy-user-7"].id
    assert tasks["task-s"].due_date == tasks["double:2.5"].due_date == datetime.fromtimestamp(1893553445, UTC)
    assert tasks["double:2.5"].status == "done"

    reasons = {reason for _, reason in rejects}
    assert reasons == {"missing email", "password is not a bcrypt hash ($2a$/$2b$/$2x$/$2y$)", "duplicate email",
                       "missing title", "unknown owner"}  # fmt: skip
    orphan = next(r for (c, reason), r in rejects.items() if reason == "unknown owner")
    assert orphan.document["title"] == "Orphan"  # the raw document is kept whole
    assert bson.decode(orphan.raw_document)["title"] == "Orphan"

    # Optional fields that could not be read are defaulted, and each such document is noted.
    by_title = {t.title: t for t in tasks.values()}
    assert by_title["Bad date"].due_date is None
    assert by_title["Weird status"].status == "todo"
    assert by_title["12"].owner_id == users[str(ids["ann"])].id
    with db_engine.connect() as conn:
        notes = {
            r.source_id: r.notes
            for r in conn.execute(sa.text("SELECT * FROM migration_alterations WHERE collection = 'tasks'"))
        }
    assert notes[by_title["Bad date"].legacy_id] == ["unparseable due date 'someday': left empty"]
    assert notes[by_title["Weird status"].legacy_id] == ["unknown status 'blocked': todo is used"]
    assert notes[by_title["12"].legacy_id] == ["title was a number (12): stored as text"]
    # Tasks whose _id is no ObjectId and that have no date at all get the import time, noted (never 1970).
    for no_date in ("int:1", "task-s", "double:2.5"):
        assert notes[no_date] == ["created date missing: the import time is used"]
        assert tasks[no_date].created_at >= started.replace(microsecond=0)
    assert len(notes) == 6


def test_rerun_is_idempotent_and_restart_changes_nothing(
    mongo: ThrowawayMongo, source: tuple[str, Database], database_url: str, db_engine: sa.Engine, capfd
) -> None:  # type: ignore[no-untyped-def]
    name, db = source
    seed_variants(db)
    assert run(mongo, name, database_url) == 0
    first = counts(db_engine)
    with db_engine.connect() as conn:
        versions = dict(conn.execute(sa.text("SELECT legacy_id, version FROM tasks")).all())
    capfd.readouterr()
    assert run(mongo, name, database_url) == 0
    events = [json.loads(line) for line in capfd.readouterr().err.splitlines() if line.startswith("{")]
    # A plain re-run resumes: both collections are complete, so it reads nothing.
    assert [(e["event"], e["collection"]) for e in events if e["event"] in ("start", "skipped")] == [
        ("skipped", "users"),
        ("skipped", "tasks"),
    ]
    assert run(mongo, name, database_url, "--restart") == 0
    assert counts(db_engine) == first
    with db_engine.connect() as conn:
        assert dict(conn.execute(sa.text("SELECT legacy_id, version FROM tasks")).all()) == versions


def test_dry_run_writes_nothing(
    mongo: ThrowawayMongo, source: tuple[str, Database], database_url: str, db_engine: sa.Engine, capfd
) -> None:  # type: ignore[no-untyped-def]
    name, db = source
    seed_variants(db)
    assert run(mongo, name, database_url, "--dry-run") == 0
    assert counts(db_engine) == {"users": 0, "tasks": 0, "migration_rejects": 0, "migration_checkpoints": 0}
    events = [json.loads(line) for line in capfd.readouterr().err.splitlines() if line.startswith("{")]
    summary = next(e for e in events if e["event"] == "summary")
    assert summary["dry_run"] is True
    by_name = {c["collection"]: c for c in summary["collections"]}
    assert (by_name["users"]["written"], by_name["users"]["rejected"]) == (5, 3)
    assert (by_name["tasks"]["written"], by_name["tasks"]["rejected"], by_name["tasks"]["altered"]) == (7, 2, 6)


def test_the_run_raises_the_collectors_thresholds_and_gives_the_processs_own_back(
    mongo: ThrowawayMongo, source: tuple[str, Database], database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    name, db = source
    seed_variants(db)
    seen: list[tuple[int, ...]] = []
    write_batch = Target.write_batch

    def recording(self: Target, *args: Any, **kwargs: Any) -> Any:
        seen.append(gc.get_threshold())
        return write_batch(self, *args, **kwargs)

    monkeypatch.setattr(Target, "write_batch", recording)
    before = gc.get_threshold()
    assert before != RAISED_GC_THRESHOLDS
    assert run(mongo, name, database_url, "--restart") == 0
    assert seen and set(seen) == {RAISED_GC_THRESHOLDS}
    assert gc.get_threshold() == before

    def failing(self: Target, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("the writer failed")

    monkeypatch.setattr(Target, "write_batch", failing)
    with pytest.raises(RuntimeError, match="the writer failed"):
        run(mongo, name, database_url, "--restart")
    assert gc.get_threshold() == before


@pytest.fixture
def owner_lookups(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """The owner keys of every `Target.user_ids` call, in order."""
    looked_up: list[list[str]] = []
    user_ids = Target.user_ids

    def recording(self: Target, legacy_ids: list[str]) -> dict[str, int]:
        looked_up.append(legacy_ids)
        return user_ids(self, legacy_ids)

    monkeypatch.setattr(Target, "user_ids", recording)
    return looked_up


def test_owners_are_looked_up_once_and_a_user_deleted_meanwhile_rejects_its_tasks(
    mongo: ThrowawayMongo,
    source: tuple[str, Database],
    database_url: str,
    db_engine: sa.Engine,
    monkeypatch: pytest.MonkeyPatch,
    owner_lookups: list[list[str]],
) -> None:
    name, db = source
    ann, bob = ObjectId(), ObjectId()
    db.users.insert_many([{"_id": ann, "email": "ann@x.io", "password": HASH},
                          {"_id": bob, "email": "bob@x.io", "password": HASH}])  # fmt: skip
    db.tasks.insert_many([{"_id": i, "owner": ann if i < 4 else bob, "title": f"task {i}"} for i in range(6)])
    write_batch = Target.write_batch

    def deleting_bob_after_his_first_task(self: Target, kind: Any, collection: str, rows: Any, *rest: Any) -> Any:
        refused = write_batch(self, kind, collection, rows, *rest)
        if kind is TASKS and [row.legacy_id for row, _ in rows] == ["int:4"]:
            with self.conn.cursor() as cur:  # as the API would, between two batches
                cur.execute("DELETE FROM users WHERE legacy_id = %s", (str(bob),))
            self.conn.commit()
        return refused

    monkeypatch.setattr(Target, "write_batch", deleting_bob_after_his_first_task)
    assert run(mongo, name, database_url, "--batch-size", "1") == 0
    # Each owner was looked up by the first batch that named it, never again.
    assert owner_lookups == [[str(ann)], [str(bob)]]
    with db_engine.connect() as conn:
        tasks = set(conn.execute(sa.text("SELECT legacy_id FROM tasks")).scalars())
    rejects = reject_reasons(db_engine)
    # Bob's first task went with him (ON DELETE CASCADE); his second is kept as a reject with PostgreSQL's reason.
    assert tasks == {"int:0", "int:1", "int:2", "int:3"}
    assert set(rejects) == {"int:5"}
    assert 'null value in column "owner_id"' in rejects["int:5"]


def test_the_owners_found_are_bounded_and_lookups_resume_once_they_are_forgotten(
    mongo: ThrowawayMongo,
    source: tuple[str, Database],
    database_url: str,
    db_engine: sa.Engine,
    monkeypatch: pytest.MonkeyPatch,
    owner_lookups: list[list[str]],
) -> None:
    name, db = source
    owners = [ObjectId() for _ in range(3)]
    db.users.insert_many([{"_id": o, "email": f"u{i}@x.io", "password": HASH} for i, o in enumerate(owners)])
    db.tasks.insert_many([{"_id": i, "owner": owners[i % 3], "title": f"task {i}"} for i in range(9)])
    monkeypatch.setattr(runner, "KNOWN_OWNERS_MAX", 2)
    assert run(mongo, name, database_url, "--batch-size", "1") == 0
    # Room for two owners: the third empties the set, so a cycle of three never finds its next owner there and
    # every batch looks it up again (without the bound, only the first three would).
    assert owner_lookups == [[str(owners[i % 3])] for i in range(9)]
    with db_engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM tasks")).scalar_one() == 9


def test_a_document_written_after_it_was_rejected_or_altered_loses_the_old_reject_and_notes(
    database_url: str, db_engine: sa.Engine
) -> None:
    """A document read again (a source that changed under a natural-order read, or fixed between runs): what
    the earlier read recorded about it goes when its row is written, and stays for a row PostgreSQL refuses."""
    target = Target(database_url)
    checkpoint = Checkpoint(Position(ReadOrder.NATURAL), Counts(), False, datetime.now(UTC))

    def user(key: str, *notes: str, email: str = "") -> tuple[UserRow, dict[str, Any]]:
        row = UserRow(key, email or f"{key}@x.io", None, HASH, True, datetime.now(UTC), notes)
        return row, {"_id": key}

    try:
        target.write_batch(USERS, "users", [user("altered", "name cut"), user("noted", "name cut")], [
            Rejected("fixed", "missing email", {"_id": "fixed"}),
            Rejected("still-refused", "missing email", {"_id": "still-refused"}),
        ], checkpoint)  # fmt: skip
        too_long = "x" * EMAIL_MAX + "@x.io"  # over the column's limit: PostgreSQL refuses the row
        again = [user("altered"), user("fixed"), user("still-refused", email=too_long), user("noted", email=too_long)]
        refused = target.write_batch(USERS, "users", again, [], checkpoint)
    finally:
        target.close()
    assert sorted(r.source_id for r in refused) == ["noted", "still-refused"]
    rejects = reject_reasons(db_engine)
    with db_engine.connect() as conn:
        notes = conn.execute(sa.text("SELECT source_id FROM migration_alterations")).scalars().all()
    assert set(rejects) == {"still-refused", "noted"}
    assert rejects["still-refused"].startswith("refused by PostgreSQL")
    assert notes == ["noted"]  # its row as first written stays, and so does what was noted about it


def test_progress_is_json_lines_when_not_a_terminal(
    mongo: ThrowawayMongo, source: tuple[str, Database], database_url: str, capfd
) -> None:  # type: ignore[no-untyped-def]
    name, db = source
    seed_variants(db)
    assert run(mongo, name, database_url, "--batch-size", "2") == 0
    events = [json.loads(line) for line in capfd.readouterr().err.splitlines() if line.startswith("{")]
    progress = [e for e in events if e["event"] == "progress"]
    assert progress
    assert {"collection", "read", "written", "rejected", "rate", "eta_s", "total"} <= set(progress[-1])
    final_tasks = [e for e in progress if e["collection"] == "tasks"][-1]
    assert (final_tasks["read"], final_tasks["total"]) == (9, 9)


def test_verify_passes_then_catches_a_tampered_row(
    mongo: ThrowawayMongo, source: tuple[str, Database], database_url: str, db_engine: sa.Engine
) -> None:
    name, db = source
    seed_variants(db)
    assert run(mongo, name, database_url, "--verify") == 0
    with db_engine.begin() as conn:
        conn.execute(sa.text("UPDATE tasks SET title = 'tampered' WHERE legacy_id = 'int:1'"))
    assert run(mongo, name, database_url, "--verify-only") == 3
    with db_engine.begin() as conn:
        conn.execute(sa.text("UPDATE tasks SET title = 'Int id' WHERE legacy_id = 'int:1'"))
        conn.execute(sa.text("DELETE FROM tasks WHERE legacy_id = 'task-s'"))
    assert run(mongo, name, database_url, "--verify-only") == 3


def test_a_migrated_user_logs_in_with_the_old_password(
    mongo: ThrowawayMongo, source: tuple[str, Database], database_url: str, app: FastAPI
) -> None:
    name, db = source
    seed_variants(db)
    assert run(mongo, name, database_url) == 0
    with TestClient(app) as client:
        login = client.post("/api/v1/auth/login", data={"username": "ann@example.com", "password": LEGACY_PASSWORD})
        assert login.status_code == 200
        headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
        tasks = client.get("/api/v1/tasks", headers=headers).json()["items"]
        assert sorted(t["title"] for t in tasks) == ["12", "Bad date", "Pending one", "Weird status"]
        wrong = client.post("/api/v1/auth/login", data={"username": "ann@example.com", "password": "nope-nope"})
        assert wrong.status_code == 401


def test_a_legacy_hash_costlier_than_the_api_verifies_is_a_reject_and_its_tasks_wait_with_it(
    mongo: ThrowawayMongo,
    source: tuple[str, Database],
    database_url: str,
    db_engine: sa.Engine,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    """A `$2b$31$` hash would cost about a day of CPU per login attempt: it stays a reject, whatever the bound."""
    name, db = source
    day_per_login = HASH.replace("$04$", "$31$")
    db.users.insert_many(
        [
            {"_id": "ann", "email": "ann@x.io", "password": HASH},
            {"_id": "slow", "email": "slow@x.io", "password": day_per_login},
            {"_id": "fifteen", "email": "fifteen@x.io", "password": HASH.replace("$04$", "$15$")},
            {"_id": "old-x", "email": "x@x.io", "password": HASH.replace("$2b$", "$2x$")},
        ]
    )
    db.tasks.insert_many(
        [
            {"_id": f"{owner}-task", "owner": owner, "title": f"{owner}'s"}
            for owner in ("ann", "slow", "fifteen", "old-x")
        ]
    )
    monkeypatch.delenv("BCRYPT_MAX_ROUNDS", raising=False)
    assert run(mongo, name, database_url, "--verify") == 0  # the rejects are accounted for: verified

    with db_engine.connect() as conn:
        users = dict(conn.execute(sa.text("SELECT legacy_id, hashed_password FROM users")).all())
        tasks = set(conn.execute(sa.text("SELECT legacy_id FROM tasks")).scalars())
        kept = conn.execute(
            sa.text("SELECT document, raw_document FROM migration_rejects WHERE source_id = 'slow'")
        ).one()
    assert users == {"ann": HASH, "old-x": HASH.replace("$2b$", "$2x$")}
    assert tasks == {"ann-task", "old-x-task"}
    assert reject_reasons(db_engine) == {
        "slow": "bcrypt cost 31 is outside 4-14 (BCRYPT_MAX_ROUNDS): the API would not verify it; no setting "
        "verifies more than 16, the user needs a new password",
        "fifteen": "bcrypt cost 15 is outside 4-14 (BCRYPT_MAX_ROUNDS): the API would not verify it; raise "
        "BCRYPT_MAX_ROUNDS (API and migration, at most 16) and run again with --restart",
        "slow-task": "unknown owner 'slow'",
        "fifteen-task": "unknown owner 'fifteen'",
    }
    assert kept.document["password"] == bson.decode(kept.raw_document)["password"] == day_per_login

    # The API's setting serves the migration too: raised to 15, a restarted run imports that user and its task.
    monkeypatch.setenv("BCRYPT_MAX_ROUNDS", "15")
    assert run(mongo, name, database_url, "--restart", "--verify") == 0  # verified with the same bound
    with db_engine.connect() as conn:
        assert set(conn.execute(sa.text("SELECT legacy_id FROM users")).scalars()) == {"ann", "old-x", "fifteen"}
        assert set(conn.execute(sa.text("SELECT legacy_id FROM tasks")).scalars()) == {"ann-task", "old-x-task",
                                                                                       "fifteen-task"}  # fmt: skip
    assert set(reject_reasons(db_engine)) == {"slow", "slow-task"}
    assert reject_reasons(db_engine)["slow"].startswith("bcrypt cost 31 is outside 4-15 (BCRYPT_MAX_ROUNDS)")

    # No bound above bcrypt's limit of 16, nor below its floor of 4: refused before anything is read.
    capfd.readouterr()
    for bound in ("17", "3"):
        assert run(mongo, name, database_url, "--bcrypt-max-rounds", bound) == 2
        assert "--bcrypt-max-rounds (env BCRYPT_MAX_ROUNDS) must be between 4 and 16" in capfd.readouterr().err


@pytest.mark.parametrize("read_order", list(ReadOrder))
def test_resume_after_kill_9_loses_and_duplicates_nothing(
    mongo: ThrowawayMongo, source: tuple[str, Database], database_url: str, db_engine: sa.Engine, read_order: str
) -> None:
    name, db = source
    owners = [ObjectId() for _ in range(20)]
    db.users.insert_many([{"_id": o, "email": f"u{i}@x.io", "password": HASH} for i, o in enumerate(owners)])
    # Mixed _id types, interleaved on insert: ints, strings and ObjectIds.
    docs = []
    for i in range(3000):
        _id = (i, f"s{i:05d}", ObjectId())[i % 3]
        docs.append({"_id": _id, "owner": owners[i % 20], "title": f"task {i}", "priority": i % 4 + 1})
    random.Random(7).shuffle(docs)
    db.tasks.insert_many(docs)

    command = [sys.executable, "-m", "taskplatform.migration.cli", "--source-uri", mongo.uri, "--source-db", name,
               "--target-url", database_url, "--batch-size", "40", "--progress", "json",
               "--progress-interval", "0", "--read-order", read_order]  # fmt: skip
    # Kill -9 once the run has written past a random point (read from its own progress lines, so the kill
    # always lands mid-run, whatever the machine's speed), four times; then let a fifth run finish.
    rng = random.Random(11)
    saved: dict[str, Any] = {}  # the tasks' position the last killed run checkpointed
    for threshold in sorted(rng.sample(range(200, 2700), 4)):
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        assert process.stderr is not None
        for line in process.stderr:
            event = json.loads(line)
            if event["event"] == "start" and event["collection"] == "tasks":
                resumed_from = event["resume_from"]
            if event["event"] == "progress" and event["collection"] == "tasks" and event["written"] >= threshold:
                os.kill(process.pid, signal.SIGKILL)
                break
        process.wait()
        assert process.returncode == -signal.SIGKILL
        # Each run resumed where the previous one was killed; the first started at the beginning.
        assert (resumed_from == saved) if saved else (resumed_from["last_id"] is None)
        with db_engine.connect() as conn:
            read, done, position = conn.execute(
                sa.text("SELECT read_count, done, position FROM migration_checkpoints WHERE collection = 'tasks'")
            ).one()
        assert threshold <= read < 3000
        assert not done
        assert position["order"] == read_order and position["last_id"] is not None
        saved = position
        # An initial load into an empty table: its secondary indexes are deferred while it runs.
        assert secondary_indexes(db_engine) == set()
    last = subprocess.run(command, capture_output=True, text=True, check=False)
    assert last.returncode == 0
    starts = [json.loads(line) for line in last.stderr.splitlines() if '"event": "start"' in line]
    assert [e["resume_from"] for e in starts if e["collection"] == "tasks"] == [saved]
    assert secondary_indexes(db_engine) == TASK_INDEXES  # built once at the end

    with db_engine.connect() as conn:
        target = dict(conn.execute(sa.text("SELECT legacy_id, title FROM tasks")).all())
        checkpoint = conn.execute(
            sa.text("SELECT read_count, written_count, done FROM migration_checkpoints WHERE collection = 'tasks'")
        ).one()
    from taskplatform.migration.transform import legacy_id

    expected = {legacy_id(d["_id"]): d["title"] for d in docs}
    assert target == expected  # row by row: nothing lost, nothing duplicated, nothing altered
    assert tuple(checkpoint) == (3000, 3000, True)
    assert run(mongo, name, database_url, "--verify-only") == 0


TASK_INDEXES = {str(index.name) for index in TASKS.secondary_indexes}


def secondary_indexes(engine: sa.Engine) -> set[str]:
    with engine.connect() as conn:
        names = conn.execute(sa.text("SELECT indexname FROM pg_indexes WHERE tablename = 'tasks'")).scalars()
        return set(names) & TASK_INDEXES


def index_oids(engine: sa.Engine) -> dict[str, int]:
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT relname, oid::int FROM pg_class WHERE relname = ANY(:names)"),
                            {"names": sorted(TASK_INDEXES)})  # fmt: skip
        return dict(rows.all())


def test_a_crash_during_the_index_build_resumes_to_every_index(
    mongo: ThrowawayMongo, source: tuple[str, Database], database_url: str, db_engine: sa.Engine
) -> None:
    name, db = source
    seed_variants(db)
    assert run(mongo, name, database_url) == 0
    # The state a kill -9 in the middle of the index build leaves: every row written, the checkpoint still
    # naming the deferred indexes, some of them built and the others not.
    with db_engine.begin() as conn:
        for index in ("ix_tasks_tags", "ix_tasks_owner_due", "ix_tasks_title_trgm"):
            conn.execute(sa.text(f"DROP INDEX {index}"))
        conn.execute(sa.text("UPDATE migration_checkpoints SET done = false, deferred_indexes = :names "
                             "WHERE collection = 'tasks'"), {"names": json.dumps(sorted(TASK_INDEXES))})  # fmt: skip
    rows_before = counts(db_engine)
    assert run(mongo, name, database_url, "--verify") == 0
    assert secondary_indexes(db_engine) == TASK_INDEXES
    assert counts(db_engine) == rows_before
    with db_engine.connect() as conn:
        deferred = conn.execute(
            sa.text("SELECT deferred_indexes FROM migration_checkpoints WHERE collection = 'tasks'")
        ).scalar_one()
    assert deferred == []


def test_a_failing_index_build_is_raised_and_the_others_are_still_built(
    database_url: str, db_engine: sa.Engine
) -> None:
    # The model names a column the table lacks: that one build fails, the other connection's go on.
    columns = [sa.Column("id", sa.Integer), sa.Column("title", sa.Text), sa.Column("missing", sa.Text)]
    table = sa.Table("index_build_probe", sa.MetaData(), *columns)
    indexes = [
        sa.Index(
            "ix_probe_title_trgm", table.c.title, postgresql_using="gin", postgresql_ops={"title": "gin_trgm_ops"}
        ),
        sa.Index("ix_probe_missing", table.c.missing),
        sa.Index("ix_probe_id", table.c.id),
        sa.Index("ix_probe_id_title", table.c.id, table.c.title),
    ]
    with db_engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE IF EXISTS index_build_probe"))
        conn.execute(sa.text("CREATE TABLE index_build_probe (id integer, title text)"))
        conn.execute(sa.text("INSERT INTO index_build_probe SELECT g, 'title ' || g FROM generate_series(1, 2000) g"))
    target = Target(database_url)
    try:
        with pytest.raises(psycopg2.errors.UndefinedColumn):
            target.build_indexes(SimpleNamespace(secondary_indexes=indexes), [str(i.name) for i in indexes])  # type: ignore[arg-type]
    finally:
        target.close()
    with db_engine.connect() as conn:
        built = set(
            conn.execute(sa.text("SELECT indexname FROM pg_indexes WHERE tablename = 'index_build_probe'")).scalars()
        )
        conn.execute(sa.text("DROP TABLE index_build_probe"))
        conn.commit()
    assert built == {"ix_probe_title_trgm", "ix_probe_id", "ix_probe_id_title"}

    def migrators() -> int:  # a backend leaves pg_stat_activity shortly after its client closed
        with db_engine.connect() as conn:
            query = "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'taskplatform-migrate'"
            return int(conn.execute(sa.text(query)).scalar_one())

    wait_for(lambda: migrators() == 0, "the index builders' connections to close", 30)


def test_an_incremental_run_into_a_table_with_rows_keeps_its_indexes(
    mongo: ThrowawayMongo, source: tuple[str, Database], database_url: str, db_engine: sa.Engine
) -> None:
    name, db = source
    seed_variants(db)
    with db_engine.begin() as conn:  # a task created through the API before the migration
        owner = conn.execute(sa.text("INSERT INTO users (email, hashed_password, is_active, created_at) "
                                     "VALUES ('api@x.io', 'x', true, now()) RETURNING id")).scalar_one()  # fmt: skip
        conn.execute(
            sa.text("INSERT INTO tasks (owner_id, title, status, priority, tags, version, created_at, updated_at) "
                    "VALUES (:o, 'api task', 'todo', 2, '[]', 1, now(), now())"),
            {"o": owner},
        )  # fmt: skip
    before = index_oids(db_engine)
    assert set(before) == TASK_INDEXES
    assert run(mongo, name, database_url) == 0
    assert index_oids(db_engine) == before  # never dropped and rebuilt


def test_clear_errors_for_unreachable_source_target_and_bad_mapping(
    mongo: ThrowawayMongo, source: tuple[str, Database], database_url: str, tmp_path: Path, capsys
) -> None:  # type: ignore[no-untyped-def]
    name, _ = source
    assert migrate(["--source-uri", "mongodb://127.0.0.1:1/", "--target-url", database_url]) == 2
    assert "cannot reach MongoDB at 127.0.0.1:1" in capsys.readouterr().err
    bad_target = "postgresql://nobody:secret@127.0.0.1:1/none"
    assert migrate(["--source-uri", mongo.uri, "--source-db", name, "--target-url", bad_target]) == 2
    err = capsys.readouterr().err
    assert "cannot reach PostgreSQL at 127.0.0.1" in err
    assert "secret" not in err
    mapping = tmp_path / "m.toml"
    mapping.write_text("[collections]\nusres = 'x'\n")
    assert run(mongo, name, database_url, "--mapping", str(mapping)) == 2
    assert "collections.usres" in capsys.readouterr().err


EVERY_ID_TYPE = [None, -3, 1.5, 7, Int64(8), "a", "b", {"k": 1}, Binary(b"\x01"), ObjectId(), ObjectId(), False, True,
                 datetime(2020, 1, 1), Timestamp(5, 1)]  # fmt: skip


def test_reader_resumes_after_any_document_across_every_id_type(source: tuple[str, Database]) -> None:
    _, db = source
    db.docs.insert_many([{"_id": i, "n": n} for n, i in enumerate(reversed(EVERY_ID_TYPE))])
    everything = [d["_id"] for batch in read_batches(db.docs, Position(ReadOrder.ID), 3) for d in batch.docs]
    assert len(everything) == len(EVERY_ID_TYPE)
    for k, last in enumerate(everything):
        after = Position(ReadOrder.ID, bucket_of(last), 0, last, True)
        rest = [d["_id"] for batch in read_batches(db.docs, after, 2) for d in batch.docs]
        assert rest == everything[k + 1 :], f"resuming after {last!r}"


def test_natural_reader_resumes_at_its_saved_position_and_notices_when_the_source_changed(
    source: tuple[str, Database],
) -> None:
    _, db = source
    db.docs.insert_many([{"_id": i, "n": n} for n, i in enumerate(EVERY_ID_TYPE)])
    batches = list(read_batches(db.docs, Position(ReadOrder.NATURAL), 4))
    everything = [d["_id"] for batch in batches for d in batch.docs]
    assert len(everything) == len(EVERY_ID_TYPE)
    assert [b.position.consumed for b in batches] == [4, 8, 12, 15]
    assert batches[1].position.last_id == everything[7]
    for k, last in enumerate(everything, start=1):
        saved = Position.from_json(Position(ReadOrder.NATURAL, 0, k, last, True).to_json())  # as checkpointed
        rest = [d["_id"] for batch in read_batches(db.docs, saved, 3) for d in batch.docs]
        assert rest == everything[k:], f"resuming after document {k}"
    # 7 and 7.0 are different `_id`s: a position naming one does not hold at the other.
    with pytest.raises(PositionLost):
        list(read_batches(db.docs, Position(ReadOrder.NATURAL, 0, 4, 7.0, True), 3))
    # A document deleted before the position shifts every later one: the position no longer holds.
    db.docs.delete_one({"_id": everything[1]})
    with pytest.raises(PositionLost, match="document 5 of docs's natural order is no longer"):
        list(read_batches(db.docs, Position(ReadOrder.NATURAL, 0, 5, everything[4], True), 3))
    # So does a position past the end.
    with pytest.raises(PositionLost):
        list(read_batches(db.docs, Position(ReadOrder.NATURAL, 0, 15, everything[-1], True), 3))


def test_batches_are_bounded_by_bytes_as_well_as_by_count(source: tuple[str, Database]) -> None:
    """Documents of up to 16 MB: a batch ends at `batch_bytes` of BSON (a larger document alone), positions still
    name the last document of each batch, and a run resumed at any of them reads exactly the rest."""
    _, db = source
    sizes = [300_000, 300_000, 300_000, 300_000, 2_500_000, 10, 10, 700_000, 400_000, 15_000_000, 20]
    db.docs.insert_many([{"_id": i, "blob": "x" * size} for i, size in enumerate(sizes)])
    bound = 1 << 20
    for order in ReadOrder:
        batches = list(read_batches(db.docs, Position(order), 4, bound))
        read = [d["_id"] for batch in batches for d in batch.docs]
        assert read == list(range(len(sizes))), order
        for batch in batches:
            assert len(batch.docs) <= 4
            size = sum(len(bson.encode(d)) for d in batch.docs)
            assert size <= bound or len(batch.docs) == 1, (order, [d["_id"] for d in batch.docs], size)
        assert [[d["_id"] for d in b.docs] for b in batches] == [[0, 1, 2], [3], [4], [5, 6, 7], [8], [9], [10]]
        for batch in batches[:-1]:
            last = batch.docs[-1]["_id"]
            assert batch.position.last_id == last
            rest = [d["_id"] for b in read_batches(db.docs, batch.position, 4, bound) for d in b.docs]
            assert rest == list(range(last + 1, len(sizes))), (order, last)


def test_a_run_with_large_documents_writes_every_task_within_the_byte_bound(
    mongo: ThrowawayMongo, source: tuple[str, Database], database_url: str, db_engine: sa.Engine, capfd
) -> None:  # type: ignore[no-untyped-def]
    name, db = source
    owner = ObjectId()
    db.users.insert_one({"_id": owner, "email": "big@x.io", "password": HASH})
    # Long descriptions (the API keeps them), and legacy fields the migration drops but must still read.
    db.tasks.insert_many(
        [{"_id": ObjectId(), "owner": owner, "title": f"big {i}", "description": "d" * 4000,
          "attachment": Binary(os.urandom(600_000))} for i in range(12)]
    )  # fmt: skip
    capfd.readouterr()
    assert run(mongo, name, database_url, "--batch-bytes", str(1 << 20), "--progress-interval", "0") == 0
    events = [json.loads(line) for line in capfd.readouterr().err.splitlines() if line.startswith("{")]
    progress = [e for e in events if e.get("event") == "progress" and e.get("collection") == "tasks"]
    # One progress line per batch: at most one 600 kB document per MiB, so twelve batches, not one of 5000.
    assert len({e["read"] for e in progress}) >= 12
    with db_engine.connect() as conn:
        titles = set(conn.execute(sa.text("SELECT title FROM tasks")).scalars())
    assert titles == {f"big {i}" for i in range(12)}
    assert migrate(["--source-uri", mongo.uri, "--batch-bytes", "0", "--target-url", database_url]) == 2
    assert "--batch-bytes" in capfd.readouterr().err


def test_a_resumed_run_whose_source_changed_starts_the_collection_over(
    mongo: ThrowawayMongo, source: tuple[str, Database], database_url: str, db_engine: sa.Engine, capfd
) -> None:  # type: ignore[no-untyped-def]
    name, db = source
    owner = ObjectId()
    db.users.insert_one({"_id": owner, "email": "o@x.io", "password": HASH})
    db.tasks.insert_many([{"_id": ObjectId(), "owner": owner, "title": f"task {i}"} for i in range(30)])
    assert run(mongo, name, database_url, "--collections", "users") == 0
    # The checkpoint a run killed after 20 tasks leaves; then the source loses its 3rd task.
    natural = [d["_id"] for d in db.tasks.find({}, {"_id": 1})]
    killed_at = Position(ReadOrder.NATURAL, 0, 20, natural[19], True)
    with db_engine.begin() as conn:
        conn.execute(
            sa.text("INSERT INTO migration_checkpoints (collection, position, read_count, written_count, "
                    "rejected_count, done, started_at, deferred_indexes, updated_at) "
                    "VALUES ('tasks', :position, 20, 20, 0, false, now(), '[]', now())"),
            {"position": json.dumps(killed_at.to_json())},
        )  # fmt: skip
    db.tasks.delete_one({"_id": natural[2]})
    capfd.readouterr()
    assert run(mongo, name, database_url, "--collections", "tasks") == 0
    events = [json.loads(line) for line in capfd.readouterr().err.splitlines() if line.startswith("{")]
    restarts = [e for e in events if e["event"] == "restart"]
    assert len(restarts) == 1 and restarts[0]["collection"] == "tasks"
    assert "no longer" in restarts[0]["reason"]
    with db_engine.connect() as conn:
        titles = set(conn.execute(sa.text("SELECT title FROM tasks")).scalars())
        checkpoint = conn.execute(sa.text("SELECT read_count, written_count, done, position FROM "
                                          "migration_checkpoints WHERE collection = 'tasks'")).one()  # fmt: skip
    assert {f"task {i}" for i in range(30) if i != 2} <= titles  # every task the source still has
    assert tuple(checkpoint)[:3] == (29, 29, True)
    assert checkpoint.position["order"] == "natural" and checkpoint.position["consumed"] == 29


def test_positions_saved_before_natural_order_resume_in_id_order() -> None:
    old = {"bucket": 5, "bucket_type": "objectId", "last_id": '{"$oid": "650000000000000000000000"}'}
    position = Position.from_json(old)
    assert position == Position(ReadOrder.ID, 5, 0, ObjectId("650000000000000000000000"), True)
    assert Position.from_json(position.to_json()) == position
    assert Position.from_json({}) == Position()
    assert not Position.from_json({}).has_last


def test_the_summary_file_holds_the_outcome_for_a_job_status(
    mongo: ThrowawayMongo, source: tuple[str, Database], database_url: str, db_engine: sa.Engine, tmp_path: Path
) -> None:
    name, db = source
    seed_variants(db)
    summary = tmp_path / "termination-log"
    assert run(mongo, name, database_url, "--verify", "--summary-file", str(summary)) == 0
    outcome = json.loads(summary.read_text())
    with db_engine.connect() as conn:
        rejected = conn.execute(sa.text("SELECT count(*) FROM migration_rejects")).scalar_one()
        imported = conn.execute(sa.text("SELECT (SELECT count(*) FROM users) + (SELECT count(*) FROM tasks)")).scalar()
    assert (outcome["exitCode"], outcome["verified"]) == (0, True)
    assert sum(c["rejected"] for c in outcome["collections"]) == rejected
    assert sum(c["written"] for c in outcome["collections"]) == imported
    assert sum(c["read"] for c in outcome["collections"]) == db.users.count_documents({}) + db.tasks.count_documents({})

    with db_engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM tasks WHERE legacy_id = 'task-s'"))
    assert run(mongo, name, database_url, "--verify-only", "--summary-file", str(summary)) == 3
    assert json.loads(summary.read_text()) == {
        "exitCode": 3,
        "verified": False,
        "error": "verification found differences",
    }
    bad_target = "postgresql://nobody:secret@127.0.0.1:1/none"
    assert migrate(["--source-uri", mongo.uri, "--source-db", name, "--target-url", bad_target,
                    "--summary-file", str(summary)]) == 2  # fmt: skip
    failed = json.loads(summary.read_text())
    assert failed["exitCode"] == 2 and "cannot reach PostgreSQL at 127.0.0.1" in failed["error"]
    assert "secret" not in summary.read_text()
