"""The database pod's postStart hook, run exactly as the pod runs it (the command and environment of the
operator's StatefulSet, the Secret's values resolved as the kubelet resolves them) against a PostgreSQL
initialised as the database image's entrypoint does: its bootstrap superuser trusted over the local socket
only, every TCP login checked by password (scram-sha-256). The clients then connect as the pods do: over TCP,
through the URLs of the credentials Secret."""

from __future__ import annotations

import base64
import os
import subprocess
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg2
import pytest
import sqlalchemy as sa
from pgcluster import ThrowawayPostgres, find_pg_bindir

from taskplatform.api.db import sync_url
from taskplatform.operator.builders import (
    DATABASE_URL_KEY,
    DB_USER,
    Credentials,
    Owner,
    credentials_secret,
    database_statefulset,
)
from taskplatform.operator.models import TaskPlatformSpec

OWNER = Owner("TaskPlatform", "demo", "apps", "uid")
# Everything a user-provided password may hold that breaks a quoted SQL literal or a URL.
AWKWARD = 'it\'s a p@ss:w/rd 100% "quoted" + more'


@pytest.fixture(scope="module")
def server() -> Iterator[ThrowawayPostgres]:
    with ThrowawayPostgres(superuser=DB_USER, superuser_password="the password initdb was given") as cluster:
        yield cluster


@pytest.fixture
def database(server: ThrowawayPostgres) -> str:
    name = f"roles_{uuid.uuid4().hex[:10]}"
    server.create_database(name)
    return name


def secret_values(secret: dict[str, Any]) -> dict[str, str]:
    return {key: base64.b64decode(value).decode() for key, value in secret["data"].items()}


def container_env(container: dict[str, Any], secret: dict[str, Any]) -> dict[str, str]:
    """A container's environment as the kubelet gives it: values, and secretKeyRefs read from `secret`."""
    values, env = secret_values(secret), {}
    for item in container.get("env", []):
        if "value" in item:
            env[item["name"]] = item["value"]
        else:
            ref = item["valueFrom"]["secretKeyRef"]
            assert ref["name"] == secret["metadata"]["name"], item
            env[item["name"]] = values[ref["key"]]
    return env


def run_database_hook(server: ThrowawayPostgres, database: str, credentials: Credentials) -> None:
    """The StatefulSet's postStart command with its container's environment; only where the server listens
    (its socket directory, port) and which database (one per test) differ from the pod."""
    secret = credentials_secret(OWNER, credentials)
    statefulset = database_statefulset(OWNER, TaskPlatformSpec(), credentials)
    container = statefulset["spec"]["template"]["spec"]["containers"][0]
    command = container["lifecycle"]["postStart"]["exec"]["command"]
    env = {
        "PATH": f"{find_pg_bindir()}:{os.environ['PATH']}",
        **container_env(container, secret),
        "POSTGRES_DB": database,
        "PGHOST": str(server.sockdir),
        "PGPORT": str(server.port),
    }
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    for password in (credentials.db_password,):
        assert password not in result.stdout + result.stderr


def pod_url(server: ThrowawayPostgres, database: str, url: str) -> str:
    """A URL of the credentials Secret, pointed at this server's port and the test's database."""
    parsed = sa.engine.make_url(sync_url(url))
    return parsed.set(host="127.0.0.1", port=server.port, database=database).render_as_string(hide_password=False)


def current_user(url: str) -> str:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return str(conn.execute(sa.text("SELECT current_user")).scalar())
    finally:
        engine.dispose()


def test_a_password_that_breaks_sql_literals_and_urls_works_for_the_hook_and_the_url(
    server: ThrowawayPostgres, database: str
) -> None:
    """The hook pasted the password into a quoted literal (`'` ended it), and the URL carried it unencoded
    (`@`, `:`, `/`, `%` and a space end or corrupt its parts)."""
    credentials = Credentials(db_password=AWKWARD, jwt_secret="j" * 48)
    run_database_hook(server, database, credentials)

    url = secret_values(credentials_secret(OWNER, credentials))[DATABASE_URL_KEY]
    assert sa.engine.make_url(url).password == AWKWARD
    assert current_user(pod_url(server, database, url)) == DB_USER
    with pytest.raises(psycopg2.OperationalError, match="password authentication failed"):
        psycopg2.connect(host="127.0.0.1", port=server.port, user=DB_USER, dbname=database, password="wrong")
