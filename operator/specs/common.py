"""What every child shares: its owner reference, the operator's labels and selectors, metadata, pod and container
security, environment variables from a Secret, resources.

Every child carries an owner reference (deletion cascades) and the same labels (selection, `kubectl get -l`); the
`app.kubernetes.io/component` label says which child a pod belongs to (each child's module names its own).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from taskplatform.operator.kinds import CustomResourceKind
from taskplatform.operator.models import Resources
from taskplatform.operator.specs.names import Names

API_UID = 10001  # the API image's numeric USER (Dockerfile.api); the Jobs that run the API image use it too
DB_UID = 999  # the postgres user of the official image and of the locally built one
# Where Kubernetes reads a container's termination message from (its default terminationMessagePath): the
# migration and the backup/restore transfer write their outcome there, the operator reads it from the pod status.
TERMINATION_LOG = "/dev/termination-log"

INSTANCE_LABEL = "app.kubernetes.io/instance"  # the platform's name
COMPONENT_LABEL = "app.kubernetes.io/component"  # which child: each child's module names its component
MANAGED_BY = {"app.kubernetes.io/managed-by": "taskplatform-operator"}  # on everything the operator creates


@dataclass(frozen=True, slots=True)
class Owner:
    """The resource a child belongs to (its controller): a TaskPlatform, DataMigration or TaskPlatformBackup."""

    kind: CustomResourceKind
    name: str
    namespace: str
    uid: str

    def reference(self) -> dict[str, Any]:
        return {
            **self.kind.type_meta(),
            "name": self.name,
            "uid": self.uid,
            "controller": True,
            "blockOwnerDeletion": True,
        }


def labels(platform: str, component: str) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": "taskplatform",
        INSTANCE_LABEL: platform,
        COMPONENT_LABEL: component,
        **MANAGED_BY,
    }


def selector(platform: str, component: str) -> dict[str, str]:
    return {INSTANCE_LABEL: platform, COMPONENT_LABEL: component}


def selector_string(platform: str, component: str) -> str:
    return ",".join(f"{k}={v}" for k, v in selector(platform, component).items())


def metadata(owner: Owner, name: str, component: str) -> dict[str, Any]:
    """A child of `owner`'s platform (the owner's own name: a TaskPlatform's children)."""
    return {
        "name": name,
        "namespace": owner.namespace,
        "labels": labels(owner.name, component),
        "ownerReferences": [owner.reference()],
    }


def template_metadata(platform: str, component: str, annotations: Mapping[str, str] | None = None) -> dict[str, Any]:
    """A pod template's metadata: the component's labels, and the annotations when there are any."""
    template: dict[str, Any] = {"labels": labels(platform, component)}
    if annotations:
        template["annotations"] = dict(annotations)
    return template


def resources(requested: Resources) -> dict[str, Any]:
    """A container's resources as Kubernetes takes them: unset quantities left out."""
    dumped: dict[str, Any] = requested.model_dump(exclude_none=True)
    return {k: v for k, v in dumped.items() if v}


# Every container: no privilege escalation, no capabilities, a read-only root filesystem (writable paths are
# emptyDir volumes; PostgreSQL's data directory is its volume).
RESTRICTED_CONTAINER = {
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "readOnlyRootFilesystem": True,
}


def pod_security(uid: int) -> dict[str, Any]:
    return {
        "runAsNonRoot": True,
        "runAsUser": uid,
        "runAsGroup": uid,
        "fsGroup": uid,
        # Re-own a volume only when its root is not ours yet: the recursive pass on every start would also
        # widen PostgreSQL's data directory to group access, which PostgreSQL refuses to start on.
        "fsGroupChangePolicy": "OnRootMismatch",
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def pod_spec(
    platform: str, uid: int, containers: list[dict[str, Any]], volumes: list[dict[str, Any]], **fields: Any
) -> dict[str, Any]:
    """The spec of every pod the operator makes: as `uid`, non-root, on the platform's own ServiceAccount
    (serviceaccount.py), which has no rights, and without its token: none of these pods calls the Kubernetes API,
    so none holds a credential for it. No Service links: a pod reaches its peers by DNS name."""
    return {
        "serviceAccountName": Names(platform).service_account,
        "automountServiceAccountToken": False,
        "securityContext": pod_security(uid),
        "enableServiceLinks": False,
        **fields,
        "containers": containers,
        "volumes": volumes,
    }


def env_from_secret(name: str, secret: str, key: str) -> dict[str, Any]:
    """An environment variable read from a Secret's key: the value never appears in the manifest."""
    return {"name": name, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}
