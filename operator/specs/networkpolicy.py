"""The platform's NetworkPolicies: who may open connections to what. Today one, the database's: only the
platform's own database clients, on PostgreSQL's port. Enforced where the cluster's network plugin enforces
NetworkPolicies; elsewhere inert.
"""

from __future__ import annotations

from taskplatform.operator.kinds import NETWORK_POLICY, Manifest
from taskplatform.operator.specs.api import API_COMPONENT
from taskplatform.operator.specs.backup import BACKUP_COMPONENT, RESTORE_COMPONENT
from taskplatform.operator.specs.common import COMPONENT_LABEL, INSTANCE_LABEL, Owner, metadata, selector
from taskplatform.operator.specs.database import DATABASE_COMPONENT
from taskplatform.operator.specs.datamigration import DATA_MIGRATION_COMPONENT
from taskplatform.operator.specs.names import DB_PORT, Names
from taskplatform.operator.specs.schema import SCHEMA_COMPONENT

# The components whose pods connect to the database, each as its own role (dbroles.py).
DATABASE_CLIENTS = (
    API_COMPONENT,
    SCHEMA_COMPONENT,
    DATA_MIGRATION_COMPONENT,
    BACKUP_COMPONENT,
    RESTORE_COMPONENT,
)


def database_network_policy(owner: Owner) -> Manifest:
    """Only the platform's own database clients (API pods; schema, data migration, backup and restore Jobs) may
    open connections to its PostgreSQL, and only on its port. Enforced where the network plugin enforces policies."""
    names = Names(owner.name)
    clients = {
        "podSelector": {
            "matchLabels": {INSTANCE_LABEL: owner.name},
            "matchExpressions": [{"key": COMPONENT_LABEL, "operator": "In", "values": list(DATABASE_CLIENTS)}],
        }
    }
    return {
        **NETWORK_POLICY.type_meta(),
        "metadata": metadata(owner, names.database, DATABASE_COMPONENT),
        "spec": {
            "podSelector": {"matchLabels": selector(owner.name, DATABASE_COMPONENT)},
            "policyTypes": ["Ingress"],
            "ingress": [{"from": [clients], "ports": [{"protocol": "TCP", "port": DB_PORT}]}],
        },
    }
