"""Status from observation: pure functions from the children as the API server reports them to conditions.

No cluster access here (unit-tested with plain dicts); the handlers fetch the children and write the result.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from taskplatform.migration import contract
from taskplatform.migration.contract import ExitCode
from taskplatform.operator.conditions import ConditionType, Observation, Reason
from taskplatform.operator.kinds import JOB, Manifest
from taskplatform.operator.models import TaskPlatformSpec, TaskPlatformStatus
from taskplatform.operator.specs.api import API_COMPONENT
from taskplatform.operator.specs.common import selector_string
from taskplatform.operator.specs.credentials import CREDENTIALS_ANNOTATION
from taskplatform.operator.specs.names import Names


def _status(obj: Manifest | None) -> dict[str, Any]:
    return (obj or {}).get("status") or {}


def _condition(obj: Manifest | None, type_: str) -> dict[str, Any] | None:
    return next((c for c in _status(obj).get("conditions") or [] if c.get("type") == type_), None)


def _caught_up(obj: Manifest) -> bool:
    """The controller has seen the latest spec (its status is not stale)."""
    generation = obj.get("metadata", {}).get("generation", 0)
    return int(_status(obj).get("observedGeneration", 0)) >= int(generation)


def job_outcome(job: Manifest | None) -> str | None:
    """'Complete', 'Failed', or None while it runs (or does not exist)."""
    for type_ in ("Complete", "Failed"):
        condition = _condition(job, type_)
        if condition is not None and condition.get("status") == "True":
            return type_
    return None


def deployment_image(deployment: Manifest | None) -> str | None:
    containers = (deployment or {}).get("spec", {}).get("template", {}).get("spec", {}).get("containers") or []
    return containers[0].get("image") if containers else None


def rolled_out(deployment: Manifest | None, digest: str) -> bool:
    """Every pod of the Deployment runs the template stamped with this credentials digest: the controller has
    seen the latest spec, its updated replicas are all there and available, and no old pod is left, not even
    one still terminating (it may serve until it is gone). True when there is no Deployment: no pod at all."""
    if deployment is None:
        return True
    template = (deployment.get("spec") or {}).get("template") or {}
    if ((template.get("metadata") or {}).get("annotations") or {}).get(CREDENTIALS_ANNOTATION) != digest:
        return False
    status = _status(deployment)
    desired = int((deployment.get("spec") or {}).get("replicas", 1))
    total, updated = int(status.get("replicas") or 0), int(status.get("updatedReplicas") or 0)
    available, terminating = int(status.get("availableReplicas") or 0), int(status.get("terminatingReplicas") or 0)
    return _caught_up(deployment) and updated >= desired and total == updated == available and terminating == 0


@dataclass(slots=True)
class PlatformObservation:
    """The children that decide a TaskPlatform's state, as last read."""

    statefulset: Manifest | None = None
    schema_job: Manifest | None = None
    deployment: Manifest | None = None
    problems: list[Observation] = field(default_factory=list)  # Degraded reasons found while applying
    storage: Observation | None = None  # StorageReady, from operator/storage.py
    volume_size: str | None = None  # the bound volume's capacity
    restore: Observation | None = None  # DatabaseRestored, when spec.database.restoreFrom is set
    backup: Observation | None = None  # BackupHealthy, when spec.database.backup is set
    jwt: Observation | None = None  # JWTKeyCurrent, from operator/jwtkeys.py


def database_condition(statefulset: Manifest | None) -> Observation:
    if statefulset is None:
        return Observation(
            ConditionType.DATABASE_READY, "False", Reason.CREATING, "creating the PostgreSQL StatefulSet"
        )
    ready = int(_status(statefulset).get("readyReplicas") or 0)
    if ready >= 1 and _caught_up(statefulset):
        return Observation(ConditionType.DATABASE_READY, "True", Reason.RUNNING, "PostgreSQL is accepting connections")
    return Observation(
        ConditionType.DATABASE_READY, "False", Reason.STARTING, "waiting for the PostgreSQL pod to become ready"
    )


def api_condition(spec: TaskPlatformSpec, observed: PlatformObservation) -> Observation:
    deployment = observed.deployment
    outcome = job_outcome(observed.schema_job)
    if deployment is None:
        if observed.restore is not None and not observed.restore.holds:
            return Observation(ConditionType.API_READY, "False", Reason.WAITING_FOR_RESTORE, observed.restore.message)
        if outcome != "Complete":
            return Observation(
                ConditionType.API_READY, "False", Reason.WAITING_FOR_SCHEMA, "the schema migration has not finished yet"
            )
        return Observation(ConditionType.API_READY, "False", Reason.CREATING, "creating the API Deployment")
    if deployment_image(deployment) != spec.api.image:
        return Observation(
            ConditionType.API_READY,
            "False",
            Reason.WAITING_FOR_SCHEMA,
            f"{spec.api.image} rolls out once its schema migration finishes",
        )
    desired = int(deployment.get("spec", {}).get("replicas", 1))
    status = _status(deployment)
    updated, available = int(status.get("updatedReplicas") or 0), int(status.get("availableReplicas") or 0)
    total = int(status.get("replicas") or 0)
    if desired == 0:
        return Observation(ConditionType.API_READY, "False", Reason.SCALED_TO_ZERO, "spec.api.replicas is 0")
    if _caught_up(deployment) and updated >= desired and available >= desired and total == updated:
        return Observation(
            ConditionType.API_READY, "True", Reason.AVAILABLE, f"{available}/{desired} replicas available"
        )
    return Observation(
        ConditionType.API_READY,
        "False",
        Reason.ROLLING_OUT,
        f"{updated}/{desired} replicas updated, {available} available",
    )


def degraded_condition(observed: PlatformObservation) -> Observation:
    problems = list(observed.problems)
    if job_outcome(observed.schema_job) == "Failed":
        failed = _condition(observed.schema_job, "Failed") or {}
        detail = failed.get("message") or failed.get("reason") or "the Job failed"
        problems.append(
            Observation(ConditionType.DEGRADED, "True", Reason.SCHEMA_MIGRATION_FAILED, f"schema migration: {detail}")
        )
    progressing = _condition(observed.deployment, "Progressing")
    if progressing is not None and progressing.get("reason") == "ProgressDeadlineExceeded":
        problems.append(
            Observation(ConditionType.DEGRADED, "True", Reason.ROLLOUT_STUCK, progressing.get("message", ""))
        )
    if problems:
        # The first problem's reason; every problem's message, so that none hides behind another.
        message = "; ".join(dict.fromkeys(p.message for p in problems if p.message))
        return Observation(ConditionType.DEGRADED, "True", problems[0].reason, message)
    return Observation(ConditionType.DEGRADED, "False", Reason.AS_EXPECTED, "")


def platform_conditions(spec: TaskPlatformSpec, observed: PlatformObservation) -> list[Observation]:
    """Ready, DatabaseReady, ApiReady, Degraded. Ready holds when the parts do and nothing is degraded."""
    database = database_condition(observed.statefulset)
    api = api_condition(spec, observed)
    degraded = degraded_condition(observed)
    if degraded.holds:
        ready = Observation(ConditionType.READY, "False", degraded.reason, degraded.message)
    elif not database.holds:
        ready = Observation(ConditionType.READY, "False", Reason.DATABASE_NOT_READY, database.message)
    elif not api.holds:
        ready = Observation(ConditionType.READY, "False", Reason.API_NOT_READY, api.message)
    else:
        ready = Observation(ConditionType.READY, "True", Reason.READY, "the database and the API are serving")
    optional = [observed.storage, observed.restore, observed.backup, observed.jwt]
    return [ready, database, api, degraded] + [o for o in optional if o is not None]


def platform_fields(
    name: str, namespace: str, spec: TaskPlatformSpec, deployment: Manifest | None
) -> TaskPlatformStatus:
    """The non-condition status: what the scale subresource and the printer columns read."""
    status = _status(deployment)
    return TaskPlatformStatus(
        replicas=int(status.get("replicas") or 0),
        ready_replicas=int(status.get("readyReplicas") or 0),
        selector=selector_string(name, API_COMPONENT),
        endpoint=f"http://{Names(name).api}.{namespace}.svc:{spec.api.service.port}",
    )


def status_patch(status: BaseModel) -> dict[str, Any]:
    """A typed status as the API server takes it: camelCase keys from the model (a misspelt key cannot slip
    through to be pruned silently), unset fields left out so that a merge patch keeps them."""
    patch: dict[str, Any] = status.model_dump(by_alias=True, exclude_none=True, mode="json")
    return patch


def status_changed(previous: BaseModel, new: BaseModel) -> bool:
    """Whether patching `new` would change anything (no write, and no watch event, for a steady state)."""
    before = status_patch(previous)
    return any(before.get(key) != value for key, value in status_patch(new).items())


# --- DataMigration ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MigrationCounts:
    read: int = 0
    written: int = 0
    rejected: int = 0
    progress: str | None = None


def parse_progress(log_tail: str) -> MigrationCounts | None:
    """The last JSON `progress`/`summary` line the migration printed (`--progress json`), if any."""
    for line in reversed(log_tail.splitlines()):
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if event.get(contract.EVENT) == contract.PROGRESS_EVENT:
            total, read = int(event.get(contract.TOTAL) or 0), int(event.get(contract.READ) or 0)
            percent = f"{min(100, read * 100 // total)}%" if total else None
            return MigrationCounts(
                read,
                int(event.get(contract.WRITTEN) or 0),
                int(event.get(contract.REJECTED) or 0),
                f"{event.get(contract.COLLECTION)} {percent}" if percent else None,
            )
        if event.get(contract.EVENT) == contract.SUMMARY_EVENT:
            return _summed(event.get(contract.COLLECTIONS) or [], "100%")
    return None


def _summed(collections: list[dict[str, Any]], progress: str | None) -> MigrationCounts:
    return MigrationCounts(
        sum(int(c.get(contract.READ) or 0) for c in collections),
        sum(int(c.get(contract.WRITTEN) or 0) for c in collections),
        sum(int(c.get(contract.REJECTED) or 0) for c in collections),
        progress,
    )


@dataclass(frozen=True, slots=True)
class Termination:
    """What the migration container left in its termination message: the CLI's --summary-file (its contract:
    migration/contract.py)."""

    exit_code: int | None
    counts: MigrationCounts | None
    error: str | None


def terminations(pod: Manifest | None) -> dict[str, tuple[int | None, str]]:
    """Each terminated container's exit code and termination message, by container name: init containers (a
    restore's download) and containers alike (a pod's container names are unique across both)."""
    found = {}
    status = _status(pod)
    for container in [*(status.get("initContainerStatuses") or []), *(status.get("containerStatuses") or [])]:
        terminated = (container.get("state") or {}).get("terminated")
        if terminated:
            found[container["name"]] = (terminated.get("exitCode"), (terminated.get("message") or "").strip())
    return found


def parse_termination(pod: Manifest | None) -> Termination | None:
    for code, message in terminations(pod).values():  # the migration pod's one container
        try:
            summary = json.loads(message) if message else {}
        except ValueError:
            # FallbackToLogsOnError: the container died before writing; the last log line says why.
            return Termination(code, None, message.splitlines()[-1][:500] if message else None)
        exit_code = summary.get(contract.EXIT_CODE, code)
        collections = summary.get(contract.COLLECTIONS) or []
        counts = _summed(collections, "100%" if exit_code == ExitCode.DONE else None) if collections else None
        return Termination(exit_code, counts, summary.get(contract.ERROR))
    return None


# Why a DataMigration failed, by the CLI's exit code: every code of the contract but DONE has its reason.
EXIT_REASONS: dict[int, Reason] = {
    ExitCode.FAILED: Reason.MIGRATION_ERROR,
    ExitCode.VERIFICATION_FAILED: Reason.VERIFICATION_FAILED,
    ExitCode.INTERRUPTED: Reason.MIGRATION_INTERRUPTED,
}


def migration_conditions(job: Manifest | None, termination: Termination | None) -> list[Observation]:
    """Running, Succeeded, Failed for a DataMigration's Job."""
    outcome = job_outcome(job)
    if job is None:
        running = Observation(ConditionType.RUNNING, "False", Reason.PENDING, "waiting to start the migration Job")
        return [
            running,
            Observation(ConditionType.SUCCEEDED, "False", Reason.PENDING),
            Observation(ConditionType.FAILED, "False", Reason.PENDING),
        ]
    if outcome is None:
        running = Observation(
            ConditionType.RUNNING, "True", Reason.JOB_RUNNING, f"{JOB.named(job['metadata']['name'])} is running"
        )
        return [
            running,
            Observation(ConditionType.SUCCEEDED, "False", Reason.RUNNING),
            Observation(ConditionType.FAILED, "False", Reason.RUNNING),
        ]
    if outcome == "Complete":
        return [
            Observation(ConditionType.RUNNING, "False", Reason.COMPLETED),
            Observation(ConditionType.SUCCEEDED, "True", Reason.COMPLETED, "the migration finished"),
            Observation(ConditionType.FAILED, "False", Reason.COMPLETED),
        ]
    failed = _condition(job, "Failed") or {}
    reason = failed.get("reason") or Reason.JOB_FAILED
    message = failed.get("message") or "the migration Job failed"
    if termination is not None and termination.exit_code:
        reason = EXIT_REASONS.get(termination.exit_code, reason)
        message = termination.error or f"exit code {termination.exit_code}"
    return [
        Observation(ConditionType.RUNNING, "False", Reason.FAILED),
        Observation(ConditionType.SUCCEEDED, "False", Reason.FAILED),
        Observation(ConditionType.FAILED, "True", reason, message),
    ]
