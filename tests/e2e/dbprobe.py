"""What a pod may do in its platform's database, through that pod's own connection settings: run inside an API
pod (`kubectl exec -i <pod> -- python - DATABASE_URL < dbprobe.py`), or as the command of a pod given a Job
container's environment (`python -c <this file> TARGET_URL`; `-`: libpq's PG* variables, as the backup and
restore containers have them). Standard library and psycopg2 only (the API image). Prints one JSON document:

  {"user", "superuser", "ssl", "checks": {name: {"refused": bool, "message": str}}}

`ssl`: whether this connection is TLS (pg_stat_ssl), as the operator's pods must connect.

Each check runs in a transaction of its own that is rolled back, so what a role may do leaves nothing behind."""

import json
import os
import sys
import time

import psycopg2

# A new pod's address is admitted by the database's NetworkPolicy a moment after the pod starts (when the
# enforcer learns it): its first connections may be refused, as the platform's own clients' are (they wait too).
CONNECT_WAIT_S = 120

CHECKS = {
    # A program that reads what it is sent: one that exits at once may break the pipe before PostgreSQL writes.
    "copy_to_program": "COPY (SELECT 1) TO PROGRAM 'cat > /dev/null'",
    "c_function": "CREATE FUNCTION public.tp_probe() RETURNS int AS 'libc.so.6', 'getpid' LANGUAGE c",
    "plpython_function": "CREATE FUNCTION public.tp_probe_py() RETURNS int AS 'return 1' LANGUAGE plpython3u",
    "read_server_file": "SELECT pg_read_file('/etc/passwd')",
    "drop_table": "DROP TABLE tasks",
    "create_table": "CREATE TABLE public.tp_probe (id int)",
    "write_tasks": "UPDATE tasks SET title = title WHERE false",
}


def libpq_url(url: str) -> str:
    """A SQLAlchemy URL (`postgresql+psycopg2://`) as libpq takes it."""
    scheme, rest = url.split("://", 1)
    return f"{scheme.split('+', 1)[0]}://{rest}"


def main(source: str) -> dict[str, object]:
    dsn = libpq_url(os.environ[source]) if source != "-" else ""
    deadline = time.monotonic() + CONNECT_WAIT_S
    while True:
        try:
            conn = psycopg2.connect(dsn, connect_timeout=10)
            break
        except psycopg2.OperationalError as error:
            unreachable = "Connection refused" in str(error) or "timeout expired" in str(error)
            if not unreachable or time.monotonic() >= deadline:
                raise
            time.sleep(0.5)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT current_user, rolsuper FROM pg_roles WHERE rolname = current_user")
            user, superuser = cur.fetchone()
            cur.execute("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
            (ssl,) = cur.fetchone()
        conn.rollback()
        checks = {}
        for name, sql in CHECKS.items():
            try:
                with conn.cursor() as cur:
                    cur.execute(sql)
                checks[name] = {"refused": False, "message": ""}
            except psycopg2.Error as error:
                checks[name] = {"refused": True, "message": (error.pgerror or str(error)).strip()}
            conn.rollback()
    finally:
        conn.close()
    return {"user": user, "superuser": superuser, "ssl": ssl, "checks": checks}


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1])))
