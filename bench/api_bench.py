"""make bench-api: the task API under wrk, against the bare-framework ceiling measured in the same run.

Starts a durable throwaway PostgreSQL and the API with production settings (workers = CPU cores,
bcrypt cost 12, JSON request logging on), seeds users and tasks, then drives authenticated
GET /api/v1/tasks?limit=20, POST /api/v1/tasks, GET /healthz and the ceiling app with wrk.
Results go to docs/benchmarks.md; the last line printed is the summary the issue asks for.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import secrets
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import sqlalchemy as sa
from benchlib import ROOT, WrkResult, cpu_during, machine, pg_version, run_wrk, start_server, write_doc
from helpers.pgcluster import ThrowawayPostgres, free_port

from taskplatform.api.migrate import upgrade_head

BEGIN, END = "<!-- api-bench:begin -->", "<!-- api-bench:end -->"


@dataclass
class CpuSplit:
    """Where the machine's CPU went during one wrk run, in µs per request served."""

    server: float  # the server under test (uvicorn and its workers)
    postgres: float  # the postmaster and its backends
    wrk: float
    idle: float  # cores x wall time, less the three above (and anything else running)


def with_cpu_split(run: Callable[[], WrkResult], server_pid: int, postmaster_pid: int) -> tuple[WrkResult, CpuSplit]:
    result, wall, (server, postgres, wrk) = cpu_during(run, server_pid, postmaster_pid)
    requests = result.rps * wall
    idle = (os.cpu_count() or 1) * wall - server - postgres - wrk
    return result, CpuSplit(*(1e6 * x / requests for x in (server, postgres, wrk, idle)))


def seed(url: str, users: int, tasks_per_user: int) -> None:
    """Bulk rows straight into the tables (through SQLAlchemy Core, bound parameters)."""
    engine = sa.create_engine(url)
    meta = sa.MetaData()
    meta.reflect(engine, only=["users", "tasks"])
    now = datetime.now(UTC)
    with engine.begin() as conn:
        conn.execute(
            meta.tables["users"].insert(),
            [
                {"email": f"seed{u}@bench.io", "hashed_password": "!", "is_active": True, "created_at": now}
                for u in range(users)
            ],
        )
        user_ids = [row[0] for row in conn.execute(sa.text("SELECT id FROM users ORDER BY id"))]
        rows = [
            {
                "owner_id": uid,
                "title": f"Seeded task {n}",
                "status": ("todo", "in_progress", "done")[n % 3],
                "priority": 1 + n % 4,
                "due_date": now + timedelta(days=n % 30) if n % 2 else None,
                "tags": ["bench", f"t{n % 10}"],
                "version": 1,
                "created_at": now - timedelta(seconds=n),
                "updated_at": now - timedelta(seconds=n),
            }
            for uid in user_ids
            for n in range(tasks_per_user)
        ]
        conn.execute(meta.tables["tasks"].insert(), rows)
        conn.execute(sa.text("ANALYZE"))
    engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--tasks-per-user", type=int, default=200)
    parser.add_argument(
        "--pool-size", type=int, default=0, help="DB_POOL_SIZE per worker (default: its share of wrk's connections)"
    )
    parser.add_argument("--no-doc", action="store_true", help="do not update docs/benchmarks.md")
    args = parser.parse_args()
    wrk_threads = 2
    pool_size = args.pool_size or -(-args.connections // args.workers)  # ceil: in-flight requests per worker

    with ThrowawayPostgres(durable=True) as pg:
        url = pg.create_database("taskplatform_bench")
        upgrade_head(url)
        seed(url, args.users, args.tasks_per_user)

        api_port, ceiling_port = free_port(), free_port()
        api_env = {
            "ENVIRONMENT": "prod",
            "DATABASE_URL": url,
            "JWT_SECRET": secrets.token_urlsafe(48),
            "BCRYPT_ROUNDS": "12",
            "LOG_REQUESTS": "true",
            # Sized to the load: wrk's connections spread over the workers, each holding a pooled
            # connection per in-flight request. A smaller pool queues requests (503 after DB_POOL_TIMEOUT_S).
            "DB_POOL_SIZE": str(pool_size),
            "METRICS_PORT": str(free_port()),  # served, as in production, on a port nothing else holds
        }
        api = start_server(
            [sys.executable, "-m", "taskplatform.api.cli", "serve", "--host", "127.0.0.1",
             "--port", str(api_port), "--workers", str(args.workers)],
            api_env, api_port, "/readyz",
        )  # fmt: skip
        ceiling = None
        try:
            base = f"http://127.0.0.1:{api_port}"
            password = secrets.token_urlsafe(16)
            httpx.post(f"{base}/api/v1/auth/register", json={"email": "bench@bench.io", "password": password})
            token = httpx.post(
                f"{base}/api/v1/auth/login", data={"username": "bench@bench.io", "password": password}
            ).json()["access_token"]
            auth = {"Authorization": f"Bearer {token}"}
            for n in range(args.tasks_per_user):
                httpx.post(f"{base}/api/v1/tasks", json={"title": f"Bench task {n}", "tags": ["bench"]}, headers=auth)
            page = httpx.get(f"{base}/api/v1/tasks?limit=20", headers=auth)
            assert page.status_code == 200 and len(page.json()["items"]) == 20, page.text
            one_task = f"{base}/api/v1/tasks/{page.json()['items'][0]['id']}"

            ceiling = start_server(
                [sys.executable, "-m", "uvicorn", "ceiling_app:app", "--host", "127.0.0.1",
                 "--port", str(ceiling_port), "--workers", str(args.workers), "--no-access-log",
                 "--app-dir", str(ROOT / "bench")],
                {"CEILING_BODY": page.text, "FLOOR_DSN": url.replace("+psycopg2", ""),
                 "FLOOR_USER_ID": str(page.json()["items"][0]["owner_id"])},
                ceiling_port, "/ceiling",
            )  # fmt: skip

            with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as lua:
                body = json.dumps({"title": "Created under load", "priority": "high", "tags": ["load"]})
                lua.write(
                    'wrk.method = "POST"\n'
                    f"wrk.body = {json.dumps(body)}\n"
                    'wrk.headers["Content-Type"] = "application/json"\n'
                )
            common = {"seconds": args.seconds, "connections": args.connections, "threads": wrk_threads}
            # Short warm-up so that pools, caches and the JIT-less interpreter's imports are all hot: at the
            # runs' own connection count, so that no run opens its pools' connections inside its measurement
            # (the floor's pool and most of the API's were opened there until 2026-11-29).
            warm = (f"{base}/api/v1/tasks?limit=20", f"http://127.0.0.1:{ceiling_port}/ceiling",
                    f"http://127.0.0.1:{ceiling_port}/db-floor")  # fmt: skip
            for target in warm:
                run_wrk("warmup", target, seconds=3, connections=args.connections, threads=wrk_threads, headers=auth)
            runs = [
                (ceiling, "ceiling", f"http://127.0.0.1:{ceiling_port}/ceiling", {}, None),
                (ceiling, "db-floor", f"http://127.0.0.1:{ceiling_port}/db-floor", {}, None),
                (api, "list", f"{base}/api/v1/tasks?limit=20", auth, None),
                (api, "create", f"{base}/api/v1/tasks", auth, Path(lua.name)),
                (api, "get", one_task, auth, None),
                # The floor again: the machine drifts within a run, and the faster of the two is the bound.
                (ceiling, "db-floor again", f"http://127.0.0.1:{ceiling_port}/db-floor", {}, None),
                (api, "healthz", f"{base}/healthz", {}, None),
            ]
            measured = [
                with_cpu_split(
                    functools.partial(run_wrk, name, url, headers=headers, script=script, **common),
                    server.pid,
                    pg.postmaster_pid,
                )
                for server, name, url, headers, script in runs
            ]
            results = [result for result, _ in measured]
            cpu = {result.name: split for result, split in measured}
            os.unlink(lua.name)
        finally:
            for proc in (api, ceiling):
                if proc is not None:
                    proc.terminate()
                    proc.wait(10)

    by_name = {r.name: r for r in results}
    ratio = by_name["list"].rps / by_name["ceiling"].rps
    floor = max(by_name["db-floor"].rps, by_name["db-floor again"].rps)
    list_floor, create_floor, get_floor = (by_name[n].rps / floor for n in ("list", "create", "get"))
    rows = "\n".join(
        f"| {r.name} | {r.rps:,.0f} | {r.p50_ms:.1f} | {r.p99_ms:.1f} | {r.rps / by_name['ceiling'].rps:.2f} "
        f"| {r.rps / floor:.2f} | {r.non_2xx} |"
        for r in results
    )
    listed = by_name["list"]
    cpu_rows = "\n".join(
        f"| {name} | {c.server:,.0f} | {c.postgres:,.0f} | {c.wrk:,.0f} | {c.idle:,.0f} |" for name, c in cpu.items()
    )
    section = f"""## API throughput (`make bench-api`)

- Date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC
- Command: `make bench-api` (`python bench/api_bench.py --seconds {args.seconds} --connections {args.connections}`)
- Machine: {machine()},
  PostgreSQL {pg_version()} (durable: fsync on), all on one machine
- Setup: API with {args.workers} uvicorn workers (= cores), asyncpg pool {pool_size}/worker, JSON request logging on;
  {args.users} seeded users x {args.tasks_per_user} tasks plus the bench user's {args.tasks_per_user};
  wrk {wrk_threads} threads, {args.connections} connections, {args.seconds} s per endpoint;
  the ceiling is bare FastAPI + uvicorn ({args.workers} workers) returning the same 20-task JSON page;
  db-floor is that bare app making the list endpoint's database work as two plain queries (token check,
  page) through a raw asyncpg pool that does not reset connections on release (since 2026-11-29),
  measured before the API's runs and again after them; the ratios are to the faster of the two.

| endpoint | req/s | p50 ms | p99 ms | ratio to ceiling | ratio to db-floor | non-2xx |
|---|---:|---:|---:|---:|---:|---:|
{rows}

Where the two cores went during each run, in CPU µs per request (the server under test is the ceiling app
for its rows, the API for the others; idle is what no process used):

| endpoint | server | PostgreSQL | wrk | idle |
|---|---:|---:|---:|---:|
{cpu_rows}

Goals (the db-floor is the honest bound for a request that must touch the database): list >= 0.80 of the
db-floor, create >= 0.60, list p99 <= 2.5 x p50. Result: list {list_floor:.2f}, create {create_floor:.2f},
get {get_floor:.2f}; list p99/p50 = {listed.p99_ms / listed.p50_ms:.1f}.
"""
    if not args.no_doc:
        write_doc(section, BEGIN, END)
    print(section)
    print(
        f"api-bench: list={listed.rps:.0f} create={by_name['create'].rps:.0f} "
        f"ceiling={by_name['ceiling'].rps:.0f} ratio={ratio:.2f} list_floor={list_floor:.2f} "
        f"create_floor={create_floor:.2f} get_floor={get_floor:.2f} list_p50_ms={listed.p50_ms:.1f} "
        f"list_p99_ms={listed.p99_ms:.1f}"
    )


if __name__ == "__main__":
    main()
