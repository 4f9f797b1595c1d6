"""Backups and restores: the backup volume, the backup and restore Jobs, a scheduled TaskPlatformBackup, the
dumps' keys, and their names and labels. Pure functions from the specs; backups.py and restore.py read the
cluster and write these.

Each Job pairs the database image (its own pg_dump / pg_restore, which always match the server) with the API
image's `taskplatform-dumpstore` (taskplatform/migration/dumpstore.py):
- a backup pod joins them by a named pipe in a shared emptyDir: the dump streams straight to its store, in
  bounded memory;
- a restore pod first runs the download as an init container, onto a scratch volume of its own sized from the
  dump's bound: the whole dump is verified there before the pg_restore container (which starts only if the
  download succeeded) reads a byte of it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from taskplatform.migration.dumpstore import SCRATCH_RESERVE_BYTES
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
# The containers' roles; the operator reads each one's termination message by name (status.terminations). The
# transfer is a backup pod's container beside pg_dump, and a restore pod's init container before pg_restore.
DUMP_CONTAINER = "pg-dump"
RESTORE_CONTAINER = "pg-restore"
TRANSFER_CONTAINER = "transfer"

# A backup's transfer container makes the pipe (no init container: one less container start per Job); pg_dump's
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


# A restore's scratch volume: the download writes the dump there (SCRATCH_DUMP appears only once verified), the
# pg_restore container reads it.
SCRATCH_VOLUME = "scratch"
SCRATCH_DIR = "/scratch"
SCRATCH_DUMP = f"{SCRATCH_DIR}/dump"
# Its size beyond the dump: dumpstore keeps SCRATCH_RESERVE_BYTES free whatever the dump announces, and the
# filesystem keeps some for itself. On ext4 (the usual CSI default) 5% of the blocks are reserved for root (the
# download runs as non-root and cannot use them), the inode tables take ~1.6%, the journal up to 1 GiB (under 1% of
# any volume that large); a small filesystem's journal and metadata are a few MiB more. Measured with mkfs.ext4:
# docs/backup.md, "The scratch volume".
SCRATCH_OVERHEAD_PERCENT = 12
SCRATCH_FIXED_BYTES = 64 << 20
MIB = 1 << 20

# How long a restore waits, once PostgreSQL accepts connections, for its role to log in: the database pod's
# postStart hook creates the roles just after the server starts (dbroles.py); the restore reaches the pod before
# it is Ready. After that pg_restore runs anyway, and its refusal is the Job's reason.
LOGIN_WAIT_TRIES = 600  # every 0.2 s: 2 minutes
# pg_restore's flags, the Job's and the benchmark's baseline's (bench/backup_bench.py). As the owner role, with
# --no-owner --no-privileges: every object restored belongs to it (and the API role's default privileges apply),
# and a dump cannot run anything a superuser could (COPY TO PROGRAM, untrusted languages). --exit-on-error: the
# first failed statement fails the restore. The dump was verified whole before pg_restore starts, so the single
# transaction that once guarded against a stream cut short is not needed; --jobs (which excludes it) restores
# tables and builds indexes in parallel connections (docs/backup.md, "Parallel restore").
RESTORE_JOBS = 2
RESTORE_FLAGS = f"--exit-on-error --no-owner --no-privileges --jobs={RESTORE_JOBS}"
# Only into an empty schema: a failed parallel restore leaves what it had restored in the database volume, and a
# TaskPlatform created again on that volume (pvcRetentionPolicy Retain) must say so rather than fail at the first
# object that exists.
NOT_EMPTY = (
    "the database already holds tables, which a restore would collide with: a previous restore into this volume "
    "failed part-way. Delete the TaskPlatform and its database volume claim, then create it again (docs/backup.md)"
)
COUNT_TABLES = "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"
RESTORE_SCRIPT = (
    "until pg_isready --quiet --timeout=5; do sleep 0.2; done; "
    f"n=0; until psql -XAtqc 'SELECT 1' >/dev/null 2>&1 || [ $n -ge {LOGIN_WAIT_TRIES} ]; "
    "do n=$((n + 1)); sleep 0.2; done; "
    f'tables=$(psql -XAtqc "{COUNT_TABLES}") || exit 1; '
    f'if [ "$tables" != 0 ]; then echo "{NOT_EMPTY}" >&2; exit 1; fi; '
    f'exec pg_restore {RESTORE_FLAGS} --dbname="$PGDATABASE" "{SCRATCH_DUMP}"'
)


def dump_key(prefix: str, namespace: str, platform: str, platform_uid: str, backup: str) -> str:
    """Where a backup's dump goes in its store: `<prefix>/<namespace>/<platform>/<platform uid>/<backup>.dump`.
    The namespace: two namespaces' platforms of one name may share a bucket and prefix. The platform's uid: a
    platform deleted and created again under its name is another database with a history of its own, whose backups
    (and their retention) never touch the dumps of the one before it, such as the dump it was restored from."""
    parts = (prefix.strip("/"), namespace, platform, platform_uid, backup + DUMP_SUFFIX)
    return "/".join(part for part in parts if part)


def legacy_dump_key(prefix: str, platform: str, backup: str) -> str:
    """Where the operator before namespaced keys put a backup's dump (`<prefix>/<platform>/<backup>.dump`): such a
    backup, recorded in its TaskPlatformBackup's status, still restores and is still pruned."""
    return "/".join(part for part in (prefix.strip("/"), platform, backup + DUMP_SUFFIX) if part)


@dataclass(frozen=True, slots=True)
class DumpKeys:
    """The keys of one platform's dumps in one store (its prefix): where each of its backups goes, and which
    recorded keys are its own (the only ones its retention may delete)."""

    prefix: str
    namespace: str
    platform: str
    platform_uid: str

    def key(self, backup: str) -> str:
        return dump_key(self.prefix, self.namespace, self.platform, self.platform_uid, backup)

    def owns(self, backup: str, key: str) -> bool:
        """Whether `key`, recorded by the TaskPlatformBackup `backup` of this namespace, is where this platform put
        that backup's dump: under its own namespace and uid, or where the operator before namespaced keys put it
        (which names no namespace or uid: the TaskPlatformBackup's namespace and platform stand for them)."""
        return key in (self.key(backup), legacy_dump_key(self.prefix, self.platform, backup))


def scratch_bytes(dump_bytes: int) -> int:
    """The scratch volume a restore of a dump of at most `dump_bytes` needs, in whole MiB (SCRATCH_OVERHEAD_PERCENT
    above)."""
    needed = dump_bytes + dump_bytes * SCRATCH_OVERHEAD_PERCENT // 100 + SCRATCH_RESERVE_BYTES + SCRATCH_FIXED_BYTES
    return -(-needed // MIB) * MIB


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

    @property
    def prefix(self) -> str:
        """What every key in this store starts with (a bucket's prefix; none on a volume)."""
        return self.s3.prefix if self.s3 is not None else ""

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
    """A dump to restore: its store, its key there, the SHA-256 it must have (None: it cannot be verified, and is
    restored only if `allow_unverified`), and the most it may have (the backup's recorded size, or restoreFrom.size:
    the download's bound, and the scratch volume's size)."""

    store: Store
    key: str
    sha256: str | None
    max_bytes: int
    allow_unverified: bool = False

    def download_args(self) -> list[str]:
        """The download's arguments but for the store's: it writes SCRATCH_DUMP only once the dump is verified."""
        args = ["download", "--key", self.key, "--max-bytes", str(self.max_bytes), "--output", SCRATCH_DUMP]
        if self.sha256:
            args += ["--sha256", self.sha256]
        elif self.allow_unverified:
            args.append("--allow-unverified")
        return args


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


# The transfer side (the API image's dumpstore) and the database side (the database image's client).
TRANSFER_RESOURCES = {"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"memory": "256Mi"}}
CLIENT_RESOURCES = {"requests": {"cpu": "100m", "memory": "64Mi"}}


def _database_client(platform: str, spec: TaskPlatformSpec, name: str, script: str, role: DatabaseRole,
                     mounts: list[dict[str, Any]]) -> dict[str, Any]:  # fmt: skip
    return {
        "name": name,
        "image": spec.database.image,
        "command": ["sh", "-c", script],
        "env": _pg_env(platform, role),
        "securityContext": {**RESTRICTED_CONTAINER, "runAsUser": DB_UID, "runAsGroup": DB_UID},
        "terminationMessagePolicy": "FallbackToLogsOnError",  # pg_dump's / pg_restore's last words
        "volumeMounts": [*mounts, tls.CLIENT_MOUNT],
        "resources": CLIENT_RESOURCES,
    }


def _transfer(spec: TaskPlatformSpec, args: list[str], store: Store, mount: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": TRANSFER_CONTAINER,
        "image": spec.api.image,
        "command": ["taskplatform-dumpstore"],
        "args": [*args, *store.args(), "--summary-file", TERMINATION_LOG],
        "env": store.env(),
        "securityContext": RESTRICTED_CONTAINER,
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "volumeMounts": [mount, *store.mounts()],
        "resources": TRANSFER_RESOURCES,
    }


def _job(
    owner: Owner, platform: str, name: str, component: str, pod: dict[str, Any], pod_labels: dict[str, str]
) -> Manifest:
    return {
        **JOB.type_meta(),
        "metadata": {**metadata(owner, name, component), "labels": labels(platform, component)},
        "spec": {
            # A failed dump or restore is reported, not retried: the next scheduled backup is the retry, and a
            # corrupted dump does not get better.
            "backoffLimit": 0,
            "activeDeadlineSeconds": JOB_DEADLINE_S,
            "ttlSecondsAfterFinished": 7 * 86400,
            "template": {"metadata": {"labels": {**labels(platform, component), **pod_labels}}, "spec": pod},
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
    args += ["--fifo", FIFO]
    level = spec.database.backup.compression_level if spec.database.backup else DEFAULT_COMPRESSION_LEVEL
    stream = {"name": "stream", "mountPath": STREAM_DIR}
    dump = _database_client(platform, spec, DUMP_CONTAINER, dump_script(level), BACKUP_ROLE, [stream])
    # The transfer container first: the kubelet creates a pod's containers one after the other (~0.3 s each
    # here), so its Python starts while pg_dump's container is being created, and the pipe exists by the time
    # pg_dump looks for it.
    containers = [_transfer(spec, args, store, stream), dump]
    volumes = [{"name": "stream", "emptyDir": {}}, tls.client_volume(platform), *store.volumes()]
    pod = pod_spec(platform, API_UID, containers, volumes, restartPolicy="Never")
    return _job(owner, platform, backup_job_name(owner.name), BACKUP_COMPONENT, pod, {BACKUP_LABEL: owner.name})


def scratch_volume(platform: str, spec: TaskPlatformSpec, dump_bytes: int) -> dict[str, Any]:
    """The restore pod's own volume for the dump: a generic ephemeral volume (a claim made with the pod and deleted
    with it) of scratch_bytes(dump_bytes), in the database's StorageClass. A volume of its own, not an emptyDir
    with a sizeLimit: the node's disk is shared, an emptyDir's limit is enforced only by evicting the pod after the
    fact, and the download's free-space check would read the node's free space instead of the dump's room."""
    claim: dict[str, Any] = {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": f"{scratch_bytes(dump_bytes) // MIB}Mi"}},
    }
    if spec.database.storage.storage_class_name:
        claim["storageClassName"] = spec.database.storage.storage_class_name
    template = {"metadata": {"labels": labels(platform, RESTORE_COMPONENT)}, "spec": claim}
    return {"name": SCRATCH_VOLUME, "ephemeral": {"volumeClaimTemplate": template}}


def restore_job(owner: Owner, spec: TaskPlatformSpec, dump: Dump) -> Manifest:
    """The Job restoring a new TaskPlatform's (`owner`) database from `dump`: the download, an init container,
    verifies the whole dump onto the pod's scratch volume; the pg_restore container, which starts only if it
    succeeded, restores that file (read-only to it)."""
    platform = owner.name
    scratch = {"name": SCRATCH_VOLUME, "mountPath": SCRATCH_DIR}
    download = _transfer(spec, dump.download_args(), dump.store, scratch)
    restore = _database_client(platform, spec, RESTORE_CONTAINER, RESTORE_SCRIPT, OWNER_ROLE,
                               [{**scratch, "readOnly": True}])  # fmt: skip
    volumes = [scratch_volume(platform, spec, dump.max_bytes), tls.client_volume(platform), *dump.store.volumes()]
    pod = pod_spec(platform, API_UID, [restore], volumes, restartPolicy="Never", initContainers=[download])
    return _job(owner, platform, restore_job_name(platform), RESTORE_COMPONENT, pod, {})


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
