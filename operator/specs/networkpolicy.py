"""The platform's NetworkPolicies: each pod the operator makes may open the connections its work needs, and
accept those its clients open, and no other. Enforced where the cluster's network plugin enforces NetworkPolicies;
elsewhere inert (docs/operator.md, "NetworkPolicies").

A default deny selects every pod of the platform (Ingress and Egress, no rule). Each component's policy then opens
its own paths; it declares both directions too, so that it alone says everything its pods may do (and a pod that
some component's policy selects is confined even where the default deny is deleted by hand):

- the database: connections to 5432 from the platform's database clients; nothing out (its postStart hook and its
  exec probes reach PostgreSQL over the pod's socket and loopback address, which no policy filters);
- the API: its http port from spec.api.ingressFrom (anyone when empty), its metrics port from
  spec.api.metrics.scrapeFrom (nobody when empty); out, the database and DNS;
- the schema Job: the database and DNS;
- the backup and restore Jobs: the database, DNS and, for an S3 store, the endpoint's port;
- a DataMigration's Job (written by the DataMigration's pass, owned by it): the database, DNS and its source's ports.

DNS is UDP and TCP port 53 to any address: where a cluster's DNS server is differs (CoreDNS pods in kube-system,
node-local caches on a link-local address, a process on the node itself), and a policy cannot name a Service's
address, only the pods or addresses behind it.
"""

from __future__ import annotations

from typing import Any

from taskplatform.operator.kinds import NETWORK_POLICY, Manifest
from taskplatform.operator.models import DataMigrationSpec, LabelSelector, NetworkPeer, TaskPlatformSpec
from taskplatform.operator.specs.api import API_COMPONENT, API_PORT, METRICS_PORT
from taskplatform.operator.specs.backup import BACKUP_COMPONENT, RESTORE_COMPONENT, Store, restore_job_name
from taskplatform.operator.specs.common import (
    COMPONENT_LABEL,
    INSTANCE_LABEL,
    MANAGED_BY,
    Owner,
    labels,
    metadata,
    selector,
)
from taskplatform.operator.specs.database import DATABASE_COMPONENT
from taskplatform.operator.specs.datamigration import DATA_MIGRATION_COMPONENT, data_migration_job_name
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
DNS_PORT = 53
# The `app.kubernetes.io/component` of the default deny itself (it governs every component).
DEFAULT_DENY_COMPONENT = "default-deny"
# The label the Job controller gives each pod of a Job: a DataMigration's policy selects its own Job's pods.
JOB_NAME_LABEL = "batch.kubernetes.io/job-name"
BOTH_DIRECTIONS = ["Ingress", "Egress"]


def default_deny_policy_name(platform: str) -> str:
    return f"{platform}-default-deny"


def schema_policy_name(platform: str) -> str:
    return f"{platform}-schema"


def backup_policy_name(platform: str) -> str:
    return f"{platform}-backup"


def restore_policy_name(platform: str) -> str:
    """The restore Job's name: the policy governs that Job's pods alone."""
    return restore_job_name(platform)


def data_migration_policy_name(migration: str) -> str:
    """The DataMigration Job's name: the policy governs that Job's pods alone."""
    return data_migration_job_name(migration)


def tcp(port: int) -> dict[str, Any]:
    return {"protocol": "TCP", "port": port}


DNS_RULE: dict[str, Any] = {"ports": [{"protocol": "UDP", "port": DNS_PORT}, tcp(DNS_PORT)]}


def _selector(chosen: LabelSelector) -> dict[str, Any]:
    """A label selector as the API server takes it: empty parts left out ({} selects everything)."""
    dumped: dict[str, Any] = chosen.model_dump(by_alias=True)
    return {key: value for key, value in dumped.items() if value}


def peer(chosen: NetworkPeer) -> dict[str, Any]:
    """A NetworkPolicyPeer of the spec as the API server takes it."""
    found: dict[str, Any] = {}
    if chosen.pod_selector is not None:
        found["podSelector"] = _selector(chosen.pod_selector)
    if chosen.namespace_selector is not None:
        found["namespaceSelector"] = _selector(chosen.namespace_selector)
    if chosen.ip_block is not None:
        block: dict[str, Any] = {"cidr": chosen.ip_block.cidr}
        if chosen.ip_block.except_:
            block["except"] = list(chosen.ip_block.except_)
        found["ipBlock"] = block
    return found


def _to_database(platform: str) -> dict[str, Any]:
    """Out to the platform's database pod, on PostgreSQL's port (the Service's address is translated to the pod's
    before a policy sees it)."""
    return {"to": [{"podSelector": {"matchLabels": selector(platform, DATABASE_COMPONENT)}}], "ports": [tcp(DB_PORT)]}


def _policy(
    meta: dict[str, Any], pods: dict[str, Any], ingress: list[dict[str, Any]], egress: list[dict[str, Any]]
) -> Manifest:
    """Both directions declared: a direction without rules is closed."""
    spec: dict[str, Any] = {"podSelector": pods, "policyTypes": BOTH_DIRECTIONS}
    if ingress:
        spec["ingress"] = ingress
    if egress:
        spec["egress"] = egress
    return {**NETWORK_POLICY.type_meta(), "metadata": meta, "spec": spec}


def _component(platform: str, component: str) -> dict[str, Any]:
    return {"matchLabels": selector(platform, component)}


def default_deny_policy(owner: Owner) -> Manifest:
    """Every pod the operator makes for the platform (its instance label and the operator's managed-by: not a pod
    of someone else's that happens to share the instance name): nothing in, nothing out, but what another policy
    opens."""
    pods = {"matchLabels": {INSTANCE_LABEL: owner.name, **MANAGED_BY}}
    return _policy(metadata(owner, default_deny_policy_name(owner.name), DEFAULT_DENY_COMPONENT), pods, [], [])


def database_network_policy(owner: Owner) -> Manifest:
    """Only the platform's own database clients (API pods; schema, data migration, backup and restore Jobs) may
    open connections to its PostgreSQL, and only on its port; the database opens none."""
    names = Names(owner.name)
    clients = {
        "podSelector": {
            "matchLabels": {INSTANCE_LABEL: owner.name},
            "matchExpressions": [{"key": COMPONENT_LABEL, "operator": "In", "values": list(DATABASE_CLIENTS)}],
        }
    }
    meta = metadata(owner, names.database, DATABASE_COMPONENT)
    return _policy(meta, _component(owner.name, DATABASE_COMPONENT), [{"from": [clients], "ports": [tcp(DB_PORT)]}], [])


def api_network_policy(owner: Owner, spec: TaskPlatformSpec) -> Manifest:
    """In: the http port from spec.api.ingressFrom (anyone when empty: the rule names no source), the metrics port
    from spec.api.metrics.scrapeFrom (nobody when empty: no rule). Out: the database and DNS."""
    serve: dict[str, Any] = {"ports": [tcp(API_PORT)]}
    if spec.api.ingress_from:
        serve["from"] = [peer(p) for p in spec.api.ingress_from]
    ingress = [serve]
    if spec.api.metrics.scrape_from:
        ingress.append({"from": [peer(p) for p in spec.api.metrics.scrape_from], "ports": [tcp(METRICS_PORT)]})
    meta = metadata(owner, Names(owner.name).api, API_COMPONENT)
    return _policy(meta, _component(owner.name, API_COMPONENT), ingress, [_to_database(owner.name), DNS_RULE])


def schema_network_policy(owner: Owner) -> Manifest:
    """The schema Job: out to the database and DNS only."""
    meta = metadata(owner, schema_policy_name(owner.name), SCHEMA_COMPONENT)
    return _policy(meta, _component(owner.name, SCHEMA_COMPONENT), [], [_to_database(owner.name), DNS_RULE])


def _to_store(store: Store) -> list[dict[str, Any]]:
    """Out to an S3 store: its endpoint's port, at any address (an endpoint is a host name, resolved by the Job);
    a volume is no connection at all."""
    return [{"ports": [tcp(store.s3.port)]}] if store.s3 is not None else []


def backup_network_policy(owner: Owner, spec: TaskPlatformSpec) -> Manifest | None:
    """The backup Jobs (every TaskPlatformBackup of the platform dumps to spec.database.backup): out to the database,
    DNS and the store. None without spec.database.backup (no backup Job is started then)."""
    if spec.database.backup is None:
        return None
    egress = [_to_database(owner.name), DNS_RULE, *_to_store(Store.of(spec.database.backup, owner.name))]
    meta = metadata(owner, backup_policy_name(owner.name), BACKUP_COMPONENT)
    return _policy(meta, _component(owner.name, BACKUP_COMPONENT), [], egress)


def restore_network_policy(owner: Owner, store: Store) -> Manifest:
    """The restore Job, reading the dump from `store` (restoreFrom's, or that of the backup it names): out to the
    database, DNS and the store."""
    meta = metadata(owner, restore_policy_name(owner.name), RESTORE_COMPONENT)
    egress = [_to_database(owner.name), DNS_RULE, *_to_store(store)]
    return _policy(meta, _component(owner.name, RESTORE_COMPONENT), [], egress)


def data_migration_network_policy(owner: Owner, spec: DataMigrationSpec) -> Manifest:
    """A DataMigration's Job (`owner`: the DataMigration, whose pass writes this before the Job): out to its target
    platform's database, DNS, and the source's ports (at spec.sourceEgress.to; anywhere when empty). It selects that
    Job's pods alone: two DataMigrations into one platform may read different sources."""
    job = data_migration_job_name(owner.name)
    source: dict[str, Any] = {"ports": [tcp(port) for port in spec.source_egress.ports]}
    if spec.source_egress.to:
        source["to"] = [peer(p) for p in spec.source_egress.to]
    pods = {"matchLabels": {**selector(spec.target, DATA_MIGRATION_COMPONENT), JOB_NAME_LABEL: job}}
    meta = {
        "name": data_migration_policy_name(owner.name),
        "namespace": owner.namespace,
        "labels": labels(spec.target, DATA_MIGRATION_COMPONENT),
        "ownerReferences": [owner.reference()],
    }
    return _policy(meta, pods, [], [_to_database(spec.target), DNS_RULE, source])


def platform_network_policies(owner: Owner, spec: TaskPlatformSpec) -> list[tuple[str, Manifest | None]]:
    """The platform's policies by name, in the order a pass writes them (None: delete it): each component's before
    the default deny, so a platform from an operator without them never has its running pods denied what their
    own policy is about to allow. The restore Job's policy goes with that Job (children.py)."""
    return [
        (Names(owner.name).database, database_network_policy(owner)),
        (Names(owner.name).api, api_network_policy(owner, spec)),
        (schema_policy_name(owner.name), schema_network_policy(owner)),
        (backup_policy_name(owner.name), backup_network_policy(owner, spec)),
        (default_deny_policy_name(owner.name), default_deny_policy(owner)),
    ]
