"""The database: PostgreSQL as a one-replica StatefulSet with its volume, and two Services (a ClusterIP one its
clients connect to, a headless one that names the pod before it is Ready). Its NetworkPolicy: networkpolicy.py.

The database pod is the only one with the bootstrap superuser's password, and with every role's: its postStart
hook (dbroles.SYNC_SCRIPT) keeps the roles equal to the credentials Secret on every start.
"""

from __future__ import annotations

from typing import Any

from taskplatform.operator import dbroles
from taskplatform.operator.dbroles import ROLES, SUPERUSER
from taskplatform.operator.kinds import SERVICE, STATEFUL_SET, Manifest
from taskplatform.operator.models import TaskPlatformSpec
from taskplatform.operator.specs.common import (
    DB_UID,
    RESTRICTED_CONTAINER,
    Owner,
    env_from_secret,
    labels,
    metadata,
    pod_security,
    resources,
    selector,
    template_metadata,
)
from taskplatform.operator.specs.credentials import CREDENTIALS_ANNOTATION, PASSWORD_KEY, Credentials
from taskplatform.operator.specs.names import DATA_VOLUME, DB_NAME, DB_PORT, Names

DATABASE_COMPONENT = "database"


def database_services(owner: Owner) -> list[Manifest]:
    names = Names(owner.name)
    port = {"name": "postgres", "port": DB_PORT, "targetPort": "postgres"}
    headless = {
        **SERVICE.type_meta(),
        "metadata": metadata(owner, names.database_headless, DATABASE_COMPONENT),
        "spec": {
            "clusterIP": "None",
            "selector": selector(owner.name, DATABASE_COMPONENT),
            "ports": [port],
            # The pod's name resolves before it is Ready: a restore connects as soon as PostgreSQL accepts
            # connections, instead of after the next readiness probe and the ClusterIP's routing update (kube-proxy
            # applies those at most once a second). Clients of the database proper use the ClusterIP Service.
            "publishNotReadyAddresses": True,
        },
    }
    client = {
        **SERVICE.type_meta(),
        "metadata": metadata(owner, names.database, DATABASE_COMPONENT),
        "spec": {"type": "ClusterIP", "selector": selector(owner.name, DATABASE_COMPONENT), "ports": [port]},
    }
    return [headless, client]


def database_statefulset(
    owner: Owner, spec: TaskPlatformSpec, credentials: Credentials | None = None, volume_size: str | None = None
) -> Manifest:
    """`volume_size` overrides the spec's size in the (immutable) volumeClaimTemplates: the size the existing
    StatefulSet carries, while a resize is under way or refused (operator/storage.py)."""
    names = Names(owner.name)
    db = spec.database
    ready = ["pg_isready", "-U", SUPERUSER, "-d", DB_NAME, "-h", "127.0.0.1"]
    claim_spec: dict[str, Any] = {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": volume_size or db.storage.size}},
    }
    if db.storage.storage_class_name:
        claim_spec["storageClassName"] = db.storage.storage_class_name
    digest = {CREDENTIALS_ANNOTATION: credentials.digest} if credentials else None
    passwords = [env_from_secret(role.password_env, names.secret, role.password_key) for role in ROLES]
    return {
        **STATEFUL_SET.type_meta(),
        "metadata": metadata(owner, names.database, DATABASE_COMPONENT),
        "spec": {
            "serviceName": names.database_headless,
            "replicas": 1,
            "selector": {"matchLabels": selector(owner.name, DATABASE_COMPONENT)},
            # Kubernetes itself keeps or deletes the volume when the StatefulSet goes (spec.database).
            "persistentVolumeClaimRetentionPolicy": {"whenDeleted": db.pvc_retention_policy, "whenScaled": "Retain"},
            "template": {
                "metadata": template_metadata(owner.name, DATABASE_COMPONENT, digest),
                "spec": {
                    "securityContext": pod_security(DB_UID),
                    "enableServiceLinks": False,
                    "containers": [
                        {
                            "name": "postgres",
                            "image": db.image,
                            "ports": [{"name": "postgres", "containerPort": DB_PORT}],
                            # The only pod with the superuser's password, and with every role's: its postStart
                            # hook sets them (dbroles.py).
                            "env": [
                                {"name": "POSTGRES_USER", "value": SUPERUSER},
                                {"name": "POSTGRES_DB", "value": DB_NAME},
                                {"name": "PGDATA", "value": "/var/lib/postgresql/data/pgdata"},
                                env_from_secret(dbroles.SUPERUSER_PASSWORD_ENV, names.secret, PASSWORD_KEY),
                                *passwords,
                            ],
                            "resources": resources(db.resources),
                            "readinessProbe": {"exec": {"command": ready}, "periodSeconds": 5},
                            "livenessProbe": {"exec": {"command": ready}, "periodSeconds": 10, "failureThreshold": 6},
                            "lifecycle": {"postStart": {"exec": {"command": ["sh", "-c", dbroles.SYNC_SCRIPT]}}},
                            "securityContext": {**RESTRICTED_CONTAINER, "readOnlyRootFilesystem": False},
                            "volumeMounts": [{"name": DATA_VOLUME, "mountPath": "/var/lib/postgresql/data"}],
                        }
                    ],
                },
            },
            "volumeClaimTemplates": [
                {
                    "metadata": {"name": DATA_VOLUME, "labels": labels(owner.name, DATABASE_COMPONENT)},
                    "spec": claim_spec,
                }
            ],
        },
    }
