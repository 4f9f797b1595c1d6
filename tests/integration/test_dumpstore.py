"""The backup and restore pipe as the operator's Jobs run it: the Job's own shell scripts (pg_dump / pg_restore
of the PostgreSQL binaries here) beside `taskplatform-dumpstore`, against a real S3-compatible server (versitygw),
a directory standing for the backup volume, and an HTTP server playing a hostile S3 endpoint.

Two restore flows: the operator's Job (its init container's `download --output` onto the scratch volume, then its
pg_restore container's script reading that file only if the download succeeded), and the previous operator's Job
(`download --fifo`: the verified dump fed into the pipe its pg_restore reads), which dumpstore still serves."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import psycopg2
import pytest
import sqlalchemy as sa
from alembic import command
from alembic.script import ScriptDirectory
from helpers.pgcluster import ThrowawayPostgres, find_pg_bindir
from helpers.s3server import BUCKET, ThrowawayS3
from helpers.tampering import MARKER_EXISTS, altered_near_the_end, craft_marker_dump
from psycopg2 import sql
from sqlmodel import Session

from taskplatform.api.migrate import alembic_config, upgrade_head
from taskplatform.api.models import Task, User
from taskplatform.migration.dumpstore import (
    CHUNK,
    DUMP_MAX_BYTES,
    SCRATCH_RESERVE_BYTES,
    TERMINATION_MESSAGE_MAX,
)
from taskplatform.operator.models import DEFAULT_COMPRESSION_LEVEL
from taskplatform.operator.specs.backup import (
    FIFO,
    NOT_EMPTY,
    RESTORE_SCRIPT,
    SCRATCH_DIR,
    STATUS_FILE,
    STREAM_DIR,
    WAIT_FOR_FIFO,
    Dump,
    Store,
    dump_script,
)

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


def content(pg: ThrowawayPostgres, database: str) -> dict[str, str]:
    """A checksum of every row of every table (the rows' text, in order), by table."""
    with psycopg2.connect(pg.dsn(database)) as conn, conn.cursor() as cur:
        found = {}
        for table in sorted(tables(pg, database)):
            rows = "SELECT md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) FROM {} t"
            cur.execute(sql.SQL(rows).format(sql.Identifier(table)))
            found[table] = cur.fetchone()[0]  # type: ignore[index]
        return found


def tables(pg: ThrowawayPostgres, database: str) -> list[str]:
    with psycopg2.connect(pg.dsn(database)) as conn, conn.cursor() as cur:
        cur.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        return [row[0] for row in cur.fetchall()]


# The restore script of the operator before restores ran from a verified file (commit 213de69's
# operator/specs/backup.py): pg_restore of the pipe the transfer container feeds, in one transaction. Its Jobs pass
# `download --fifo`, which dumpstore still serves (a new API image under an older operator).
PREVIOUS_RESTORE_SCRIPT = (
    f"{WAIT_FOR_FIFO}; until pg_isready --quiet --timeout=5; do sleep 0.2; done; "
    "n=0; until psql -XAtqc 'SELECT 1' >/dev/null 2>&1 || [ $n -ge 600 ]; do n=$((n + 1)); sleep 0.2; done; "
    f'exec pg_restore --single-transaction --exit-on-error --no-owner --no-privileges --dbname="$PGDATABASE" < "{FIFO}"'
)


def in_folder(text: str, folder: Path, within: str) -> str:
    """The Job's paths under `within` moved into this test's folder."""
    return text.replace(f"{within}/", f"{folder}/")


Outcome = tuple[
    int | None, int, dict[str, object]
]  # the database side's exit (None: not run), the transfer's, its summary


class Pipe:
    """One Job pod: the database-side script and the transfer process sharing a stream directory."""

    def __init__(self, pg: ThrowawayPostgres, tmp: Path, store_args: list[str], env: dict[str, str]) -> None:
        self.pg, self.tmp, self.store_args, self.env = pg, tmp, store_args, env

    def _pg_env(self, database: str) -> dict[str, str]:
        return {
            **os.environ,
            "PATH": f"{find_pg_bindir()}:{os.environ['PATH']}",
            "PGHOST": "127.0.0.1",
            "PGPORT": str(self.pg.port),
            "PGUSER": "postgres",
            "PGDATABASE": database,
        }

    def _transfer(self, args: list[str], summary: Path) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [sys.executable, "-m", "taskplatform.migration.dumpstore", *args, *self.store_args,
             "--summary-file", str(summary)],
            env={**os.environ, **self.env},
        )  # fmt: skip

    def _stream_dir(self) -> Path:
        stream = self.tmp / f"stream-{uuid.uuid4().hex[:6]}"
        stream.mkdir()
        return stream

    def _run(self, database: str, script: str, transfer_args: list[str]) -> Outcome:
        stream = self._stream_dir()
        fifo, summary = Path(FIFO.replace(f"{STREAM_DIR}/", f"{stream}/")), stream / "summary.json"
        # No mkfifo here: the transfer process makes the pipe, and the Job's script waits for it (as in the pod).
        # The Job's own scripts, with its paths moved into this test's folder.
        script = script.replace(f"{STREAM_DIR}/", f"{stream}/")
        transfer_args = [a.replace(f"{STREAM_DIR}/", f"{stream}/") for a in transfer_args]
        database_side = subprocess.Popen(["sh", "-c", script], env=self._pg_env(database), stderr=subprocess.PIPE)
        transfer = self._transfer([*transfer_args, "--fifo", str(fifo)], summary)
        transfer_code = transfer.wait(120)
        database_code = database_side.wait(120)
        # Nothing left beside the pipe but pg_dump's status: no verified or partial download.
        assert {p.name for p in stream.iterdir()} - {"dump", "dump.status", "summary.json"} == set()
        return database_code, transfer_code, json.loads(summary.read_text())

    def backup(
        self,
        database: str,
        key: str,
        prune: list[str] = (),
        level: int = DEFAULT_COMPRESSION_LEVEL,  # type: ignore[assignment]
    ) -> Outcome:
        args = ["upload", "--key", key, "--status-file", STATUS_FILE]
        for old in prune:
            args += ["--prune", old]
        return self._run(database, dump_script(level), args)

    def restore_previous_job(
        self, database: str, key: str, sha256: str | None = None, max_bytes: int | None = None, allow: bool = False
    ) -> Outcome:
        """The previous operator's restore Job: the dump fed into its pg_restore's pipe once verified."""
        args = ["download", "--key", key, *(["--sha256", sha256] if sha256 else [])]
        args += [*(["--max-bytes", str(max_bytes)] if max_bytes else []), *(["--allow-unverified"] if allow else [])]
        return self._run(database, PREVIOUS_RESTORE_SCRIPT, args)

    def restore(
        self, database: str, key: str, sha256: str | None = None, max_bytes: int | None = None, allow: bool = False
    ) -> Outcome:
        """The operator's restore Job: its init container's download (the Dump's own arguments) verifies the dump
        into its scratch directory; its pg_restore container's script runs only if that succeeded. The downloaded
        file is kept as `self.last_download` for the test. `max_bytes`: the backup's recorded size (the largest a
        dump may be, when the test does not care)."""
        scratch = self._stream_dir()
        dump = Dump(Store(volume_claim="unused"), key, sha256, max_bytes or DUMP_MAX_BYTES, allow)
        args = [in_folder(arg, scratch, SCRATCH_DIR) for arg in dump.download_args()]
        self.last_download = Path(args[args.index("--output") + 1])
        transfer_code = self._transfer(args, scratch / "summary.json").wait(120)
        summary = json.loads((scratch / "summary.json").read_text())
        if transfer_code != 0:
            assert sorted(p.name for p in scratch.iterdir()) == ["summary.json"]  # no file, not even a partial one
            return None, transfer_code, summary
        script = in_folder(RESTORE_SCRIPT, scratch, SCRATCH_DIR)
        restored = subprocess.run(["sh", "-c", script], env=self._pg_env(database), capture_output=True, text=True,
                                  check=False, timeout=120)  # fmt: skip
        self.last_errors = restored.stderr
        return restored.returncode, transfer_code, summary


# The S3 server is asked for at run time (getfixturevalue), so its marker is given with the parameter.
@pytest.fixture(params=[pytest.param("s3", marks=pytest.mark.s3), "volume"])
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


FLOWS = ["job", "previous-job"]


def restore_with(pipe: Pipe, flow: str) -> Callable[..., Outcome]:
    return pipe.restore if flow == "job" else pipe.restore_previous_job


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
    assert sidecar.split()[0] == summary["sha256"]  # for sha256sum -c; a restore never reads it

    expected = content(pg, source)
    assert {"users", "tasks", "alembic_version"} <= expected.keys()  # every table
    for flow in FLOWS:
        target = _database(pg)
        size = int(summary["sizeBytes"])  # type: ignore[call-overload]
        restored, downloaded, outcome = restore_with(pipe, flow)(target, key, str(summary["sha256"]), size)
        assert (restored, downloaded) == (0, 0), outcome
        assert outcome["verified"] is True and outcome["sha256"] == summary["sha256"]
        assert outcome["sizeBytes"] == summary["sizeBytes"]
        assert content(pg, target) == expected, flow
    assert pipe.last_download.read_bytes() == on_disk  # the file pg_restore read is the stored dump, byte for byte


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
        assert pipe.restore(target, key, str(summary["sha256"]))[:2] == (0, 0)
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

    for flow in FLOWS:
        target = _database(pg)
        restored, downloaded, outcome = restore_with(pipe, flow)(target, key, str(summary["sha256"]))
        assert downloaded == 1 and restored != 0
        assert "checksum mismatch" in str(outcome["error"]) and str(summary["sha256"]) in str(outcome["error"])
        assert tables(pg, target) == []


def has_marker(pg: ThrowawayPostgres, database: str) -> bool:
    with psycopg2.connect(pg.dsn(database)) as conn, conn.cursor() as cur:
        cur.execute(MARKER_EXISTS)
        return bool(cur.fetchone()[0])  # type: ignore[index]


@pytest.mark.parametrize("flow", FLOWS)
def test_a_tampered_dump_runs_nothing(flow: str, store: tuple[Pipe, object], pg: ThrowawayPostgres) -> None:
    """A backup whose first SQL creates a marker table outside pg_restore's transaction, altered in a later
    byte: its restore is refused before pg_restore reads a byte, so the marker does not exist. (The previous
    downloader fed pg_restore all but the last MiB before comparing checksums: the marker existed.)"""
    pipe, path_of = store
    source = _database(pg)
    with psycopg2.connect(pg.dsn(source)) as conn, conn.cursor() as cur:
        # Incompressible rows: a dump of several chunks, so that the altered byte is chunks after the first entry.
        cur.execute("CREATE TABLE public.filler (data bytea)")
        for _ in range(4):
            cur.execute("INSERT INTO public.filler VALUES (%s)", (os.urandom(1 << 20),))
    key = f"marked/{uuid.uuid4().hex[:8]}.dump"
    assert pipe.backup(source, key)[:2] == (0, 0)
    path = path_of(key)  # type: ignore[operator]
    crafted = craft_marker_dump(path.read_bytes())
    recorded = hashlib.sha256(crafted).hexdigest()  # the backup's checksum, as its status would record it
    assert len(crafted) > 3 * CHUNK

    # What the bytes do once pg_restore reads them (the previous Job's script, --single-transaction included): the
    # crafted dump restored in full creates the marker; so does the part of the altered dump that the previous
    # downloader streamed before its check (all but the last MiB), although pg_restore then fails.
    tampered = altered_near_the_end(crafted)
    script = PREVIOUS_RESTORE_SCRIPT.replace(WAIT_FOR_FIFO, "true").replace(f'"{FIFO}"', "/dev/stdin")
    for name, data, succeeds in (("crafted", crafted, True), ("streamed", bytes(tampered[:-CHUNK]), False)):
        control = _database(pg)
        ran = subprocess.run(["sh", "-c", script], input=data, env=pipe._pg_env(control), check=False, timeout=120)
        assert (ran.returncode == 0) is succeeds and has_marker(pg, control), name

    path.write_bytes(tampered)
    target = _database(pg)
    restored, downloaded, outcome = restore_with(pipe, flow)(target, key, recorded)
    assert downloaded == 1 and restored != 0
    assert str(outcome["error"]).startswith("checksum mismatch") and recorded in str(outcome["error"])
    assert not has_marker(pg, target)
    assert tables(pg, target) == []


@pytest.mark.parametrize("flow", FLOWS)
def test_an_unverifiable_dump_is_refused_unless_allowed(
    flow: str, store: tuple[Pipe, object], pg: ThrowawayPostgres, source: str
) -> None:
    """Without an expected checksum nothing is downloaded, even with a matching `.sha256` beside the dump (whoever
    can replace the dump can replace it); --allow-unverified restores it, reported as unverified."""
    pipe, path_of = store
    key = f"demo/{uuid.uuid4().hex[:8]}.dump"
    summary = pipe.backup(source, key)[2]
    assert path_of(key + ".sha256").read_text().split()[0] == summary["sha256"]  # type: ignore[operator]
    restore = restore_with(pipe, flow)

    refused = _database(pg)
    restored, downloaded, outcome = restore(refused, key)
    assert downloaded == 1 and restored != 0
    assert "--allow-unverified" in str(outcome["error"]) and "not trusted" in str(outcome["error"])
    assert tables(pg, refused) == []

    allowed = _database(pg)
    restored, downloaded, outcome = restore(allowed, key, None, allow=True)
    assert (restored, downloaded) == (0, 0), outcome
    assert outcome["verified"] is False and outcome["sha256"] == summary["sha256"]
    assert content(pg, allowed) == content(pg, source)


@pytest.mark.parametrize("flow", FLOWS)
def test_a_dump_longer_than_its_recorded_size_is_refused(
    flow: str, store: tuple[Pipe, object], pg: ThrowawayPostgres, source: str
) -> None:
    pipe, _ = store
    key = f"demo/{uuid.uuid4().hex[:8]}.dump"
    summary = pipe.backup(source, key)[2]
    target = _database(pg)
    shorter = int(summary["sizeBytes"]) - 1  # type: ignore[call-overload]
    restored, downloaded, outcome = restore_with(pipe, flow)(target, key, str(summary["sha256"]), shorter)
    assert downloaded == 1 and restored != 0
    assert f"more than the {shorter} bytes this dump may have" in str(outcome["error"])
    assert tables(pg, target) == []


def test_a_restore_into_a_database_that_holds_tables_is_refused(
    pg: ThrowawayPostgres, source: str, tmp_path: Path
) -> None:
    """A parallel restore that failed part-way leaves tables behind, and a TaskPlatform created again on its volume
    meets them: the Job says so, and restores nothing into them."""
    volume = tmp_path / "volume"
    volume.mkdir()
    pipe = Pipe(pg, tmp_path, ["--dir", str(volume)], {})
    summary = pipe.backup(source, "demo/b.dump")[2]
    target = _database(pg)
    assert pipe.restore(target, "demo/b.dump", str(summary["sha256"]))[:2] == (0, 0)
    restored = content(pg, target)
    with psycopg2.connect(pg.dsn(target)) as conn, conn.cursor() as cur:
        cur.execute("DELETE FROM tasks")  # what a restore cut short may have left: tables, not all their rows
    again, downloaded, _ = pipe.restore(target, "demo/b.dump", str(summary["sha256"]))
    assert (again, downloaded) == (1, 0) and NOT_EMPTY in pipe.last_errors
    assert content(pg, target) == {**restored, "tasks": content(pg, target)["tasks"]}
    assert content(pg, target)["tasks"] != restored["tasks"]  # the rows deleted stay deleted: nothing was restored


def test_a_missing_dump_fails_with_its_location(store: tuple[Pipe, object], pg: ThrowawayPostgres) -> None:
    pipe, _ = store
    restored, downloaded, outcome = pipe.restore(_database(pg), "demo/never-written.dump", "0" * 64)
    assert downloaded == 1 and restored != 0
    assert "never-written.dump" in str(outcome["error"]) and "SHA-256" not in str(outcome["error"])


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
    summary = pipe.backup(old, key)[2]
    assert summary["exitCode"] == 0
    target = _database(pg)
    assert pipe.restore(target, key, str(summary["sha256"]))[:2] == (0, 0)
    upgrade_head(pg.url(target))  # what the schema Job runs after the restore
    with psycopg2.connect(pg.dsn(target)) as conn, conn.cursor() as cur:
        cur.execute("SELECT version_num FROM alembic_version")
        assert cur.fetchone()[0] == ScriptDirectory.from_config(alembic_config(pg.url(target))).get_current_head()  # type: ignore[index]
        cur.execute("SELECT t.title, u.email FROM tasks t JOIN users u ON u.id = t.owner_id")
        assert cur.fetchall() == [("from 0001", "early@example.com")]


class HostileS3:
    """An HTTP server that answers every request as `answer` says: an S3 endpoint lying about its objects. The
    client is the real one (minio, through taskplatform-dumpstore)."""

    def __init__(self) -> None:
        self.sent = 0  # body bytes the last answer got out
        self.done = threading.Event()
        self.answer: Callable[[BaseHTTPRequestHandler], None] = lambda handler: None
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                try:
                    outer.answer(self)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client hung up: what a refusal looks like from here
                finally:
                    self.close_connection = True
                    outer.done.set()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint = f"127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> HostileS3:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def body(self, handler: BaseHTTPRequestHandler, data: bytes, total: int, chunked: bool = False) -> None:
        """`total` bytes of `data` repeated, as one body or in chunks; counted as they go out."""
        self.sent = 0
        while self.sent < total:
            piece = data[: total - self.sent]
            handler.wfile.write(b"%x\r\n%b\r\n" % (len(piece), piece) if chunked else piece)
            self.sent += len(piece)
        if chunked:
            handler.wfile.write(b"0\r\n\r\n")
        handler.wfile.flush()

    def download(self, tmp_path: Path, *args: str) -> tuple[int, dict[str, object], Path]:
        """taskplatform-dumpstore download from this server; its exit code, summary and output path."""
        self.done.clear()
        output, summary = tmp_path / "scratch" / "dump", tmp_path / "summary.json"
        output.parent.mkdir(exist_ok=True)
        code = subprocess.run(
            [sys.executable, "-m", "taskplatform.migration.dumpstore", "download", "--key", "demo/x.dump",
             "--s3-endpoint", self.endpoint, "--bucket", BUCKET, "--no-tls", "--output", str(output),
             "--summary-file", str(summary), *args],
            env={**os.environ, "AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s"}, check=False, timeout=120,
        ).returncode  # fmt: skip
        assert self.done.wait(60), "the server's answer did not end"
        text = summary.read_text()
        assert len(text.encode()) <= TERMINATION_MESSAGE_MAX
        return code, json.loads(text), output


def respond(handler: BaseHTTPRequestHandler, status: int, headers: dict[str, str]) -> None:
    handler.send_response(status)
    for name, value in headers.items():
        handler.send_header(name, value)
    handler.end_headers()


def assert_no_download(output: Path) -> None:
    assert list(output.parent.iterdir()) == [], "nothing written, not even a partial file"


DUMP = os.urandom(3 * CHUNK + 12345)  # what the hostile server serves; only its length and checksum matter here
DUMP_SHA256 = hashlib.sha256(DUMP).hexdigest()


def test_a_store_announcing_more_than_the_recorded_size_is_refused_before_its_body(tmp_path: Path) -> None:
    with HostileS3() as s3:

        def announce_more(handler: BaseHTTPRequestHandler) -> None:
            respond(handler, 200, {"Content-Length": str(64 * CHUNK)})
            s3.body(handler, DUMP, 64 * CHUNK)

        s3.answer = announce_more
        code, summary, output = s3.download(tmp_path, "--sha256", DUMP_SHA256, "--max-bytes", str(len(DUMP)))
    assert code == 1 and f"more than the {len(DUMP)} bytes this dump may have" in str(summary["error"])
    assert_no_download(output)
    assert s3.sent < 64 * CHUNK  # the body was not read: the client hung up (socket buffers took the rest)


def test_a_stream_longer_than_the_bound_is_cut_there(tmp_path: Path) -> None:
    """No Content-Length (chunked): the download stops before it would pass --max-bytes, and leaves nothing."""
    with HostileS3() as s3:

        def endless(handler: BaseHTTPRequestHandler) -> None:
            respond(handler, 200, {"Transfer-Encoding": "chunked"})
            s3.body(handler, DUMP, 64 * CHUNK, chunked=True)

        s3.answer = endless
        code, summary, output = s3.download(tmp_path, "--sha256", DUMP_SHA256, "--max-bytes", str(len(DUMP)))
    assert code == 1 and f"longer than {len(DUMP)} bytes" in str(summary["error"])
    assert_no_download(output)
    assert s3.sent < 64 * CHUNK


def test_bytes_beyond_the_content_length_are_never_read(tmp_path: Path) -> None:
    """A store that sends more than it announces: the client reads what was announced, and that is verified."""
    with HostileS3() as s3:

        def more_than_announced(handler: BaseHTTPRequestHandler) -> None:
            respond(handler, 200, {"Content-Length": str(len(DUMP))})
            handler.wfile.write(DUMP)
            s3.body(handler, b"\xff" * CHUNK, 8 * CHUNK)

        s3.answer = more_than_announced
        code, summary, output = s3.download(tmp_path, "--sha256", DUMP_SHA256, "--max-bytes", str(len(DUMP)))
    assert code == 0 and summary["verified"] is True, summary
    assert output.read_bytes() == DUMP


def test_a_wrong_content_length_fails_the_download(tmp_path: Path) -> None:
    with HostileS3() as s3:
        # Fewer bytes than announced, then the connection closes.
        def fewer(handler: BaseHTTPRequestHandler) -> None:
            respond(handler, 200, {"Content-Length": str(len(DUMP))})
            s3.body(handler, DUMP, len(DUMP) - 1000)

        s3.answer = fewer
        code, summary, output = s3.download(tmp_path, "--sha256", DUMP_SHA256, "--max-bytes", str(len(DUMP)))
        assert code == 1 and "the download broke off" in str(summary["error"]), summary
        assert_no_download(output)

        # Fewer announced than the dump has: what was announced does not verify.
        def shorter(handler: BaseHTTPRequestHandler) -> None:
            respond(handler, 200, {"Content-Length": str(len(DUMP) - 1000)})
            handler.wfile.write(DUMP)

        s3.answer = shorter
        code, summary, output = s3.download(tmp_path, "--sha256", DUMP_SHA256, "--max-bytes", str(len(DUMP)))
        assert code == 1 and str(summary["error"]).startswith("checksum mismatch"), summary
        assert_no_download(output)

        # Not a length at all.
        for nonsense in ("-1", "1e9", "12 34", "9" * 40):

            def invalid(handler: BaseHTTPRequestHandler, value: str = nonsense) -> None:
                respond(handler, 200, {"Content-Length": value})

            s3.answer = invalid
            code, summary, output = s3.download(tmp_path, "--sha256", DUMP_SHA256, "--max-bytes", str(len(DUMP)))
            assert code == 1, (nonsense, summary)
            assert_no_download(output)


def test_a_dump_larger_than_the_free_space_is_refused_before_its_body(tmp_path: Path) -> None:
    """Without a caller's bound it may take what the volume can spare; a store announcing more than that is
    refused before a byte is written."""
    free = os.statvfs(tmp_path).f_bavail * os.statvfs(tmp_path).f_frsize
    assert free < DUMP_MAX_BYTES  # the condition this test needs: more than announced would be free
    with HostileS3() as s3:

        def huge(handler: BaseHTTPRequestHandler) -> None:
            respond(handler, 200, {"Content-Length": str(DUMP_MAX_BYTES)})
            s3.body(handler, DUMP, 64 * CHUNK)

        s3.answer = huge
        code, summary, output = s3.download(tmp_path, "--sha256", DUMP_SHA256)
        assert code == 1 and f"needs {DUMP_MAX_BYTES} bytes" in str(summary["error"]), summary
        assert f"beyond a {SCRATCH_RESERVE_BYTES}-byte reserve" in str(summary["error"])
        assert_no_download(output)
        assert s3.sent < 64 * CHUNK

        # The same with the caller's bound: the recorded size, when the volume cannot hold it.
        code, summary, output = s3.download(tmp_path, "--sha256", DUMP_SHA256, "--max-bytes", str(DUMP_MAX_BYTES))
        assert code == 1 and f"needs {DUMP_MAX_BYTES} bytes" in str(summary["error"]), summary
        assert_no_download(output)


def test_a_store_error_is_reported_within_the_summary_bound(tmp_path: Path) -> None:
    """An S3 error with a megabyte of message, each character escaped or wide in JSON: a parseable summary of at most
    4096 bytes."""
    message = ('"é\\' * (CHUNK // 3)).encode()
    error = b"<Error><Code>AccessDenied</Code><Message>%b</Message></Error>" % message
    with HostileS3() as s3:

        def denied(handler: BaseHTTPRequestHandler) -> None:
            respond(handler, 403, {"Content-Type": "application/xml", "Content-Length": str(len(error))})
            handler.wfile.write(error)

        s3.answer = denied
        code, summary, output = s3.download(tmp_path, "--sha256", DUMP_SHA256, "--max-bytes", str(len(DUMP)))
    assert code == 1 and str(summary["error"]).startswith('s3://backups/demo/x.dump: AccessDenied ("é\\"é'), summary
    assert_no_download(output)
