"""Kubernetes-style status conditions: one entry per type, lastTransitionTime moves only when status does."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

Status = Literal["True", "False", "Unknown"]


@dataclass(frozen=True, slots=True)
class Observation:
    """What a reconcile found for one condition type."""

    type: str
    status: Status
    reason: str
    message: str = ""

    @property
    def holds(self) -> bool:
        return self.status == "True"


def now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def merge(
    previous: list[dict[str, Any]], observations: list[Observation], generation: int | None, now: str
) -> list[dict[str, Any]]:
    """The new `status.conditions`: observations in order, keeping each type's transition time if unchanged."""
    before = {c.get("type"): c for c in previous}
    merged = []
    for observation in observations:
        old = before.get(observation.type)
        unchanged = old is not None and old.get("status") == observation.status and old.get("lastTransitionTime")
        condition: dict[str, Any] = {
            "type": observation.type,
            "status": observation.status,
            "reason": observation.reason,
            "message": observation.message,
            "lastTransitionTime": old["lastTransitionTime"] if unchanged and old else now,
        }
        if generation is not None:
            condition["observedGeneration"] = generation
        merged.append(condition)
    return merged


def newly_true(previous: list[dict[str, Any]], observations: list[Observation]) -> list[Observation]:
    """The observations that hold now and did not before: what deserves an Event."""
    return [o for o in observations if o.holds and not is_true(previous, o.type)]


def find(conditions: list[dict[str, Any]], type_: str) -> dict[str, Any] | None:
    return next((c for c in conditions if c.get("type") == type_), None)


def is_true(conditions: list[dict[str, Any]], type_: str) -> bool:
    condition = find(conditions, type_)
    return condition is not None and condition.get("status") == "True"
