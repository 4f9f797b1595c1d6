"""Every kind of resource the operator touches, each described once: its kind, apiVersion and plural (the
Kubernetes client's paths, the kopf watches, the manifests' type fields, RBAC in charts/ and docs/operator.md),
and for the operator's own custom resources their typed models and short name (the CRD generator).

Nothing else spells a kind's name: a manifest takes its `apiVersion` and `kind` from `type_meta()`, a message
names an object with `named()`, the watched children are the kinds marked `owned`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from pydantic import BaseModel

from taskplatform.operator.models import (
    GROUP,
    VERSION,
    DataMigrationSpec,
    DataMigrationStatus,
    TaskPlatformBackupSpec,
    TaskPlatformBackupStatus,
    TaskPlatformSpec,
    TaskPlatformStatus,
)

# A Kubernetes object as the API server reads and returns it.
Manifest = dict[str, Any]


@dataclass(frozen=True, slots=True)
class ResourceKind:
    kind: str
    api_version: str
    plural: str
    namespaced: bool = True
    # Created by the operator with an owner reference to a TaskPlatform, DataMigration or TaskPlatformBackup and
    # labelled as managed by it: watched (selected by that label), so that its change starts its owner's pass.
    owned: bool = False

    @property
    def group(self) -> str:
        return self.api_version.rpartition("/")[0]

    @property
    def version(self) -> str:
        return self.api_version.rpartition("/")[2]

    def type_meta(self) -> dict[str, str]:
        """A manifest's first two fields."""
        return {"apiVersion": self.api_version, "kind": self.kind}

    def named(self, name: str) -> str:
        """How messages, events and conditions name one object of this kind: `Job demo-restore`."""
        return f"{self.kind} {name}"

    def path(self, namespace: str | None = None, name: str | None = None, subresource: str | None = None) -> str:
        """The API server's path of the collection (no name), an object, or one of its subresources."""
        path = "/api/v1" if self.api_version == "v1" else f"/apis/{self.api_version}"
        if self.namespaced:
            path += f"/namespaces/{quote(namespace or '')}"
        path += f"/{self.plural}"
        if name is not None:
            path += f"/{quote(name)}"
        if subresource is not None:
            path += f"/{subresource}"
        return path


@dataclass(frozen=True, slots=True, kw_only=True)
class CustomResourceKind(ResourceKind):
    """One of the operator's own resources: the CRD (crdgen.py) is generated from these models."""

    short_name: str
    spec_model: type[BaseModel]
    status_model: type[BaseModel]

    @property
    def singular(self) -> str:
        return self.kind.lower()

    @property
    def crd_name(self) -> str:
        return f"{self.plural}.{self.group}"


SECRET = ResourceKind("Secret", "v1", "secrets", owned=True)
CONFIG_MAP = ResourceKind("ConfigMap", "v1", "configmaps", owned=True)
SERVICE = ResourceKind("Service", "v1", "services", owned=True)
SERVICE_ACCOUNT = ResourceKind("ServiceAccount", "v1", "serviceaccounts", owned=True)
POD = ResourceKind("Pod", "v1", "pods")  # watched apart: only the backup and restore Jobs' pods (handlers.py)
PERSISTENT_VOLUME_CLAIM = ResourceKind("PersistentVolumeClaim", "v1", "persistentvolumeclaims")
STATEFUL_SET = ResourceKind("StatefulSet", "apps/v1", "statefulsets", owned=True)
DEPLOYMENT = ResourceKind("Deployment", "apps/v1", "deployments", owned=True)
JOB = ResourceKind("Job", "batch/v1", "jobs", owned=True)
POD_DISRUPTION_BUDGET = ResourceKind("PodDisruptionBudget", "policy/v1", "poddisruptionbudgets", owned=True)
HORIZONTAL_POD_AUTOSCALER = ResourceKind(
    "HorizontalPodAutoscaler", "autoscaling/v2", "horizontalpodautoscalers", owned=True
)
NETWORK_POLICY = ResourceKind("NetworkPolicy", "networking.k8s.io/v1", "networkpolicies", owned=True)
CUSTOM_RESOURCE_DEFINITION = ResourceKind(
    "CustomResourceDefinition", "apiextensions.k8s.io/v1", "customresourcedefinitions", namespaced=False
)
TASK_PLATFORM = CustomResourceKind(
    "TaskPlatform",
    f"{GROUP}/{VERSION}",
    "taskplatforms",
    short_name="tp",
    spec_model=TaskPlatformSpec,
    status_model=TaskPlatformStatus,
)
DATA_MIGRATION = CustomResourceKind(
    "DataMigration",
    f"{GROUP}/{VERSION}",
    "datamigrations",
    short_name="dm",
    spec_model=DataMigrationSpec,
    status_model=DataMigrationStatus,
)
TASK_PLATFORM_BACKUP = CustomResourceKind(
    "TaskPlatformBackup",
    f"{GROUP}/{VERSION}",
    "taskplatformbackups",
    short_name="tpb",
    spec_model=TaskPlatformBackupSpec,
    status_model=TaskPlatformBackupStatus,
)

KINDS: tuple[ResourceKind, ...] = (
    SECRET,
    CONFIG_MAP,
    SERVICE,
    SERVICE_ACCOUNT,
    POD,
    PERSISTENT_VOLUME_CLAIM,
    STATEFUL_SET,
    DEPLOYMENT,
    JOB,
    POD_DISRUPTION_BUDGET,
    HORIZONTAL_POD_AUTOSCALER,
    NETWORK_POLICY,
    CUSTOM_RESOURCE_DEFINITION,
    TASK_PLATFORM,
    DATA_MIGRATION,
    TASK_PLATFORM_BACKUP,
)
CUSTOM_RESOURCES: tuple[CustomResourceKind, ...] = tuple(k for k in KINDS if isinstance(k, CustomResourceKind))
# What a TaskPlatform, DataMigration or TaskPlatformBackup owns: the operator watches these (handlers.py).
OWNED_KINDS: tuple[ResourceKind, ...] = tuple(k for k in KINDS if k.owned)
_BY_KIND = {k.kind: k for k in KINDS}


def lookup(kind: str) -> ResourceKind:
    """The descriptor of a kind, by its name (a kind the operator does not know is a programming error)."""
    return _BY_KIND[kind]


def kind_of(manifest: Manifest) -> ResourceKind:
    """The descriptor of a manifest's kind."""
    return lookup(manifest["kind"])


def owner_kind(reference: dict[str, Any]) -> CustomResourceKind | None:
    """Which of the operator's resources an ownerReference names, if any."""
    kind = _BY_KIND.get(reference.get("kind", ""))
    if isinstance(kind, CustomResourceKind) and reference.get("apiVersion", "").startswith(f"{kind.group}/"):
        return kind
    return None
