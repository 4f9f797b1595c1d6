"""The backup and restore pipe as the operator's Jobs run it: the Job's own shell scripts (pg_dump / pg_restore
of the PostgreSQL binaries here) on one side of a named pipe, `taskplatform-dumpstore` on the other, against a
real S3-compatible server (versitygw) and a directory standing for the backup volume."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg2
import pytest
import sqlalchemy as sa
from alembic import command
from alembic.script import ScriptDirectory
from pgcluster import ThrowawayPostgres, find_pg_bindir
from s3server import BUCKET, ThrowawayS3
from sqlmodel import Session

from taskplatform.api.migrate import alembic_config, upgrade_head
from taskplatform.api.models import Task, User
from taskplatform.operator.models import DEFAULT_COMPRESSION_LEVEL
from taskplatform.operator.specs.backup import FIFO, RESTORE_SCRIPT, STATUS_FILE, STREAM_DIR, dump_script

# Rows shaped as users write them: RTL, emoji, combining marks, empty and large descriptions.
TITLES = ["plain", "עברית ومرحبا", "emoji 🧪🚀", "e\u0301\u0301", "", "x" * 100_000]


@pytest.fixture(scope="module")
def s3() -> Iterator[ThrowawayS3]:
    with ThrowawayS3() as server:
        yield server


def _database(pg: ThrowawayPostgres) -> str:
    name = f"dump_{uuid.uuid4().hex[:10]}"
    pg.create_database(name)
    return name


@pytest.fixture
def source(pg: ThrowawayPostgres) -> str:
    """A database with the API's schema and a few users and tasks."""
    name = _database(pg)
    upgrade_head(pg.url(name))
    engine = sa.create_engine(pg.url(name))
    with Session(engine) as session:
        for i in range(3):
            user = User(email=f"user{i}@example.com", hashed_password="$2b$04$" + "a" * 53, full_name=TITLES[i + 1])
            session.add(user)
            session.flush()
            assert user.id is not None
            for title in TITLES:
                session.add(Task(owner_id=user.id, title=title[:200] or "-", description=title, tags=[title[:20]]))
        session.commit()
    engine.dispose()
    return name


def content(pg: ThrowawayPostgres, database: str) -> str:
    """A checksum of every user and task row."""
    with psycopg2.connect(pg.dsn(database)) as conn, conn.cursor() as cur:
        cur.execute("SELECT md5(string_agg(u::text, '|' ORDER BY id)) FROM users u")
        users = cur.fetchone()[0]
        cur.execute("SELECT md5(string_agg(t::text, '|' ORDER BY id)) FROM tasks t")
        return f"{users}/{cur.fetchone()[0]}"


def tables(pg: ThrowawayPostgres, database: str) -> list[str]:
    with psycopg2.connect(pg.dsn(database)) as conn, conn.cursor() as cur:
        cur.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        return [row[0] for row in cur.fetchall()]


class Pipe:
    """One Job pod: the database-side script and the transfer process sharing a stream directory."""

    def __init__(self, pg: ThrowawayPostgres, tmp: Path, store_args: list[str], env: dict[str, str]) -> None:
        self.pg, self.tmp, self.store_args, self.env = pg, tmp, store_args, env

    def _run(self, database: str, script: str, transfer_args: list[str]) -> tuple[int, int, dict[str, object]]:
        stream = self.tmp / f"stream-{uuid.uuid4().hex[:6]}"
        stream.mkdir()
        fifo, summary = Path(FIFO.replace(f"{STREAM_DIR}/", f"{stream}/")), stream / "summary.json"
        # No mkfifo here: the transfer process makes the pipe, and the Job's script waits for it (as in the pod).
        # The Job's own scripts, with its paths moved into this test's folder.
        script = script.replace(f"{STREAM_DIR}/", f"{stream}/")
        pg_env = {
            **os.environ,
            "PATH": f"{find_pg_bindir()}:{os.environ['PATH']}",
            "PGHOST": "127.0.0.1",
            "PGPORT": str(self.pg.port),
            "PGUSER": "postgres",
            "PGDATABASE": database,
        }
        transfer_args = [a.replace(f"{STREAM_DIR}/", f"{stream}/") for a in transfer_args]
        database_side = subprocess.Popen(["sh", "-c", script], env=pg_env, stderr=subprocess.PIPE)
        transfer = subprocess.Popen(
            [sys.executable, "-m", "taskplatform.migration.dumpstore", *transfer_args, "--fifo", str(fifo),
             *self.store_args, "--summary-file", str(summary)],
            env={**os.environ, **self.env},
        )  # fmt: skip
        transfer_code = transfer.wait(120)
        database_code = database_side.wait(120)
        return database_code, transfer_code, json.loads(summary.read_text())

    def backup(
        self,
        database: str,
        key: str,
        prune: list[str] = (),
        level: int = DEFAULT_COMPRESSION_LEVEL,  # type: ignore[assignment]
    ) -> tuple[int, int, dict[str, object]]:
        args = ["upload", "--key", key, "--status-file", STATUS_FILE]
        for old in prune:
            args += ["--prune", old]
        return self._run(database, dump_script(level), args)

    def restore(self, database: str, key: str, sha256: str | None = None) -> tuple[int, int, dict[str, object]]:
        return self._run(
            database, RESTORE_SCRIPT, ["download", "--key", key, *(["--sha256", sha256] if sha256 else [])]
        )


@pytest.fixture(params=["s3", "volume"])
def store(request: pytest.FixtureRequest, pg: ThrowawayPostgres, tmp_path: Path) -> Iterator[tuple[Pipe, object]]:
    """A pipe to each kind of store, and a function from a key to the dump's bytes on disk."""
    if request.param == "s3":
        server: ThrowawayS3 = request.getfixturevalue("s3")
        args = ["--s3-endpoint", server.endpoint, "--bucket", BUCKET, "--no-tls"]
        yield Pipe(pg, tmp_path, args, server.env), server.object_path
    else:
        volume = tmp_path / "volume"
        volume.mkdir()
        yield Pipe(pg, tmp_path, ["--dir", str(volume)], {}), lambda key: volume / key


def test_backup_and_restore_round_trip(store: tuple[Pipe, object], pg: ThrowawayPostgres, source: str) -> None:
    pipe, path_of = store
    key = f"demo/{uuid.uuid4().hex[:8]}.dump"
    dumped, uploaded, summary = pipe.backup(source, key)
    assert (dumped, uploaded) == (0, 0), summary
    on_disk = path_of(key).read_bytes()  # type: ignore[operator]
    assert summary["sizeBytes"] == len(on_disk) > 0
    assert summary["sha256"] == hashlib.sha256(on_disk).hexdigest()
    assert on_disk.startswith(b"PGDMP")  # pg_dump's custom format
    sidecar = path_of(key + ".sha256").read_text()  # type: ignore[operator]
    assert sidecar.split()[0] == summary["sha256"]

    target = _database(pg)
    restored, downloaded, outcome = pipe.restore(target, key, str(summary["sha256"]))
    assert (restored, downloaded) == (0, 0), outcome
    assert outcome["verified"] is True
    assert content(pg, target) == content(pg, source)
    # Without an explicit checksum, the sidecar's is used.
    again = _database(pg)
    assert pipe.restore(again, key)[2]["verified"] is True


def test_every_compression_level_restores_the_same_content(pg: ThrowawayPostgres, source: str, tmp_path: Path) -> None:
    volume = tmp_path / "volume"
    volume.mkdir()
    pipe = Pipe(pg, tmp_path, ["--dir", str(volume)], {})
    sizes = {}
    for level in (0, 9):
        key = f"levels/{level}.dump"
        dumped, uploaded, summary = pipe.backup(source, key, level=level)
        assert (dumped, uploaded) == (0, 0), summary
        sizes[level] = summary["sizeBytes"]
        target = _database(pg)
        assert pipe.restore(target, key)[:2] == (0, 0)
        assert content(pg, target) == content(pg, source)
    assert sizes[0] > sizes[9]  # the level reached pg_dump


def test_a_corrupted_dump_restores_nothing(store: tuple[Pipe, object], pg: ThrowawayPostgres, source: str) -> None:
    pipe, path_of = store
    key = f"demo/{uuid.uuid4().hex[:8]}.dump"
    summary = pipe.backup(source, key)[2]
    path = path_of(key)  # type: ignore[operator]
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))

    target = _database(pg)
    restored, downloaded, outcome = pipe.restore(target, key, str(summary["sha256"]))
    assert downloaded == 1 and restored != 0
    assert "checksum mismatch" in str(outcome["error"]) and str(summary["sha256"]) in str(outcome["error"])
    assert tables(pg, target) == []  # the single transaction rolled back


def test_a_missing_dump_fails_with_its_location(store: tuple[Pipe, object], pg: ThrowawayPostgres) -> None:
    pipe, _ = store
    restored, downloaded, outcome = pipe.restore(_database(pg), "demo/never-written.dump")
    assert downloaded == 1 and restored != 0
    assert "never-written.dump" in str(outcome["error"])


def test_a_failed_pg_dump_leaves_no_dump(store: tuple[Pipe, object], pg: ThrowawayPostgres) -> None:
    pipe, path_of = store
    key = f"demo/{uuid.uuid4().hex[:8]}.dump"
    dumped, uploaded, summary = pipe.backup("no_such_database", key)
    assert dumped != 0 and uploaded == 1
    assert "pg_dump exited with status" in str(summary["error"])
    assert not path_of(key).exists()  # type: ignore[operator]
    assert not path_of(key + ".partial").exists()  # type: ignore[operator]


def test_retention_deletes_the_named_dumps_after_the_new_one_is_stored(
    store: tuple[Pipe, object], pg: ThrowawayPostgres, source: str
) -> None:
    pipe, path_of = store
    prefix = uuid.uuid4().hex[:8]
    first, second, third = (f"{prefix}/{n}.dump" for n in ("a", "b", "c"))
    assert pipe.backup(source, first)[1] == 0
    assert pipe.backup(source, second)[1] == 0
    summary = pipe.backup(source, third, prune=[first])[2]
    assert summary["pruned"] == [first]
    assert not path_of(first).exists() and not path_of(first + ".sha256").exists()  # type: ignore[operator]
    assert path_of(second).exists() and path_of(third).exists()  # type: ignore[operator]


def test_a_dump_of_an_older_schema_restores_and_the_schema_migration_upgrades_it(
    s3: ThrowawayS3, pg: ThrowawayPostgres, tmp_path: Path
) -> None:
    """What a restored TaskPlatform does with an older backup: pg_restore, then the schema Job (Alembic)."""
    old = _database(pg)
    command.upgrade(alembic_config(pg.url(old)), "0001")  # the first released schema
    with psycopg2.connect(pg.dsn(old)) as conn, conn.cursor() as cur:
        cur.execute("INSERT INTO users (email, hashed_password, is_active, created_at) "
                    "VALUES ('early@example.com', 'x', true, now()) RETURNING id")  # fmt: skip
        user_id = cur.fetchone()[0]  # type: ignore[index]
        cur.execute("INSERT INTO tasks (owner_id, title, status, priority, tags, version, created_at, updated_at) "
                    "VALUES (%s, 'from 0001', 'todo', 2, '[]', 1, now(), now())", (user_id,))  # fmt: skip
    pipe = Pipe(pg, tmp_path, ["--s3-endpoint", s3.endpoint, "--bucket", BUCKET, "--no-tls"], s3.env)
    key = f"old/{uuid.uuid4().hex[:8]}.dump"
    assert pipe.backup(old, key)[:2] == (0, 0)
    target = _database(pg)
    assert pipe.restore(target, key)[:2] == (0, 0)
    upgrade_head(pg.url(target))  # what the schema Job runs after the restore
    with psycopg2.connect(pg.dsn(target)) as conn, conn.cursor() as cur:
        cur.execute("SELECT version_num FROM alembic_version")
        assert cur.fetchone()[0] == ScriptDirectory.from_config(alembic_config(pg.url(target))).get_current_head()  # type: ignore[index]
        cur.execute("SELECT t.title, u.email FROM tasks t JOIN users u ON u.id = t.owner_id")
        assert cur.fetchall() == [("from 0001", "early@example.com")]
