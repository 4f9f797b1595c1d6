"""The database's TLS and client authentication as the operator configures them (operator/specs/database.py,
specs/tls.py, pki.py), on a real PostgreSQL started with the operator's own settings and rules: clients connect
only with TLS, verify the chain and the host name with nothing but the environment the operator gives their pods
(libpq and psycopg2, and asyncpg under the API's own engines), and nobody logs in over the network as the
superuser."""

from __future__ import annotations

import asyncio
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

import psycopg2
import pytest
import sqlalchemy as sa
from helpers.pgcluster import ThrowawayPostgres
from helpers.support import TEST_JWT_SECRET

from taskplatform.api.config import Settings
from taskplatform.api.db import create_db_engine, create_probe_engine
from taskplatform.operator import pki
from taskplatform.operator.dbroles import SUPERUSER
from taskplatform.operator.models import TaskPlatformSpec
from taskplatform.operator.specs import tls
from taskplatform.operator.specs.database import PG_HBA, READY_COMMAND, server_settings

HOST = "localhost"  # the name the test's server certificate gives (the platform's give database_hosts(owner))
PASSWORD = "app-pass 'with' @ quotes"
SUPERUSER_PASSWORD = "superuser-secret"
SPEC = TaskPlatformSpec.model_validate({"database": {"maxConnections": 57}})

# Every test here uses this module's own PostgreSQL (`server`), set up as the operator sets up the database pod.
pytestmark = pytest.mark.postgres


@pytest.fixture(scope="module")
def material() -> Iterator[dict[str, Path]]:
    """The CA bundle, certificate, key and rules on disk, as the pod's volumes present them: the key readable by
    the server's user only (PostgreSQL refuses a key anyone else may read). Not under pytest's own temporary
    directory, which the server's user (as root: `postgres`) may not enter."""
    root = Path(tempfile.mkdtemp(prefix="taskplatform-tls-"))
    now = datetime.now(UTC)
    ca = pki.issue_ca("taskplatform test CA", now)
    server = pki.issue_server(ca, [HOST], now)
    files = {"ca": root / "ca.crt", "cert": root / "tls.crt", "key": root / "tls.key", "hba": root / "pg_hba.conf"}
    files["ca"].write_text(pki.trusted_bundle(ca.cert_pem, None, now))
    files["cert"].write_text(server.cert_pem)
    files["key"].write_text(server.key_pem)
    files["hba"].write_text(PG_HBA)
    files["other_ca"] = root / "other.crt"
    files["other_ca"].write_text(pki.issue_ca("someone else", now).cert_pem)
    files["key"].chmod(0o600)
    if os.geteuid() == 0:
        account = pwd.getpwnam("postgres")
        for path in (root, *files.values()):
            os.chown(path, account.pw_uid, account.pw_gid)
    yield files
    shutil.rmtree(root)


@pytest.fixture(scope="module")
def server(material: dict[str, Path]) -> Iterator[ThrowawayPostgres]:
    """PostgreSQL with the operator's settings, the files at this test's paths instead of the pod's."""
    settings = {
        **server_settings(SPEC),
        "hba_file": str(material["hba"]),
        "ssl_cert_file": str(material["cert"]),
        "ssl_key_file": str(material["key"]),
    }
    with ThrowawayPostgres(superuser=SUPERUSER, superuser_password=SUPERUSER_PASSWORD, settings=settings) as pg:
        conn = psycopg2.connect(pg.dsn("postgres"))  # the local socket, as the pod's own hook
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("CREATE ROLE app LOGIN PASSWORD %s", (PASSWORD,))
        conn.close()
        yield pg


@pytest.fixture
def client_env(material: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    """The environment the operator gives every client container, the CA at this test's path."""
    for variable in tls.CLIENT_ENV:
        value = str(material["ca"]) if variable["value"] == tls.CLIENT_CA_FILE else variable["value"]
        monkeypatch.setenv(variable["name"], value)


def libpq(server: ThrowawayPostgres, **params: str) -> str:
    """`SELECT ssl` of the connection's own row in pg_stat_ssl, connecting with `params` over TCP."""
    base = {"host": HOST, "port": str(server.port), "user": "app", "password": PASSWORD, "dbname": "postgres"}
    conn = psycopg2.connect(**{**base, **params})
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
            row = cur.fetchone()
            assert row is not None
            return f"{row[0]} {row[1]}"
    finally:
        conn.close()


@pytest.mark.usefixtures("client_env")
def test_clients_with_the_operators_environment_connect_over_verified_tls(server: ThrowawayPostgres) -> None:
    assert libpq(server).startswith("True TLSv1.")
    url = f"postgresql://app:{quote(PASSWORD, safe='')}@{HOST}:{server.port}/postgres"
    settings = Settings(environment="test", database_url=url, jwt_secret=TEST_JWT_SECRET)  # type: ignore[arg-type]

    async def through_the_api_engines() -> list[object]:
        seen = []
        for engine in (create_db_engine(settings), create_probe_engine(settings)):
            async with engine.connect() as conn:
                query = sa.text("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
                seen.append((await conn.execute(query)).scalar_one())
            await engine.dispose()
        return seen

    assert asyncio.run(through_the_api_engines()) == [True, True]
    # pg_dump and pg_restore read the same variables (libpq): the backup and restore Jobs.
    dump = subprocess.run(
        [str(server.bindir / "pg_dump"), "--schema-only", "-h", HOST, "-p", str(server.port), "-U", "app", "postgres"],
        env={**os.environ, "PGPASSWORD": PASSWORD},
        capture_output=True,
        text=True,
        check=False,
    )
    assert dump.returncode == 0, dump.stderr


@pytest.mark.usefixtures("client_env")
def test_a_client_that_cannot_verify_the_server_is_refused(
    server: ThrowawayPostgres, material: dict[str, Path]
) -> None:
    with pytest.raises(psycopg2.OperationalError, match="certificate verify failed"):
        libpq(server, sslrootcert=str(material["other_ca"]))
    # The address the certificate does not name: verify-full checks the host asked for, not just the chain.
    with pytest.raises(psycopg2.OperationalError, match="does not match host name"):
        libpq(server, host="127.0.0.1")


def test_the_server_refuses_clients_without_tls_and_the_superuser_over_the_network(
    server: ThrowawayPostgres, material: dict[str, Path]
) -> None:
    with pytest.raises(psycopg2.OperationalError, match="no encryption"):
        libpq(server, sslmode="disable")
    with pytest.raises(psycopg2.OperationalError, match="rejects connection"):
        libpq(
            server, user=SUPERUSER, password=SUPERUSER_PASSWORD, sslmode="verify-full", sslrootcert=str(material["ca"])
        )
    # The pod's own socket still serves the superuser (the role sync hook), and its probe sees the server up.
    conn = psycopg2.connect(server.dsn("postgres"))
    with conn.cursor() as cur:
        cur.execute("SHOW max_connections")
        assert cur.fetchone() == (str(SPEC.database.max_connections),)
    conn.close()
    logged = server.logfile.read_text()
    probe = [str(server.bindir / READY_COMMAND[0]), *READY_COMMAND[1:], "-p", str(server.port)]
    assert subprocess.run(probe, check=False).returncode == 0
    assert "FATAL" not in server.logfile.read_text()[len(logged) :]  # every 5 s: no line in the server's log
