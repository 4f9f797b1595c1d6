"""A throwaway PostgreSQL cluster: initdb in a temp dir, a random port, gone when stopped.

Used by the test suite and the benchmarks, never a server left running by hand. As root (CI), the
server runs as the `postgres` system user, because PostgreSQL refuses to run as root.

By default every connection is trusted. With `superuser_password` it is initialised as the database image's
entrypoint does (docker/postgres-entrypoint.sh): that superuser, trusted over the local socket only, and every
TCP login checked by password (scram-sha-256); `dsn()` and `url()` then use the socket.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psycopg2

from helpers import environments


def find_pg_bindir() -> Path:
    explicit = os.environ.get("PG_BINDIR")
    if explicit:
        return Path(explicit)
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name))
    for candidate in reversed(candidates):
        if (Path(candidate) / "initdb").exists():
            return Path(candidate)
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).resolve().parent
    raise RuntimeError("PostgreSQL server binaries not found: apt-get install postgresql (or set PG_BINDIR)")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class ThrowawayPostgres:
    def __init__(
        self,
        *,
        durable: bool = False,
        max_connections: int = 300,
        superuser: str = "postgres",
        superuser_password: str | None = None,
        settings: dict[str, str] | None = None,
    ) -> None:
        self.bindir = find_pg_bindir()
        self.superuser = superuser
        self.superuser_password = superuser_password
        self.durable = durable
        self.max_connections = max_connections
        self.settings = settings or {}  # more `-c name=value` settings, which win over the ones below
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="taskplatform-pg-"))
        self.datadir = self.root / "data"
        self.sockdir = self.root / "sock"
        self.logfile = self.root / "postgres.log"
        self._user: dict[str, Any] = {}
        if os.geteuid() == 0:
            account = pwd.getpwnam("postgres")
            self._user = {"user": account.pw_uid, "group": account.pw_gid}
            os.chown(self.root, account.pw_uid, account.pw_gid)
        self.sockdir.mkdir()
        if self._user:
            os.chown(self.sockdir, self._user["user"], self._user["group"])

    def _run(self, *args: str) -> None:
        subprocess.run(args, check=True, capture_output=True, **self._user)

    def start(self) -> ThrowawayPostgres:
        environments.started(environments.POSTGRES)
        auth = ["--auth=trust"]
        if self.superuser_password is not None:  # as the image's entrypoint runs initdb
            pwfile = self.root / "pwfile"
            pwfile.write_text(self.superuser_password + "\n")
            if self._user:
                os.chown(pwfile, self._user["user"], self._user["group"])
            auth = [f"--pwfile={pwfile}", "--auth-local=trust", "--auth-host=scram-sha-256"]
        self._run(
            str(self.bindir / "initdb"),
            "-D",
            str(self.datadir),
            "-U",
            self.superuser,
            *auth,
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
        )
        if self.superuser_password is not None:
            (self.root / "pwfile").unlink()
        self._start_server()
        return self

    def _start_server(self) -> None:
        options = [
            f"-p {self.port}",
            f"-k {self.sockdir}",
            "-c listen_addresses=127.0.0.1",
            f"-c max_connections={self.max_connections}",
            "-c shared_buffers=256MB",
        ]
        if not self.durable:
            # A test database that dies with the run needs no crash safety.
            options += ["-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off"]
        options += [f"-c {name}={value}" for name, value in self.settings.items()]
        self._run(
            str(self.bindir / "pg_ctl"),
            "-D",
            str(self.datadir),
            "-l",
            str(self.logfile),
            "-o",
            " ".join(options),
            "-w",
            "-t",
            "60",
            "start",
        )
        self._wait_ready()

    def restart(self, settings: dict[str, str]) -> None:
        """Stop the server and start it again on the same data directory with these settings instead (an image's
        entrypoint's temporary server, then the real one)."""
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.datadir), "-m", "fast", "-w", "stop")
        self.settings = settings
        self._start_server()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + 30
        while True:
            try:
                psycopg2.connect(self.dsn("postgres")).close()
                return
            except psycopg2.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    @property
    def postmaster_pid(self) -> int:
        """The server's process (its backends are its children), from the pid file it writes."""
        return int((self.datadir / "postmaster.pid").read_text().split()[0])

    @property
    def _host(self) -> str:
        """Where the superuser connects without a password: TCP when all is trusted, else the local socket."""
        return "127.0.0.1" if self.superuser_password is None else str(self.sockdir)

    def dsn(self, dbname: str) -> str:
        return f"host={self._host} port={self.port} user={self.superuser} dbname={dbname}"

    def url(self, dbname: str) -> str:
        if self.superuser_password is None:
            return f"postgresql+psycopg2://{self.superuser}@127.0.0.1:{self.port}/{dbname}"
        return f"postgresql+psycopg2://{self.superuser}@/{dbname}?host={self.sockdir}&port={self.port}"

    def tcp_url(self, user: str, password: str, dbname: str) -> str:
        """A password login over TCP, as the platform's pods connect (the password percent-encoded)."""
        return f"postgresql+psycopg2://{user}:{quote(password, safe='')}@127.0.0.1:{self.port}/{dbname}"

    def create_database(self, name: str) -> str:
        conn = psycopg2.connect(self.dsn("postgres"))
        conn.autocommit = True
        try:
            with conn.cursor() as cur:
                cur.execute(f'DROP DATABASE IF EXISTS "{name}"')
                cur.execute(f'CREATE DATABASE "{name}"')
        finally:
            conn.close()
        return self.url(name)

    def stop(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError, FileNotFoundError):
            self._run(str(self.bindir / "pg_ctl"), "-D", str(self.datadir), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> ThrowawayPostgres:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
