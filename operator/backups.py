"""Backups: reconcile one TaskPlatformBackup (start its Job once, report what the Job reports), and the
platform's side of them (the schedule, retention, BackupHealthy), as pure functions the platform pass calls.

A TaskPlatformBackup is not owned by its TaskPlatform: a backup must outlive what it backs up, so deleting a
TaskPlatform keeps its backups and their dumps (as CloudNativePG's Backups do). One backup Job runs at a time
per platform; a backup created meanwhile waits Pending. Retention is applied by the Job of each new backup,
only after its own dump is stored: it deletes the platform's own dumps beyond `retention` (specs/backup.py
DumpKeys: its namespace, its uid), and the operator then deletes their TaskPlatformBackups.

RBAC this needs: taskplatformbackups get/list/watch/create/delete, taskplatformbackups/status patch;
taskplatforms get; jobs get/list/watch/create; pods list/watch (handlers.py watches the backup and restore
pods); persistentvolumeclaims create; events create.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from cronsim import CronSim, CronSimError

from taskplatform.operator import conditions, status
from taskplatform.operator.conditions import (
    ConditionType,
    Event,
    EventReason,
    Observation,
    Reason,
    newly_true,
    now_rfc3339,
    rfc3339,
)
from taskplatform.operator.kinds import JOB, PERSISTENT_VOLUME_CLAIM, TASK_PLATFORM, TASK_PLATFORM_BACKUP, Manifest
from taskplatform.operator.kube import Kube, KubeError, newest_job_pod
from taskplatform.operator.models import (
    CRON_MACROS,
    BackupSpec,
    TaskPlatformBackupSpec,
    TaskPlatformBackupStatus,
    TaskPlatformSpec,
    TaskPlatformStatus,
)
from taskplatform.operator.specs.backup import (
    DUMP_CONTAINER,
    SCHEDULED_LABEL,
    TRANSFER_CONTAINER,
    DumpKeys,
    Store,
    backup_claim,
    backup_job,
    backup_job_name,
    scheduled_backup,
)
from taskplatform.operator.specs.common import Owner
from taskplatform.operator.status import status_changed, status_patch

WAIT_S = 10.0  # a Pending backup looks again this often
# A running backup or restore looks at its pod this often: the containers' exit is final (no retries), and
# seeing it at once saves the Job controller's lag in marking the Job complete.
JOB_POLL_S = 1.0
# A scheduled backup is overdue when none completed within this long after its scheduled time.
OVERDUE_GRACE = timedelta(hours=1)
# Missed schedule times are not made up one by one: only the most recent runs (as a CronJob does).
SCHEDULE_LOOKBACK = timedelta(days=7)
FINISHED = ("Completed", "Failed")


def parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


@dataclass(frozen=True, slots=True)
class BackupView:
    """What the platform's logic needs of one TaskPlatformBackup."""

    name: str
    created: datetime
    status: TaskPlatformBackupStatus
    scheduled: bool

    @staticmethod
    def of(obj: Manifest) -> BackupView:
        meta = obj["metadata"]
        return BackupView(
            meta["name"],
            parse_time(meta.get("creationTimestamp")) or datetime.now(UTC),
            TaskPlatformBackupStatus.model_validate(obj.get("status") or {}),
            (meta.get("labels") or {}).get(SCHEDULED_LABEL) == "true",
        )

    @property
    def phase(self) -> str:
        return self.status.phase or "Pending"


def backups_of(kube: Kube, namespace: str, platform: str) -> list[BackupView]:
    """The platform's backups, oldest first (on-demand ones carry no label: they are matched by spec)."""
    found = [
        BackupView.of(obj)
        for obj in kube.list(TASK_PLATFORM_BACKUP, namespace, "")
        if (obj.get("spec") or {}).get("platform") == platform
    ]
    return sorted(found, key=lambda b: (b.created, b.name))


# --- the schedule --------------------------------------------------------------------------------------------


def cron_expression(schedule: str) -> str:
    return CRON_MACROS.get(schedule, schedule)


def schedule_error(schedule: str) -> str | None:
    try:
        CronSim(cron_expression(schedule), datetime(2000, 1, 1, tzinfo=UTC))
    except CronSimError as exc:
        return f"schedule {schedule!r} is not a valid cron expression: {exc}"
    return None


@dataclass(frozen=True, slots=True)
class ScheduleDecision:
    due: datetime | None  # the schedule time to start a backup for now, if any
    next_time: datetime  # the next schedule time after now


def schedule_decision(
    schedule: str, last_schedule: datetime | None, created: datetime, now: datetime
) -> ScheduleDecision:
    """Whether a scheduled backup is due: the most recent schedule time after the last one started (or after
    the platform's creation) and not after now. Older missed times are skipped."""
    start = max(last_schedule or created, now - SCHEDULE_LOOKBACK)
    due = None
    for moment in CronSim(cron_expression(schedule), start):
        if moment > now:
            return ScheduleDecision(due, moment)
        due = moment
    raise AssertionError("unreachable: a cron iteration is endless")


# --- retention and health ------------------------------------------------------------------------------------


def to_prune(backups: list[BackupView], retention: int, store: Store, keys: DumpKeys) -> list[BackupView]:
    """The completed backups in `store` (oldest first) that fall beyond `retention` once one more completes
    there. Only the platform's own dumps are counted or deleted (`keys`): not those kept in another store (the
    destination changed since; the Job can reach only its own store), nor those of an earlier platform of the same
    name (another uid), nor a key that is not where this platform puts its dumps."""
    completed = [
        b
        for b in backups
        if b.phase == "Completed"
        and b.status.key
        and Store(b.status.s3, b.status.volume_claim) == store
        and keys.owns(b.name, b.status.key)
    ]
    keep = max(retention - 1, 0)
    return completed[: max(len(completed) - keep, 0)]


def backup_health(backup: BackupSpec, backups: list[BackupView], created: datetime, now: datetime) -> Observation:
    """BackupHealthy: False when the last scheduled backup failed, or one is overdue; the reason says which."""
    if backup.schedule and (problem := schedule_error(backup.schedule)):
        return Observation(ConditionType.BACKUP_HEALTHY, "False", Reason.SCHEDULE_INVALID, problem)
    finished = [b for b in backups if b.phase in FINISHED]
    scheduled = [b for b in finished if b.scheduled]
    if scheduled and scheduled[-1].phase == "Failed":
        last = scheduled[-1]
        return Observation(
            ConditionType.BACKUP_HEALTHY,
            "False",
            Reason.BACKUP_FAILED,
            f"{last.name}: {last.status.message or 'failed'}",
        )
    completed = [b for b in finished if b.phase == "Completed"]
    last_success = parse_time(completed[-1].status.completion_time) if completed else None
    if backup.schedule:
        # The latest schedule time that is more than the grace period ago must have a completed backup after it.
        decision = schedule_decision(backup.schedule, None, created, now - OVERDUE_GRACE)
        expected = decision.due
        if expected is not None and (last_success is None or last_success < expected):
            return Observation(
                ConditionType.BACKUP_HEALTHY,
                "False",
                Reason.BACKUP_OVERDUE,
                f"no backup completed since the one scheduled at {rfc3339(expected)}",
            )
    if completed:
        return Observation(
            ConditionType.BACKUP_HEALTHY,
            "True",
            Reason.BACKUP_COMPLETED,
            f"last completed backup {completed[-1].name} at {completed[-1].status.completion_time}",
        )
    return Observation(
        ConditionType.BACKUP_HEALTHY, "True", Reason.NO_BACKUP_DUE, "no backup has completed yet; none is due"
    )


# --- one TaskPlatformBackup ----------------------------------------------------------------------------------


@dataclass(slots=True)
class BackupResult:
    events: list[Event] = field(default_factory=list)
    finished: bool = False
    retry_after_s: float | None = None
    platform: str | None = None  # its platform's status changes (last backup, health): reconcile it


def outcome(job: Manifest | None, pod: Manifest | None) -> str | None:
    """'Complete', 'Failed', or None while it runs: the Job's condition, or sooner its one pod's containers
    (the Jobs run one pod and never retry it, so every container having exited is the end, and so is an init
    container's failure: the containers after it never start)."""
    decided = status.job_outcome(job)
    if decided is not None or pod is None:
        return decided
    pod_status = pod.get("status") or {}
    phase = pod_status.get("phase")
    if phase in ("Succeeded", "Failed"):
        return "Complete" if phase == "Succeeded" else "Failed"
    exited = status.terminations(pod)
    initializing = [c["name"] for c in pod_status.get("initContainerStatuses") or []]
    if any(exited.get(name, (0, ""))[0] != 0 for name in initializing):
        return "Failed"
    containers = pod_status.get("containerStatuses") or []
    if not containers or any(c["name"] not in exited for c in containers):
        return None
    return "Complete" if all(code == 0 for code, _ in exited.values()) else "Failed"


def _summary(message: str) -> dict[str, Any]:
    try:
        value = json.loads(message)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def failure_reason(job: Manifest, pod: Manifest | None, database_container: str) -> str:
    """Why a backup or restore Job failed, in the words of whichever side failed first."""
    found = status.terminations(pod)
    transfer_code, transfer_message = found.get(TRANSFER_CONTAINER, (None, ""))
    database_code, database_message = found.get(database_container, (None, ""))
    transfer_error = _summary(transfer_message).get("error") or (transfer_message.splitlines() or [""])[-1]
    # The transfer side knows about stores and checksums; pg_dump/pg_restore about the database. A store
    # failure breaks the pipe under pg_dump, so the transfer's reason comes first when both failed.
    if transfer_code and transfer_error:
        return str(transfer_error)[:1000]
    if database_code and database_message:
        return f"{database_container}: {database_message.splitlines()[-1][:1000]}"
    job_conditions: list[dict[str, Any]] = (job.get("status") or {}).get("conditions") or []
    failed = next((c for c in job_conditions if c.get("type") == "Failed"), {})
    return str(failed.get("message") or failed.get("reason") or "the Job failed")


# Each condition type and the phase in which it holds.
_PHASE_OF_CONDITION = {
    ConditionType.RUNNING: "Running",
    ConditionType.SUCCEEDED: "Completed",
    ConditionType.FAILED: "Failed",
}


def _observations(phase: str, reason: str, message: str = "") -> list[Observation]:
    """Running, Succeeded, Failed: the one matching the phase holds and carries the message."""
    return [
        Observation(type_, "True" if phase == held else "False", reason, message if phase == held else "")
        for type_, held in _PHASE_OF_CONDITION.items()
    ]


def reconcile_backup(kube: Kube, backup: Manifest, now: datetime | None = None) -> BackupResult:
    meta = backup["metadata"]
    namespace, name = meta["namespace"], meta["name"]
    raw_status = backup.get("status") or {}
    previous = TaskPlatformBackupStatus.model_validate(raw_status)
    result = BackupResult()
    if meta.get("deletionTimestamp") or previous.phase in FINISHED:
        result.finished = True
        return result
    spec = TaskPlatformBackupSpec.model_validate(backup.get("spec") or {})
    new_status = previous.model_copy(deep=True)
    new_status.observed_generation = meta.get("generation")
    job_name = backup_job_name(name)
    job = kube.get(JOB, namespace, job_name)
    if job is None:
        _start(kube, backup, spec, new_status, result, now or datetime.now(UTC))
    else:
        _observe(kube, job, new_status, result, namespace, spec.platform)
    phase = new_status.phase or "Pending"
    reasons = {
        "Pending": Reason.PENDING,
        "Running": Reason.JOB_RUNNING,
        "Completed": Reason.COMPLETED,
        "Failed": Reason.BACKUP_FAILED,
    }
    observations = _observations(phase, reasons[phase], new_status.message or "")
    conditions_before = conditions.parse(raw_status.get("conditions"))
    new_status.conditions = conditions.merge(conditions_before, observations, meta.get("generation"), now_rfc3339())
    for observation in newly_true(conditions_before, observations):
        if observation.type == ConditionType.FAILED:
            result.events.append(Event("Warning", Reason.BACKUP_FAILED, observation.message))
        elif observation.type == ConditionType.SUCCEEDED:
            result.events.append(Event("Normal", Reason.BACKUP_COMPLETED, new_status.location or name))
    if phase in FINISHED:
        result.finished = True
        result.platform = spec.platform
    if status_changed(previous, new_status):
        kube.patch_status(TASK_PLATFORM_BACKUP, namespace, name, status_patch(new_status))
    return result


def _fail(new_status: TaskPlatformBackupStatus, message: str) -> None:
    new_status.phase, new_status.message = "Failed", message
    new_status.completion_time = now_rfc3339()


def _start(
    kube: Kube,
    backup: Manifest,
    spec: TaskPlatformBackupSpec,
    new_status: TaskPlatformBackupStatus,
    result: BackupResult,
    now: datetime,
) -> None:
    meta = backup["metadata"]
    namespace, name = meta["namespace"], meta["name"]
    platform = kube.get(TASK_PLATFORM, namespace, spec.platform)
    if platform is None:
        return _fail(new_status, f"{TASK_PLATFORM.named(spec.platform)} does not exist")
    platform_spec = TaskPlatformSpec.model_validate(platform.get("spec") or {})
    backup_spec = platform_spec.database.backup
    if backup_spec is None:
        return _fail(new_status, f"{TASK_PLATFORM.named(spec.platform)} has no spec.database.backup (no destination)")
    platform_conditions = conditions.parse((platform.get("status") or {}).get("conditions"))
    new_status.phase, new_status.scheduled = "Pending", (meta.get("labels") or {}).get(SCHEDULED_LABEL) == "true"
    if not conditions.is_true(platform_conditions, ConditionType.DATABASE_READY):
        new_status.message = f"waiting for {TASK_PLATFORM.named(spec.platform)}'s database to be ready"
        result.retry_after_s = WAIT_S
        return None
    others = [b for b in backups_of(kube, namespace, spec.platform) if b.name != name]
    running = [b.name for b in others if b.phase == "Running"]
    if running:
        new_status.message = f"waiting for backup {running[0]} to finish (one at a time per platform)"
        result.retry_after_s = WAIT_S
        return None
    store = Store.of(backup_spec, spec.platform)
    keys = DumpKeys(store.prefix, namespace, spec.platform, platform["metadata"]["uid"])
    key = keys.key(name)
    prune = [str(b.status.key) for b in to_prune(others, backup_spec.retention, store, keys)]
    owner = Owner(TASK_PLATFORM_BACKUP, name, namespace, meta["uid"])
    kube.create(backup_job(owner, spec.platform, platform_spec, key, store, prune))
    new_status.phase, new_status.message = "Running", f"{JOB.named(backup_job_name(name))} is dumping the database"
    new_status.job_name, new_status.key = backup_job_name(name), key
    new_status.s3, new_status.volume_claim = store.s3, store.volume_claim
    new_status.start_time = rfc3339(now)
    result.events.append(Event("Normal", EventReason.BACKUP_STARTED, JOB.named(backup_job_name(name))))
    return None


def _observe(
    kube: Kube, job: Manifest, new_status: TaskPlatformBackupStatus, result: BackupResult, namespace: str, platform: str
) -> None:
    pod = newest_job_pod(kube, namespace, job["metadata"]["name"])
    finished = outcome(job, pod)
    if finished is None:
        new_status.phase = "Running"
        result.retry_after_s = JOB_POLL_S
        return
    new_status.completion_time = (job.get("status") or {}).get("completionTime") or now_rfc3339()
    if finished != "Complete":
        new_status.phase = "Failed"
        new_status.message = failure_reason(job, pod, DUMP_CONTAINER)
        return
    summary = _summary(status.terminations(pod).get(TRANSFER_CONTAINER, (None, ""))[1])
    new_status.phase, new_status.message = "Completed", None
    new_status.size_bytes = summary.get("sizeBytes")
    new_status.sha256 = summary.get("sha256")
    new_status.location = summary.get("location")
    pruned = set(summary.get("pruned") or [])
    for old in backups_of(kube, namespace, platform):
        if old.status.key in pruned and old.status.key != new_status.key:
            kube.delete(TASK_PLATFORM_BACKUP, namespace, old.name)
            result.events.append(
                Event("Normal", EventReason.BACKUP_PRUNED, f"{old.name} ({old.status.location}) beyond retention")
            )


# --- the platform's side -------------------------------------------------------------------------------------


@dataclass(slots=True)
class PlatformBackups:
    """What a TaskPlatform's pass found about its backups, for its status."""

    last_backup: str | None = None
    last_successful_backup: str | None = None
    last_successful_backup_time: str | None = None
    last_schedule_time: str | None = None
    requeue_after_s: float | None = None  # when the next scheduled backup is due

    def fill(self, new_status: TaskPlatformStatus, previous: TaskPlatformStatus) -> None:
        new_status.last_backup = self.last_backup or previous.last_backup
        new_status.last_successful_backup = self.last_successful_backup or previous.last_successful_backup
        new_status.last_successful_backup_time = (
            self.last_successful_backup_time or previous.last_successful_backup_time
        )
        new_status.last_schedule_time = self.last_schedule_time or previous.last_schedule_time


def create_or_report(kube: Kube, manifest: Manifest, what: str, observed: status.PlatformObservation) -> str | None:
    """Create; a refusal (a policy, a quota) becomes Degraded ApplyFailed naming it, never a silent wait.
    None once created (or already there), else the refusal's message."""
    try:
        kube.create(manifest)
    except KubeError as exc:
        if exc.transient:
            raise
        refusal = f"{what}: {exc.message}"
        observed.problems.append(Observation(ConditionType.DEGRADED, "True", Reason.APPLY_FAILED, refusal))
        return refusal
    return None


def reconcile_platform_backups(
    kube: Kube,
    platform: Manifest,
    owner: Owner,
    backup: BackupSpec,
    observed: status.PlatformObservation,
    now: datetime | None = None,
) -> PlatformBackups:
    """The backup volume, the schedule (a TaskPlatformBackup when one is due) and BackupHealthy."""
    now = now or datetime.now(UTC)
    meta = platform["metadata"]
    claim = backup_claim(owner, backup)
    if claim is not None and kube.get(PERSISTENT_VOLUME_CLAIM, owner.namespace, claim["metadata"]["name"]) is None:
        # Created once: a claim's spec is mostly immutable, and once made it is the user's data, not a child.
        create_or_report(kube, claim, f"backup volume {claim['metadata']['name']}", observed)
    found = PlatformBackups()
    previous = TaskPlatformStatus.model_validate(platform.get("status") or {})
    created = parse_time(meta.get("creationTimestamp")) or now
    if backup.schedule and schedule_error(backup.schedule) is None:
        last_schedule = parse_time(previous.last_schedule_time)
        decision = schedule_decision(backup.schedule, last_schedule, created, now)
        if decision.due is not None:
            due = scheduled_backup(owner, decision.due)  # already there when a pass repeats: create says so
            if create_or_report(kube, due, TASK_PLATFORM_BACKUP.named(due["metadata"]["name"]), observed) is None:
                found.last_schedule_time = rfc3339(decision.due)
        found.requeue_after_s = max((decision.next_time - now).total_seconds(), 0.0) + 1.0
    views = backups_of(kube, owner.namespace, owner.name)
    completed = [b for b in views if b.phase == "Completed"]
    if views:
        found.last_backup = views[-1].name
    if completed:
        found.last_successful_backup = completed[-1].name
        found.last_successful_backup_time = completed[-1].status.completion_time
    observed.backup = backup_health(backup, views, created, now)
    return found
