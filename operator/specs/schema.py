"""The schema migration Job `<platform>-schema-<hash of the API image>`: the API image's `migrate`, as the owner
role, once per API image. Started beside the database (it waits for it); after a restore only once the restore
completed; a new API image rolls out only once its Job completed (children.py holds that order).
"""

from __future__ import annotations

import hashlib

from taskplatform.operator.dbroles import OWNER_ROLE
from taskplatform.operator.kinds import JOB, Manifest
from taskplatform.operator.models import TaskPlatformSpec
from taskplatform.operator.specs.api import api_container, api_volumes
from taskplatform.operator.specs.common import API_UID, Owner, metadata, pod_spec, template_metadata

SCHEMA_COMPONENT = "schema-migration"


def schema_job_name(owner: Owner, spec: TaskPlatformSpec) -> str:
    """One migration Job per API image: a new image runs `migrate` again before it rolls out."""
    digest = hashlib.sha256(spec.api.image.encode()).hexdigest()[:10]
    return f"{owner.name}-schema-{digest}"


def schema_migration_job(owner: Owner, spec: TaskPlatformSpec) -> Manifest:
    # Started beside the database: it waits for PostgreSQL rather than failing into the Job's backoff.
    # As the owner role: its migrations create and alter the tables it owns (the API role may not).
    container = api_container(owner, spec, "migrate", ["migrate", "--wait", "600"], OWNER_ROLE)
    return {
        **JOB.type_meta(),
        "metadata": metadata(owner, schema_job_name(owner, spec), SCHEMA_COMPONENT),
        "spec": {
            "backoffLimit": 6,
            "ttlSecondsAfterFinished": 86400,
            "template": {
                "metadata": template_metadata(owner.name, SCHEMA_COMPONENT, spec.api.pod_annotations),
                "spec": pod_spec(owner.name, API_UID, [container], api_volumes(owner.name), restartPolicy="OnFailure"),
            },
        },
    }
