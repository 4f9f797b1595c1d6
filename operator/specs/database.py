"""The database: PostgreSQL as a one-replica StatefulSet with its volume, and two Services (a ClusterIP one its
clients connect to, a headless one that names the pod before it is Ready). Its NetworkPolicy: networkpolicy.py.

The database pod is the only one with the bootstrap superuser's password, and with every role's: its postStart
hook (dbroles.SYNC_SCRIPT) keeps the roles equal to the credentials Secret on every start.
"""

from __future__ import annotations

import hashlib
from typing import Any

from taskplatform.operator import dbroles
from taskplatform.operator.dbroles import API_ROLE, ROLES, SUPERUSER
from taskplatform.operator.kinds import CONFIG_MAP, SERVICE, STATEFUL_SET, Manifest
from taskplatform.operator.models import SUPERUSER_RESERVED_CONNECTIONS, TaskPlatformSpec
from taskplatform.operator.specs import tls
from taskplatform.operator.specs.common import (
    DB_UID,
    RESTRICTED_CONTAINER,
    Owner,
    env_from_secret,
    labels,
    metadata,
    pod_spec,
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


# PostgreSQL's client authentication, read from the ConfigMap (hba_file) instead of the data directory's own, so
# that a data directory made by an earlier operator (or restored) gets the same rules. The pod's own socket is
# trusted (the role sync hook as the bootstrap superuser; the probes): only processes inside the pod reach it. Over
# the network: TLS only, never the superuser, every role by its SCRAM password.
HBA_FILE_KEY = "pg_hba.conf"
CONFIG_DIR = "/etc/taskplatform/postgres"
PG_HBA = f"""# Written by the TaskPlatform operator (operator/specs/database.py).
local      all  all                    trust
hostnossl  all  all           all      reject
host       all  {SUPERUSER}  all      reject
hostssl    all  all           all      scram-sha-256
"""
# Written by PostgreSQL and the image's entrypoint besides the data volume: empty directories of the pod's own, so
# that the root filesystem stays read-only.
SOCKET_DIR = "/var/run/postgresql"
PGDATA = "/var/lib/postgresql/data/pgdata"
# The probes: the server accepts connections over TCP. pg_isready never authenticates; as a role the rules let
# reach the password exchange (not the superuser, refused outright) it leaves no FATAL line in the log every 5 s.
READY_COMMAND = ("pg_isready", "-U", API_ROLE.name, "-d", DB_NAME, "-h", "127.0.0.1")
# On the pod template: a digest of what the pod reads at start and is not in the template itself (the rules above),
# so that a change restarts it.
CONFIG_ANNOTATION = "taskplatform.io/config-digest"


def database_config(owner: Owner) -> Manifest:
    return {
        **CONFIG_MAP.type_meta(),
        "metadata": metadata(owner, Names(owner.name).database_config, DATABASE_COMPONENT),
        "data": {HBA_FILE_KEY: PG_HBA},
    }


def server_settings(spec: TaskPlatformSpec) -> dict[str, str]:
    """PostgreSQL's settings the operator decides, given as `-c name=value` (they win over postgresql.conf)."""
    return {
        "hba_file": f"{CONFIG_DIR}/{HBA_FILE_KEY}",
        "ssl": "on",
        "ssl_cert_file": tls.SERVER_CERT_FILE,
        "ssl_key_file": tls.SERVER_KEY_FILE,
        "ssl_min_protocol_version": "TLSv1.2",
        "max_connections": str(spec.database.max_connections),
        "superuser_reserved_connections": str(SUPERUSER_RESERVED_CONNECTIONS),
    }


def database_statefulset(
    owner: Owner,
    spec: TaskPlatformSpec,
    credentials: Credentials | None = None,
    volume_size: str | None = None,
    tls_digest: str | None = None,
) -> Manifest:
    """`volume_size` overrides the spec's size in the (immutable) volumeClaimTemplates: the size the existing
    StatefulSet carries, while a resize is under way or refused (operator/storage.py). `tls_digest`: of the
    certificate the database serves (tls.DatabaseTls.digest), so that a renewed one restarts it."""
    names = Names(owner.name)
    db = spec.database
    ready = list(READY_COMMAND)
    claim_spec: dict[str, Any] = {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": volume_size or db.storage.size}},
    }
    if db.storage.storage_class_name:
        claim_spec["storageClassName"] = db.storage.storage_class_name
    annotations = {CONFIG_ANNOTATION: hashlib.sha256(PG_HBA.encode()).hexdigest()[:16]}
    if credentials is not None:
        annotations[CREDENTIALS_ANNOTATION] = credentials.digest
    if tls_digest is not None:
        annotations[tls.TLS_ANNOTATION] = tls_digest
    passwords = [env_from_secret(role.password_env, names.secret, role.password_key) for role in ROLES]
    container = {
        "name": "postgres",
        "image": db.image,
        "args": [arg for name, value in server_settings(spec).items() for arg in ("-c", f"{name}={value}")],
        "ports": [{"name": "postgres", "containerPort": DB_PORT}],
        # The only pod with the superuser's password, and with every role's: its postStart hook sets them
        # (dbroles.py).
        "env": [
            {"name": "POSTGRES_USER", "value": SUPERUSER},
            {"name": "POSTGRES_DB", "value": DB_NAME},
            {"name": "PGDATA", "value": PGDATA},
            env_from_secret(dbroles.SUPERUSER_PASSWORD_ENV, names.secret, PASSWORD_KEY),
            *passwords,
        ],
        "resources": resources(db.resources),
        "readinessProbe": {"exec": {"command": ready}, "periodSeconds": 5},
        "livenessProbe": {"exec": {"command": ready}, "periodSeconds": 10, "failureThreshold": 6},
        "lifecycle": {"postStart": {"exec": {"command": ["sh", "-c", dbroles.SYNC_SCRIPT]}}},
        "securityContext": RESTRICTED_CONTAINER,
        "volumeMounts": [
            {"name": DATA_VOLUME, "mountPath": "/var/lib/postgresql/data"},
            tls.SERVER_MOUNT,
            {"name": "config", "mountPath": CONFIG_DIR, "readOnly": True},
            {"name": "run", "mountPath": SOCKET_DIR},
            {"name": "tmp", "mountPath": "/tmp"},  # noqa: S108 (an emptyDir, per pod)
        ],
    }
    volumes = [
        tls.server_volume(owner.name),
        {"name": "config", "configMap": {"name": names.database_config}},
        {"name": "run", "emptyDir": {}},
        {"name": "tmp", "emptyDir": {}},
    ]
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
                "metadata": template_metadata(owner.name, DATABASE_COMPONENT, annotations),
                "spec": pod_spec(owner.name, DB_UID, [container], volumes),
            },
            "volumeClaimTemplates": [
                {
                    "metadata": {"name": DATA_VOLUME, "labels": labels(owner.name, DATABASE_COMPONENT)},
                    "spec": claim_spec,
                }
            ],
        },
    }
