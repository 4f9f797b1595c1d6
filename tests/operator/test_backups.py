"""Backups and restores at unit level: the Job builders, the schedule, retention, BackupHealthy, and the
TaskPlatformBackup / restore decisions against a stand-in for the API server. (The real operator runs them
against real pods in tests/e2e/test_backup.py.)"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from taskplatform.operator import backups
from taskplatform.operator.backups import BackupView, backup_health, reconcile_backup, schedule_decision, to_prune
from taskplatform.operator.conditions import ConditionType, Observation, newly_failing, rfc3339
from taskplatform.operator.kinds import TASK_PLATFORM, TASK_PLATFORM_BACKUP, ResourceKind
from taskplatform.operator.kube import KubeError
from taskplatform.operator.models import (
    DEFAULT_COMPRESSION_LEVEL,
    BackupSpec,
    Condition,
    RestoreSource,
    TaskPlatformBackupStatus,
    TaskPlatformSpec,
)
from taskplatform.operator.restore import resolve_source
from taskplatform.operator.specs import backup as backup_specs
from taskplatform.operator.specs.backup import DUMP_CONTAINER, RESTORE_CONTAINER, TRANSFER_CONTAINER, Store
from taskplatform.operator.specs.common import Owner
from taskplatform.operator.specs.database import database_services
from taskplatform.operator.specs.networkpolicy import DATABASE_CLIENTS, database_network_policy
from taskplatform.operator.status import PlatformObservation

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


def test_the_transfer_container_is_created_before_the_database_client() -> None:
    # The kubelet creates containers in order; the uploader's start-up then overlaps the second creation.
    platform_spec = spec({"s3": S3})
    assert platform_spec.database.backup is not None
    store = Store.of(platform_spec.database.backup, "demo")
    owner = Owner(TASK_PLATFORM_BACKUP, "b", "apps", "u-1")
    backup = backup_specs.backup_job(owner, "demo", platform_spec, "k", store, [])
    restoring = backup_specs.restore_job(Owner(TASK_PLATFORM, "demo", "apps", "u-1"), platform_spec, "k", store, None)
    for job, client in ((backup, DUMP_CONTAINER), (restoring, RESTORE_CONTAINER)):
        assert [c["name"] for c in job["spec"]["template"]["spec"]["containers"]] == [TRANSFER_CONTAINER, client]


def test_a_volume_destination_mounts_the_backup_claim_which_outlives_the_platform() -> None:
    platform_spec = spec({"volume": {"size": "5Gi", "storageClassName": "fast"}})
    assert platform_spec.database.backup is not None
    owner = Owner(TASK_PLATFORM, "demo", "apps", "u-1")
    claim = backup_specs.backup_claim(owner, platform_spec.database.backup)
    assert claim is not None and "ownerReferences" not in claim["metadata"]
    assert claim["spec"]["resources"]["requests"]["storage"] == "5Gi" and claim["spec"]["storageClassName"] == "fast"
    job = backup_specs.restore_job(owner, platform_spec, "demo/x.dump", Store(volume_claim="old-backups"), "ab" * 32)
    pod = job["spec"]["template"]["spec"]
    assert {"name": "backups", "persistentVolumeClaim": {"claimName": "old-backups"}} in pod["volumes"]
    transfer = next(c for c in pod["containers"] if c["name"] == TRANSFER_CONTAINER)
    assert transfer["args"][:5] == ["download", "--key", "demo/x.dump", "--sha256", "ab" * 32]
    assert "--dir" in transfer["args"]
    assert job["metadata"]["labels"]["app.kubernetes.io/component"] == "restore"


def test_backup_and_restore_jobs_may_reach_the_database() -> None:
    policy = database_network_policy(Owner(TASK_PLATFORM, "demo", "apps", "u"))
    allowed = policy["spec"]["ingress"][0]["from"][0]["podSelector"]["matchExpressions"][0]["values"]
    assert {"backup", "restore"} <= set(allowed)


def test_dump_keys_nest_under_the_prefix_and_platform() -> None:
    assert backup_specs.dump_key("prod/", "demo", "b1") == "prod/demo/b1.dump"
    assert backup_specs.dump_key("", "demo", "b1") == "demo/b1.dump"


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


def test_retention_prunes_the_oldest_completed_in_the_same_store_beyond_the_count() -> None:
    here = Store(volume_claim="demo-backups")
    found = [
        view("a", "Completed", 1, volumeClaim="demo-backups"),
        view("b", "Failed", 2, volumeClaim="demo-backups"),
        view("c", "Completed", 3, volumeClaim="demo-backups"),
        view("elsewhere", "Completed", 3, s3=S3),  # before the destination changed: another store
        view("d", "Completed", 4, volumeClaim="demo-backups"),
    ]
    assert [b.name for b in to_prune(found, 3, here)] == ["a"]  # a, c, d + the new one = 4 > 3
    assert [b.name for b in to_prune(found, 1, here)] == ["a", "c", "d"]
    assert to_prune(found, 4, here) == []


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
        "metadata": {"name": "demo", "namespace": "ns", "creationTimestamp": "2026-03-01T00:00:00Z"},
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
    assert (kube.status["phase"], kube.status["key"], kube.status["s3"]["bucket"]) == (
        "Running", "prod/demo/b1.dump", "tp-backups",
    )  # fmt: skip


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
    done = {"phase": "Completed", "key": "prod/demo/b1.dump", "sha256": "a" * 64, "s3": S3}
    kube = FakeKube({
        ("TaskPlatformBackup", "b1"): backup("b1", done),
        ("TaskPlatformBackup", "b2"): backup("b2", {"phase": "Failed"}),
    })  # fmt: skip
    store, key, sha = resolve_source(kube, "ns", RestoreSource(backup="b1"))  # type: ignore[arg-type,misc]
    assert store.s3 is not None and store.s3.bucket == "tp-backups" and key == "prod/demo/b1.dump" and sha == "a" * 64
    assert "has not completed" in str(resolve_source(kube, "ns", RestoreSource(backup="b2")))  # type: ignore[arg-type]
    assert "does not exist" in str(resolve_source(kube, "ns", RestoreSource(backup="gone")))  # type: ignore[arg-type]
    source = RestoreSource.model_validate({"volume": {"claimName": "old-backups", "path": "old/b.dump"}})
    assert resolve_source(kube, "ns", source) == (Store(volume_claim="old-backups"), "old/b.dump", None)  # type: ignore[arg-type]


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
