"""Backups and restores: the backup volume, the backup and restore Jobs, a scheduled TaskPlatformBackup, and
their names and labels. Pure functions from the specs; backups.py and restore.py read the cluster and write these.

A backup or restore pod pairs the database image (its own pg_dump / pg_restore, which always match the
server) with the API image's `taskplatform-dumpstore` (taskplatform/migration/dumpstore.py), joined by a
named pipe in a shared emptyDir: the dump streams straight to its store and back, in bounded memory.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from taskplatform.operator.conditions import rfc3339
from taskplatform.operator.dbroles import BACKUP_ROLE, OWNER_ROLE, DatabaseRole
from taskplatform.operator.kinds import JOB, PERSISTENT_VOLUME_CLAIM, TASK_PLATFORM_BACKUP, Manifest
from taskplatform.operator.models import DEFAULT_COMPRESSION_LEVEL, BackupSpec, S3Location, TaskPlatformSpec
from taskplatform.operator.specs import tls
from taskplatform.operator.specs.common import (
    API_UID,
    DB_UID,
    RESTRICTED_CONTAINER,
    TERMINATION_LOG,
    Owner,
    labels,
    metadata,
    pod_spec,
)
from taskplatform.operator.specs.names import DB_NAME, DB_PORT, Names

# The `app.kubernetes.io/component` of the backup and restore Jobs' pods (the database admits both); the backup
# volume and the scheduled TaskPlatformBackups carry BACKUP_COMPONENT too.
BACKUP_COMPONENT = "backup"
RESTORE_COMPONENT = "restore"
SCHEDULE_STAMP = "%Y%m%d%H%M%S"


def backup_claim_name(platform: str) -> str:
    return f"{platform}-backups"


def backup_job_name(backup: str) -> str:
    return f"{backup}-dump"


def restore_job_name(platform: str) -> str:
    return f"{platform}-restore"


def scheduled_backup_name(platform: str, scheduled_time: datetime) -> str:
    """A scheduled TaskPlatformBackup's name: one per platform and scheduled time, so a repeated pass (or a
    second operator replica) cannot start the same backup twice."""
    return f"{platform}-{scheduled_time.strftime(SCHEDULE_STAMP)}"


STREAM_DIR = "/stream"
FIFO = f"{STREAM_DIR}/dump"
STATUS_FILE = f"{STREAM_DIR}/dump.status"
BACKUP_MOUNT = "/backups"
DUMP_SUFFIX = ".dump"
# Bounds on a Job that cannot finish (a store that never answers): it then fails with DeadlineExceeded.
JOB_DEADLINE_S = 6 * 3600
# The label tying a TaskPlatformBackup to its platform, and the one marking those the schedule started.
PLATFORM_LABEL = "taskplatform.io/platform"
SCHEDULED_LABEL = "taskplatform.io/scheduled"
# On a backup Job's pod: the TaskPlatformBackup it serves, so that the pod's changes reach that backup's pass.
BACKUP_LABEL = "taskplatform.io/backup"
SCHEDULED_TIME_ANNOTATION = "taskplatform.io/scheduled-time"
# The containers' roles; the operator reads each one's termination message by name.
DUMP_CONTAINER = "pg-dump"
RESTORE_CONTAINER = "pg-restore"
TRANSFER_CONTAINER = "transfer"

# The transfer container makes the pipe (no init container: one less container start per Job); the database
# side waits for it. pg_dump's exit status is written after the stream closes: the uploader completes the
# upload only on 0.
WAIT_FOR_FIFO = f'until [ -p "{FIFO}" ]; do sleep 0.1; done'


# How long pg_dump waits for the database to answer a new pod's connection: where NetworkPolicies are enforced, a
# new pod's address is admitted when the enforcer learns it from the API server, a moment after its containers
# start (seen on the real node with kube-router: the first connection refused), and a failed backup is not retried.
CONNECT_WAIT_TRIES = 300  # every 0.2 s (each try waits up to 5 s for an answer): at least a minute


def dump_script(compression_level: int) -> str:
    return (
        f"{WAIT_FOR_FIFO}; n=0; until pg_isready --quiet --timeout=5 || [ $n -ge {CONNECT_WAIT_TRIES} ]; "
        "do n=$((n + 1)); sleep 0.2; done; "
        f'pg_dump --format=custom --compress={compression_level:d} --no-password > "{FIFO}"; '
        f'status=$?; echo "$status" > "{STATUS_FILE}.tmp" && mv "{STATUS_FILE}.tmp" "{STATUS_FILE}"; '
        'exit "$status"'
    )


# How long a restore waits, once PostgreSQL accepts connections, for its role to log in: the database pod's
# postStart hook creates the roles just after the server starts (dbroles.py); the restore reaches the pod before
# it is Ready. After that pg_restore runs anyway, and its refusal is the Job's reason.
LOGIN_WAIT_TRIES = 600  # every 0.2 s: 2 minutes
# One transaction: a stream that ends early (a failed or corrupted download) leaves the database untouched. As the
# owner role, with --no-owner --no-privileges: every object restored belongs to it (and the API role's default
# privileges apply), and a dump cannot run anything a superuser could (COPY TO PROGRAM, untrusted languages).
RESTORE_SCRIPT = (
    f"{WAIT_FOR_FIFO}; until pg_isready --quiet --timeout=5; do sleep 0.2; done; "
    f"n=0; until psql -XAtqc 'SELECT 1' >/dev/null 2>&1 || [ $n -ge {LOGIN_WAIT_TRIES} ]; "
    "do n=$((n + 1)); sleep 0.2; done; "
    f'exec pg_restore --single-transaction --exit-on-error --no-owner --no-privileges --dbname="$PGDATABASE" < "{FIFO}"'
)


def dump_key(prefix: str, platform: str, backup: str) -> str:
    """Where a backup's dump goes in its store: `<prefix>/<platform>/<backup>.dump`."""
    return "/".join(part for part in (prefix.strip("/"), platform, backup + DUMP_SUFFIX) if part)


@dataclass(frozen=True, slots=True)
class Store:
    """A dump store as the transfer container reaches it: an S3 bucket, or a volume claim."""

    s3: S3Location | None = None
    volume_claim: str | None = None

    @staticmethod
    def of(backup: BackupSpec, platform: str) -> Store:
        if backup.s3 is not None:
            return Store(s3=backup.s3)
        return Store(volume_claim=backup_claim_name(platform))

    def args(self) -> list[str]:
        if self.s3 is None:
            return ["--dir", BACKUP_MOUNT, "--dir-location", f"pvc://{self.volume_claim}"]
        args = ["--s3-endpoint", self.s3.endpoint, "--bucket", self.s3.bucket, "--region", self.s3.region]
        if not self.s3.tls:
            args.append("--no-tls")
        if not self.s3.verify_tls:
            args.append("--insecure-skip-verify")
        return args

    def env(self) -> list[dict[str, Any]]:
        if self.s3 is None:
            return []
        ref = self.s3.credentials_secret_ref.name
        return [
            {"name": "AWS_ACCESS_KEY_ID", "valueFrom": {"secretKeyRef": {"name": ref, "key": "access-key-id"}}},
            {"name": "AWS_SECRET_ACCESS_KEY", "valueFrom": {"secretKeyRef": {"name": ref, "key": "secret-access-key"}}},
        ]

    def volumes(self) -> list[dict[str, Any]]:
        if self.volume_claim is None:
            return []
        return [{"name": "backups", "persistentVolumeClaim": {"claimName": self.volume_claim}}]

    def mounts(self) -> list[dict[str, Any]]:
        return [{"name": "backups", "mountPath": BACKUP_MOUNT}] if self.volume_claim is not None else []


class Dump(NamedTuple):
    """A dump to restore: its store, its key there, and the SHA-256 it must have (None: the `.sha256` file beside
    it, if any)."""

    store: Store
    key: str
    sha256: str | None


def backup_claim(owner: Owner, backup: BackupSpec) -> Manifest | None:
    """The backup volume. No owner reference: it outlives its TaskPlatform, which is the point of a backup."""
    if backup.volume is None:
        return None
    spec: dict[str, Any] = {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": backup.volume.size}},
    }
    if backup.volume.storage_class_name:
        spec["storageClassName"] = backup.volume.storage_class_name
    return {
        **PERSISTENT_VOLUME_CLAIM.type_meta(),
        "metadata": {
            "name": backup_claim_name(owner.name),
            "namespace": owner.namespace,
            "labels": labels(owner.name, BACKUP_COMPONENT),
        },
        "spec": spec,
    }


def _pg_env(platform: str, role: DatabaseRole) -> list[dict[str, Any]]:
    names = Names(platform)
    return [
        # The pod itself: a restore's new database is reached the moment it accepts connections (database.py).
        {"name": "PGHOST", "value": names.database_pod_host},
        {"name": "PGPORT", "value": str(DB_PORT)},
        {"name": "PGUSER", "value": role.name},
        {"name": "PGDATABASE", "value": DB_NAME},
        {"name": "PGPASSWORD", "valueFrom": {"secretKeyRef": {"name": names.secret, "key": role.password_key}}},
        {"name": "PGCONNECT_TIMEOUT", "value": "10"},
        *tls.CLIENT_ENV,
    ]


def _stream_job(
    owner: Owner,
    platform: str,
    name: str,
    component: str,
    spec: TaskPlatformSpec,
    database: dict[str, Any],
    role: DatabaseRole,
    transfer_args: list[str],
    store: Store,
    pod_labels: dict[str, str],
) -> Manifest:
    stream_mount = {"name": "stream", "mountPath": STREAM_DIR}
    as_database = {**RESTRICTED_CONTAINER, "runAsUser": DB_UID, "runAsGroup": DB_UID}
    database = {
        **database,
        "image": spec.database.image,
        "env": _pg_env(platform, role),
        "securityContext": as_database,
        "terminationMessagePolicy": "FallbackToLogsOnError",  # pg_dump's / pg_restore's last words
        "volumeMounts": [stream_mount, tls.CLIENT_MOUNT],
        "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}},
    }
    transfer = {
        "name": TRANSFER_CONTAINER,
        "image": spec.api.image,
        "command": ["taskplatform-dumpstore"],
        "args": [*transfer_args, "--fifo", FIFO, *store.args(), "--summary-file", TERMINATION_LOG],
        "env": store.env(),
        "securityContext": RESTRICTED_CONTAINER,
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "volumeMounts": [stream_mount, *store.mounts()],
        "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"memory": "256Mi"}},
    }
    return {
        **JOB.type_meta(),
        "metadata": {**metadata(owner, name, component), "labels": labels(platform, component)},
        "spec": {
            # A failed dump or restore is reported, not retried: the next scheduled backup is the retry, and a
            # corrupted dump does not get better.
            "backoffLimit": 0,
            "activeDeadlineSeconds": JOB_DEADLINE_S,
            "ttlSecondsAfterFinished": 7 * 86400,
            "template": {
                "metadata": {"labels": {**labels(platform, component), **pod_labels}},
                # The transfer container first: the kubelet creates a pod's containers one after the other
                # (~0.3 s each here), so its Python starts while the database container is being created,
                # and the pipe exists by the time pg_dump / pg_restore looks for it.
                "spec": pod_spec(
                    platform,
                    API_UID,
                    [transfer, database],
                    [{"name": "stream", "emptyDir": {}}, tls.client_volume(platform), *store.volumes()],
                    restartPolicy="Never",
                ),
            },
        },
    }


def backup_job(
    owner: Owner, platform: str, spec: TaskPlatformSpec, key: str, store: Store, prune: list[str]
) -> Manifest:
    """The Job of one TaskPlatformBackup (`owner`): pg_dump of `platform`'s database into `key` of `store`,
    then deletion of the dumps at `prune` (those beyond retention once this one exists)."""
    args = ["upload", "--key", key, "--status-file", STATUS_FILE]
    for old in prune:
        args += ["--prune", old]
    level = spec.database.backup.compression_level if spec.database.backup else DEFAULT_COMPRESSION_LEVEL
    dump = {"name": DUMP_CONTAINER, "command": ["sh", "-c", dump_script(level)]}
    pod_labels = {BACKUP_LABEL: owner.name}
    name = backup_job_name(owner.name)
    return _stream_job(owner, platform, name, BACKUP_COMPONENT, spec, dump, BACKUP_ROLE, args, store, pod_labels)


def restore_job(owner: Owner, spec: TaskPlatformSpec, key: str, store: Store, sha256: str | None) -> Manifest:
    """The Job restoring a new TaskPlatform's (`owner`) database from the dump at `key` of `store`."""
    args = ["download", "--key", key]
    if sha256:
        args += ["--sha256", sha256]
    restore = {"name": RESTORE_CONTAINER, "command": ["sh", "-c", RESTORE_SCRIPT]}
    name = restore_job_name(owner.name)
    return _stream_job(owner, owner.name, name, RESTORE_COMPONENT, spec, restore, OWNER_ROLE, args, store, {})


def scheduled_backup(platform: Owner, scheduled_time: datetime) -> Manifest:
    """The TaskPlatformBackup the schedule starts at `scheduled_time` (not owned: a backup outlives its platform)."""
    return {
        **TASK_PLATFORM_BACKUP.type_meta(),
        "metadata": {
            "name": scheduled_backup_name(platform.name, scheduled_time),
            "namespace": platform.namespace,
            "labels": {
                **labels(platform.name, BACKUP_COMPONENT),
                PLATFORM_LABEL: platform.name,
                SCHEDULED_LABEL: "true",
            },
            "annotations": {SCHEDULED_TIME_ANNOTATION: rfc3339(scheduled_time)},
        },
        "spec": {"platform": platform.name},
    }
