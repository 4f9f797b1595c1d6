"""make bench-migration: the migration against its two ceilings, measured in the same run.

Seeds FerretDB (the MongoDB wire-protocol server the tests use) with N legacy tasks and M users, then
measures (a) the raw read rate of the source with pymongo (before and after (c); the faster counts),
(a2) the migration's own read (in its read order) with nothing done with the documents, (b) the raw COPY
rate of equivalent rows into PostgreSQL, and (c) the full `taskplatform-migrate` run (as a subprocess, for
its peak RSS). Results go to docs/benchmarks.md; the last line printed is the summary the issue asks for.
"""

from __future__ import annotations

import argparse
import io
import os
import random
import resource
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import psycopg2
from benchlib import cpu_during, machine, pg_version, write_doc
from bson import ObjectId
from helpers.mongoserver import ThrowawayMongo
from helpers.pgcluster import ThrowawayPostgres
from pymongo import MongoClient

from taskplatform.api.migrate import upgrade_head
from taskplatform.migration.read_order import ReadOrder
from taskplatform.migration.source import Position, read_batches, source_client
from taskplatform.migration.target import libpq_dsn

HASH = "$2b$12$" + "N" * 53
STATUSES = ("pending", "in-progress", "completed", "done", "todo")
PRIORITIES = ("low", "medium", "high", 1, 2, 3, 4)


def seed(client: MongoClient, users: int, tasks: int) -> None:
    rng = random.Random(1)
    db = client.legacy
    owners = [ObjectId() for _ in range(users)]
    base = datetime(2020, 1, 1, tzinfo=UTC)
    for start in range(0, users, 10_000):
        db.users.insert_many(
            [{"_id": o, "email": f"user{start + i}@legacy.io", "name": f"User {start + i}", "password": HASH,
              "createdAt": base} for i, o in enumerate(owners[start:start + 10_000])],
            ordered=False,
        )  # fmt: skip
    for start in range(0, tasks, 10_000):
        batch = []
        for n in range(start, min(start + 10_000, tasks)):
            batch.append(
                {"_id": ObjectId(), "owner": owners[rng.randrange(users)], "title": f"Legacy task {n}",
                 "description": "Imported from the old system", "status": STATUSES[n % 5],
                 "priority": PRIORITIES[n % 7], "due": base + timedelta(days=n % 900), "tags": ["legacy", f"t{n % 20}"],
                 "createdAt": base, "updatedAt": base}
            )  # fmt: skip
        db.tasks.insert_many(batch, ordered=False)


def read_ceiling(client: MongoClient, batch_size: int) -> tuple[int, float]:
    start = time.perf_counter()
    count = sum(1 for _ in client.legacy.tasks.find({}, batch_size=batch_size))
    return count, count / (time.perf_counter() - start)


def own_read_ceiling(uri: str, batch_size: int, order: ReadOrder) -> tuple[float, float]:
    """The migration's own read of the tasks (its client, in `order`: read_batches itself) with nothing done
    with the documents: its rate, and the seconds until the first batch arrived."""
    start = time.perf_counter()
    first_batch_s, count = 0.0, 0
    with source_client(uri) as client:
        for batch in read_batches(client.legacy.tasks, Position(order), batch_size):
            first_batch_s = first_batch_s or time.perf_counter() - start
            count += len(batch.docs)
    return count / (time.perf_counter() - start), first_batch_s


def copy_ceiling(dsn: str, rows: int, batch_size: int) -> float:
    """COPY of task rows into a copy of the tasks table, indexes included: no transform, no upsert."""
    conn = psycopg2.connect(dsn)
    line = "legacy\t1\tLegacy task\tImported from the old system\ttodo\t2\t2030-01-01T00:00:00+00:00\t" \
           '["legacy", "t1"]\t2020-01-01T00:00:00+00:00\t2020-01-01T00:00:00+00:00\n'  # fmt: skip
    with conn.cursor() as cur:
        # The same table shape as `tasks`: its columns, defaults, checks and all of its indexes (GIN on tags,
        # trigram on title), logged; only the foreign key to users is left out.
        cur.execute("CREATE TABLE copy_ceiling (LIKE tasks INCLUDING ALL)")
    conn.commit()
    start = time.perf_counter()
    for done in range(0, rows, batch_size):
        n = min(batch_size, rows - done)
        with conn.cursor() as cur:
            columns = (
                "legacy_id, owner_id, title, description, status, priority, due_date, tags, created_at, updated_at"
            )
            lines = "".join(line.replace("legacy\t", f"legacy-{done + i}\t", 1) for i in range(n))
            cur.copy_expert(f"COPY copy_ceiling ({columns}) FROM STDIN", io.StringIO(lines))
        conn.commit()
    rate = rows / (time.perf_counter() - start)
    conn.close()
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tasks", type=int, default=500_000)
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--batch-size", type=int, default=5000)
    parser.add_argument("--read-order", type=ReadOrder, choices=list(ReadOrder), default=ReadOrder.NATURAL)
    parser.add_argument("--no-doc", action="store_true")
    args = parser.parse_args()

    with ThrowawayPostgres(durable=True) as pg, ThrowawayMongo() as mongo:
        url = pg.create_database("taskplatform_migration_bench")
        upgrade_head(url)
        client: MongoClient = MongoClient(mongo.uri)
        t0 = time.perf_counter()
        seed(client, args.users, args.tasks)
        seed_s = time.perf_counter() - t0
        docs = args.users + args.tasks
        read_n, read_before = read_ceiling(client, args.batch_size)
        own_read_rate, first_batch_s = own_read_ceiling(mongo.uri, args.batch_size, args.read_order)
        copy_rate = copy_ceiling(libpq_dsn(url), args.tasks, args.batch_size)

        command = [sys.executable, "-m", "taskplatform.migration.cli", "--source-uri", mongo.uri,
                   "--source-db", "legacy", "--target-url", url, "--batch-size", str(args.batch_size),
                   "--progress", "json", "--progress-interval", "5", "--read-order", args.read_order.value]  # fmt: skip
        assert mongo.process is not None
        result, elapsed, (pg_cpu, source_cpu, migrate_cpu) = cpu_during(
            lambda: subprocess.run(command, capture_output=True, text=True, check=False),
            pg.postmaster_pid,
            mongo.process.pid,
        )
        if result.returncode != 0:
            raise SystemExit(f"migration failed: {result.stderr[-2000:]}")
        rss_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        rate = docs / elapsed
        with psycopg2.connect(libpq_dsn(url)) as conn, conn.cursor() as cur:
            cur.execute("SELECT (SELECT count(*) FROM users), (SELECT count(*) FROM tasks)")
            migrated_users, migrated_tasks = cur.fetchone()
        # The same read once more: the machine's speed drifts by ±15% within minutes, and (c) runs between
        # the two. The ratio is against the faster of them, never against a slow moment.
        _, read_after = read_ceiling(client, args.batch_size)
        client.close()
    assert (migrated_users, migrated_tasks) == (args.users, args.tasks), (migrated_users, migrated_tasks)
    assert read_n == args.tasks

    read_rate = max(read_before, read_after)
    bound = min(read_rate, copy_rate)
    bound_name = "source read" if read_rate <= copy_rate else "COPY"
    ratio = rate / bound
    own_ratio = rate / own_read_rate
    section = f"""## Migration throughput (`make bench-migration`)

- Date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC
- Command: `make bench-migration` (`python bench/migration_bench.py --tasks {args.tasks} --users {args.users}`),
  migration read order: {args.read_order}
- Machine: {machine()},
  PostgreSQL {pg_version()} (durable: fsync on), FerretDB 1.24 (SQLite backend) as the source,
  all on one machine
- Source: {args.users:,} users + {args.tasks:,} tasks with legacy spellings (seeded in {seed_s:.0f} s);
  batch {args.batch_size}

| measurement | docs/s |
|---|---:|
| (a) raw read of the tasks with pymongo (`find`, batch {args.batch_size}), before (c) | {read_before:,.0f} |
| (a) the same read after (c) | {read_after:,.0f} |
| (a2) the migration's own read of the tasks ({args.read_order} order), documents dropped | {own_read_rate:,.0f} |
| (b) raw COPY of equivalent rows into a copy of `tasks` (same indexes, logged) | {copy_rate:,.0f} |
| (c) full migration: read, transform, COPY + upsert, rejects, checkpoint | {rate:,.0f} |

(a2) got its first batch after {first_batch_s:.1f} s (in `_id` order FerretDB sorts in memory before it sends anything).

Where the CPU went during (c), of {elapsed * (os.cpu_count() or 1):.0f} core-seconds: the migration process
{migrate_cpu:.0f} s, FerretDB {source_cpu:.0f} s, PostgreSQL {pg_cpu:.0f} s.

Migration = {ratio:.0%} of the slower ceiling ({bound_name}, the faster of the two reads) and {own_ratio:.0%} of
its own read (a2), peak RSS {rss_mb:.0f} MB, {elapsed:.1f} s for {docs:,} documents. Goal: >= 70% of the slower
ceiling (and >= 100k docs/s where the source is not the bound), RSS < 300 MB.
"""
    if not args.no_doc:
        write_doc(section, begin="<!-- migration-bench:begin -->", end="<!-- migration-bench:end -->")
    print(section)
    print(
        f"migration-bench: docs={docs} rate={rate:.0f} read_ceiling={read_rate:.0f} copy_ceiling={copy_rate:.0f} "
        f"ratio={ratio:.2f} own_read={own_read_rate:.0f} own_read_ratio={own_ratio:.2f} rss_mb={rss_mb:.0f}"
    )


if __name__ == "__main__":
    main()
