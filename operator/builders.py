"""Desired state: pure functions from a TaskPlatform's typed spec to the manifests it should own.

No cluster access here; the handlers compare these with what exists and apply the difference. Every child
carries an owner reference (deletion cascades) and the same labels (selection, `kubectl get -l`).
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from taskplatform.operator import dbroles
from taskplatform.operator.dbroles import API_ROLE, MIGRATION_ROLE, OWNER_ROLE, ROLES, SUPERUSER, DatabaseRole
from taskplatform.operator.jwtkeys import ADDITIONAL_KEY, SIGNING_KEY, JwtKeys
from taskplatform.operator.kinds import (
    DEPLOYMENT,
    HORIZONTAL_POD_AUTOSCALER,
    JOB,
    NETWORK_POLICY,
    POD_DISRUPTION_BUDGET,
    SECRET,
    SERVICE,
    STATEFUL_SET,
    TASK_PLATFORM,
    CustomResourceKind,
    Manifest,
)
from taskplatform.operator.models import DataMigrationSpec, TaskPlatformSpec

API_PORT = 8000
API_DRAIN_SECONDS = 5  # preStop pause of a stopping API pod (api_deployment)
DB_PORT = 5432
DB_NAME = "taskplatform"
API_UID = 10001  # the API image's numeric USER (Dockerfile.api)
DB_UID = 999  # the postgres user of the official image and of the locally built one
DATA_VOLUME = "data"  # the StatefulSet's volumeClaimTemplate
# The keys of the credentials Secret (a user's own JWT Secret uses JWT_SECRET_KEY too). PASSWORD_KEY is the
# bootstrap superuser's password (the database pod's alone); each database role has `<role>-password` and
# `<role>-database-url` (dbroles.py). JWT_SECRET_KEY is the key that should sign; the API pods use the keys of
# jwtkeys.py (SIGNING_KEY, ADDITIONAL_KEY), which follow it.
PASSWORD_KEY, JWT_SECRET_KEY = "postgres-password", "jwt-secret"
# The superuser's URL, which operators from before the database roles wrote and their pods used: removed once the
# API runs on its own role (platform.py), so that an old pod restarting meanwhile still finds it.
LEGACY_DATABASE_URL_KEY = "database-url"
# The `app.kubernetes.io/component` of each kind of pod; the database admits connections from DATABASE_CLIENTS.
DATABASE = "database"
API = "api"
SCHEMA_MIGRATION = "schema-migration"
DATA_MIGRATION = "data-migration"
BACKUP = "backup"
RESTORE = "restore"
DATABASE_CLIENTS = (API, SCHEMA_MIGRATION, DATA_MIGRATION, BACKUP, RESTORE)


@dataclass(frozen=True, slots=True)
class Owner:
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


@dataclass(frozen=True, slots=True)
class Names:
    platform: str

    @property
    def secret(self) -> str:
        return f"{self.platform}-credentials"

    @property
    def database(self) -> str:
        return f"{self.platform}-db"

    @property
    def database_headless(self) -> str:
        return f"{self.platform}-db-headless"

    @property
    def api(self) -> str:
        return f"{self.platform}-api"

    @property
    def database_pod(self) -> str:
        """The StatefulSet's one pod."""
        return f"{self.database}-0"

    @property
    def database_pod_host(self) -> str:
        """The database pod's own DNS name (through the headless Service), resolvable as soon as the pod has an
        address: for a client that must not wait for the pod's readiness and the Service's routing."""
        return f"{self.database_pod}.{self.database_headless}"

    @property
    def database_claim(self) -> str:
        """The volume claim the StatefulSet controller makes for its one pod."""
        return f"{DATA_VOLUME}-{self.database_pod}"


@dataclass(frozen=True, slots=True)
class Credentials:
    """Generated once and kept in the Secret; the handlers read them back instead of regenerating."""

    db_password: str = field(repr=False)  # the bootstrap superuser's: only the database pod gets it
    jwt_secret: str = field(repr=False)  # the generated (or user-edited) desired JWT key
    jwt_keys: JwtKeys | None = None  # what the API pods sign with and accept; None: jwt_secret alone signs
    role_passwords: Mapping[str, str] = field(default_factory=dict, repr=False)  # DatabaseRole.key -> password

    @property
    def keys(self) -> JwtKeys:
        return self.jwt_keys or JwtKeys(self.jwt_secret)

    def password(self, role: DatabaseRole) -> str:
        return self.role_passwords[role.key]

    @property
    def digest(self) -> str:
        """Stamped on the database's pod template: what its pod reads from the Secret (every role's password, which
        its postStart hook sets), so changing any of them rolls it."""
        material = json.dumps([self.db_password, *(self.password(role) for role in ROLES)])
        return hashlib.sha256(material.encode()).hexdigest()[:16]

    @property
    def api_digest(self) -> str:
        """Stamped on the API's pod template: what its pods read from the Secret (the API role's password and the
        JWT keys in effect), so each change of them, and each rotation phase, is one rollout."""
        keys = self.keys
        material = json.dumps([self.password(API_ROLE), keys.signing, keys.additional])
        return hashlib.sha256(material.encode()).hexdigest()[:16]


CREDENTIALS_ANNOTATION = "taskplatform.io/credentials-digest"


INSTANCE_LABEL = "app.kubernetes.io/instance"  # the platform's name
COMPONENT_LABEL = "app.kubernetes.io/component"  # one of the components above
MANAGED_BY = {"app.kubernetes.io/managed-by": "taskplatform-operator"}  # on everything the operator creates


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


def _metadata(owner: Owner, name: str, component: str) -> dict[str, Any]:
    return {
        "name": name,
        "namespace": owner.namespace,
        "labels": labels(owner.name, component),
        "ownerReferences": [owner.reference()],
    }


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def database_url(owner: Owner, user: str, password: str) -> str:
    """The password percent-encoded: a user-provided one may hold `@`, `:`, `/`, `%` or a space."""
    host = f"{Names(owner.name).database}.{owner.namespace}.svc"
    return f"postgresql://{user}:{quote(password, safe='')}@{host}:{DB_PORT}/{DB_NAME}"


def credentials_secret(owner: Owner, credentials: Credentials, legacy_url: str | None = None) -> Manifest:
    """The superuser's password (no URL: no client connects as it), and each role's password and URL.
    `legacy_url`: the superuser's URL an operator from before the roles wrote, kept while its pods may use it."""
    roles: dict[str, str] = {}
    for role in ROLES:
        password = credentials.password(role)
        roles[role.password_key] = password
        roles[role.url_key] = database_url(owner, role.name, password)
    data = {
        PASSWORD_KEY: credentials.db_password,
        **roles,
        JWT_SECRET_KEY: credentials.jwt_secret,
        **(credentials.jwt_keys.secret_data() if credentials.jwt_keys is not None else {}),
        **({LEGACY_DATABASE_URL_KEY: legacy_url} if legacy_url is not None else {}),
    }
    return {
        **SECRET.type_meta(),
        "metadata": _metadata(owner, Names(owner.name).secret, "credentials"),
        "type": "Opaque",
        "data": {key: _b64(value) for key, value in data.items()},
    }


def _resources(resources: Any) -> dict[str, Any]:
    dumped: dict[str, Any] = resources.model_dump(exclude_none=True)
    return {k: v for k, v in dumped.items() if v}


_RESTRICTED_CONTAINER = {
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "readOnlyRootFilesystem": True,
}


def _pod_security(uid: int) -> dict[str, Any]:
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


def database_services(owner: Owner) -> list[Manifest]:
    names = Names(owner.name)
    port = {"name": "postgres", "port": DB_PORT, "targetPort": "postgres"}
    headless = {
        **SERVICE.type_meta(),
        "metadata": _metadata(owner, names.database_headless, DATABASE),
        "spec": {
            "clusterIP": "None",
            "selector": selector(owner.name, DATABASE),
            "ports": [port],
            # The pod's name resolves before it is Ready: a restore connects as soon as PostgreSQL accepts
            # connections, instead of after the next readiness probe and the ClusterIP's routing update (kube-proxy
            # applies those at most once a second). Clients of the database proper use the ClusterIP Service.
            "publishNotReadyAddresses": True,
        },
    }
    client = {
        **SERVICE.type_meta(),
        "metadata": _metadata(owner, names.database, DATABASE),
        "spec": {"type": "ClusterIP", "selector": selector(owner.name, DATABASE), "ports": [port]},
    }
    return [headless, client]


def _template_metadata(
    owner: Owner, component: str, digest: str | None, annotations: dict[str, str] | None = None
) -> dict[str, Any]:
    metadata: dict[str, Any] = {"labels": labels(owner.name, component)}
    merged = dict(annotations or {})
    if digest is not None:
        merged[CREDENTIALS_ANNOTATION] = digest
    if merged:
        metadata["annotations"] = merged
    return metadata


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
    return {
        **STATEFUL_SET.type_meta(),
        "metadata": _metadata(owner, names.database, DATABASE),
        "spec": {
            "serviceName": names.database_headless,
            "replicas": 1,
            "selector": {"matchLabels": selector(owner.name, DATABASE)},
            # Kubernetes itself keeps or deletes the volume when the StatefulSet goes (spec.database).
            "persistentVolumeClaimRetentionPolicy": {"whenDeleted": db.pvc_retention_policy, "whenScaled": "Retain"},
            "template": {
                "metadata": _template_metadata(owner, DATABASE, credentials.digest if credentials else None),
                "spec": {
                    "securityContext": _pod_security(DB_UID),
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
                                _from_secret(dbroles.SUPERUSER_PASSWORD_ENV, names.secret, PASSWORD_KEY),
                                *(_from_secret(role.password_env, names.secret, role.password_key) for role in ROLES),
                            ],
                            "resources": _resources(db.resources),
                            "readinessProbe": {"exec": {"command": ready}, "periodSeconds": 5},
                            "livenessProbe": {"exec": {"command": ready}, "periodSeconds": 10, "failureThreshold": 6},
                            "lifecycle": {"postStart": {"exec": {"command": ["sh", "-c", dbroles.SYNC_SCRIPT]}}},
                            "securityContext": {**_RESTRICTED_CONTAINER, "readOnlyRootFilesystem": False},
                            "volumeMounts": [{"name": DATA_VOLUME, "mountPath": "/var/lib/postgresql/data"}],
                        }
                    ],
                },
            },
            "volumeClaimTemplates": [
                {"metadata": {"name": DATA_VOLUME, "labels": labels(owner.name, DATABASE)}, "spec": claim_spec}
            ],
        },
    }


def _from_secret(name: str, secret: str, key: str) -> dict[str, Any]:
    return {"name": name, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}


def _api_env(owner: Owner, spec: TaskPlatformSpec, role: DatabaseRole) -> list[dict[str, Any]]:
    """DATABASE_URL is `role`'s (the API's, or the owner's for the schema Job). The JWT keys come from the
    credentials Secret whether or not spec.auth.secretRef is set: the operator copies the referenced key there in
    the phases of a rotation (jwtkeys.py), never all at once."""
    secret = Names(owner.name).secret
    env: list[dict[str, Any]] = [
        {"name": "ENVIRONMENT", "value": "prod"},
        _from_secret("DATABASE_URL", secret, role.url_key),
        _from_secret("JWT_SECRET", secret, SIGNING_KEY),
        _from_secret("JWT_ADDITIONAL_SECRETS", secret, ADDITIONAL_KEY),
        {"name": "ACCESS_TOKEN_TTL_S", "value": str(spec.auth.access_token_ttl_seconds)},
        {"name": "REFRESH_TOKEN_TTL_S", "value": str(spec.auth.refresh_token_ttl_seconds)},
    ]
    if spec.api.trusted_proxies:
        env.append({"name": "TRUSTED_PROXIES", "value": ",".join(spec.api.trusted_proxies)})
    return env + [{"name": e.name, "value": e.value} for e in spec.api.env]


def max_token_ttl_s(spec: TaskPlatformSpec) -> int:
    """How long a token the API signs now may be accepted: the longer of the two lifetimes."""
    return max(spec.auth.access_token_ttl_seconds, spec.auth.refresh_token_ttl_seconds)


def schema_job_name(owner: Owner, spec: TaskPlatformSpec) -> str:
    """One migration Job per API image: a new image runs `migrate` again before it rolls out."""
    digest = hashlib.sha256(spec.api.image.encode()).hexdigest()[:10]
    return f"{owner.name}-schema-{digest}"


def _api_container(
    owner: Owner, spec: TaskPlatformSpec, name: str, args: list[str], role: DatabaseRole
) -> dict[str, Any]:
    return {
        "name": name,
        "image": spec.api.image,
        "args": args,
        "env": _api_env(owner, spec, role),
        "resources": _resources(spec.api.resources),
        "securityContext": _RESTRICTED_CONTAINER,
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],  # noqa: S108 (an emptyDir, per pod)
    }


def schema_migration_job(owner: Owner, spec: TaskPlatformSpec) -> Manifest:
    # Started beside the database: it waits for PostgreSQL rather than failing into the Job's backoff.
    # As the owner role: its migrations create and alter the tables it owns (the API role may not).
    container = _api_container(owner, spec, "migrate", ["migrate", "--wait", "600"], OWNER_ROLE)
    return {
        **JOB.type_meta(),
        "metadata": _metadata(owner, schema_job_name(owner, spec), SCHEMA_MIGRATION),
        "spec": {
            "backoffLimit": 6,
            "ttlSecondsAfterFinished": 86400,
            "template": {
                "metadata": _template_metadata(owner, SCHEMA_MIGRATION, None, spec.api.pod_annotations),
                "spec": {
                    "restartPolicy": "OnFailure",
                    "securityContext": _pod_security(API_UID),
                    "enableServiceLinks": False,
                    "containers": [container],
                    "volumes": [{"name": "tmp", "emptyDir": {}}],
                },
            },
        },
    }


def api_deployment(owner: Owner, spec: TaskPlatformSpec, credentials: Credentials | None = None) -> Manifest:
    container = _api_container(owner, spec, API, ["serve", "--port", str(API_PORT)], API_ROLE)
    container["ports"] = [{"name": "http", "containerPort": API_PORT}]
    container["livenessProbe"] = {"httpGet": {"path": "/healthz", "port": "http"}, "periodSeconds": 10}
    container["readinessProbe"] = {"httpGet": {"path": "/readyz", "port": "http"}, "periodSeconds": 5}
    # A deleted pod keeps serving until its address has left the Service's endpoints everywhere (kube-proxy
    # on every node); without the pause, connections routed there meanwhile are refused.
    container["lifecycle"] = {"preStop": {"sleep": {"seconds": API_DRAIN_SECONDS}}}
    deployment_spec: dict[str, Any] = {
        "selector": {"matchLabels": selector(owner.name, API)},
        "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
        "template": {
            "metadata": _template_metadata(
                owner, API, credentials.api_digest if credentials else None, spec.api.pod_annotations
            ),
            "spec": {
                "securityContext": _pod_security(API_UID),
                "enableServiceLinks": False,
                "terminationGracePeriodSeconds": 30,
                "containers": [container],
                "volumes": [{"name": "tmp", "emptyDir": {}}],
            },
        },
    }
    if spec.api.autoscaling is None:
        # With autoscaling the HorizontalPodAutoscaler owns replicas; setting them here would fight it.
        deployment_spec["replicas"] = spec.api.replicas
    return {
        **DEPLOYMENT.type_meta(),
        "metadata": _metadata(owner, Names(owner.name).api, API),
        "spec": deployment_spec,
    }


def api_service(owner: Owner, spec: TaskPlatformSpec) -> Manifest:
    return {
        **SERVICE.type_meta(),
        "metadata": _metadata(owner, Names(owner.name).api, API),
        "spec": {
            "type": spec.api.service.type,
            "selector": selector(owner.name, API),
            "ports": [{"name": "http", "port": spec.api.service.port, "targetPort": "http"}],
        },
    }


def api_pdb(owner: Owner, spec: TaskPlatformSpec) -> Manifest | None:
    """Only when there is more than one replica to keep: a PDB over one pod would block every drain."""
    fewest = spec.api.autoscaling.min_replicas if spec.api.autoscaling else spec.api.replicas
    if fewest <= 1:
        return None
    return {
        **POD_DISRUPTION_BUDGET.type_meta(),
        "metadata": _metadata(owner, Names(owner.name).api, API),
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": selector(owner.name, API)}},
    }


def api_hpa(owner: Owner, spec: TaskPlatformSpec) -> Manifest | None:
    scaling = spec.api.autoscaling
    if scaling is None:
        return None
    return {
        **HORIZONTAL_POD_AUTOSCALER.type_meta(),
        "metadata": _metadata(owner, Names(owner.name).api, API),
        "spec": {
            "scaleTargetRef": {**DEPLOYMENT.type_meta(), "name": Names(owner.name).api},
            "minReplicas": scaling.min_replicas,
            "maxReplicas": scaling.max_replicas,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {
                            "type": "Utilization",
                            "averageUtilization": scaling.target_cpu_utilization_percentage,
                        },
                    },
                }
            ],
        },
    }


def database_network_policy(owner: Owner) -> Manifest:
    """Only the platform's own database clients (API pods; schema, data migration, backup and restore Jobs) may
    open connections to its PostgreSQL, and only on its port. Enforced where the network plugin enforces policies."""
    names = Names(owner.name)
    clients = {
        "podSelector": {
            "matchLabels": {"app.kubernetes.io/instance": owner.name},
            "matchExpressions": [
                {"key": "app.kubernetes.io/component", "operator": "In", "values": list(DATABASE_CLIENTS)}
            ],
        }
    }
    return {
        **NETWORK_POLICY.type_meta(),
        "metadata": _metadata(owner, names.database, DATABASE),
        "spec": {
            "podSelector": {"matchLabels": selector(owner.name, DATABASE)},
            "policyTypes": ["Ingress"],
            "ingress": [{"from": [clients], "ports": [{"protocol": "TCP", "port": DB_PORT}]}],
        },
    }


def desired_state(owner: Owner, spec: TaskPlatformSpec, credentials: Credentials) -> list[Manifest]:
    """Everything a TaskPlatform owns, in the order it is created (database before schema before API)."""
    optional = [api_pdb(owner, spec), api_hpa(owner, spec)]
    return [
        credentials_secret(owner, credentials),
        *database_services(owner),
        database_network_policy(owner),
        database_statefulset(owner, spec, credentials),
        schema_migration_job(owner, spec),
        api_deployment(owner, spec, credentials),
        api_service(owner, spec),
        *[m for m in optional if m is not None],
    ]


def data_migration_job_name(migration: str) -> str:
    return f"{migration}-migrate"


def backup_claim_name(platform: str) -> str:
    return f"{platform}-backups"


def backup_job_name(backup: str) -> str:
    return f"{backup}-dump"


def restore_job_name(platform: str) -> str:
    return f"{platform}-restore"


SCHEDULE_STAMP = "%Y%m%d%H%M%S"


def scheduled_backup_name(platform: str, scheduled_time: datetime) -> str:
    """A scheduled TaskPlatformBackup's name: one per platform and scheduled time, so a repeated pass (or a
    second operator replica) cannot start the same backup twice."""
    return f"{platform}-{scheduled_time.strftime(SCHEDULE_STAMP)}"


# --- how long a resource's name may be ----------------------------------------------------------------------
# Child names become label values too (a Job's pods carry `job-name`; a StatefulSet labels its pods and
# revisions `<statefulset>-<10-character hash>`), and label values, like Service names, have at most 63
# characters. So a resource's name may be 63 less the longest suffix its children add; the CRDs refuse
# longer names at admission (crdgen.py) instead of accepting a resource whose children cannot exist.
NAME_PART_MAX = 63
_REVISION_HASH = "-" + "0" * 10


def platform_child_names(name: str) -> list[str]:
    names, owner = Names(name), Owner(TASK_PLATFORM, name, "", "")
    return [
        names.secret,
        names.database,
        names.database_headless,
        names.database + _REVISION_HASH,
        names.api,
        schema_job_name(owner, TaskPlatformSpec()),
        restore_job_name(name),
        backup_claim_name(name),
        backup_job_name(scheduled_backup_name(name, datetime(2000, 1, 1, tzinfo=UTC))),
    ]


def migration_child_names(name: str) -> list[str]:
    return [data_migration_job_name(name)]


def backup_child_names(name: str) -> list[str]:
    return [backup_job_name(name)]


def max_name_length(child_names: Callable[[str], list[str]]) -> int:
    return NAME_PART_MAX - max(len(child) for child in child_names(""))


MAX_PLATFORM_NAME = max_name_length(platform_child_names)
MAX_MIGRATION_NAME = max_name_length(migration_child_names)
MAX_BACKUP_NAME = max_name_length(backup_child_names)


def data_migration_job(owner: Owner, spec: DataMigrationSpec, platform_spec: TaskPlatformSpec) -> Manifest:
    """The migration Job of a DataMigration: the API image's `taskplatform-migrate` against the platform's DB."""
    platform = Names(spec.target)
    args = ["--batch-size", str(spec.batch_size), "--collections", ",".join(spec.collections),
            "--read-order", spec.read_order.value, "--progress", "json"]  # fmt: skip
    if spec.dry_run:
        args.append("--dry-run")
    if spec.verify and not spec.dry_run:
        args.append("--verify")
    container = {
        "name": "migrate",
        "image": platform_spec.api.image,
        "command": ["taskplatform-migrate"],
        "args": args,
        "env": [
            {"name": "SOURCE_URI", "valueFrom": {"secretKeyRef": {"name": spec.source_secret_ref.name, "key": "uri"}}},
            {"name": "SOURCE_DB", "value": spec.source_database},
            _from_secret("TARGET_URL", platform.secret, MIGRATION_ROLE.url_key),
            {"name": "PROGRESS_INTERVAL", "value": "2"},
            # The outcome as JSON in the pod's status: the operator reads the final counts from there.
            {"name": "SUMMARY_FILE", "value": "/dev/termination-log"},
        ],
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "securityContext": _RESTRICTED_CONTAINER,
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],  # noqa: S108 (an emptyDir, per pod)
    }
    return {
        **JOB.type_meta(),
        "metadata": {
            "name": data_migration_job_name(owner.name),
            "namespace": owner.namespace,
            "labels": labels(spec.target, DATA_MIGRATION),
            "ownerReferences": [owner.reference()],
        },
        "spec": {
            # Re-running is safe (upserts, checkpoints), so a crashed pod resumes where the last one stopped;
            # but a verification that found differences (exit 3) would find them again: that ends the Job.
            # (Exit 2 — a database unreachable — is worth the retries.)
            "backoffLimit": 3,
            "podFailurePolicy": {
                "rules": [
                    {
                        "action": "FailJob",
                        "onExitCodes": {"containerName": "migrate", "operator": "In", "values": [3]},
                    }
                ]
            },
            "template": {
                "metadata": {
                    "labels": labels(spec.target, DATA_MIGRATION),
                    "annotations": dict(spec.pod_annotations),
                },
                "spec": {
                    "restartPolicy": "Never",
                    "securityContext": _pod_security(API_UID),
                    "enableServiceLinks": False,
                    "containers": [container],
                    "volumes": [{"name": "tmp", "emptyDir": {}}],
                },
            },
        },
    }
