"""Restore a new TaskPlatform's database from a dump (spec.database.restoreFrom), before anything uses it.

Order: the database starts empty (the StatefulSet, as always) → the restore Job (the whole dump downloaded onto
its scratch volume and verified, then pg_restore of that file) → only then the schema Job, which upgrades an older
backup's schema to the API image's → only then the API. A restore that fails leaves the TaskPlatform Degraded
(RestoreFailed, with the reason) and no API pod ever serves the database. Once DatabaseRestored is True it stays
so: the Job may be gone (its TTL) and is never run twice.

This module reads where the restore stands (plan_restore); the platform's pass creates the restore Job with its
other children (specs/children.py), in that order.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from kubernetes.utils.quantity import parse_quantity

from taskplatform.migration.dumpstore import DUMP_MAX_BYTES
from taskplatform.operator import backups, conditions
from taskplatform.operator.conditions import ConditionType, Event, EventReason, Observation, Reason
from taskplatform.operator.kinds import JOB, TASK_PLATFORM_BACKUP, Manifest
from taskplatform.operator.kube import Kube, newest_job_pod
from taskplatform.operator.models import (
    DEFAULT_RESTORE_SIZE,
    RestoreSource,
    S3Location,
    TaskPlatformBackupStatus,
    TaskPlatformSpec,
)
from taskplatform.operator.specs.backup import RESTORE_CONTAINER, Dump, Store, restore_job_name
from taskplatform.operator.specs.common import Owner


def _restored(message: str) -> Observation:
    return Observation(ConditionType.DATABASE_RESTORED, "True", Reason.RESTORED, message)


def _restoring(job_name: str) -> Observation:
    message = f"{JOB.named(job_name)} is restoring the database"
    return Observation(ConditionType.DATABASE_RESTORED, "False", Reason.RESTORING, message)


def dump_bound(source: RestoreSource) -> int | str:
    """The most a volume or s3 source's dump may have, in bytes (restoreFrom.size, else DEFAULT_RESTORE_SIZE); or
    why restoreFrom.size cannot be one."""
    size = source.size or DEFAULT_RESTORE_SIZE
    bound = math.ceil(parse_quantity(size))  # type: ignore[no-untyped-call]
    if not 0 < bound <= DUMP_MAX_BYTES:
        return f"restoreFrom.size {size} is not between 1 byte and {DUMP_MAX_BYTES} bytes"
    return int(bound)


def resolve_source(kube: Kube, namespace: str, source: RestoreSource) -> Dump | str:
    """The store, key, expected checksum and size bound of the dump to restore; or why it cannot be used (a
    message). A backup's are recorded in its status: the checksum and size of the dump it wrote."""
    if source.backup is not None:
        backup = kube.get(TASK_PLATFORM_BACKUP, namespace, source.backup)
        if backup is None:
            return f"{TASK_PLATFORM_BACKUP.named(source.backup)} does not exist"
        recorded = TaskPlatformBackupStatus.model_validate(backup.get("status") or {})
        if recorded.phase != "Completed" or not recorded.key:
            return (
                f"{TASK_PLATFORM_BACKUP.named(source.backup)} has not completed (phase {recorded.phase or 'Pending'})"
            )
        if not recorded.sha256 or not recorded.size_bytes:
            return f"{TASK_PLATFORM_BACKUP.named(source.backup)} recorded no checksum and size of its dump"
        store = Store(s3=recorded.s3, volume_claim=recorded.volume_claim)
        return Dump(store, recorded.key, recorded.sha256, recorded.size_bytes)
    bound = dump_bound(source)
    if isinstance(bound, str):
        return bound
    if source.s3 is not None:
        location = S3Location.model_validate(source.s3.model_dump(exclude={"key"}))
        return Dump(Store(s3=location), source.s3.key, source.sha256, bound, source.allow_unverified)
    if source.volume is not None:
        store = Store(volume_claim=source.volume.claim_name)
        return Dump(store, source.volume.path, source.sha256, bound, source.allow_unverified)
    return "restoreFrom names no source"


@dataclass(frozen=True, slots=True)
class RestorePlan:
    """Where a new platform's restore stands before the pass writes anything (reads only)."""

    restored: bool  # the database holds the dump: the schema Job may run
    observation: Observation  # DatabaseRestored as it stands
    dump: Dump | None = None  # to restore now: the pass creates the restore Job (specs/children.py)
    problem: Observation | None = None  # Degraded: the source cannot be used, or the restore failed


def plan_restore(kube: Kube, platform: Manifest, owner: Owner, spec: TaskPlatformSpec) -> RestorePlan:
    """The restore's next step: nothing to do (restored), the dump to restore (no Job yet), or the Job's outcome."""
    source = spec.database.restore_from
    assert source is not None
    previous = conditions.find(
        conditions.parse((platform.get("status") or {}).get("conditions")), ConditionType.DATABASE_RESTORED
    )
    if previous is not None and previous.status == "True":
        return RestorePlan(True, _restored(previous.message))
    job_name = restore_job_name(owner.name)
    job = kube.get(JOB, owner.namespace, job_name)
    if job is None:
        resolved = resolve_source(kube, owner.namespace, source)
        if isinstance(resolved, str):
            return RestorePlan(
                False,
                Observation(ConditionType.DATABASE_RESTORED, "False", Reason.RESTORE_SOURCE_INVALID, resolved),
                problem=Observation(ConditionType.DEGRADED, "True", Reason.RESTORE_SOURCE_INVALID, resolved),
            )
        return RestorePlan(False, _restoring(job_name), dump=resolved)
    pod = newest_job_pod(kube, owner.namespace, job_name)
    outcome = backups.outcome(job, pod)
    if outcome == "Complete":
        return RestorePlan(True, _restored(f"restored by {JOB.named(job_name)}"))
    if outcome == "Failed":
        reason = backups.failure_reason(job, pod, RESTORE_CONTAINER)
        return RestorePlan(
            False,
            Observation(ConditionType.DATABASE_RESTORED, "False", Reason.RESTORE_FAILED, reason),
            problem=Observation(ConditionType.DEGRADED, "True", Reason.RESTORE_FAILED, f"restore: {reason}"),
        )
    return RestorePlan(False, _restoring(job_name))


def job_created(owner: Owner, dump: Dump, refusal: str | None) -> tuple[Observation, list[Event]]:
    """DatabaseRestored, and the event, once the pass has created the restore Job; or the API server's refusal
    (which the pass reports as Degraded ApplyFailed too)."""
    job_name = restore_job_name(owner.name)
    if refusal is not None:
        return Observation(ConditionType.DATABASE_RESTORED, "False", Reason.APPLY_FAILED, refusal), []
    started = Event("Normal", EventReason.RESTORE_STARTED, f"{JOB.named(job_name)} restores {dump.key}")
    return _restoring(job_name), [started]  # just created: nothing has run yet
