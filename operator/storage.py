"""Growing the database volume after day one.

A StatefulSet's `volumeClaimTemplates` are immutable, so a bigger `spec.database.storage.size` cannot simply
be applied (every pass would fail on it and nothing after it would be reconciled). The way the PostgreSQL
operators people trust do it:

1. expand the existing claim in place (the API server allows it where the claim's StorageClass has
   `allowVolumeExpansion`; its refusal is reported as `StorageReady=False ExpansionNotSupported`, and the
   StatefulSet keeps its current size so that every other change still applies);
2. delete the StatefulSet object with orphan propagation (its pod and volume stay, the database keeps
   serving) and create it again on the next pass, so that its template carries the new size for good;
3. report `StorageReady=False Resizing` until the claim's capacity reaches the requested size.

Shrinking is refused at admission (a CEL transition rule on the CRD), as is a change of storage class.
RBAC this adds: persistentvolumeclaims get, patch; statefulsets delete (already granted).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from kubernetes.utils.quantity import parse_quantity

from taskplatform.operator.conditions import ConditionType, Observation, Reason
from taskplatform.operator.kinds import PERSISTENT_VOLUME_CLAIM, STATEFUL_SET, Manifest
from taskplatform.operator.kube import Kube, KubeError
from taskplatform.operator.models import TaskPlatformSpec
from taskplatform.operator.specs.common import Owner
from taskplatform.operator.specs.names import Names

STORAGE = ConditionType.STORAGE_READY


def template_size(statefulset: Manifest | None) -> str | None:
    """The volume size a StatefulSet's (immutable) claim template carries."""
    templates = (statefulset or {}).get("spec", {}).get("volumeClaimTemplates") or []
    size = templates[0].get("spec", {}).get("resources", {}).get("requests", {}).get("storage") if templates else None
    return str(size) if size is not None else None


def _claim_size(claim: Manifest, where: str) -> str | None:
    value = (claim.get(where) or {}).get("capacity" if where == "status" else "resources", {})
    size = value.get("storage") if where == "status" else (value.get("requests") or {}).get("storage")
    return str(size) if size is not None else None


def _smaller(a: str, b: str) -> bool:
    return bool(parse_quantity(a) < parse_quantity(b))  # type: ignore[no-untyped-call]


@dataclass(frozen=True, slots=True)
class StoragePlan:
    """What this pass does with the StatefulSet, and the StorageReady condition."""

    volume_size: str  # the size to write into the StatefulSet's claim template this pass
    apply_statefulset: bool  # False while the old object is being deleted for re-creation
    observation: Observation
    applied: bool  # the spec's size is in effect or on its way (not refused)
    capacity: str | None = None  # what the bound volume holds (status.volumeSize)


def plan_storage(kube: Kube, owner: Owner, spec: TaskPlatformSpec, statefulset: Manifest | None) -> StoragePlan:
    names = Names(owner.name)
    claim = kube.get(PERSISTENT_VOLUME_CLAIM, owner.namespace, names.database_claim)
    capacity = _claim_size(claim, "status") if claim is not None else None
    return replace(_plan(kube, owner, spec, statefulset, claim), capacity=capacity)


def _plan(
    kube: Kube, owner: Owner, spec: TaskPlatformSpec, statefulset: Manifest | None, claim: Manifest | None
) -> StoragePlan:
    wanted = spec.database.storage.size
    names = Names(owner.name)
    if statefulset is None:
        return StoragePlan(wanted, True, Observation(STORAGE, "True", Reason.AS_REQUESTED, f"{wanted} requested"), True)
    if statefulset["metadata"].get("deletionTimestamp"):
        resizing = Observation(STORAGE, "False", Reason.RESIZING, f"re-creating the StatefulSet for {wanted} volumes")
        return StoragePlan(wanted, False, resizing, True)
    current = template_size(statefulset) or wanted
    if _smaller(wanted, current):
        # Admission refuses this; a resource stored before that rule existed can still say so.
        message = f"the volume cannot shrink from {current} to {wanted}; it stays {current}"
        return StoragePlan(current, True, Observation(STORAGE, "False", Reason.SHRINK_REFUSED, message), False)

    if claim is not None and _smaller(_claim_size(claim, "spec") or wanted, wanted):
        try:
            claim = kube.merge_patch(
                PERSISTENT_VOLUME_CLAIM,
                owner.namespace,
                names.database_claim,
                {"spec": {"resources": {"requests": {"storage": wanted}}}},
            )
        except KubeError as exc:
            if exc.transient:
                raise
            message = f"{PERSISTENT_VOLUME_CLAIM.named(names.database_claim)} cannot grow to {wanted}: {exc.message}"
            return StoragePlan(
                current, True, Observation(STORAGE, "False", Reason.EXPANSION_NOT_SUPPORTED, message), False
            )
    if _smaller(current, wanted):
        kube.delete(STATEFUL_SET, owner.namespace, names.database, propagation="Orphan")
        resizing = Observation(STORAGE, "False", Reason.RESIZING, f"re-creating the StatefulSet for {wanted} volumes")
        return StoragePlan(wanted, False, resizing, True)
    capacity = _claim_size(claim, "status") if claim is not None else None
    if claim is not None and capacity is None:
        message = f"{PERSISTENT_VOLUME_CLAIM.named(names.database_claim)} is waiting for its volume"
        return StoragePlan(wanted, True, Observation(STORAGE, "False", Reason.BINDING, message), True)
    if capacity is not None and _smaller(capacity, wanted):
        message = f"{PERSISTENT_VOLUME_CLAIM.named(names.database_claim)} has {capacity} of {wanted}"
        return StoragePlan(wanted, True, Observation(STORAGE, "False", Reason.RESIZING, message), True)
    return StoragePlan(wanted, True, Observation(STORAGE, "True", Reason.AS_REQUESTED, capacity or wanted), True)
