"""reconcile_migration's decisions with a stand-in for the API server (unit level; the real API server runs
the same code in test_operator_cluster.py)."""

from typing import Any

from taskplatform.operator.datamigration import reconcile_migration
from taskplatform.operator.kinds import TASK_PLATFORM, ResourceKind

Manifest = dict[str, Any]

READY_PLATFORM = {
    "metadata": {"name": "demo", "namespace": "ns"},
    "spec": {"api": {"image": "api:1"}},
    "status": {"conditions": [{"type": "Ready", "status": "True", "reason": "Ready"}]},
}


class VanishingJobKube:
    """Create says the Job exists; the read that follows finds nothing (it was being deleted)."""

    def __init__(self) -> None:
        self.patches: list[Manifest] = []

    def get(self, kind: ResourceKind, namespace: str, name: str) -> Manifest | None:
        return READY_PLATFORM if kind is TASK_PLATFORM else None

    def create(self, manifest: Manifest) -> Manifest | None:
        return None

    def apply(self, manifest: Manifest) -> Manifest:
        return manifest

    def patch_status(self, kind: ResourceKind, namespace: str, name: str, status: Manifest) -> None:
        self.patches.append(status)


def migration(status: Manifest | None = None) -> Manifest:
    return {
        "metadata": {"name": "m1", "namespace": "ns", "uid": "u-1", "generation": 2},
        "spec": {"target": "demo", "sourceSecretRef": {"name": "legacy"}},
        "status": status or {},
    }


def test_a_job_that_vanishes_between_create_and_read_is_looked_at_again_not_a_crash() -> None:
    kube = VanishingJobKube()
    other = {"type": "Custom", "status": "True", "reason": "SetElsewhere"}
    result = reconcile_migration(kube, migration({"conditions": [other]}))  # type: ignore[arg-type]
    assert not result.finished
    assert result.retry_after_s is not None
    (status,) = kube.patches
    conditions = {c["type"]: c for c in status["conditions"]}
    assert conditions["Running"]["reason"] == "CreatingJob"
    assert conditions["Custom"] == {**other, "message": ""}  # a condition this pass did not compute is kept
    assert status["observedGeneration"] == 2
