"""Backup and restore benchmark on the real local node (docs/backup.md): a TaskPlatform's database holding 1M
tasks, dumped and restored through the operator's Jobs (a TaskPlatformBackup; a new TaskPlatform with
restoreFrom), against pg_dump / pg_restore run directly in the database pod on the same database, with the
same flags, in the same run.

MB/s are of the database (its size with indexes) over wall time, so ratios are ratios of time (the dumps'
sizes differ with their compression level):
- operator backup: from `kubectl apply` of the TaskPlatformBackup to its phase Completed (Job and pod start,
  pg_dump, the stream to the store, the checksum), polled every 0.1 s in-process;
- operator restore: from the moment both the restore Job exists and the new database accepts connections
  (PostgreSQL's own log line) to the exit of its containers, which the operator acts on (the wait for the
  fresh database's initdb is left out: the direct run has a running server too). Its download and verification
  (an init container, onto the pod's scratch volume) overlaps the new database's start; what is left of it after
  the database accepts connections counts;
- direct: pg_dump to a file on the database volume, pg_restore from it into a new database, over the local
  socket, timed inside the pod, with the Job's own pg_restore flags (specs/backup.py RESTORE_FLAGS, --jobs
  included: it reads a file, as the Job's pg_restore does).

Direct and operator runs alternate, `--repeat` pairs each way (3 by default), and the medians are the figures:
a single run of either varies by ±10% between runs minutes apart, as much as the changes being measured.

Results go to docs/benchmarks.md; the last line printed is the summary the issue asks for.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import secrets
import statistics
import subprocess
import time
from datetime import UTC, datetime
from typing import Any, TypeVar

from benchlib import machine, write_doc
from helpers.e2ecluster import (
    API_IMAGE,
    OPERATOR_IMAGE,
    POSTGRES_IMAGE,
    S3_ENDPOINT,
    S3_SECRET,
    S3_SERVICE,
    create_namespace,
    helm_binary,
    install_chart,
    platform_manifest,
    platform_ready,
    s3_server,
    s3server_image,
)  # fmt: skip
from helpers.kubecluster import LocalCluster, wait_for
from kubernetes.config import new_client_from_config

from taskplatform.operator import backups, status
from taskplatform.operator.kinds import JOB, POD, lookup
from taskplatform.operator.kube import Kube
from taskplatform.operator.models import DEFAULT_COMPRESSION_LEVEL
from taskplatform.operator.specs.backup import (
    RESTORE_FLAGS,
    TRANSFER_CONTAINER,
    backup_job_name,
    restore_job_name,
)
from taskplatform.operator.specs.names import Names

BEGIN, END = "<!-- backup-bench:begin -->", "<!-- backup-bench:end -->"
NAMESPACE = "backup-bench"
SOURCE = "bench"
BUCKET = "backups"
DATA_DIR = "/var/lib/postgresql/data"
RESOURCES = {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"memory": "2Gi"}}
# After a platform turns Ready, what its pods still do at start-up (the API's first connections, the
# kubelet's probes settling) is over within a few seconds.
SETTLE_S = 5.0


def bench_platform(name: str, database: dict[str, Any]) -> dict[str, Any]:
    return platform_manifest(name, namespace=NAMESPACE, database=database, api_resources=RESOURCES,
                             database_resources=RESOURCES, storage="8Gi")  # fmt: skip


def psql_in_pod(cluster: LocalCluster, platform_name: str, script: str) -> str:
    """A shell script in the database container (psql, pg_dump… talk to the local socket as the owner)."""
    environment = 'export PGUSER="$POSTGRES_USER" PGHOST=/var/run/postgresql'
    result = cluster.kubectl("exec", "-n", NAMESPACE, Names(platform_name).database_pod, "-c", "postgres", "--",
                             "sh", "-c", f"{environment}; {script}")  # fmt: skip
    return result.stdout.strip()


def seed(cluster: LocalCluster, users: int, tasks: int) -> None:
    """Users and tasks shaped like the API's: varied titles (the trigram index has work), tags, descriptions."""
    # Only this file's integers go into the text.
    sql = f"""
INSERT INTO users (email, hashed_password, full_name, is_active, created_at)
  SELECT 'user' || g || '@example.com', '$2b$12$' || md5(g::text) || md5(g::text), 'User ' || g, true, now()
  FROM generate_series(1, {users}) g;
INSERT INTO tasks (owner_id, title, description, status, priority, tags, version, created_at, updated_at)
  SELECT (SELECT min(id) FROM users) + (g % {users}), 'task ' || g || ' ' || left(md5(g::text), 12),
         CASE WHEN g % 3 = 0 THEN NULL ELSE repeat(md5((g * 7)::text) || ' ', 1 + g % 8) END,
         (ARRAY['todo', 'in_progress', 'done'])[1 + g % 3], 1 + g % 4,
         jsonb_build_array('tag' || (g % 50), 'team' || (g % 7)), 1,
         now() - (g || ' seconds')::interval, now()
  FROM generate_series(1, {tasks}) g;
ANALYZE;"""  # noqa: S608
    psql_in_pod(cluster, SOURCE, f"psql -v ON_ERROR_STOP=1 -q -d \"$POSTGRES_DB\" <<'SQL'\n{sql}\nSQL")


def timed_in_pod(cluster: LocalCluster, script: str, platform_name: str = SOURCE) -> float:
    """Seconds a script takes inside a database pod, measured there (no kubectl exec overhead)."""
    timed = f"start=$(date +%s%N); {script}; end=$(date +%s%N); echo $((end - start))"
    return int(psql_in_pod(cluster, platform_name, timed).splitlines()[-1]) / 1e9


def fresh_database_restore(cluster: LocalCluster, dump: str, target: str) -> float:
    """pg_restore run directly in a freshly started platform's database pod, as the operator's restore meets
    one (a new server: no recycled WAL segments, a cold cache), from the same dump copied there."""
    assert cluster.apply(bench_platform(target, {})).returncode == 0
    pod = Names(target).database_pod

    def settled() -> bool:
        # The platform Ready (its database serving, its schema Job done, its API pods started) and its API
        # pods past their start-up: nothing else competes for the cores, as in the operator's restore, which
        # runs before any API pod exists.
        platform = get(cluster, "tp", target)
        return bool(platform) and platform_ready(platform)

    wait_for(settled, f"{target} Ready", 300)
    time.sleep(SETTLE_S)
    kubectl = [str(cluster.bin / "kubectl"), "--kubeconfig", str(cluster.kubeconfig), "-n", NAMESPACE, "exec"]
    source = subprocess.Popen([*kubectl, Names(SOURCE).database_pod, "-c", "postgres", "--", "cat", dump],
                              stdout=subprocess.PIPE)  # fmt: skip
    subprocess.run([*kubectl, "-i", pod, "-c", "postgres", "--", "sh", "-c", f"cat > {dump}"], stdin=source.stdout,
                   check=True)  # fmt: skip
    assert source.wait() == 0
    psql_in_pod(cluster, target, 'createdb -O "$POSTGRES_USER" direct_restore')
    seconds = timed_in_pod(cluster, f"pg_restore {RESTORE_FLAGS} -d direct_restore {dump}", target)
    cluster.kubectl("delete", "tp", target, "-n", NAMESPACE, "--wait=true", "--timeout=300s")
    return seconds


Run = TypeVar("Run", bound=tuple[Any, ...])


def median_run(runs: list[Run]) -> Run:
    """The run of median time (the lower of the two middle ones for an even count: a run that happened)."""
    return sorted(runs, key=lambda run: float(run[0]))[(len(runs) - 1) // 2]


def get(cluster: LocalCluster, *what: str) -> dict[str, Any]:
    result = cluster.kubectl("get", *what, "-n", NAMESPACE, "-o", "json", check=False)
    return json.loads(result.stdout) if result.returncode == 0 else {}


class Timeline:
    """When each step of an operator run was first seen (seconds from `start`): the breakdown of where the time
    goes. Polled every 0.1 s in-process (a kubectl per poll would itself take a core of this machine)."""

    def __init__(self, kube: Kube, job: str, extra: tuple[str, str]) -> None:
        self.kube, self.job, self.extra = kube, job, extra
        self.start = time.perf_counter()
        self.wall_start = time.time()
        self.seen: dict[str, float] = {}
        self.objects: dict[str, dict[str, Any]] = {}

    def mark(self, step: str, happened: bool) -> None:
        if happened and step not in self.seen:
            self.seen[step] = time.perf_counter() - self.start

    def poll(self) -> None:
        # Two calls per poll once the Job exists (its pods and the resource): the polling shares the cores with
        # what it measures, which the direct runs do not.
        job = self.objects.get("Job") or self.kube.get(JOB, NAMESPACE, self.job) or {}
        pods = self.kube.list(POD, NAMESPACE, f"batch.kubernetes.io/job-name={self.job}")
        self.objects = {f"Pod/{p['metadata']['name']}": p for p in pods}
        self.objects["Job"] = job
        self.objects[self.extra[0]] = self.kube.get(lookup(self.extra[0]), NAMESPACE, self.extra[1]) or {}
        self.mark("Job created", bool(job))
        self.mark("pod running", any((p.get("status") or {}).get("phase") == "Running" for p in pods))
        # A restore's download is its init container: the pod runs (phase Running) once it has succeeded.
        initialized = [p for p in pods if (p.get("status") or {}).get("initContainerStatuses")]
        self.mark("download verified", any(status.terminations(p).get(TRANSFER_CONTAINER, (1, ""))[0] == 0
                                           for p in initialized))  # fmt: skip
        exited = [backups.outcome(None, p) for p in pods]
        self.mark("containers exited", any(exited))
        assert "Failed" not in exited, [p.get("status") for p in pods]

    def transfer_seconds(self) -> float:
        """The transfer's own duration, as its container measured it (its termination message): a backup's stream,
        a restore's download and verification (its init container)."""
        for key, item in self.objects.items():
            message = status.terminations(item).get(TRANSFER_CONTAINER, (None, ""))[1] if key.startswith("Pod/") else ""
            if message:
                return float(json.loads(message)["seconds"])
        raise AssertionError("no transfer summary")

    def report(self) -> str:
        return ", ".join(f"{step} {t:.1f}" for step, t in sorted(self.seen.items(), key=lambda kv: kv[1]))


def operator_backup(cluster: LocalCluster, kube: Kube, name: str) -> tuple[float, dict[str, Any], Timeline]:
    backup = {"apiVersion": "taskplatform.io/v1alpha1", "kind": "TaskPlatformBackup",
              "metadata": {"name": name, "namespace": NAMESPACE}, "spec": {"platform": SOURCE}}  # fmt: skip
    timeline = Timeline(kube, backup_job_name(name), ("TaskPlatformBackup", name))
    assert kube.create(backup) is not None  # through the API (a kubectl process would add its own start-up)
    deadline = time.monotonic() + 3600
    while time.monotonic() < deadline:
        timeline.poll()
        recorded = timeline.objects["TaskPlatformBackup"].get("status") or {}
        if recorded.get("phase") in ("Completed", "Failed"):
            timeline.mark("backup Completed", True)
            assert recorded["phase"] == "Completed", recorded
            return timeline.seen["backup Completed"], recorded, timeline
        time.sleep(0.1)
    raise AssertionError(f"backup {name} did not finish")


def accepting_since(cluster: LocalCluster, pod: str, timeline: Timeline) -> float:
    """When the database pod's PostgreSQL began accepting connections, in seconds of the timeline: from the
    server's own log line (its clock is this machine's), the last one (initdb's temporary server logs one too)."""
    log = cluster.kubectl("logs", "-n", NAMESPACE, pod, "-c", "postgres").stdout
    lines = [line for line in log.splitlines() if "ready to accept connections" in line]
    stamp = datetime.strptime(" ".join(lines[-1].split()[:2]), "%Y-%m-%d %H:%M:%S.%f").replace(tzinfo=UTC)
    return stamp.timestamp() - timeline.wall_start


def operator_restore(cluster: LocalCluster, kube: Kube, name: str, backup: str) -> tuple[float, Timeline]:
    """Seconds from the restore Job existing with the new database accepting connections to its containers'
    exit. The Job connects before the pod is Ready, so the start is PostgreSQL's own, not the Ready condition."""
    job = restore_job_name(name)
    timeline = Timeline(kube, job, ("Pod", Names(name).database_pod))
    assert cluster.apply(bench_platform(name, {"restoreFrom": {"backup": backup}})).returncode == 0
    deadline = time.monotonic() + 3600
    while time.monotonic() < deadline:
        timeline.poll()
        database = timeline.objects["Pod"]
        ready = any(c["type"] == "Ready" and c["status"] == "True"
                    for c in (database.get("status") or {}).get("conditions") or [])  # fmt: skip
        timeline.mark("database ready", ready)
        if "containers exited" in timeline.seen:  # what the operator acts on (operator/restore.py)
            timeline.mark("database accepting", True)
            timeline.seen["database accepting"] = accepting_since(cluster, Names(name).database_pod, timeline)
            begun = max(timeline.seen["Job created"], timeline.seen["database accepting"])
            return timeline.seen["containers exited"] - begun, timeline
        time.sleep(0.1)
    raise AssertionError(f"restore Job {job} did not finish")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tasks", type=int, default=1_000_000)
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument(
        "--repeat", type=int, default=3, help="pairs of direct and operator runs, each way (medians reported)"
    )
    args = parser.parse_args()

    cluster = LocalCluster(node="local")
    try:
        cluster.start()
        s3_image = s3server_image()
        cluster.load_images(API_IMAGE, OPERATOR_IMAGE, POSTGRES_IMAGE, s3_image)
        kube = Kube(new_client_from_config(str(cluster.kubeconfig)))
        installed = install_chart(cluster, helm_binary())
        assert installed.returncode == 0, installed.stderr
        create_namespace(cluster, NAMESPACE)
        access_key, secret_key = "bench", secrets.token_urlsafe(24)
        for manifest in s3_server(s3_image, access_key, secret_key):
            manifest["metadata"]["namespace"] = NAMESPACE
            assert cluster.apply(manifest).returncode == 0
        cluster.kubectl("rollout", "status", f"deployment/{S3_SERVICE}", "-n", NAMESPACE, "--timeout=120s")
        s3 = {"endpoint": S3_ENDPOINT, "bucket": BUCKET, "tls": False, "credentialsSecretRef": {"name": S3_SECRET}}

        volume = {"backup": {"volume": {"size": "4Gi"}, "retention": 10}}
        assert cluster.apply(bench_platform(SOURCE, volume)).returncode == 0
        wait_for(lambda: platform_ready(get(cluster, "tp", SOURCE)), f"TaskPlatform {SOURCE} Ready", 600)
        seeding = time.perf_counter()
        seed(cluster, args.users, args.tasks)
        print(f"seeded {args.tasks:,} tasks in {time.perf_counter() - seeding:.0f} s", flush=True)
        database_mb = int(psql_in_pod(cluster, SOURCE, "psql -tA -d \"$POSTGRES_DB\" -c "
                                      "\"SELECT pg_database_size(current_database())\"")) / 1e6  # fmt: skip

        # Direct and through the operator, in turns (the machine's drift between runs falls on both alike), each
        # pair `--repeat` times; medians are the figures. Direct: in the database pod, local socket, to and from its
        # volume; pg_dump as a user runs it (its default zlib level, 6) and at the level the backup Job uses.
        # Through the operator: the first backup also binds the new volume, so it is reported on its own.
        dump, job_level_dump = f"{DATA_DIR}/direct.dump", f"{DATA_DIR}/direct-level.dump"
        first_backup_s, _, first_timeline = operator_backup(cluster, kube, "to-volume-first")
        print(f"operator backup to the new volume: {first_backup_s:.1f} s ({first_timeline.report()})", flush=True)
        pg_dump_runs: list[float] = []
        level_dump_runs: list[float] = []
        backups_to_volume: list[tuple[float, dict[str, Any], Timeline]] = []
        for run in range(1, args.repeat + 1):
            pg_dump_runs.append(timed_in_pod(cluster, f'pg_dump --format=custom -d "$POSTGRES_DB" > {dump}'))
            level_dump_runs.append(timed_in_pod(
                cluster,
                f'pg_dump --format=custom --compress={DEFAULT_COMPRESSION_LEVEL} -d "$POSTGRES_DB" > {job_level_dump}',
            ))  # fmt: skip
            backups_to_volume.append(operator_backup(cluster, kube, f"to-volume-{run}"))
            backup_run_s, on_volume, run_timeline = backups_to_volume[-1]
            print(
                f"run {run}: pg_dump {pg_dump_runs[-1]:.1f} s (level {DEFAULT_COMPRESSION_LEVEL}: "
                f"{level_dump_runs[-1]:.1f} s); operator backup to volume {backup_run_s:.1f} s "
                f"({run_timeline.report()}; stream {run_timeline.transfer_seconds():.1f}), "
                f"{on_volume['sizeBytes'] / 1e6:.1f} MB",
                flush=True,
            )
        dump_mb = int(psql_in_pod(cluster, SOURCE, f"stat -c %s {dump}")) / 1e6
        level_dump_mb = int(psql_in_pod(cluster, SOURCE, f"stat -c %s {job_level_dump} && rm {job_level_dump}")) / 1e6
        pg_dump_s, level_dump_s = statistics.median_low(pg_dump_runs), statistics.median_low(level_dump_runs)
        # The run of median time stands for the rest in the breakdown.
        backup_s, on_volume, volume_timeline = median_run(backups_to_volume)
        backup_runs = [run[0] for run in backups_to_volume]
        volume_stream_s = volume_timeline.transfer_seconds()
        last_volume_backup = f"to-volume-{args.repeat}"

        script = (
            "import os; from minio import Minio; "
            "Minio(os.environ['E'], os.environ['A'], os.environ['S'], secure=False).make_bucket(os.environ['B'])"
        )
        make_bucket = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "make-bucket", "namespace": NAMESPACE},
                       "spec": {"restartPolicy": "Never", "containers": [{
                           "name": "mb", "image": API_IMAGE, "command": ["python", "-c", script],
                           "env": [{"name": "E", "value": S3_ENDPOINT}, {"name": "A", "value": access_key},
                                   {"name": "B", "value": BUCKET},
                                   {"name": "S", "value": secret_key}]}]}}  # fmt: skip
        assert cluster.apply(make_bucket).returncode == 0
        wait_for(lambda: (get(cluster, "pod", "make-bucket").get("status") or {}).get("phase") == "Succeeded",
                 "the bucket made", 120)  # fmt: skip
        patch = {"spec": {"database": {"backup": {"volume": None, "s3": s3}}}}
        cluster.kubectl("patch", "tp", SOURCE, "-n", NAMESPACE, "--type=merge", "-p", json.dumps(patch))
        s3_backup_s, in_s3, s3_timeline = operator_backup(cluster, kube, "to-s3")
        print(
            f"operator backup to S3: {s3_backup_s:.1f} s ({s3_timeline.report()}; stream "
            f"{s3_timeline.transfer_seconds():.1f}), {in_s3['sizeBytes'] / 1e6:.1f} MB",
            flush=True,
        )

        # Restores into a new TaskPlatform: direct (pg_restore in a fresh platform's pod) and from the volume in
        # turns, then once from S3; the same into the running source server once, for comparison.
        psql_in_pod(cluster, SOURCE, 'createdb -O "$POSTGRES_USER" direct_restore')
        warm_restore_s = timed_in_pod(cluster, f"pg_restore {RESTORE_FLAGS} -d direct_restore {dump}")
        psql_in_pod(cluster, SOURCE, "dropdb direct_restore")
        pg_restore_runs: list[float] = []
        restores_from_volume: list[tuple[float, Timeline]] = []
        for run in range(1, args.repeat + 1):
            pg_restore_runs.append(fresh_database_restore(cluster, dump, f"direct-target-{run}"))
            restores_from_volume.append(operator_restore(cluster, kube, f"restored-volume-{run}", last_volume_backup))
            restore_run_s, run_timeline = restores_from_volume[-1]
            print(
                f"run {run}: pg_restore into a fresh server {pg_restore_runs[-1]:.1f} s; operator restore from "
                f"volume {restore_run_s:.1f} s ({run_timeline.report()}; "
                f"download {run_timeline.transfer_seconds():.1f})",
                flush=True,
            )
            cluster.kubectl("delete", "tp", f"restored-volume-{run}", "-n", NAMESPACE, "--wait=true", "--timeout=300s")
        psql_in_pod(cluster, SOURCE, f"rm {dump}")
        pg_restore_s = statistics.median_low(pg_restore_runs)
        restore_s, _ = median_run(restores_from_volume)
        restore_runs = [run[0] for run in restores_from_volume]
        print(f"pg_restore into the running source server: {warm_restore_s:.1f} s", flush=True)
        s3_restore_s, s3_restore_timeline = operator_restore(cluster, kube, "restored-s3", "to-s3")
        print(
            f"operator restore from S3: {s3_restore_s:.1f} s ({s3_restore_timeline.report()}; download "
            f"{s3_restore_timeline.transfer_seconds():.1f})",
            flush=True,
        )
    finally:
        if not os.environ.get("KEEP"):
            cluster.stop()

    # Rates are of the database (its size with indexes): the Job's dump is larger than pg_dump's default one at
    # its lower zlib level, so MB of the dump would flatter it. Ratios are therefore ratios of time.
    backup_mb_s, pg_dump_mb_s = database_mb / backup_s, database_mb / pg_dump_s
    restore_mb_s, pg_restore_mb_s = database_mb / restore_s, database_mb / pg_restore_s
    size_mb, s3_size_mb = on_volume["sizeBytes"] / 1e6, in_s3["sizeBytes"] / 1e6
    rows: list[tuple[str, float, float, float, list[float]]] = [
        ("pg_dump, directly in the database pod (its default level, 6)", dump_mb, pg_dump_s, 1.0, pg_dump_runs),
        (f"pg_dump at the Job's level ({DEFAULT_COMPRESSION_LEVEL}), directly", level_dump_mb, level_dump_s,
         pg_dump_s / level_dump_s, level_dump_runs),
        ("backup Job -> the new volume (first backup: binds the volume)", size_mb, first_backup_s,
         pg_dump_s / first_backup_s, []),
        ("backup Job -> volume (TaskPlatformBackup)", size_mb, backup_s, pg_dump_s / backup_s, backup_runs),
        ("backup Job -> S3 (versitygw pod)", s3_size_mb, s3_backup_s, pg_dump_s / s3_backup_s, []),
        ("... volume, the stream only (pg_dump start to stored; the median run)", size_mb, volume_stream_s,
         pg_dump_s / volume_stream_s, []),
        ("pg_restore, directly in a fresh platform's database pod", dump_mb, pg_restore_s, 1.0, pg_restore_runs),
        ("pg_restore, directly into the running source server", dump_mb, warm_restore_s,
         pg_restore_s / warm_restore_s, []),
        ("restore Job <- volume (restoreFrom)", size_mb, restore_s, pg_restore_s / restore_s, restore_runs),
        ("restore Job <- S3", s3_size_mb, s3_restore_s, pg_restore_s / s3_restore_s, []),
    ]  # fmt: skip
    startup = volume_timeline.seen["containers exited"] - volume_stream_s
    table = "\n".join(
        f"| {name} | {mb:.1f} | {s:.1f} | {', '.join(f'{r:.1f}' for r in runs or [s])} | "
        f"{database_mb / s:.1f} | {ratio:.2f} |"
        for name, mb, s, ratio, runs in rows
    )
    doc = f"""## Backup and restore (`make bench-backup`)

{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.node()}, {machine()}. Command:
`make bench-backup BENCH_ARGS="--tasks {args.tasks} --users {args.users}"` ({args.repeat} runs each way). A
TaskPlatform on the real local node (docs/e2e.md) holding {args.tasks:,} tasks of {args.users:,} users (database
{database_mb:.0f} MB with its indexes). Direct runs: `pg_dump --format=custom` (at its default zlib level, 6, as a
user runs it, and at the backup Job's level, {DEFAULT_COMPRESSION_LEVEL}) to a file on the database volume, and
`pg_restore {RESTORE_FLAGS}` from it into a new database, over the local socket, timed inside the pod: the restore
baseline is the one into a freshly started platform's server (the dump copied there), which is what the operator's
restore meets; the same into the running source server is shown too (a warm server, recycled WAL). Operator runs: a
TaskPlatformBackup from apply to Completed (Job start, pg_dump over the pod network, the named pipe, SHA-256,
the store); a new TaskPlatform with `restoreFrom`, timed from the restore Job existing with the new database
accepting connections (PostgreSQL's own log line) to the exit of its containers (what the operator acts on): the
download and verification of the whole dump onto the pod's scratch volume (an init container, beside the new
database's start), then `pg_restore {RESTORE_FLAGS}` of that file. The direct restores use the Job's flags.
MB/s are of the database ({database_mb:.0f} MB) per second of the run, so each ratio is the direct run's time
over the run's time, against the direct run of the same direction at pg_dump's default level: the dumps'
sizes differ with their level. The direct and the operator's runs alternate, {args.repeat} pairs each way (the
direct runs alone vary by ±10% from one to the next); the seconds are their medians, each run is listed.

| run | dump MB | seconds (median) | each run, in order | database MB/s | ratio |
|---|---:|---:|---|---:|---:|
{table}

Where the operator's median backup to the volume spent its {backup_s:.1f} s (seconds after apply when each step was
first seen): {volume_timeline.report()}. Its stream (pg_dump's start to the dump stored) took
{volume_stream_s:.1f} s; the {startup:.1f} s before it are the Job's pod starting (sandbox, network, two containers,
the uploader's Python).
The first backup into the new volume took {first_backup_s:.1f} s ({first_timeline.report()}): a volume of a
`WaitForFirstConsumer` class is bound when the first pod using it is scheduled.
"""
    write_doc(doc, BEGIN, END)
    print(
        f"backup-bench: backup_mb_s={backup_mb_s:.2f} pg_dump_mb_s={pg_dump_mb_s:.2f} "
        f"backup_ratio={backup_mb_s / pg_dump_mb_s:.3f} restore_mb_s={restore_mb_s:.2f} "
        f"pg_restore_mb_s={pg_restore_mb_s:.2f} restore_ratio={restore_mb_s / pg_restore_mb_s:.3f} "
        f"backup_same_level_ratio={level_dump_s / backup_s:.3f}"
    )


if __name__ == "__main__":
    main()
