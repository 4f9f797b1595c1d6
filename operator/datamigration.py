"""Reconcile one DataMigration: wait for its TaskPlatform, start the Job once, report what the Job reports.

Progress comes from the running pod's last JSON progress line (`taskplatform-migrate --progress json`); the
final counts and the failure reason from the container's termination message (the CLI writes its outcome to
/dev/termination-log). A finished DataMigration is left alone: re-running means a new resource.

RBAC this needs: datamigrations get/list/watch/patch, datamigrations/status patch; taskplatforms get;
jobs get/list/watch/create; pods list, pods/log get; events create.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from taskplatform.operator import builders, status
from taskplatform.operator.builders import Owner
from taskplatform.operator.conditions import Observation, is_true, merge, newly_true, now_rfc3339
from taskplatform.operator.kube import Kube, KubeError, Manifest
from taskplatform.operator.models import DataMigrationSpec, TaskPlatformSpec
from taskplatform.operator.platform import Event

LOG_TAIL_LINES = 20


@dataclass(slots=True)
class MigrationResult:
    events: list[Event] = field(default_factory=list)
    finished: bool = False
    retry_after_s: float | None = None  # waiting for something no watch event announces


def _waiting(reason: str, message: str) -> list[Observation]:
    return [
        Observation("Running", "False", reason, message),
        Observation("Succeeded", "False", reason),
        Observation("Failed", "False", reason),
    ]


def _newest_pod(kube: Kube, namespace: str, job_name: str) -> Manifest | None:
    pods = kube.list("Pod", namespace, f"batch.kubernetes.io/job-name={job_name}")
    return max(pods, key=lambda p: p["metadata"].get("creationTimestamp", ""), default=None)


def reconcile_migration(kube: Kube, migration: Manifest) -> MigrationResult:
    meta = migration["metadata"]
    namespace, name = meta["namespace"], meta["name"]
    previous: dict[str, Any] = migration.get("status") or {}
    conditions_before = previous.get("conditions") or []
    result = MigrationResult()
    if meta.get("deletionTimestamp") or is_true(conditions_before, "Succeeded") or is_true(conditions_before, "Failed"):
        result.finished = True
        return result
    spec = DataMigrationSpec.model_validate(migration.get("spec") or {})
    job_name = builders.data_migration_job_name(name)
    fields: dict[str, Any] = {}

    job = kube.get("Job", namespace, job_name)
    if job is None:
        platform = kube.get("TaskPlatform", namespace, spec.target)
        if platform is None:
            observations = _waiting("TargetNotFound", f"TaskPlatform {spec.target} does not exist")
            result.retry_after_s = 10
        elif not is_true((platform.get("status") or {}).get("conditions") or [], "Ready"):
            observations = _waiting("WaitingForTarget", f"TaskPlatform {spec.target} is not Ready yet")
            result.retry_after_s = 5
        else:
            owner = Owner("DataMigration", name, namespace, meta["uid"])
            platform_spec = TaskPlatformSpec.model_validate(platform.get("spec") or {})
            job = kube.create(builders.data_migration_job(owner, spec, platform_spec)) or kube.get(
                "Job", namespace, job_name
            )
            result.events.append(Event("Normal", "JobCreated", f"started Job {job_name}"))
    if job is not None:
        pod = _newest_pod(kube, namespace, job_name)
        termination = status.parse_termination(pod)
        observations = status.migration_conditions(job, termination)
        outcome = status.job_outcome(job)
        counts = termination.counts if termination is not None else None
        if counts is None and pod is not None and outcome is None:
            counts = _progress_from_log(kube, namespace, pod)
        job_status = job.get("status") or {}
        fields = {
            "jobName": job_name,
            "startTime": job_status.get("startTime"),
            "completionTime": job_status.get("completionTime"),
        }
        if counts is not None:
            fields.update(read=counts.read, written=counts.written, rejected=counts.rejected, progress=counts.progress)
        result.finished = outcome is not None

    conditions = merge(conditions_before, observations, meta.get("generation"), now_rfc3339())
    new_status = {"observedGeneration": meta.get("generation"), "conditions": conditions, **fields}
    new_status = {k: v for k, v in new_status.items() if v is not None}
    for observation in newly_true(conditions_before, observations):
        kind = "Warning" if observation.type == "Failed" else "Normal"
        result.events.append(Event(kind, observation.reason, observation.message or observation.type))
    if {k: previous.get(k) for k in new_status} != new_status:
        kube.patch_status("DataMigration", namespace, name, new_status)
    return result


def _progress_from_log(kube: Kube, namespace: str, pod: Manifest) -> status.MigrationCounts | None:
    if (pod.get("status") or {}).get("phase") != "Running":
        return None
    try:
        return status.parse_progress(kube.pod_log_tail(namespace, pod["metadata"]["name"], LOG_TAIL_LINES))
    except KubeError:
        return None  # logs unavailable (node unreachable, rotated); the final counts still come at the end
