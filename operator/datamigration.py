"""Reconcile one DataMigration: wait for its TaskPlatform, start the Job once, report what the Job reports.

Progress comes from the running pod's last JSON progress line (`taskplatform-migrate --progress json`); the
final counts and the failure reason from the container's termination message (the CLI writes its outcome to
/dev/termination-log). A finished DataMigration is left alone: re-running means a new resource.

The Job's NetworkPolicy (its egress: the platform's database, DNS, the source) is written by this pass, before the
Job and again on every pass while the Job runs, and owned by the DataMigration: its source is the DataMigration's
(spec.sourceEgress), and two DataMigrations into one platform may read different sources.

RBAC this needs: datamigrations get/list/watch/patch, datamigrations/status patch; taskplatforms get;
jobs get/list/watch/create; networkpolicies patch (server-side apply); pods list, pods/log get; events create.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from taskplatform.operator import conditions, status
from taskplatform.operator.conditions import (
    ConditionType,
    Event,
    EventReason,
    Observation,
    Reason,
    is_true,
    newly_true,
    now_rfc3339,
)
from taskplatform.operator.kinds import DATA_MIGRATION, JOB, TASK_PLATFORM, Manifest
from taskplatform.operator.kube import Kube, KubeError, newest_job_pod
from taskplatform.operator.models import DataMigrationSpec, DataMigrationStatus, TaskPlatformSpec
from taskplatform.operator.specs.common import Owner
from taskplatform.operator.specs.datamigration import data_migration_job, data_migration_job_name
from taskplatform.operator.specs.networkpolicy import data_migration_network_policy
from taskplatform.operator.status import status_changed, status_patch

LOG_TAIL_LINES = 20


@dataclass(slots=True)
class MigrationResult:
    events: list[Event] = field(default_factory=list)
    finished: bool = False
    retry_after_s: float | None = None  # waiting for something no watch event announces


def _waiting(reason: Reason, message: str) -> list[Observation]:
    return [
        Observation(ConditionType.RUNNING, "False", reason, message),
        Observation(ConditionType.SUCCEEDED, "False", reason),
        Observation(ConditionType.FAILED, "False", reason),
    ]


def reconcile_migration(kube: Kube, migration: Manifest) -> MigrationResult:
    meta = migration["metadata"]
    namespace, name = meta["namespace"], meta["name"]
    previous = DataMigrationStatus.model_validate(migration.get("status") or {})
    conditions_before = conditions.parse((migration.get("status") or {}).get("conditions"))
    result = MigrationResult()
    finished = is_true(conditions_before, ConditionType.SUCCEEDED) or is_true(conditions_before, ConditionType.FAILED)
    if meta.get("deletionTimestamp") or finished:
        result.finished = True
        return result
    spec = DataMigrationSpec.model_validate(migration.get("spec") or {})
    job_name = data_migration_job_name(name)
    new_status = DataMigrationStatus(observed_generation=meta.get("generation"))

    owner = Owner(DATA_MIGRATION, name, namespace, meta["uid"])
    job = kube.get(JOB, namespace, job_name)
    if job is None:
        platform = kube.get(TASK_PLATFORM, namespace, spec.target)
        platform_conditions = conditions.parse((platform or {}).get("status", {}).get("conditions"))
        if platform is None:
            observations = _waiting(Reason.TARGET_NOT_FOUND, f"{TASK_PLATFORM.named(spec.target)} does not exist")
            result.retry_after_s = 10
        elif not is_true(platform_conditions, ConditionType.READY):
            observations = _waiting(Reason.WAITING_FOR_TARGET, f"{TASK_PLATFORM.named(spec.target)} is not Ready yet")
            result.retry_after_s = 5
        else:
            platform_spec = TaskPlatformSpec.model_validate(platform.get("spec") or {})
            # Its NetworkPolicy first: under the platform's default deny the pod could otherwise reach nothing.
            kube.apply(data_migration_network_policy(owner, spec))
            job = kube.create(data_migration_job(owner, spec, platform_spec)) or kube.get(JOB, namespace, job_name)
            if job is None:
                # It existed a moment ago (create said so) and is gone now: being deleted. Look again soon.
                observations = _waiting(Reason.CREATING_JOB, f"{JOB.named(job_name)} is being replaced")
                result.retry_after_s = 2
            else:
                result.events.append(Event("Normal", EventReason.JOB_CREATED, f"started {JOB.named(job_name)}"))
    elif status.job_outcome(job) is None:
        kube.apply(data_migration_network_policy(owner, spec))  # put back, were it deleted while the Job runs
    if job is not None:
        pod = newest_job_pod(kube, namespace, job_name)
        termination = status.parse_termination(pod)
        observations = status.migration_conditions(job, termination)
        outcome = status.job_outcome(job)
        counts = termination.counts if termination is not None else None
        if counts is None and pod is not None and outcome is None:
            counts = _progress_from_log(kube, namespace, pod)
        job_status = job.get("status") or {}
        new_status.job_name = job_name
        new_status.start_time = job_status.get("startTime")
        new_status.completion_time = job_status.get("completionTime")
        if counts is not None:
            new_status.read, new_status.written, new_status.rejected = counts.read, counts.written, counts.rejected
            new_status.progress = counts.progress
        result.finished = outcome is not None

    new_status.conditions = conditions.merge(conditions_before, observations, meta.get("generation"), now_rfc3339())
    for observation in newly_true(conditions_before, observations):
        kind = "Warning" if observation.type == ConditionType.FAILED else "Normal"
        result.events.append(Event(kind, observation.reason, observation.message or observation.type))
    if status_changed(previous, new_status):
        kube.patch_status(DATA_MIGRATION, namespace, name, status_patch(new_status))
    return result


def _progress_from_log(kube: Kube, namespace: str, pod: Manifest) -> status.MigrationCounts | None:
    if (pod.get("status") or {}).get("phase") != "Running":
        return None
    try:
        return status.parse_progress(kube.pod_log_tail(namespace, pod["metadata"]["name"], LOG_TAIL_LINES))
    except KubeError:
        return None  # logs unavailable (node unreachable, rotated); the final counts still come at the end
