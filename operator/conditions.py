"""Kubernetes-style status conditions: one entry per type, merged by type, lastTransitionTime moving only
when the status does (as `meta.SetStatusCondition` and CloudNativePG do)."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import ValidationError

from taskplatform.operator.models import MIGRATION_CONDITIONS, PLATFORM_CONDITIONS, Condition, ConditionType

__all__ = [
    "MIGRATION_CONDITIONS",
    "PLATFORM_CONDITIONS",
    "ConditionType",
    "Event",
    "EventReason",
    "Observation",
    "Reason",
    "merge",
    "newly_failing",
    "newly_true",
]

Status = Literal["True", "False", "Unknown"]


@enum.unique
class Reason(enum.StrEnum):
    """Every reason the operator writes into a condition, named once: code that sets a reason and code that acts
    on one (platform.py on the restore's, the Ready condition on Degraded's) use the same member. A StrEnum: it is
    its own name on the wire. (A failed Job's own reason, e.g. DeadlineExceeded, is passed through as it is.)"""

    # Ready
    READY = "Ready"
    DATABASE_NOT_READY = "DatabaseNotReady"
    API_NOT_READY = "ApiNotReady"
    # DatabaseReady, ApiReady
    CREATING = "Creating"
    STARTING = "Starting"
    RUNNING = "Running"
    WAITING_FOR_RESTORE = "WaitingForRestore"
    WAITING_FOR_SCHEMA = "WaitingForSchema"
    SCALED_TO_ZERO = "ScaledToZero"
    AVAILABLE = "Available"
    ROLLING_OUT = "RollingOut"
    # Degraded (and Ready, which repeats the first problem's reason)
    AS_EXPECTED = "AsExpected"
    APPLY_FAILED = "ApplyFailed"
    SCHEMA_MIGRATION_FAILED = "SchemaMigrationFailed"
    ROLLOUT_STUCK = "RolloutStuck"
    SECRET_REF_INVALID = "SecretRefInvalid"
    JWT_KEY_INVALID = "JWTKeyInvalid"
    RESTORE_SOURCE_INVALID = "RestoreSourceInvalid"
    RESTORE_FAILED = "RestoreFailed"
    CAPACITY_EXCEEDED = "CapacityExceeded"
    # StorageReady
    AS_REQUESTED = "AsRequested"
    RESIZING = "Resizing"
    SHRINK_REFUSED = "ShrinkRefused"
    EXPANSION_NOT_SUPPORTED = "ExpansionNotSupported"
    BINDING = "Binding"
    # DatabaseRestored (also RestoreSourceInvalid, ApplyFailed, RestoreFailed)
    RESTORED = "Restored"
    RESTORING = "Restoring"
    # BackupHealthy
    NOT_CONFIGURED = "NotConfigured"
    SCHEDULE_INVALID = "ScheduleInvalid"
    BACKUP_FAILED = "BackupFailed"
    BACKUP_OVERDUE = "BackupOverdue"
    BACKUP_COMPLETED = "BackupCompleted"
    NO_BACKUP_DUE = "NoBackupDue"
    # JWTKeyCurrent
    CURRENT = "Current"
    JWT_KEY_ROTATING = "JWTKeyRotating"
    RETIRING_PREVIOUS_KEY = "RetiringPreviousKey"
    DESIRED_KEY_UNKNOWN = "DesiredKeyUnknown"
    # Running, Succeeded, Failed of a DataMigration or TaskPlatformBackup
    PENDING = "Pending"
    JOB_RUNNING = "JobRunning"
    COMPLETED = "Completed"
    FAILED = "Failed"
    JOB_FAILED = "JobFailed"
    TARGET_NOT_FOUND = "TargetNotFound"
    WAITING_FOR_TARGET = "WaitingForTarget"
    CREATING_JOB = "CreatingJob"
    MIGRATION_ERROR = "MigrationError"
    VERIFICATION_FAILED = "VerificationFailed"
    MIGRATION_INTERRUPTED = "MigrationInterrupted"


@enum.unique
class EventReason(enum.StrEnum):
    """The reasons of Events that are no condition's reason (those post the condition's own: Reason)."""

    RECONCILE_FAILED = "ReconcileFailed"
    CREDENTIALS_GENERATED = "CredentialsGenerated"
    CREDENTIALS_REPAIRED = "CredentialsRepaired"
    DATABASE_ROLES_ADDED = "DatabaseRolesAdded"
    SUPERUSER_URL_REMOVED = "SuperuserUrlRemoved"
    SCHEMA_MIGRATION_STARTED = "SchemaMigrationStarted"
    RESTORE_STARTED = "RestoreStarted"
    BACKUP_STARTED = "BackupStarted"
    BACKUP_PRUNED = "BackupPruned"
    JOB_CREATED = "JobCreated"
    JWT_KEY_RETIRED = "JWTKeyRetired"
    DATABASE_CA_ISSUED = "DatabaseCAIssued"
    DATABASE_CERTIFICATE_ISSUED = "DatabaseCertificateIssued"


@dataclass(frozen=True, slots=True)
class Event:
    """A Kubernetes Event to post on the resource a pass reconciled."""

    type: str  # Normal or Warning
    reason: str  # an EventReason, a Reason, or a condition's type
    message: str


@dataclass(frozen=True, slots=True)
class Observation:
    """What a reconcile found for one condition type."""

    type: ConditionType
    status: Status
    reason: str  # a Reason (or a failed Job's own reason, passed through)
    message: str = ""

    @property
    def holds(self) -> bool:
        return self.status == "True"


def rfc3339(value: datetime) -> str:
    """A time as Kubernetes writes it: UTC, seconds, `Z`."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def now_rfc3339() -> str:
    return rfc3339(datetime.now(UTC))


def parse(raw: list[dict[str, Any]] | None) -> list[Condition]:
    """Conditions as the API server returned them; an entry that is not a condition at all is dropped."""
    conditions = []
    for entry in raw or []:
        try:
            conditions.append(Condition.model_validate(entry))
        except ValidationError:
            continue
    return conditions


def merge(
    previous: list[Condition], observations: list[Observation], generation: int | None, now: str
) -> list[Condition]:
    """The new `status.conditions`: each observed type replaced in place (its transition time kept while its
    status is unchanged), new types appended, and every type not observed in this pass kept as it was."""
    merged = list(previous)
    index = {condition.type: i for i, condition in enumerate(merged)}
    for observation in observations:
        i = index.get(observation.type)
        old = merged[i] if i is not None else None
        unchanged = old is not None and old.status == observation.status and old.last_transition_time
        condition = Condition(
            type=observation.type,
            status=observation.status,
            reason=observation.reason,
            message=observation.message,
            last_transition_time=old.last_transition_time if unchanged and old else now,
            observed_generation=generation,
        )
        if i is None:
            index[observation.type] = len(merged)
            merged.append(condition)
        else:
            merged[i] = condition
    return merged


def newly_true(previous: list[Condition], observations: list[Observation]) -> list[Observation]:
    """The observations that hold now and did not before: what deserves an Event."""
    return [o for o in observations if o.holds and not is_true(previous, o.type)]


def newly_failing(previous: list[Condition], observation: Observation) -> bool:
    """A health-type condition (True is good) that turned False, or False for another reason: a Warning."""
    before = find(previous, observation.type)
    return observation.status == "False" and (
        before is None or before.status != "False" or before.reason != observation.reason
    )


def find(conditions: list[Condition], type_: ConditionType) -> Condition | None:
    return next((c for c in conditions if c.type == type_), None)


def is_true(conditions: list[Condition], type_: ConditionType) -> bool:
    condition = find(conditions, type_)
    return condition is not None and condition.status == "True"
