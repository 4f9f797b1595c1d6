"""Everything a TaskPlatform owns, in the order it is created."""

from __future__ import annotations

from taskplatform.operator.kinds import Manifest
from taskplatform.operator.models import TaskPlatformSpec
from taskplatform.operator.specs.api import api_deployment, api_hpa, api_pdb, api_service
from taskplatform.operator.specs.common import Owner
from taskplatform.operator.specs.credentials import Credentials, credentials_secret
from taskplatform.operator.specs.database import database_services, database_statefulset
from taskplatform.operator.specs.networkpolicy import database_network_policy
from taskplatform.operator.specs.schema import schema_migration_job


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
