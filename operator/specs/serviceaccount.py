"""The platform's ServiceAccount `<platform>`: every pod of the platform runs as it (common.pod_spec), and it has
no rights: no Role or RoleBinding names it, and its token is never mounted (none of the platform's pods calls the
Kubernetes API). A pod of its own account rather than the namespace's `default`, which other workloads may have
been granted rights through.
"""

from __future__ import annotations

from taskplatform.operator.kinds import SERVICE_ACCOUNT, Manifest
from taskplatform.operator.specs.common import Owner, metadata
from taskplatform.operator.specs.names import Names

SERVICE_ACCOUNT_COMPONENT = "workloads"


def platform_service_account(owner: Owner) -> Manifest:
    return {
        **SERVICE_ACCOUNT.type_meta(),
        "metadata": metadata(owner, Names(owner.name).service_account, SERVICE_ACCOUNT_COMPONENT),
        "automountServiceAccountToken": False,
    }
