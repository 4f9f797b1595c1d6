"""Backups and restores at unit level: the Job builders, the schedule, retention, BackupHealthy, and the
TaskPlatformBackup / restore decisions against a stand-in for the API server. (The real operator runs them
against real pods in tests/e2e/test_backup.py.)"""

from __future__ import annotations

import json
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from kubernetes.utils.quantity import parse_quantity

from taskplatform.migration.dumpstore import SCRATCH_RESERVE_BYTES
from taskplatform.operator import backups
from taskplatform.operator.backups import BackupView, backup_health, reconcile_backup, schedule_decision, to_prune
from taskplatform.operator.conditions import ConditionType, Observation, Reason, newly_failing, rfc3339
from taskplatform.operator.kinds import TASK_PLATFORM, TASK_PLATFORM_BACKUP, ResourceKind
from taskplatform.operator.kube import KubeError
from taskplatform.operator.models import (
    DEFAULT_COMPRESSION_LEVEL,
    DEFAULT_RESTORE_SIZE,
    BackupSpec,
    Condition,
    RestoreSource,
    TaskPlatformBackupStatus,
    TaskPlatformSpec,
)
from taskplatform.operator.restore import plan_restore, resolve_source
from taskplatform.operator.specs import backup as backup_specs
from taskplatform.operator.specs import tls
from taskplatform.operator.specs.backup import DUMP_CONTAINER, RESTORE_CONTAINER, TRANSFER_CONTAINER, Store
from taskplatform.operator.specs.common import TERMINATION_LOG, Owner
from taskplatform.operator.specs.database import database_services
from taskplatform.operator.specs.networkpolicy import DATABASE_CLIENTS, database_network_policy
from taskplatform.operator.status import PlatformObservation, terminations

Manifest = dict[str, Any]
T0 = datetime(2026, 3, 1, 0, 0, tzinfo=UTC)
S3 = {
    "endpoint": "s3.example.com:9000",
    "bucket": "tp-backups",
    "prefix": "prod",
    "credentialsSecretRef": {"name": "s3-keys"},
}


def spec(backup: dict[str, Any]) -> TaskPlatformSpec:
    return TaskPlatformSpec.model_validate({"database": {"backup": backup}})


def view(name: str, phase: str, minutes: int, scheduled: bool = False, **status: Any) -> BackupView:
    when = T0 + timedelta(minutes=minutes)
    return BackupView(
        name,
        when,
        TaskPlatformBackupStatus.model_validate(
            {"phase": phase, "key": f"demo/{name}.dump", "completionTime": rfc3339(when), **status}
        ),
        scheduled,
    )


# --- builders ------------------------------------------------------------------------------------------------


def test_a_backup_job_pairs_pg_dump_with_the_uploader_over_a_pipe() -> None:
    platform_spec = spec({"s3": {**S3, "tls": True, "verifyTls": False}})
    assert platform_spec.database.backup is not None
    store = Store.of(platform_spec.database.backup, "demo")
    owner = Owner(TASK_PLATFORM_BACKUP, "nightly", "apps", "u-1")
    job = backup_specs.backup_job(owner, "demo", platform_spec, "prod/demo/nightly.dump", store, ["prod/demo/old.dump"])
    pod = job["spec"]["template"]["spec"]
    containers = {c["name"]: c for c in pod["containers"]}
    dump, transfer = containers[DUMP_CONTAINER], containers[TRANSFER_CONTAINER]
    assert dump["image"] == platform_spec.database.image and transfer["image"] == platform_spec.api.image
    assert "initContainers" not in pod  # the transfer container makes the pipe; pg_dump's side waits for it
    assert transfer["args"][:6] == ["upload", "--key", "prod/demo/nightly.dump", "--status-file",
                                    backup_specs.STATUS_FILE, "--prune"]  # fmt: skip
    assert "--insecure-skip-verify" in transfer["args"] and "--no-tls" not in transfer["args"]
    env = {e["name"]: e for e in transfer["env"]}
    assert env["AWS_SECRET_ACCESS_KEY"]["valueFrom"]["secretKeyRef"] == {"name": "s3-keys", "key": "secret-access-key"}
    pg_env = {e["name"]: e for e in dump["env"]}
    # The database pod's own name: it resolves before the pod is Ready (the headless Service publishes it), so a
    # restore starts as soon as PostgreSQL accepts connections.
    assert pg_env["PGHOST"]["value"] == "demo-db-0.demo-db-headless"
    headless, _ = database_services(Owner(TASK_PLATFORM, "demo", "apps", "u-2"))
    assert headless["metadata"]["name"] == "demo-db-headless" and headless["spec"]["publishNotReadyAddresses"] is True
    assert pg_env["PGPASSWORD"]["valueFrom"]["secretKeyRef"]["name"] == "demo-credentials"
    # No secret value in the manifest itself, and the pod is labelled as the database's client it is.
    assert "secretAccessKey" not in json.dumps(job)
    assert pod["securityContext"]["runAsNonRoot"] is True and dump["securityContext"]["runAsUser"] == 999
    assert job["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/component"] in DATABASE_CLIENTS
    assert job["metadata"]["ownerReferences"][0]["kind"] == "TaskPlatformBackup"
    assert job["spec"]["backoffLimit"] == 0 and job["spec"]["activeDeadlineSeconds"] > 0
    assert f"--compress={DEFAULT_COMPRESSION_LEVEL} " in dump["command"][-1]


def test_the_backup_compression_level_reaches_pg_dump() -> None:
    platform_spec = spec({"s3": S3, "compressionLevel": 9})
    assert platform_spec.database.backup is not None
    store = Store.of(platform_spec.database.backup, "demo")
    job = backup_specs.backup_job(
        Owner(TASK_PLATFORM_BACKUP, "b", "apps", "u-1"), "demo", platform_spec, "k", store, []
    )
    dump = next(c for c in job["spec"]["template"]["spec"]["containers"] if c["name"] == DUMP_CONTAINER)
    assert "pg_dump --format=custom --compress=9 " in dump["command"][-1]


def test_the_transfer_container_is_created_before_pg_dump() -> None:
    # The kubelet creates containers in order; the uploader's start-up then overlaps the second creation.
    platform_spec = spec({"s3": S3})
    assert platform_spec.database.backup is not None
    store = Store.of(platform_spec.database.backup, "demo")
    owner = Owner(TASK_PLATFORM_BACKUP, "b", "apps", "u-1")
    job = backup_specs.backup_job(owner, "demo", platform_spec, "k", store, [])
    assert [c["name"] for c in job["spec"]["template"]["spec"]["containers"]] == [TRANSFER_CONTAINER, DUMP_CONTAINER]


SHA = "ab" * 32
RESTORING = Owner(TASK_PLATFORM, "demo", "apps", "u-1")


def restore_pod(dump: backup_specs.Dump, platform_spec: TaskPlatformSpec | None = None) -> Manifest:
    job = backup_specs.restore_job(RESTORING, platform_spec or TaskPlatformSpec(), dump)
    assert job["metadata"]["labels"]["app.kubernetes.io/component"] == backup_specs.RESTORE_COMPONENT
    pod: Manifest = job["spec"]["template"]["spec"]
    return pod


def test_a_restore_verifies_the_whole_dump_in_an_init_container_before_pg_restore_reads_it() -> None:
    """The download runs first, alone, and writes the verified dump to the scratch volume; pg_restore (which cannot
    start unless the download succeeded) reads that file, never a stream."""
    store = Store(s3=BackupSpec.model_validate({"s3": S3}).s3)
    pod = restore_pod(backup_specs.Dump(store, "prod/apps/demo/u-0/b1.dump", SHA, 5_000_000))
    (download,) = pod["initContainers"]
    (restore,) = pod["containers"]
    assert (download["name"], restore["name"]) == (TRANSFER_CONTAINER, RESTORE_CONTAINER)
    assert download["args"] == [
        "download", "--key", "prod/apps/demo/u-0/b1.dump", "--max-bytes", "5000000",
        "--output", backup_specs.SCRATCH_DUMP, "--sha256", SHA, *store.args(), "--summary-file", TERMINATION_LOG,
    ]  # fmt: skip
    assert "--fifo" not in download["args"] and "--allow-unverified" not in download["args"]
    assert download["volumeMounts"] == [{"name": "scratch", "mountPath": backup_specs.SCRATCH_DIR}]
    # pg_restore takes the verified file as its argument (pg_restore --jobs cannot read a pipe), read-only to it.
    script = restore["command"][-1]
    assert script.endswith(
        f'pg_restore {backup_specs.RESTORE_FLAGS} --dbname="$PGDATABASE" "{backup_specs.SCRATCH_DUMP}"'
    )
    assert "<" not in script and "stream" not in json.dumps(pod)
    for flag in ("--exit-on-error", "--no-owner", "--no-privileges"):
        assert flag in backup_specs.RESTORE_FLAGS
    assert {"name": "scratch", "mountPath": backup_specs.SCRATCH_DIR, "readOnly": True} in restore["volumeMounts"]
    # As the owner role, over TLS checked against the platform's CA, like every client.
    env = {e["name"]: e for e in restore["env"]}
    assert env["PGUSER"]["value"] == "taskplatform_owner"
    assert (env["PGSSLMODE"]["value"], env["PGSSLROOTCERT"]["value"]) == ("verify-full", tls.CLIENT_CA_FILE)
    assert tls.CLIENT_MOUNT in restore["volumeMounts"] and tls.client_volume("demo") in pod["volumes"]
    # The restricted Pod Security profile: non-root, no privilege, no token, the volume types it allows.
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    for container in (download, restore):
        assert container["securityContext"]["allowPrivilegeEscalation"] is False
        assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert all({"ephemeral", "secret", "persistentVolumeClaim"} >= (v.keys() - {"name"}) for v in pod["volumes"])


def test_the_scratch_volume_is_the_pods_own_and_sized_from_the_dumps_bound() -> None:
    dump = backup_specs.Dump(Store(volume_claim="demo-backups"), "apps/demo/u-0/b1.dump", SHA, 3 << 30)
    (scratch,) = [v for v in restore_pod(dump)["volumes"] if v["name"] == "scratch"]
    claim = scratch["ephemeral"]["volumeClaimTemplate"]["spec"]
    requested = parse_quantity(claim["resources"]["requests"]["storage"])
    assert requested == backup_specs.scratch_bytes(3 << 30) >= (3 << 30) * 112 // 100 + SCRATCH_RESERVE_BYTES
    assert claim["accessModes"] == ["ReadWriteOnce"] and "storageClassName" not in claim  # the cluster's default
    classed = TaskPlatformSpec.model_validate({"database": {"storage": {"storageClassName": "fast"}}})
    (scratch,) = [v for v in restore_pod(dump, classed)["volumes"] if v["name"] == "scratch"]
    assert scratch["ephemeral"]["volumeClaimTemplate"]["spec"]["storageClassName"] == "fast"  # the database's
    assert backup_specs.scratch_bytes(1) < backup_specs.scratch_bytes(1 << 20) < backup_specs.scratch_bytes(1 << 30)


def _ext4_room(size: int, folder: Path) -> int:
    """What a non-root writer can fill on an ext4 filesystem of `size` bytes as mkfs.ext4 makes it by default: its
    free blocks, less those reserved for root and the kernel's reserve for delayed allocation (fs/ext4/super.c,
    ext4_calculate_resv_clusters: 2% of the blocks, at most 4096), read from the superblock (nothing mounted)."""
    image = folder / f"ext4-{size}"
    with image.open("wb") as sparse:
        sparse.truncate(size)
    subprocess.run([shutil.which("mkfs.ext4") or "/usr/sbin/mkfs.ext4", "-q", "-F", "-E",
                    "lazy_itable_init=1,lazy_journal_init=1", str(image)], check=True)  # fmt: skip
    header = subprocess.run([shutil.which("dumpe2fs") or "/usr/sbin/dumpe2fs", "-h", str(image)],
                            capture_output=True, text=True, check=True).stdout  # fmt: skip
    image.unlink()
    field = {k.strip(): v.strip() for k, _, v in (line.partition(":") for line in header.splitlines())}
    blocks, free = int(field["Block count"]), int(field["Free blocks"])
    reserved, block = int(field["Reserved block count"]), int(field["Block size"])
    return (free - reserved - min(blocks * 2 // 100, 4096)) * block


@pytest.mark.parametrize("dump_mib", [1, 100, 380, 450, 4096, 50 * 1024])
def test_the_scratch_volume_holds_its_dump_and_the_downloads_reserve_on_ext4(dump_mib: int, tmp_path: Path) -> None:
    """The download refuses a dump larger than the volume's free space less SCRATCH_RESERVE_BYTES: a scratch volume
    sized for a dump must have that much room for a non-root writer on a freshly made ext4 (the default type of
    most CSI drivers; k8s' mount-utils make it with no root reserve, mkfs's default of 5% is the worst case). The
    sizes cross mkfs's small (1 KiB blocks, an inode per 4 KiB) and default profiles (at 512 MiB)."""
    dump = dump_mib << 20
    assert _ext4_room(backup_specs.scratch_bytes(dump), tmp_path) >= dump + SCRATCH_RESERVE_BYTES


def test_a_volume_destination_mounts_the_backup_claim_which_outlives_the_platform() -> None:
    platform_spec = spec({"volume": {"size": "5Gi", "storageClassName": "fast"}})
    assert platform_spec.database.backup is not None
    owner = Owner(TASK_PLATFORM, "demo", "apps", "u-1")
    claim = backup_specs.backup_claim(owner, platform_spec.database.backup)
    assert claim is not None and "ownerReferences" not in claim["metadata"]
    assert claim["spec"]["resources"]["requests"]["storage"] == "5Gi" and claim["spec"]["storageClassName"] == "fast"
    pod = restore_pod(backup_specs.Dump(Store(volume_claim="old-backups"), "demo/x.dump", SHA, 1000), platform_spec)
    assert {"name": "backups", "persistentVolumeClaim": {"claimName": "old-backups"}} in pod["volumes"]
    (transfer,) = pod["initContainers"]
    assert transfer["args"][:3] == ["download", "--key", "demo/x.dump"] and SHA in transfer["args"]
    assert transfer["args"][transfer["args"].index("--dir") :][:4] == [
        "--dir", backup_specs.BACKUP_MOUNT, "--dir-location", "pvc://old-backups"
    ]  # fmt: skip
    assert {"name": "backups", "mountPath": backup_specs.BACKUP_MOUNT} in transfer["volumeMounts"]


def test_an_unverified_restore_is_asked_for_only_when_allowed_and_no_checksum_is_known() -> None:
    store = Store(volume_claim="old-backups")

    def args(sha256: str | None, allowed: bool) -> list[str]:
        (transfer,) = restore_pod(backup_specs.Dump(store, "k", sha256, 1000, allowed))["initContainers"]
        return list(transfer["args"])

    assert "--allow-unverified" not in args(None, False) and "--sha256" not in args(None, False)  # refused by it
    assert "--allow-unverified" in args(None, True)
    assert "--allow-unverified" not in args(SHA, True) and SHA in args(SHA, True)  # a known checksum is checked


def test_backup_and_restore_jobs_may_reach_the_database() -> None:
    policy = database_network_policy(Owner(TASK_PLATFORM, "demo", "apps", "u"))
    allowed = policy["spec"]["ingress"][0]["from"][0]["podSelector"]["matchExpressions"][0]["values"]
    assert {"backup", "restore"} <= set(allowed)


def test_dump_keys_nest_under_the_prefix_namespace_platform_and_its_uid() -> None:
    assert backup_specs.dump_key("prod/", "apps", "demo", "u-1", "b1") == "prod/apps/demo/u-1/b1.dump"
    assert backup_specs.dump_key("", "apps", "demo", "u-1", "b1") == "apps/demo/u-1/b1.dump"
    # Two namespaces, or a platform created again under its name (a new uid): never the same key.
    keys = {backup_specs.dump_key("prod", ns, "demo", uid, "b1") for ns in ("a", "b") for uid in ("u-1", "u-2")}
    assert len(keys) == 4
    assert backup_specs.legacy_dump_key("prod/", "demo", "b1") == "prod/demo/b1.dump"  # the operator before them


# --- schedule, retention, health -----------------------------------------------------------------------------


def test_the_schedule_starts_the_latest_missed_time_once() -> None:
    # Created at 00:00, hourly at :30; at 03:10 the 02:30 run is due (00:30 and 01:30 are skipped).
    decision = schedule_decision("30 * * * *", None, T0, T0 + timedelta(hours=3, minutes=10))
    assert decision.due == T0 + timedelta(hours=2, minutes=30)
    assert decision.next_time == T0 + timedelta(hours=3, minutes=30)
    # Once it started, nothing is due until the next time.
    again = schedule_decision("30 * * * *", decision.due, T0, T0 + timedelta(hours=3, minutes=20))
    assert again.due is None and again.next_time == decision.next_time
    assert schedule_decision("@daily", None, T0, T0 + timedelta(hours=5)).next_time == T0 + timedelta(days=1)


KEYS = backup_specs.DumpKeys("", "ns", "demo", "u-0")


def test_retention_prunes_the_oldest_completed_in_the_same_store_beyond_the_count() -> None:
    here = Store(volume_claim="demo-backups")
    found = [
        view("a", "Completed", 1, volumeClaim="demo-backups"),
        view("b", "Failed", 2, volumeClaim="demo-backups"),
        view("c", "Completed", 3, volumeClaim="demo-backups"),
        view("elsewhere", "Completed", 3, s3=S3),  # before the destination changed: another store
        view("d", "Completed", 4, volumeClaim="demo-backups", key=KEYS.key("d")),  # since namespaced keys
    ]
    assert [b.name for b in to_prune(found, 3, here, KEYS)] == ["a"]  # a, c, d + the new one = 4 > 3
    assert [b.name for b in to_prune(found, 1, here, KEYS)] == ["a", "c", "d"]
    assert to_prune(found, 4, here, KEYS) == []


def test_retention_deletes_only_the_platforms_own_dumps() -> None:
    """Of the backups of a platform's name in its namespace, only those whose recorded key is where this platform
    puts that backup's dump: not an earlier platform's of the same name (another uid: the one it may have been
    restored from), nor a key pointing anywhere else (another namespace's folder); the operator before namespaced
    keys recorded `<prefix>/<platform>/<backup>.dump`, and those are still pruned."""
    store = Store(s3=BackupSpec.model_validate({"s3": S3}).s3)
    keys = backup_specs.DumpKeys("prod", "ns", "demo", "u-now")
    found = [
        view("legacy", "Completed", 1, s3=S3, key="prod/demo/legacy.dump"),
        view("earlier", "Completed", 2, s3=S3, key="prod/ns/demo/u-before/earlier.dump"),
        view("elsewhere", "Completed", 3, s3=S3, key="prod/other-ns/demo/u-now/elsewhere.dump"),
        view("renamed", "Completed", 4, s3=S3, key="prod/ns/demo/u-now/another-name.dump"),
        view("own", "Completed", 5, s3=S3, key="prod/ns/demo/u-now/own.dump"),
        view("newest", "Completed", 6, s3=S3, key="prod/ns/demo/u-now/newest.dump"),
    ]
    assert [b.name for b in to_prune(found, 1, store, keys)] == ["legacy", "own", "newest"]
    assert [b.name for b in to_prune(found, 3, store, keys)] == ["legacy"]


def test_backup_health_reports_failure_overdue_and_invalid_schedules() -> None:
    hourly = BackupSpec.model_validate({"schedule": "0 * * * *", "volume": {}})
    now = T0 + timedelta(hours=5, minutes=10)
    healthy = backup_health(hourly, [view("b4", "Completed", 4 * 60 + 1, scheduled=True)], T0, now)
    assert (healthy.status, healthy.reason) == ("True", "BackupCompleted")
    failed = backup_health(
        hourly, [view("b4", "Completed", 241, True), view("b5", "Failed", 301, True, message="pg_dump: boom")], T0, now
    )
    assert (failed.status, failed.reason) == ("False", "BackupFailed") and "pg_dump: boom" in failed.message
    overdue = backup_health(hourly, [view("b1", "Completed", 61, True)], T0, now)
    assert (overdue.status, overdue.reason) == ("False", "BackupOverdue") and "04:00:00Z" in overdue.message
    nothing_yet = backup_health(hourly, [], T0, T0 + timedelta(minutes=70))  # 01:00 is within the grace period
    assert (nothing_yet.status, nothing_yet.reason) == ("True", "NoBackupDue")
    invalid = backup_health(BackupSpec.model_validate({"schedule": "61 * * * *", "volume": {}}), [], T0, now)
    assert (invalid.status, invalid.reason) == ("False", "ScheduleInvalid")


# --- a TaskPlatformBackup against a stand-in API server ------------------------------------------------------


class FakeKube:
    def __init__(self, objects: dict[tuple[str, str], Manifest]) -> None:
        self.objects = objects
        self.created: list[Manifest] = []
        self.deleted: list[tuple[str, str]] = []
        self.status: Manifest | None = None

    def get(self, kind: ResourceKind, namespace: str, name: str) -> Manifest | None:
        return self.objects.get((kind.kind, name))

    def list(self, kind: ResourceKind, namespace: str, selector: str) -> list[Manifest]:
        return [obj for (k, _), obj in self.objects.items() if k == kind.kind]

    def create(self, manifest: Manifest) -> Manifest:
        self.created.append(manifest)
        self.objects[(manifest["kind"], manifest["metadata"]["name"])] = manifest
        return manifest

    def delete(self, kind: ResourceKind, namespace: str, name: str) -> bool:
        self.deleted.append((kind.kind, name))
        return self.objects.pop((kind.kind, name), None) is not None

    def patch_status(self, kind: ResourceKind, namespace: str, name: str, status: Manifest) -> None:
        self.status = status


READY = [{"type": "DatabaseReady", "status": "True", "reason": "Running"}]


def platform(conditions: list[dict[str, str]] | None = None, retention: int = 2) -> Manifest:
    return {
        "kind": "TaskPlatform",
        "metadata": {"name": "demo", "namespace": "ns", "uid": "u-demo", "creationTimestamp": "2026-03-01T00:00:00Z"},
        "spec": {"database": {"backup": {"s3": S3, "retention": retention}}},
        "status": {"conditions": READY if conditions is None else conditions},
    }


def backup(name: str, status: Manifest | None = None, created: str = "2026-03-01T01:00:00Z") -> Manifest:
    return {
        "kind": "TaskPlatformBackup",
        "metadata": {
            "name": name,
            "namespace": "ns",
            "uid": f"u-{name}",
            "generation": 1,
            "creationTimestamp": created,
        },
        "spec": {"platform": "demo"},
        "status": status or {},
    }


def test_a_backup_waits_for_the_database_then_starts_one_job_with_the_prune_list() -> None:
    old = backup("old", {"phase": "Completed", "key": "prod/demo/old.dump", "s3": S3}, "2026-03-01T00:10:00Z")
    kube = FakeKube({("TaskPlatform", "demo"): platform([]), ("TaskPlatformBackup", "old"): old})
    waiting = reconcile_backup(kube, backup("b1"))  # type: ignore[arg-type]
    assert waiting.retry_after_s and not kube.created
    assert kube.status is not None and kube.status["phase"] == "Pending" and "ready" in kube.status["message"]

    kube.objects[("TaskPlatform", "demo")] = platform(retention=1)
    started = reconcile_backup(kube, backup("b1"), now=T0)  # type: ignore[arg-type]
    (job,) = kube.created
    assert job["metadata"]["name"] == "b1-dump" and not started.finished
    transfer = next(c for c in job["spec"]["template"]["spec"]["containers"] if c["name"] == TRANSFER_CONTAINER)
    assert transfer["args"][transfer["args"].index("--prune") + 1] == "prod/demo/old.dump"  # retention 1
    assert kube.status is not None
    # Under its namespace and its platform's uid: no other namespace's platform of that name shares the key.
    assert (kube.status["phase"], kube.status["key"], kube.status["s3"]["bucket"]) == (
        "Running", "prod/ns/demo/u-demo/b1.dump", "tp-backups",
    )  # fmt: skip
    assert transfer["args"][:3] == ["upload", "--key", "prod/ns/demo/u-demo/b1.dump"]


def test_only_one_backup_runs_per_platform() -> None:
    running = backup("first", {"phase": "Running", "key": "prod/demo/first.dump"})
    kube = FakeKube({("TaskPlatform", "demo"): platform(), ("TaskPlatformBackup", "first"): running})
    result = reconcile_backup(kube, backup("second"))  # type: ignore[arg-type]
    assert not kube.created and result.retry_after_s
    assert kube.status is not None and "first" in kube.status["message"]


def _finished_job(outcome: str) -> Manifest:
    return {"metadata": {"name": "b1-dump"}, "status": {"conditions": [{"type": outcome, "status": "True"}]}}


def _pod(**containers: tuple[int, str]) -> Manifest:
    statuses = [{"name": n, "state": {"terminated": {"exitCode": c, "message": m}}} for n, (c, m) in containers.items()]
    return {
        "kind": "Pod",
        "metadata": {"name": "b1-dump-x", "creationTimestamp": "t"},
        "status": {"containerStatuses": statuses},
    }


def test_a_completed_backup_records_its_dump_and_deletes_the_pruned_backups() -> None:
    summary = {"location": "s3://tp-backups/prod/demo/b1.dump", "key": "prod/demo/b1.dump", "sizeBytes": 1234,
               "sha256": "f" * 64, "pruned": ["prod/demo/old.dump"], "exitCode": 0}  # fmt: skip
    kube = FakeKube({
        ("TaskPlatform", "demo"): platform(),
        ("TaskPlatformBackup", "old"): backup("old", {"phase": "Completed", "key": "prod/demo/old.dump"}),
        ("Job", "b1-dump"): _finished_job("Complete"),
        ("Pod", "p"): _pod(**{DUMP_CONTAINER: (0, ""), TRANSFER_CONTAINER: (0, json.dumps(summary))}),
    })  # fmt: skip
    result = reconcile_backup(kube, backup("b1", {"phase": "Running", "key": "prod/demo/b1.dump"}))  # type: ignore[arg-type]
    assert result.finished and result.platform == "demo"
    assert kube.deleted == [("TaskPlatformBackup", "old")]
    assert kube.status is not None
    assert (kube.status["phase"], kube.status["sizeBytes"], kube.status["sha256"]) == ("Completed", 1234, "f" * 64)
    assert any(e.reason == "BackupCompleted" for e in result.events)
    succeeded = next(c for c in kube.status["conditions"] if c["type"] == "Succeeded")
    assert succeeded["status"] == "True"


@pytest.mark.parametrize(
    ("dump", "transfer", "expected"),
    [
        ((1, "pg_dump: error: connection to server failed"), (1, '{"error": "pg_dump exited with status 1"}'),
         "pg_dump exited with status 1"),
        ((0, ""), (1, '{"error": "S3 operation failed; code: NoSuchBucket"}'), "NoSuchBucket"),
        ((1, "pg_dump: error: permission denied for table users"), (0, ""), "permission denied for table users"),
    ],
)  # fmt: skip
def test_a_failed_backup_says_which_side_failed_and_why(
    dump: tuple[int, str], transfer: tuple[int, str], expected: str
) -> None:
    kube = FakeKube({
        ("TaskPlatform", "demo"): platform(),
        ("Job", "b1-dump"): _finished_job("Failed"),
        ("Pod", "p"): _pod(**{DUMP_CONTAINER: dump, TRANSFER_CONTAINER: transfer}),
    })  # fmt: skip
    result = reconcile_backup(kube, backup("b1", {"phase": "Running"}))  # type: ignore[arg-type]
    assert result.finished and kube.status is not None
    assert kube.status["phase"] == "Failed" and expected in kube.status["message"]
    assert [e.type for e in result.events if e.reason == "BackupFailed"] == ["Warning"]


def test_a_finished_backup_is_left_alone() -> None:
    kube = FakeKube({})
    assert reconcile_backup(kube, backup("b1", {"phase": "Completed"})).finished  # type: ignore[arg-type]
    assert kube.status is None and not kube.created


def test_a_restore_source_resolves_from_a_backup_or_says_why_not() -> None:
    """A backup's dump is bounded by its recorded size and checked against its recorded checksum, under the key it
    recorded (one the operator before namespaced keys wrote too)."""
    done = {"phase": "Completed", "key": "prod/demo/b1.dump", "sha256": "a" * 64, "sizeBytes": 4321, "s3": S3}
    kube = FakeKube({
        ("TaskPlatformBackup", "b1"): backup("b1", done),
        ("TaskPlatformBackup", "b2"): backup("b2", {"phase": "Failed"}),
        ("TaskPlatformBackup", "b3"): backup("b3", {**done, "sha256": None}),
    })  # fmt: skip
    dump = resolve_source(kube, "ns", RestoreSource(backup="b1"))  # type: ignore[arg-type]
    assert isinstance(dump, backup_specs.Dump) and dump.store.s3 is not None and dump.store.s3.bucket == "tp-backups"
    assert (dump.key, dump.sha256, dump.max_bytes, dump.allow_unverified) == (
        "prod/demo/b1.dump",
        "a" * 64,
        4321,
        False,
    )
    assert "has not completed" in str(resolve_source(kube, "ns", RestoreSource(backup="b2")))  # type: ignore[arg-type]
    assert "does not exist" in str(resolve_source(kube, "ns", RestoreSource(backup="gone")))  # type: ignore[arg-type]
    assert "no checksum" in str(resolve_source(kube, "ns", RestoreSource(backup="b3")))  # type: ignore[arg-type]


def test_an_s3_or_volume_source_is_bounded_by_its_size_or_the_default() -> None:
    kube = FakeKube({})
    volume = {"claimName": "old-backups", "path": "old/b.dump"}
    source = RestoreSource.model_validate({"volume": volume, "sha256": SHA})
    assert resolve_source(kube, "ns", source) == backup_specs.Dump(  # type: ignore[arg-type]
        Store(volume_claim="old-backups"), "old/b.dump", SHA, parse_quantity(DEFAULT_RESTORE_SIZE)
    )
    sized = RestoreSource.model_validate({"s3": {**S3, "key": "x.dump"}, "size": "1.5Gi", "allowUnverified": True})
    dump = resolve_source(kube, "ns", sized)  # type: ignore[arg-type]
    assert isinstance(dump, backup_specs.Dump) and (dump.max_bytes, dump.sha256, dump.allow_unverified) == (
        3 << 29, None, True,
    )  # fmt: skip
    for nonsense in ("0", "6Ti"):
        refused = RestoreSource.model_validate({"volume": volume, "sha256": SHA, "size": nonsense})
        assert "restoreFrom.size" in str(resolve_source(kube, "ns", refused))  # type: ignore[arg-type]


def test_the_platform_pass_creates_the_backup_volume_and_the_due_scheduled_backup_once() -> None:
    hourly = {"schedule": "0 * * * *", "volume": {"size": "2Gi"}}
    tp = {
        "kind": "TaskPlatform",
        "metadata": {"name": "demo", "namespace": "ns", "uid": "u", "creationTimestamp": "2026-03-01T00:00:00Z"},
        "spec": {"database": {"backup": hourly}},
        "status": {},
    }
    kube = FakeKube({("TaskPlatform", "demo"): tp})
    owner = Owner(TASK_PLATFORM, "demo", "ns", "u")
    spec = BackupSpec.model_validate(hourly)
    observed = PlatformObservation()
    now = T0 + timedelta(hours=1, minutes=10)
    found = backups.reconcile_platform_backups(kube, tp, owner, spec, observed, now)  # type: ignore[arg-type]
    claim, scheduled = kube.created
    assert claim["kind"] == "PersistentVolumeClaim" and claim["metadata"]["name"] == "demo-backups"
    assert scheduled["metadata"]["name"] == "demo-20260301010000" and scheduled["spec"] == {"platform": "demo"}
    assert scheduled["metadata"]["labels"][backup_specs.SCHEDULED_LABEL] == "true"
    assert found.last_schedule_time == "2026-03-01T01:00:00Z"
    assert found.requeue_after_s is not None and 49 * 60 < found.requeue_after_s <= 50 * 60 + 1
    assert observed.backup is not None and observed.backup.status == "True"

    # The next pass, with the status written: nothing new until 02:00.
    tp["status"] = {"lastScheduleTime": found.last_schedule_time}
    kube.created.clear()
    backups.reconcile_platform_backups(kube, tp, owner, spec, observed, now + timedelta(minutes=5))  # type: ignore[arg-type]
    assert kube.created == []


def test_the_pod_decides_before_the_job_controller_does() -> None:
    """The containers' exit is final (no retries): it is the outcome, a second before the Job's condition."""
    running_job = {"metadata": {"name": "b1-dump"}, "status": {"active": 1}}
    half = _pod(**{DUMP_CONTAINER: (1, "pg_dump: error: boom")})
    half["status"]["containerStatuses"].append({"name": TRANSFER_CONTAINER, "state": {"running": {}}})
    assert backups.outcome(running_job, half) is None  # the other side has not said its part yet
    done = _pod(**{DUMP_CONTAINER: (0, ""), TRANSFER_CONTAINER: (0, '{"sizeBytes": 5, "sha256": "ab"}')})
    assert backups.outcome(running_job, done) == "Complete"
    failed = _pod(**{DUMP_CONTAINER: (1, "pg_dump: error: boom"), TRANSFER_CONTAINER: (1, "{}")})
    assert backups.outcome(running_job, failed) == "Failed"
    assert backups.outcome(_finished_job("Failed"), None) == "Failed"

    kube = FakeKube({("TaskPlatform", "demo"): platform(), ("Job", "b1-dump"): running_job, ("Pod", "p"): half})
    result = reconcile_backup(kube, backup("b1", {"phase": "Running"}))  # type: ignore[arg-type]
    assert not result.finished and result.retry_after_s == backups.JOB_POLL_S
    kube.objects[("Pod", "p")] = done
    assert reconcile_backup(kube, backup("b1", {"phase": "Running"})).finished  # type: ignore[arg-type]
    assert kube.status is not None and (kube.status["phase"], kube.status["sizeBytes"]) == ("Completed", 5)


REFUSED = {
    "error": "checksum mismatch: s3://tp-backups/x.dump has SHA-256 " + "c" * 64 + ", the backup recorded " + "a" * 64
    + "; the object is corrupted or was replaced, and nothing was restored",
    "exitCode": 1,
}  # fmt: skip


def _restore_pod(phase: str, download: Manifest, restore: Manifest) -> Manifest:
    """A restore Job's pod as the kubelet reports it: the download's state among the init containers'."""
    return {
        "kind": "Pod",
        "metadata": {"name": "demo-restore-x", "creationTimestamp": "t"},
        "status": {
            "phase": phase,
            "initContainerStatuses": [{"name": TRANSFER_CONTAINER, "state": download}],
            "containerStatuses": [{"name": RESTORE_CONTAINER, "state": restore}],
        },
    }


@pytest.mark.parametrize("phase", ["Pending", "Failed"])
def test_a_refused_download_fails_the_restore_with_the_dumpstores_reason(phase: str) -> None:
    """The download is an init container: its exit is in initContainerStatuses, and pg_restore's container waits
    (PodInitializing) and never runs. The restore fails at once (before the kubelet turns the pod Failed), with the
    dumpstore's own words as the platform's RestoreFailed reason."""
    refused = {"terminated": {"exitCode": 1, "message": json.dumps(REFUSED)}}
    pod = _restore_pod(phase, refused, {"waiting": {"reason": "PodInitializing"}})
    running_job = {"metadata": {"name": "demo-restore"}, "status": {"active": 1}}
    assert backups.outcome(running_job, pod) == "Failed"
    assert backups.failure_reason(running_job, pod, RESTORE_CONTAINER) == REFUSED["error"]
    kube = FakeKube({("Job", "demo-restore"): running_job, ("Pod", "p"): pod})
    tp = {"metadata": {"name": "demo", "namespace": "apps"}, "status": {}}
    restoring = TaskPlatformSpec.model_validate({"database": {"restoreFrom": {"backup": "b1"}}})
    plan = plan_restore(kube, tp, RESTORING, restoring)  # type: ignore[arg-type]
    assert (plan.observation.status, plan.observation.reason) == ("False", Reason.RESTORE_FAILED)
    assert plan.observation.message.startswith("checksum mismatch") and not plan.restored
    assert plan.problem is not None and plan.problem.reason == Reason.RESTORE_FAILED
    assert plan.problem.message == f"restore: {REFUSED['error']}"


def test_a_restore_runs_until_pg_restore_has_exited_after_the_download() -> None:
    running_job = {"metadata": {"name": "demo-restore"}, "status": {"active": 1}}
    downloading = _restore_pod("Pending", {"running": {}}, {"waiting": {"reason": "PodInitializing"}})
    downloaded = {"terminated": {"exitCode": 0, "message": '{"sizeBytes": 5, "verified": true, "exitCode": 0}'}}
    restoring = _restore_pod("Running", downloaded, {"running": {}})
    assert backups.outcome(running_job, downloading) is None
    assert backups.outcome(running_job, restoring) is None
    done = _restore_pod("Running", downloaded, {"terminated": {"exitCode": 0, "message": ""}})
    assert backups.outcome(running_job, done) == "Complete"
    failed = _restore_pod("Running", downloaded, {"terminated": {"exitCode": 1, "message": "pg_restore: error: x"}})
    assert backups.outcome(running_job, failed) == "Failed"
    assert backups.failure_reason(running_job, failed, RESTORE_CONTAINER) == "pg-restore: pg_restore: error: x"
    assert terminations(done) == {TRANSFER_CONTAINER: (0, downloaded["terminated"]["message"]),
                                         RESTORE_CONTAINER: (0, "")}  # fmt: skip


class RefusingKube(FakeKube):
    """An API server whose admission refuses every create (a policy, a quota)."""

    def create(self, manifest: Manifest) -> Manifest:
        raise KubeError(403, "Forbidden", f"{manifest['kind']} refused by policy no-jobs")


def test_a_refused_scheduled_backup_is_reported_not_retried_silently() -> None:
    """(A refused restore Job: tests/operator/test_platform.py, through the platform's pass that creates it.)"""
    done = {"phase": "Completed", "key": "prod/demo/b1.dump", "sha256": "a" * 64, "s3": S3}
    kube = RefusingKube({("TaskPlatformBackup", "b1"): backup("b1", done)})
    owner = Owner(TASK_PLATFORM, "new", "ns", "u")
    hourly = BackupSpec.model_validate({"schedule": "0 * * * *", "s3": S3})
    tp = {"metadata": {"name": "new", "namespace": "ns", "creationTimestamp": "2026-03-01T00:00:00Z"}, "status": {}}
    observed = PlatformObservation()
    found = backups.reconcile_platform_backups(kube, tp, owner, hourly, observed, T0 + timedelta(hours=2))  # type: ignore[arg-type]
    assert found.last_schedule_time is None  # not recorded as started: the next pass tries again
    assert observed.problems and "TaskPlatformBackup new-20260301020000" in observed.problems[0].message


def test_backup_health_turning_false_is_a_warning_once_per_reason() -> None:
    failed = Observation(ConditionType.BACKUP_HEALTHY, "False", "BackupFailed", "b5: pg_dump: boom")
    healthy = Condition(type="BackupHealthy", status="True", reason="BackupCompleted")
    assert newly_failing([healthy], failed)
    assert newly_failing([], failed)
    same = Condition(type="BackupHealthy", status="False", reason="BackupFailed")
    assert not newly_failing([same], failed)  # the next pass: no second Warning
    overdue = Observation(ConditionType.BACKUP_HEALTHY, "False", "BackupOverdue", "none since 04:00")
    assert newly_failing([same], overdue)
    assert not newly_failing([same], Observation(ConditionType.BACKUP_HEALTHY, "True", "BackupCompleted"))
