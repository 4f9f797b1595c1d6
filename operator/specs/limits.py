"""How long a resource's name may be.

Child names become label values too (a Job's pods carry `job-name`; a StatefulSet labels its pods and
revisions `<statefulset>-<10-character hash>`), and label values, like Service names, have at most 63
characters. So a resource's name may be 63 less the longest suffix its children add; the CRDs refuse
longer names at admission (crdgen.py) instead of accepting a resource whose children cannot exist.

A new child named after its resource belongs in the list of that resource below.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from taskplatform.operator.kinds import TASK_PLATFORM
from taskplatform.operator.models import TaskPlatformSpec
from taskplatform.operator.specs.backup import (
    backup_claim_name,
    backup_job_name,
    restore_job_name,
    scheduled_backup_name,
)
from taskplatform.operator.specs.common import Owner
from taskplatform.operator.specs.datamigration import data_migration_job_name
from taskplatform.operator.specs.names import Names
from taskplatform.operator.specs.schema import schema_job_name

NAME_PART_MAX = 63
_REVISION_HASH = "-" + "0" * 10


def platform_child_names(name: str) -> list[str]:
    names, owner = Names(name), Owner(TASK_PLATFORM, name, "", "")
    return [
        names.secret,
        names.database,
        names.database_headless,
        names.database_ca,
        names.database_tls,
        names.database_config,
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
