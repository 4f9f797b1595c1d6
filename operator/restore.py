"""Restore a new TaskPlatform's database from a dump (spec.database.restoreFrom), before anything uses it.

Order: the database starts empty (the StatefulSet, as always) → the restore Job (pg_restore in one transaction
from the dump, its checksum verified) → only then the schema Job, which upgrades an older backup's schema to
the API image's → only then the API. A restore that fails leaves the TaskPlatform Degraded (RestoreFailed,
with the reason) and no API pod ever serves the empty database. Once DatabaseRestored is True it stays so:
the Job may be gone (its TTL) and is never run twice.
"""

from __future__ import annotations

from taskplatform.operator import backups, conditions, status
from taskplatform.operator.conditions import ConditionType, Event, EventReason, Observation, Reason
from taskplatform.operator.kinds import JOB, TASK_PLATFORM_BACKUP, Manifest
from taskplatform.operator.kube import Kube, newest_job_pod
from taskplatform.operator.models import RestoreSource, S3Location, TaskPlatformBackupStatus, TaskPlatformSpec
from taskplatform.operator.specs.backup import RESTORE_CONTAINER, Store, restore_job, restore_job_name
from taskplatform.operator.specs.common import Owner


def _restored(message: str) -> Observation:
    return Observation(ConditionType.DATABASE_RESTORED, "True", Reason.RESTORED, message)


def resolve_source(kube: Kube, namespace: str, source: RestoreSource) -> tuple[Store, str, str | None] | str:
    """The store, key and expected checksum of the dump to restore; or why it cannot be used (a message)."""
    if source.backup is not None:
        backup = kube.get(TASK_PLATFORM_BACKUP, namespace, source.backup)
        if backup is None:
            return f"{TASK_PLATFORM_BACKUP.named(source.backup)} does not exist"
        recorded = TaskPlatformBackupStatus.model_validate(backup.get("status") or {})
        if recorded.phase != "Completed" or not recorded.key:
            return (
                f"{TASK_PLATFORM_BACKUP.named(source.backup)} has not completed (phase {recorded.phase or 'Pending'})"
            )
        return Store(s3=recorded.s3, volume_claim=recorded.volume_claim), recorded.key, recorded.sha256
    if source.s3 is not None:
        location = S3Location.model_validate(source.s3.model_dump(exclude={"key"}))
        return Store(s3=location), source.s3.key, source.sha256
    if source.volume is not None:
        return Store(volume_claim=source.volume.claim_name), source.volume.path, source.sha256
    return "restoreFrom names no source"


def reconcile_restore(
    kube: Kube,
    platform: Manifest,
    owner: Owner,
    spec: TaskPlatformSpec,
    observed: status.PlatformObservation,
    events: list[Event],
) -> bool:
    """Drive the restore one step; True once the database holds the dump (then the schema Job may run)."""
    source = spec.database.restore_from
    assert source is not None
    previous = conditions.find(
        conditions.parse((platform.get("status") or {}).get("conditions")), ConditionType.DATABASE_RESTORED
    )
    if previous is not None and previous.status == "True":
        observed.restore = _restored(previous.message)
        return True
    job_name = restore_job_name(owner.name)
    restoring = Observation(
        ConditionType.DATABASE_RESTORED, "False", Reason.RESTORING, f"{JOB.named(job_name)} is restoring the database"
    )
    job = kube.get(JOB, owner.namespace, job_name)
    if job is None:
        resolved = resolve_source(kube, owner.namespace, source)
        if isinstance(resolved, str):
            observed.restore = Observation(
                ConditionType.DATABASE_RESTORED, "False", Reason.RESTORE_SOURCE_INVALID, resolved
            )
            observed.problems.append(
                Observation(ConditionType.DEGRADED, "True", Reason.RESTORE_SOURCE_INVALID, resolved)
            )
            return False
        store, key, sha256 = resolved
        manifest = restore_job(owner, spec, key, store, sha256)
        refusal = backups.create_or_report(kube, manifest, JOB.named(job_name), observed)
        if refusal is not None:
            observed.restore = Observation(ConditionType.DATABASE_RESTORED, "False", Reason.APPLY_FAILED, refusal)
            return False
        events.append(Event("Normal", EventReason.RESTORE_STARTED, f"{JOB.named(job_name)} restores {key}"))
        observed.restore = restoring  # just created: nothing has run yet
        return False
    pod = newest_job_pod(kube, owner.namespace, job_name)
    outcome = backups.outcome(job, pod)
    if outcome == "Complete":
        observed.restore = _restored(f"restored by Job {job_name}")
        return True
    if outcome == "Failed":
        reason = backups.failure_reason(job, pod, RESTORE_CONTAINER)
        observed.restore = Observation(ConditionType.DATABASE_RESTORED, "False", Reason.RESTORE_FAILED, reason)
        observed.problems.append(
            Observation(ConditionType.DEGRADED, "True", Reason.RESTORE_FAILED, f"restore: {reason}")
        )
        return False
    observed.restore = restoring
    return False
