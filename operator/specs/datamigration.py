"""The DataMigration Job `<migration>-migrate`: the API image's `taskplatform-migrate` against the target
platform's database, as the migration role. It reports through its termination message (the summary the CLI writes)
and its last JSON progress line (operator/status.py reads both); the exit codes, environment and JSON formats are
the CLI's contract, migration/contract.py.
"""

from __future__ import annotations

from taskplatform.migration import contract
from taskplatform.migration.contract import ExitCode
from taskplatform.operator.dbroles import MIGRATION_ROLE
from taskplatform.operator.kinds import JOB, Manifest
from taskplatform.operator.models import DataMigrationSpec, TaskPlatformSpec
from taskplatform.operator.specs import tls
from taskplatform.operator.specs.common import (
    API_UID,
    RESTRICTED_CONTAINER,
    TERMINATION_LOG,
    Owner,
    env_from_secret,
    labels,
    pod_spec,
    resources,
)
from taskplatform.operator.specs.names import Names

DATA_MIGRATION_COMPONENT = "data-migration"
SOURCE_URI_KEY = "uri"  # the key of spec.sourceSecretRef's Secret that holds the MongoDB URI
MIGRATE_CONTAINER = "migrate"


def data_migration_job_name(migration: str) -> str:
    return f"{migration}-migrate"


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
        "name": MIGRATE_CONTAINER,
        "image": platform_spec.api.image,
        "command": ["taskplatform-migrate"],
        "args": args,
        "env": [
            env_from_secret(contract.SOURCE_URI_ENV, spec.source_secret_ref.name, SOURCE_URI_KEY),
            {"name": contract.SOURCE_DB_ENV, "value": spec.source_database},
            env_from_secret(contract.TARGET_URL_ENV, platform.secret, MIGRATION_ROLE.url_key),
            {"name": contract.BATCH_BYTES_ENV, "value": str(spec.batch_bytes)},
            {"name": contract.CONNECT_WAIT_ENV, "value": str(contract.JOB_CONNECT_WAIT_S)},
            {"name": contract.PROGRESS_INTERVAL_ENV, "value": "2"},
            # The outcome as JSON in the pod's status: the operator reads the final counts from there.
            {"name": contract.SUMMARY_FILE_ENV, "value": TERMINATION_LOG},
            *tls.CLIENT_ENV,
        ],
        "resources": resources(spec.resources),
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "securityContext": RESTRICTED_CONTAINER,
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}, tls.CLIENT_MOUNT],  # noqa: S108 (an emptyDir, per pod)
    }
    return {
        **JOB.type_meta(),
        "metadata": {
            "name": data_migration_job_name(owner.name),
            "namespace": owner.namespace,
            "labels": labels(spec.target, DATA_MIGRATION_COMPONENT),
            "ownerReferences": [owner.reference()],
        },
        "spec": {
            # Re-running is safe (upserts, checkpoints), so a crashed or interrupted pod resumes where the last one
            # stopped; but a verification that found differences would find them again: that ends the Job.
            # (ExitCode.FAILED — a database unreachable — is worth the retries.)
            "backoffLimit": 3,
            "podFailurePolicy": {
                "rules": [
                    {
                        "action": "FailJob",
                        "onExitCodes": {
                            "containerName": MIGRATE_CONTAINER,
                            "operator": "In",
                            "values": [ExitCode.VERIFICATION_FAILED.value],
                        },
                    }
                ]
            },
            "template": {
                "metadata": {
                    "labels": labels(spec.target, DATA_MIGRATION_COMPONENT),
                    "annotations": dict(spec.pod_annotations),
                },
                # The target platform's ServiceAccount: the Job runs against that platform's database.
                "spec": pod_spec(
                    spec.target,
                    API_UID,
                    [container],
                    [{"name": "tmp", "emptyDir": {}}, tls.client_volume(spec.target)],
                    restartPolicy="Never",
                ),
            },
        },
    }
