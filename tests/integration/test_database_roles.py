"""The database roles (operator/dbroles.py) on a real PostgreSQL, through each pod's own connection settings.

The database pod's postStart hook runs exactly as the pod runs it: the command and environment of the
operator's StatefulSet, the Secret's values resolved as the kubelet resolves them, against a server initialised
as the database image's entrypoint does (its bootstrap superuser trusted over the local socket only, every TCP
login checked by password, scram-sha-256). The clients then connect as the pods do: over TCP, with the
environment of the API Deployment, the schema Job, the DataMigration Job and the backup and restore Jobs."""

from __future__ import annotations

import base64
import os
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg2
import psycopg2.errors
import pytest
import sqlalchemy as sa
from alembic import command
from fastapi.testclient import TestClient
from helpers.mongoserver import ThrowawayMongo
from helpers.pgcluster import ThrowawayPostgres, find_pg_bindir
from helpers.support import TEST_JWT_SECRET
from pymongo import MongoClient

from taskplatform.api.config import Settings
from taskplatform.api.db import sync_url
from taskplatform.api.main import create_app
from taskplatform.api.migrate import alembic_config, upgrade_head
from taskplatform.migration.cli import main as migrate
from taskplatform.operator import dbroles
from taskplatform.operator.dbroles import API_ROLE, BACKUP_ROLE, MIGRATION_ROLE, OWNER_ROLE, ROLES, SUPERUSER
from taskplatform.operator.jwtkeys import JwtKeys
from taskplatform.operator.kinds import DATA_MIGRATION, TASK_PLATFORM, TASK_PLATFORM_BACKUP
from taskplatform.operator.models import DataMigrationSpec, TaskPlatformSpec
from taskplatform.operator.specs import tls
from taskplatform.operator.specs.api import api_deployment
from taskplatform.operator.specs.backup import (
    DUMP_CONTAINER,
    RESTORE_CONTAINER,
    RESTORE_SCRIPT,
    SCRATCH_DIR,
    SCRATCH_DUMP,
    Dump,
    Store,
    backup_job,
    restore_job,
)
from taskplatform.operator.specs.common import Owner
from taskplatform.operator.specs.credentials import Credentials, credentials_secret
from taskplatform.operator.specs.database import database_statefulset
from taskplatform.operator.specs.datamigration import data_migration_job
from taskplatform.operator.specs.schema import schema_migration_job

OWNER = Owner(TASK_PLATFORM, "demo", "apps", "uid")
SPEC = TaskPlatformSpec()
# Everything a user-provided password may hold that breaks a quoted SQL literal or a URL.
AWKWARD = 'it\'s a p@ss:w/rd 100% "quoted" + more'
PASSWORD = "correct horse battery staple"


def credentials(tag: str = "1", awkward: bool = False) -> Credentials:
    """A password per role, each distinct (so a login that works proves which one the pod was given)."""
    prefix = AWKWARD if awkward else ""
    roles = {role.key: f"{prefix}{role.key}-{tag}" for role in ROLES}
    return Credentials(f"{prefix}superuser-{tag}", "j" * 48, JwtKeys("j" * 48), roles)


# Every test here starts a PostgreSQL of this module's own (`server`, or one of its own), not conftest's `pg`.
pytestmark = pytest.mark.postgres


@pytest.fixture(scope="module")
def server() -> Iterator[ThrowawayPostgres]:
    with ThrowawayPostgres(superuser=SUPERUSER, superuser_password="the password initdb was given") as cluster:
        yield cluster


@pytest.fixture
def database(server: ThrowawayPostgres) -> str:
    name = f"roles_{uuid.uuid4().hex[:10]}"
    server.create_database(name)
    return name


def secret_values(creds: Credentials) -> dict[str, str]:
    secret = credentials_secret(OWNER, creds)
    return {key: base64.b64decode(value).decode() for key, value in secret["data"].items()}


def container_env(container: dict[str, Any], creds: Credentials) -> dict[str, str]:
    """A container's environment as the kubelet gives it: values, and secretKeyRefs read from the Secret."""
    values, env = secret_values(creds), {}
    for item in container.get("env", []):
        if "value" in item:
            env[item["name"]] = item["value"]
        else:
            ref = item["valueFrom"]["secretKeyRef"]
            if ref["name"] == "demo-credentials":  # else another Secret (a migration's source)
                env[item["name"]] = values[ref["key"]]
    return env


def run_database_hook(server: ThrowawayPostgres, database: str, creds: Credentials, log: Path) -> str:
    """The StatefulSet's postStart command with its container's environment; only where the server listens
    (its socket directory, port), which database (one per test) and where the log goes differ from the pod."""
    statefulset = database_statefulset(OWNER, SPEC, creds)
    container = statefulset["spec"]["template"]["spec"]["containers"][0]
    env = {
        "PATH": f"{find_pg_bindir()}:{os.environ['PATH']}",
        **container_env(container, creds),
        "POSTGRES_DB": database,
        "PGHOST": str(server.sockdir),
        "PGPORT": str(server.port),
        "ROLE_SYNC_LOG": str(log),
    }
    command_ = container["lifecycle"]["postStart"]["exec"]["command"]
    result = subprocess.run(command_, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    written = log.read_text()
    everything = result.stdout + result.stderr + written + server.logfile.read_text()
    for password in (creds.db_password, *creds.role_passwords.values()):
        assert password not in everything  # not in the hook's output, its log, nor the server's log
    return written


@pytest.fixture
def sync(server: ThrowawayPostgres, database: str, tmp_path: Path) -> Callable[[Credentials], None]:
    def run(creds: Credentials) -> None:
        log = tmp_path / f"sync-{uuid.uuid4().hex[:6]}.log"
        written = run_database_hook(server, database, creds, log)
        assert written.strip() == dbroles.SYNC_DONE, written

    return run


def at_server(server: ThrowawayPostgres, database: str, url: str) -> str:
    """A URL from the credentials Secret, pointed at this server's port and the test's database."""
    parsed = sa.engine.make_url(sync_url(url))
    return parsed.set(host="127.0.0.1", port=server.port, database=database).render_as_string(hide_password=False)


def pod_urls(server: ThrowawayPostgres, database: str, creds: Credentials) -> dict[str, str]:
    """The database URL each pod is given (its container's env), by role."""
    migration_spec = DataMigrationSpec.model_validate({"target": "demo", "sourceSecretRef": {"name": "legacy"}})
    migration = data_migration_job(Owner(DATA_MIGRATION, "import", "apps", "2"), migration_spec, SPEC)
    containers = {
        API_ROLE: (api_deployment(OWNER, SPEC, creds), "DATABASE_URL"),
        OWNER_ROLE: (schema_migration_job(OWNER, SPEC), "DATABASE_URL"),
        MIGRATION_ROLE: (migration, "TARGET_URL"),
    }
    urls = {}
    for role, (workload, variable) in containers.items():
        env = container_env(workload["spec"]["template"]["spec"]["containers"][0], creds)
        urls[role.key] = at_server(server, database, env[variable])
    backup = job_env(BACKUP_ROLE, creds)
    urls[BACKUP_ROLE.key] = server.tcp_url(backup["PGUSER"], backup["PGPASSWORD"], database)  # libpq's PG* env
    return urls


def job_env(role: dbroles.DatabaseRole, creds: Credentials) -> dict[str, str]:
    """The environment of the database container of the backup Job (BACKUP_ROLE) or the restore Job (OWNER_ROLE)."""
    store = Store(volume_claim="demo-backups")
    if role is BACKUP_ROLE:
        job, name = (
            backup_job(Owner(TASK_PLATFORM_BACKUP, "b", "apps", "3"), "demo", SPEC, "k", store, []),
            DUMP_CONTAINER,
        )
    else:
        job, name = restore_job(OWNER, SPEC, Dump(store, "k", "a" * 64, 1000)), RESTORE_CONTAINER
    (container,) = [c for c in job["spec"]["template"]["spec"]["containers"] if c["name"] == name]
    # This file's server has no TLS: the roles are what it tests (test_database_tls.py tests TLS with these names).
    return {k: v for k, v in container_env(container, creds).items() if k not in {e["name"] for e in tls.CLIENT_ENV}}


def connect(url: str) -> Any:
    conn = psycopg2.connect(sa.engine.make_url(url).set(drivername="postgresql").render_as_string(False))
    conn.autocommit = True
    return conn


def scalar(url: str, sql: str) -> Any:
    with connect(url) as conn, conn.cursor() as cur:
        cur.execute(sql)
        return cur.fetchone()[0]


def refused(url: str, sql: str) -> str:
    """The error PostgreSQL answers `sql` with, through `url`; fails the test if it is accepted."""
    conn = connect(url)
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
    except psycopg2.Error as exc:
        return str(exc.pgerror or exc)
    finally:
        conn.close()
    raise AssertionError(f"accepted: {sql}")


def assert_least_privilege(urls: dict[str, str]) -> None:
    for key, url in urls.items():
        assert scalar(url, "SELECT rolsuper FROM pg_roles WHERE rolname = current_user") is False, key
        assert "pg_execute_server_program" in refused(url, "COPY (SELECT 1) TO PROGRAM 'true'"), key
        # Untrusted languages are the superuser's (a role without CREATE on the schema is refused even earlier).
        c_function = refused(url, "CREATE FUNCTION pwn() RETURNS int AS 'libc.so.6', 'getpid' LANGUAGE c")
        assert "permission denied for language c" in c_function or (
            key in (API_ROLE.key, BACKUP_ROLE.key) and "permission denied for schema public" in c_function
        ), (key, c_function)
        assert "permission denied" in refused(url, "SELECT pg_read_file('/etc/passwd')"), key
        assert "must be superuser" in refused(url, "ALTER ROLE current_user SUPERUSER"), key
        with pytest.raises(psycopg2.OperationalError, match="permission denied for database"):
            connect(sa.engine.make_url(url).set(database="postgres").render_as_string(False))  # nor other databases


def api_flow(url: str) -> list[str]:
    """The API itself on its role's URL: register, log in, create and list tasks (users, tokens, the login
    throttle, idempotency records, tasks). Returns the task titles it lists."""
    settings = Settings(environment="test", database_url=url, jwt_secret=TEST_JWT_SECRET, bcrypt_rounds=4)  # type: ignore[arg-type]
    email = f"{uuid.uuid4().hex[:8]}@example.com"
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        assert client.post("/api/v1/auth/register", json={"email": email, "password": PASSWORD}).status_code == 201
        login = client.post("/api/v1/auth/login", data={"username": email, "password": PASSWORD})
        assert login.status_code == 200, login.text
        headers = {"Authorization": f"Bearer {login.json()['access_token']}", "Idempotency-Key": uuid.uuid4().hex}
        created = client.post("/api/v1/tasks", json={"title": "through the API role", "tags": ["x"]}, headers=headers)
        assert created.status_code == 201, created.text
        listed = client.get("/api/v1/tasks", headers={"Authorization": headers["Authorization"]})
        assert listed.status_code == 200, listed.text
        return [task["title"] for task in listed.json()["items"]]


def assert_the_api_role_changes_no_schema(url: str) -> None:
    for sql in (
        "DROP TABLE tasks",
        "ALTER TABLE tasks ADD COLUMN x int",
        "TRUNCATE tasks",
        "CREATE INDEX i ON tasks (id)",
    ):
        assert "must be owner" in refused(url, sql) or "permission denied" in refused(url, sql), sql
    assert "permission denied for schema public" in refused(url, "CREATE TABLE mine (id int)")
    assert "permission denied" in refused(url, "CREATE TEMP TABLE mine (id int)")


def owners(superuser_url: str) -> dict[str, str]:
    """Every relation, type and routine of schema public that is not an extension's, with its owner."""
    with connect(superuser_url) as conn, conn.cursor() as cur:
        cur.execute(
            """
            SELECT c.relname, c.relowner::regrole::text FROM pg_class c
            WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'S', 'v', 'm', 'i')
              AND NOT EXISTS (SELECT FROM pg_depend d WHERE d.objid = c.oid AND d.deptype = 'e')
            """
        )
        return dict(cur.fetchall())


OLD_PASSWORD = "the superuser's password an older operator set"


def old_operator_url(server: ThrowawayPostgres, database: str) -> str:
    """The `database-url` an operator from before the roles gave every pod: the superuser's, over TCP (its
    password set as that operator's hook set it; the roles and the superuser are the server's, shared by the
    tests' databases)."""
    with connect(server.url(database)) as conn, conn.cursor() as cur:
        cur.execute(f"ALTER ROLE {SUPERUSER} PASSWORD %s", (OLD_PASSWORD,))
    return server.tcp_url(SUPERUSER, OLD_PASSWORD, database)


def test_a_password_that_breaks_sql_literals_and_urls_works_for_every_role(
    server: ThrowawayPostgres, database: str, sync: Callable[[Credentials], None]
) -> None:
    """The hook pasted the password into a quoted literal (`'` ended it), and the URL carried it unencoded
    (`@`, `:`, `/`, `%` and a space end or corrupt its parts)."""
    creds = credentials(awkward=True)
    sync(creds)
    for key, url in pod_urls(server, database, creds).items():
        role = next(r for r in ROLES if r.key == key)
        assert sa.engine.make_url(url).password == creds.password(role)
        assert scalar(url, "SELECT current_user") == role.name
    superuser = psycopg2.connect(host="127.0.0.1", port=server.port, user=SUPERUSER, dbname=database,
                                 password=creds.db_password)  # fmt: skip
    superuser.close()
    with pytest.raises(psycopg2.OperationalError, match="password authentication failed"):
        psycopg2.connect(host="127.0.0.1", port=server.port, user=API_ROLE.name, dbname=database, password="wrong")


def test_on_a_new_database_every_pod_connects_as_a_role_with_only_what_its_job_needs(
    server: ThrowawayPostgres, database: str, sync: Callable[[Credentials], None]
) -> None:
    creds = credentials()
    sync(creds)
    urls = pod_urls(server, database, creds)
    upgrade_head(urls[OWNER_ROLE.key])  # the schema Job, as the owner
    assert set(owners(server.url(database)).values()) == {OWNER_ROLE.name}

    assert_least_privilege(urls)
    assert api_flow(urls[API_ROLE.key]) == ["through the API role"]
    assert_the_api_role_changes_no_schema(urls[API_ROLE.key])
    assert "permission denied" in refused(urls[BACKUP_ROLE.key], "DELETE FROM tasks")
    assert scalar(urls[BACKUP_ROLE.key], "SELECT count(*) FROM users") == 1  # reads everything
    assert "permission denied" in refused(urls[OWNER_ROLE.key], "CREATE ROLE intruder")
    assert "permission denied" in refused(urls[OWNER_ROLE.key], "CREATE DATABASE other")

    # A later migration (the owner's): the API may use its table and sequence at once, through default privileges.
    with connect(urls[OWNER_ROLE.key]) as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE later (id serial PRIMARY KEY, note text)")
    assert scalar(urls[API_ROLE.key], "INSERT INTO later (note) VALUES ('x') RETURNING id") == 1
    assert "must be owner" in refused(urls[API_ROLE.key], "DROP TABLE later")


def test_a_database_the_previous_operator_made_moves_to_the_roles_without_losing_a_row(
    server: ThrowawayPostgres, database: str, sync: Callable[[Credentials], None], tmp_path: Path
) -> None:
    """As today's operator leaves it: the schema Job and the API connected as the bootstrap superuser (the old
    `database-url`), so it owns every table, sequence and the Alembic version."""
    old = old_operator_url(server, database)
    command.upgrade(alembic_config(old), "0004")  # an older API image's schema
    assert api_flow(old) == ["through the API role"]
    assert set(owners(server.url(database)).values()) == {SUPERUSER}
    with pytest.raises(AssertionError):  # what the old design gave every pod: a superuser
        assert_least_privilege({"old": old})

    creds = credentials()
    sync(creds)
    urls = pod_urls(server, database, creds)
    assert set(owners(server.url(database)).values()) == {OWNER_ROLE.name}
    upgrade_head(urls[OWNER_ROLE.key])  # the next API image's schema Job: 0005 indexes the old tables
    assert scalar(urls[OWNER_ROLE.key], "SELECT version_num FROM alembic_version") == "0005"
    assert_least_privilege(urls)
    assert sorted(api_flow(urls[API_ROLE.key])) == ["through the API role"]  # a new user's own task
    assert scalar(urls[API_ROLE.key], "SELECT count(*) FROM tasks") == 2  # the old row is there too
    assert_the_api_role_changes_no_schema(urls[API_ROLE.key])
    # The superuser's password is the Secret's now; the old one no longer logs in.
    with pytest.raises(psycopg2.OperationalError, match="password authentication failed"):
        connect(old)


def test_running_the_sync_again_is_harmless_and_takes_changed_passwords(
    server: ThrowawayPostgres, database: str, sync: Callable[[Credentials], None]
) -> None:
    first = credentials("1")
    sync(first)
    upgrade_head(pod_urls(server, database, first)[OWNER_ROLE.key])
    assert api_flow(pod_urls(server, database, first)[API_ROLE.key]) == ["through the API role"]
    # Drift a person may have caused: a grant too many, a membership, an attribute.
    with connect(server.url(database)) as conn, conn.cursor() as cur:
        cur.execute(f"GRANT TRUNCATE ON tasks TO {API_ROLE.name}; GRANT {OWNER_ROLE.name} TO {API_ROLE.name}")
        cur.execute(f"GRANT pg_execute_server_program TO {BACKUP_ROLE.name}; ALTER ROLE {API_ROLE.name} CREATEDB")

    second = credentials("2")  # every password rotated in the Secret
    sync(second)
    sync(second)
    urls = pod_urls(server, database, second)
    for key, url in pod_urls(server, database, first).items():
        with pytest.raises(psycopg2.OperationalError, match="password authentication failed"):
            connect(url)  # the old password of each role
        assert scalar(urls[key], "SELECT 1") == 1
    assert_least_privilege(urls)
    assert_the_api_role_changes_no_schema(urls[API_ROLE.key])
    assert scalar(urls[API_ROLE.key], "SELECT rolcreatedb FROM pg_roles WHERE rolname = current_user") is False
    assert len(api_flow(urls[API_ROLE.key])) == 1  # each flow's user sees its own task; both rows are there
    assert scalar(urls[API_ROLE.key], "SELECT count(*) FROM tasks") == 2


def test_the_migration_role_imports_with_its_index_deferral(
    server: ThrowawayPostgres, database: str, sync: Callable[[Credentials], None], mongo: ThrowawayMongo
) -> None:
    """An initial load drops the secondary indexes of users and tasks and builds them at the end: only their
    owner may, so the migration role is a member of the owner role (and nothing more)."""
    creds = credentials()
    sync(creds)
    urls = pod_urls(server, database, creds)
    upgrade_head(urls[OWNER_ROLE.key])
    source = f"legacy_{uuid.uuid4().hex[:8]}"
    client: MongoClient = MongoClient(mongo.uri)
    try:
        client[source].users.insert_one({"_id": "u1", "email": "old@example.com", "password": "$2b$04$" + "a" * 53})
        client[source].tasks.insert_many(
            [{"_id": i, "owner": "u1", "title": f"t{i}", "status": "open"} for i in range(30)]
        )
        code = migrate(["--source-uri", mongo.uri, "--source-db", source, "--target-url", urls[MIGRATION_ROLE.key],
                        "--verify", "--progress", "json"])  # fmt: skip
    finally:
        client.drop_database(source)
        client.close()
    assert code == 0
    assert scalar(urls[API_ROLE.key], "SELECT count(*) FROM tasks") == 30
    indexes = scalar(urls[API_ROLE.key], "SELECT count(*) FROM pg_indexes WHERE tablename IN ('users', 'tasks')")
    assert indexes == scalar(
        urls[OWNER_ROLE.key], "SELECT count(*) FROM pg_indexes WHERE tablename IN ('users', 'tasks')"
    )
    member = f"SELECT pg_has_role(current_user, '{OWNER_ROLE.name}', 'USAGE')"
    assert scalar(urls[MIGRATION_ROLE.key], member) is True
    assert_least_privilege({MIGRATION_ROLE.key: urls[MIGRATION_ROLE.key]})


def restore_into(server: ThrowawayPostgres, database: str, creds: Credentials, dump: bytes, tmp_path: Path) -> None:
    """The restore Job's database container: its script and environment (its scratch directory moved here), the
    dump written to its scratch file as the download leaves it (read-only)."""
    scratch = tmp_path / f"scratch-{uuid.uuid4().hex[:6]}"
    scratch.mkdir()
    verified = Path(SCRATCH_DUMP.replace(f"{SCRATCH_DIR}/", f"{scratch}/"))
    verified.write_bytes(dump)
    verified.chmod(0o444)
    env = {**job_env(OWNER_ROLE, creds), "PGHOST": "127.0.0.1", "PGPORT": str(server.port), "PGDATABASE": database}
    script = RESTORE_SCRIPT.replace(f"{SCRATCH_DIR}/", f"{scratch}/")
    restored = subprocess.run(["sh", "-c", script], env={"PATH": f"{find_pg_bindir()}:{os.environ['PATH']}", **env},
                              capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
    assert restored.returncode == 0, restored.stderr


def pg_dump(env: dict[str, str], server: ThrowawayPostgres, database: str) -> bytes:
    env = {"PATH": f"{find_pg_bindir()}:{os.environ['PATH']}", **env, "PGHOST": "127.0.0.1",
           "PGPORT": str(server.port), "PGDATABASE": database}  # fmt: skip
    result = subprocess.run(["pg_dump", "--format=custom", "--no-password"], env=env, capture_output=True, check=False)
    assert result.returncode == 0, result.stderr.decode()
    return result.stdout


def test_the_backup_role_dumps_and_the_owner_restores_old_and_new_dumps(
    server: ThrowawayPostgres, tmp_path: Path
) -> None:
    """A backup as the backup Job takes it (pg_dump with its environment: the backup role), and a dump an operator
    from before the roles took (as the superuser, of superuser-owned tables), each restored as the restore Job
    does (pg_restore as the owner, --no-owner --no-privileges) into a new platform's database; there the API
    role uses every table and no role is a superuser."""
    creds = credentials()
    legacy = f"legacy_{uuid.uuid4().hex[:8]}"
    server.create_database(legacy)
    old = old_operator_url(server, legacy)
    upgrade_head(old)
    api_flow(old)
    old_dump = pg_dump({"PGUSER": SUPERUSER, "PGPASSWORD": OLD_PASSWORD}, server, legacy)

    current = f"current_{uuid.uuid4().hex[:8]}"
    server.create_database(current)
    run_database_hook(server, current, creds, tmp_path / "current.log")
    upgrade_head(pod_urls(server, current, creds)[OWNER_ROLE.key])
    api_flow(pod_urls(server, current, creds)[API_ROLE.key])
    new_dump = pg_dump(job_env(BACKUP_ROLE, creds), server, current)

    for name, dump in (("old", old_dump), ("new", new_dump)):
        target = f"restored_{name}_{uuid.uuid4().hex[:8]}"
        server.create_database(target)
        run_database_hook(server, target, creds, tmp_path / f"{target}.log")  # the new platform's database pod
        restore_into(server, target, creds, dump, tmp_path)
        urls = pod_urls(server, target, creds)
        assert set(owners(server.url(target)).values()) == {OWNER_ROLE.name}, name
        assert scalar(urls[API_ROLE.key], "SELECT count(*) FROM tasks") == 1, name
        assert api_flow(urls[API_ROLE.key]) == ["through the API role"], name
        upgrade_head(urls[OWNER_ROLE.key])  # the schema Job after the restore
        assert_least_privilege(urls)
        assert_the_api_role_changes_no_schema(urls[API_ROLE.key])


def test_a_sync_that_fails_changes_nothing_says_why_in_the_log_and_leaves_the_database_running(
    server: ThrowawayPostgres, database: str, sync: Callable[[Credentials], None], tmp_path: Path
) -> None:
    first = credentials("1")
    sync(first)
    broken = credentials("2")
    statefulset = database_statefulset(OWNER, SPEC, broken)
    container = statefulset["spec"]["template"]["spec"]["containers"][0]
    env = {**container_env(container, broken), "POSTGRES_DB": database, "PGHOST": str(server.sockdir),
           "PGPORT": str(server.port), "ROLE_SYNC_LOG": str(tmp_path / "failed.log"),
           "PATH": f"{find_pg_bindir()}:{os.environ['PATH']}"}  # fmt: skip
    del env[BACKUP_ROLE.password_env]  # cannot happen in a pod (a missing Secret key keeps it from starting)
    result = subprocess.run(container["lifecycle"]["postStart"]["exec"]["command"], env=env, capture_output=True,
                            text=True, timeout=120, check=False)  # fmt: skip
    assert result.returncode == 0  # a failing postStart hook would kill the database
    logged = (tmp_path / "failed.log").read_text()
    assert logged.startswith(dbroles.SYNC_FAILED) and "syntax error" in logged, logged
    assert not [password for password in (broken.db_password, *broken.role_passwords.values()) if password in logged]
    # One transaction: not even the passwords that came before the failure changed.
    for key, url in pod_urls(server, database, first).items():
        assert scalar(url, "SELECT 1") == 1, key


def test_on_a_new_volume_the_sync_waits_for_the_real_server_not_the_entrypoints_temporary_one(tmp_path: Path) -> None:
    """The image's entrypoint creates the database through a temporary server that listens on the socket alone; the
    postStart hook starts meanwhile. Found on the real node: a sync run against that server found no database, failed
    and never ran again, so no role existed. It must wait for the server that listens on TCP, then sync."""
    creds = credentials("new")
    temporary = {"listen_addresses": ""}  # as the entrypoint starts it; its database not created yet
    with ThrowawayPostgres(superuser=SUPERUSER, superuser_password=PASSWORD, settings=temporary) as pg:
        container = database_statefulset(OWNER, SPEC, creds)["spec"]["template"]["spec"]["containers"][0]
        log = tmp_path / "sync.log"
        env = {
            **container_env(container, creds),
            "POSTGRES_DB": "created_later",
            "PGHOST": str(pg.sockdir),
            "PGPORT": str(pg.port),
            "ROLE_SYNC_LOG": str(log),
            "PATH": f"{find_pg_bindir()}:{os.environ['PATH']}",
        }
        hook = subprocess.Popen(container["lifecycle"]["postStart"]["exec"]["command"], env=env)  # fmt: skip
        try:
            # A hook that acts on the temporary server fails at once (no such database) and has exited by now.
            with pytest.raises(subprocess.TimeoutExpired):
                hook.wait(timeout=10)
            assert not log.exists()
            conn = psycopg2.connect(pg.dsn("postgres"))
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute('CREATE DATABASE "created_later"')
            conn.close()
            pg.restart({})  # the real server: on TCP too
            assert hook.wait(timeout=60) == 0
        finally:
            hook.kill()
        assert log.read_text().strip() == dbroles.SYNC_DONE
        assert scalar(pod_urls(pg, "created_later", creds)[API_ROLE.key], "SELECT current_user") == API_ROLE.name
