"""The platform's NetworkPolicies, built through platform_children (and the DataMigration's pass), read as a network
plugin reads them: who may open a connection to whom, on which port. tests/e2e/test_network_policies.py checks the
same on a node that enforces them."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any

import pytest
from pydantic import ValidationError

from taskplatform.operator.crdgen import all_crds
from taskplatform.operator.datamigration import reconcile_migration
from taskplatform.operator.dbroles import ROLES
from taskplatform.operator.jwtkeys import JwtKeys
from taskplatform.operator.kinds import (
    DATA_MIGRATION,
    JOB,
    NETWORK_POLICY,
    TASK_PLATFORM,
    TASK_PLATFORM_BACKUP,
    ResourceKind,
)
from taskplatform.operator.models import (
    DataMigrationSpec,
    NetworkPeer,
    S3Location,
    TaskPlatformSpec,
)
from taskplatform.operator.specs.api import API_PORT, METRICS_PORT
from taskplatform.operator.specs.backup import Dump, Store, backup_job, restore_job
from taskplatform.operator.specs.children import PlatformChildren, PlatformFacts, platform_children
from taskplatform.operator.specs.common import Owner
from taskplatform.operator.specs.credentials import Credentials
from taskplatform.operator.specs.datamigration import data_migration_job
from taskplatform.operator.specs.names import DB_PORT
from taskplatform.operator.specs.networkpolicy import (
    DNS_PORT,
    JOB_NAME_LABEL,
    data_migration_network_policy,
    default_deny_policy_name,
)

Manifest = dict[str, Any]
NAMESPACE = "apps"
OWNER = Owner(TASK_PLATFORM, "demo", NAMESPACE, "uid-demo")
CREDS = Credentials("db-pass", "j" * 48, JwtKeys("j" * 48), {role.key: f"{role.key}-pass" for role in ROLES})
NEW = PlatformFacts()
SCHEMA_DONE = PlatformFacts(schema_job_exists=True, schema_complete=True)
S3 = {"endpoint": "s3.example.com:9000", "bucket": "dumps", "credentialsSecretRef": {"name": "keys"}}
WITH_BACKUPS = {"database": {"backup": {"s3": S3}}}


# --- a network plugin's reading of NetworkPolicies (the Kubernetes API's semantics) --------------------------------


@dataclass(frozen=True)
class Endpoint:
    """One end of a connection: a pod (its labels and namespace) or, with labels None, an address outside."""

    labels: dict[str, str] | None
    address: str = "10.0.0.50"
    namespace: str = NAMESPACE
    namespace_labels: dict[str, str] = field(default_factory=dict)

    def ns_labels(self) -> dict[str, str]:
        return {"kubernetes.io/metadata.name": self.namespace, **self.namespace_labels}


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    if any(labels.get(key) != value for key, value in selector.get("matchLabels", {}).items()):
        return False
    for expression in selector.get("matchExpressions", []):
        key, operator, values = expression["key"], expression["operator"], expression.get("values", [])
        found = {"In": labels.get(key) in values, "NotIn": labels.get(key) not in values,
                 "Exists": key in labels, "DoesNotExist": key not in labels}[operator]  # fmt: skip
        if not found:
            return False
    return True


def peer_matches(peer: dict[str, Any], policy_namespace: str, other: Endpoint) -> bool:
    if "ipBlock" in peer:
        address = ipaddress.ip_address(other.address)
        block = peer["ipBlock"]
        return address in ipaddress.ip_network(block["cidr"]) and not any(
            address in ipaddress.ip_network(e) for e in block.get("except", [])
        )
    if other.labels is None:
        return False
    if "namespaceSelector" in peer:
        in_namespace = selects(peer["namespaceSelector"], other.ns_labels())
    else:
        in_namespace = other.namespace == policy_namespace
    return in_namespace and selects(peer.get("podSelector", {}), other.labels)


def rule_allows(rule: dict[str, Any], peers_key: str, policy_namespace: str, other: Endpoint, port: int,
                protocol: str) -> bool:  # fmt: skip
    ports = rule.get("ports")
    if ports and not any(p.get("protocol", "TCP") == protocol and p.get("port") == port for p in ports):
        return False
    peers = rule.get(peers_key)
    return not peers or any(peer_matches(p, policy_namespace, other) for p in peers)


def direction_allows(policies: list[Manifest], pod: Endpoint, direction: str, other: Endpoint, port: int,
                     protocol: str) -> bool:  # fmt: skip
    """Whether the policies selecting `pod` (none: it is not isolated) let it talk to `other` that way."""
    applicable = [
        p
        for p in policies
        if p["metadata"]["namespace"] == pod.namespace
        and pod.labels is not None
        and selects(p["spec"]["podSelector"], pod.labels)
        and direction in p["spec"]["policyTypes"]
    ]
    if pod.labels is None or not applicable:
        return True
    key, peers_key = ("ingress", "from") if direction == "Ingress" else ("egress", "to")
    return any(
        rule_allows(rule, peers_key, p["metadata"]["namespace"], other, port, protocol)
        for p in applicable
        for rule in p["spec"].get(key, [])
    )


def connects(policies: list[Manifest], source: Endpoint, target: Endpoint, port: int, protocol: str = "TCP") -> bool:
    """Whether `source` may open a connection to `target`'s `port`: its egress and the target's ingress allow it."""
    return direction_allows(policies, source, "Egress", target, port, protocol) and direction_allows(
        policies, target, "Ingress", source, port, protocol
    )


# --- the platform ---------------------------------------------------------------------------------------------------


def passes(spec: TaskPlatformSpec, owner: Owner = OWNER, *facts: PlatformFacts) -> list[PlatformChildren]:
    return [platform_children(owner, spec, CREDS, f) for f in (facts or (NEW, SCHEMA_DONE))]


def policies_of(*children: PlatformChildren) -> list[Manifest]:
    found = {c.name: c.manifest for pass_ in children for c in pass_ if c.kind is NETWORK_POLICY and c.manifest}
    return list(found.values())


def written(spec: TaskPlatformSpec, owner: Owner = OWNER) -> dict[tuple[str, str], Manifest]:
    return {(c.kind.kind, c.name): c.manifest for p in passes(spec, owner) for c in p if c.manifest is not None}


def pod_of(manifest: Manifest, **extra: str) -> Endpoint:
    """A pod of a workload's template (`extra`: labels its controller adds)."""
    return Endpoint({**manifest["spec"]["template"]["metadata"]["labels"], **extra})


def migration_spec(**fields: Any) -> DataMigrationSpec:
    return DataMigrationSpec.model_validate({"target": "demo", "sourceSecretRef": {"name": "mongo"}, **fields})


MIGRATION_OWNER = Owner(DATA_MIGRATION, "import", NAMESPACE, "uid-import")


def migration_pod(spec: DataMigrationSpec, owner: Owner = MIGRATION_OWNER) -> Endpoint:
    job = data_migration_job(owner, spec, TaskPlatformSpec())
    return pod_of(job, **{JOB_NAME_LABEL: job["metadata"]["name"]})  # the Job controller's label


@dataclass
class Platform:
    """A platform's pods and policies (by default with backups to S3), a backup and a restore Job among them."""

    spec: TaskPlatformSpec = field(default_factory=lambda: TaskPlatformSpec.model_validate(WITH_BACKUPS))
    store: Store = field(default_factory=lambda: Store(s3=S3Location.model_validate(S3)))

    def __post_init__(self) -> None:
        objects = written(self.spec)
        self.database = pod_of(objects[("StatefulSet", "demo-db")])
        self.api = pod_of(objects[("Deployment", "demo-api")])
        self.schema = pod_of(next(m for (kind, _), m in objects.items() if kind == JOB.kind))
        restoring = PlatformFacts(restore=Dump(self.store, "k", None, 1000), restored=False)
        backup_owner = Owner(TASK_PLATFORM_BACKUP, "demo-1", NAMESPACE, "uid-b")
        self.backup = pod_of(backup_job(backup_owner, "demo", self.spec, "k", self.store, []))
        self.restore = pod_of(restore_job(OWNER, self.spec, Dump(self.store, "k", None, 1000)))
        self.policies = policies_of(*passes(self.spec, OWNER, NEW, SCHEMA_DONE, restoring))
        self.pods = [self.database, self.api, self.schema, self.backup, self.restore]


OUTSIDER = Endpoint({"app": "someone-else"})  # a pod of the namespace without the platform's labels
ELSEWHERE = Endpoint(None, address="203.0.113.9")  # an address outside the cluster
DNS_SERVER = Endpoint(None, address="10.251.0.1")  # e.g. CoreDNS on a node's address
KUBE_DNS = Endpoint({"k8s-app": "kube-dns"}, namespace="kube-system")
S3_SERVER = Endpoint({"app": "s3"})


def test_a_default_deny_confines_every_pod_of_the_platform_and_nothing_else() -> None:
    platform = Platform()
    [deny] = [p for p in platform.policies if p["metadata"]["name"] == default_deny_policy_name("demo")]
    assert deny["spec"]["policyTypes"] == ["Ingress", "Egress"]
    assert "ingress" not in deny["spec"] and "egress" not in deny["spec"]
    migration = migration_pod(migration_spec())
    for pod in [*platform.pods, migration]:
        assert selects(deny["spec"]["podSelector"], pod.labels or {}), pod
    other = {**(platform.api.labels or {}), "app.kubernetes.io/instance": "other"}  # another platform's
    assert not selects(deny["spec"]["podSelector"], other)
    # A pod of someone else's that shares the instance name (a Helm release "demo") is not the platform's.
    assert not selects(deny["spec"]["podSelector"], {"app.kubernetes.io/instance": "demo"})


def test_each_pod_is_confined_by_its_components_own_policy_too() -> None:
    """Every policy declares both directions, and every pod is selected by one besides the default deny: what a
    pod may do is in one policy, and it stays confined if the default deny is deleted by hand."""
    platform = Platform()
    policies = [p for p in platform.policies if p["metadata"]["name"] != default_deny_policy_name("demo")]
    assert all(p["spec"]["policyTypes"] == ["Ingress", "Egress"] for p in platform.policies)
    for pod in platform.pods:
        own = [p["metadata"]["name"] for p in policies if selects(p["spec"]["podSelector"], pod.labels or {})]
        assert len(own) == 1, (pod, own)
    # Without the default deny, no pod of the platform opens to a stranger, nor a stranger to it.
    assert not any(connects(policies, pod, OUTSIDER, 443) for pod in platform.pods)
    assert not any(connects(policies, OUTSIDER, pod, DB_PORT) for pod in platform.pods)


def test_only_the_platforms_database_clients_reach_the_database_which_reaches_nothing() -> None:
    platform = Platform()
    migration = migration_pod(migration_spec())
    policies = [*platform.policies, data_migration_network_policy(MIGRATION_OWNER, migration_spec())]
    for client in (platform.api, platform.schema, platform.backup, platform.restore, migration):
        assert connects(policies, client, platform.database, DB_PORT), client
        assert not connects(policies, client, platform.database, DB_PORT + 1), client
    other = Endpoint({**(platform.api.labels or {}), "app.kubernetes.io/instance": "other"})
    for stranger in (OUTSIDER, other, Endpoint(platform.api.labels, namespace="elsewhere")):
        assert not connects(policies, stranger, platform.database, DB_PORT), stranger
    for target in (ELSEWHERE, DNS_SERVER, KUBE_DNS, platform.api, S3_SERVER):
        for port in (DNS_PORT, 443, DB_PORT, API_PORT):
            assert not connects(policies, platform.database, target, port), (target, port)
            assert not connects(policies, platform.database, target, port, "UDP"), (target, port)


def test_the_api_serves_anyone_on_its_http_port_and_nobody_on_its_metrics_port_by_default() -> None:
    platform = Platform()
    for client in (OUTSIDER, ELSEWHERE, Endpoint({"app": "ingress"}, namespace="ingress-nginx")):
        assert connects(platform.policies, client, platform.api, API_PORT), client
        assert not connects(platform.policies, client, platform.api, METRICS_PORT), client
        assert not connects(platform.policies, client, platform.api, API_PORT + 1), client
    assert not connects(platform.policies, platform.database, platform.api, METRICS_PORT)


def test_the_api_reaches_its_database_and_dns_and_nothing_else() -> None:
    platform = Platform()
    assert connects(platform.policies, platform.api, platform.database, DB_PORT)
    for server in (DNS_SERVER, KUBE_DNS):
        assert connects(platform.policies, platform.api, server, DNS_PORT, "UDP")
        assert connects(platform.policies, platform.api, server, DNS_PORT, "TCP")
    other_database = Endpoint({**(platform.database.labels or {}), "app.kubernetes.io/instance": "other"})
    for target, port in ((S3_SERVER, 7070), (ELSEWHERE, 443), (Endpoint(None, "10.96.0.1"), 443),
                         (other_database, DB_PORT), (platform.api, API_PORT), (KUBE_DNS, 9153)):  # fmt: skip
        assert not connects(platform.policies, platform.api, target, port), (target, port)


def test_ingress_from_and_scrape_from_admit_exactly_their_peers() -> None:
    ingress = {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}},
        "podSelector": {"matchExpressions": [{"key": "app", "operator": "In", "values": ["controller"]}]},
    }
    balancer = {"ipBlock": {"cidr": "198.51.100.0/24", "except": ["198.51.100.128/25"]}}
    scraper = {"namespaceSelector": {"matchLabels": {"team": "observability"}}, "podSelector": {}}
    spec = TaskPlatformSpec.model_validate(
        {**WITH_BACKUPS, "api": {"ingressFrom": [ingress, balancer], "metrics": {"scrapeFrom": [scraper]}}}
    )  # fmt: skip
    platform = Platform(spec=spec)
    controller = Endpoint({"app": "controller"}, namespace="ingress-nginx")
    prometheus = Endpoint({"app": "prometheus"}, namespace="monitoring", namespace_labels={"team": "observability"})
    allowed_http = [controller, Endpoint(None, "198.51.100.7")]
    denied_http = [OUTSIDER, prometheus, Endpoint({"app": "other"}, namespace="ingress-nginx"),
                   Endpoint(None, "198.51.100.200"), ELSEWHERE]  # fmt: skip
    for client in allowed_http:
        assert connects(platform.policies, client, platform.api, API_PORT), client
    for client in denied_http:
        assert not connects(platform.policies, client, platform.api, API_PORT), client
    assert connects(platform.policies, prometheus, platform.api, METRICS_PORT)
    for client in (controller, OUTSIDER, Endpoint({"app": "prometheus"}, namespace="monitoring")):
        assert not connects(platform.policies, client, platform.api, METRICS_PORT), client
    # As the API server takes them: the spec's peers, empty parts left out.
    [api_policy] = [p for p in platform.policies if p["metadata"]["name"] == "demo-api"]
    serve, scrape = api_policy["spec"]["ingress"]
    assert serve == {"ports": [{"protocol": "TCP", "port": API_PORT}], "from": [ingress, balancer]}
    assert scrape == {"from": [scraper], "ports": [{"protocol": "TCP", "port": METRICS_PORT}]}


def test_the_schema_job_reaches_its_database_and_dns_only() -> None:
    platform = Platform()
    assert connects(platform.policies, platform.schema, platform.database, DB_PORT)
    assert connects(platform.policies, platform.schema, DNS_SERVER, DNS_PORT, "UDP")
    for target, port in ((S3_SERVER, 9000), (ELSEWHERE, 443), (platform.api, API_PORT), (ELSEWHERE, 27017)):
        assert not connects(platform.policies, platform.schema, target, port), (target, port)
    assert not connects(platform.policies, OUTSIDER, platform.schema, API_PORT)


@pytest.mark.parametrize(
    ("s3", "port"),
    [
        ({"endpoint": "s3.example.com:9000"}, 9000),
        ({"endpoint": "s3.example.com"}, 443),
        ({"endpoint": "s3.example.com", "tls": False}, 80),
        ({"endpoint": "minio:443", "tls": False}, 443),
    ],
)
def test_backup_and_restore_jobs_reach_their_s3_store_on_its_port_only(s3: dict[str, Any], port: int) -> None:
    location = {**S3, **s3}
    spec = TaskPlatformSpec.model_validate({"database": {"backup": {"s3": location}}})
    platform = Platform(spec=spec, store=Store(s3=S3Location.model_validate(location)))
    for job in (platform.backup, platform.restore):
        assert connects(platform.policies, job, platform.database, DB_PORT)
        assert connects(platform.policies, job, DNS_SERVER, DNS_PORT, "UDP")
        assert connects(platform.policies, job, ELSEWHERE, port)  # a host name: any address, on its port
        assert connects(platform.policies, job, S3_SERVER, port)
        for other in (22, 27017, 9000 if port != 9000 else 443):
            assert not connects(platform.policies, job, ELSEWHERE, other), (job, other)
        assert not connects(platform.policies, job, platform.api, API_PORT)


def test_backup_and_restore_jobs_of_a_volume_store_reach_their_database_and_dns_only() -> None:
    spec = TaskPlatformSpec.model_validate({"database": {"backup": {"volume": {}}}})
    platform = Platform(spec=spec, store=Store.of(spec.database.backup, "demo"))  # type: ignore[arg-type]
    for job in (platform.backup, platform.restore):
        assert connects(platform.policies, job, platform.database, DB_PORT)
        assert connects(platform.policies, job, DNS_SERVER, DNS_PORT, "TCP")
        for port in (80, 443, 9000):
            assert not connects(platform.policies, job, ELSEWHERE, port), (job, port)


def test_the_backup_policy_follows_spec_database_backup() -> None:
    without = platform_children(OWNER, TaskPlatformSpec(), CREDS, NEW)
    deleted = without.find(NETWORK_POLICY, "demo-backup")
    assert deleted is not None and deleted.manifest is None  # no backups: no policy (deleted if there was one)
    with_backup = platform_children(
        OWNER, TaskPlatformSpec.model_validate({"database": {"backup": {"volume": {}}}}), CREDS, NEW
    )
    applied = with_backup.find(NETWORK_POLICY, "demo-backup")
    assert applied is not None and applied.manifest is not None


def test_the_restore_policy_comes_with_the_restore_job_before_it() -> None:
    store = Store(s3=S3Location.model_validate(S3))
    restoring = platform_children(OWNER, TaskPlatformSpec(), CREDS, PlatformFacts(restore=Dump(store, "k", None, 1000),
                                                                                  restored=False))  # fmt: skip
    kinds = [(c.kind, c.name) for c in restoring.workloads]
    assert kinds[:2] == [(NETWORK_POLICY, "demo-restore"), (JOB, "demo-restore")]
    policy = restoring.find(NETWORK_POLICY, "demo-restore")
    assert policy is not None and policy.manifest is not None
    assert {"ports": [{"protocol": "TCP", "port": 9000}]} in policy.manifest["spec"]["egress"]
    # Once the Job exists (and after the restore) the pass leaves the policy as it is: it writes no restore policy.
    for facts in (PlatformFacts(restored=False), NEW):
        assert platform_children(OWNER, TaskPlatformSpec(), CREDS, facts).find(NETWORK_POLICY, "demo-restore") is None


def test_every_policy_is_written_before_the_pods_it_governs_and_the_default_deny_after_the_others() -> None:
    """A platform of an operator without policies: its running pods are never denied what their own policy is about
    to allow; and a new platform's pods start confined."""
    for facts in (NEW, SCHEMA_DONE):
        order = [(c.kind.kind, c.name) for c in platform_children(OWNER, TaskPlatformSpec(), CREDS, facts)]
        policies = [i for i, (kind, _) in enumerate(order) if kind == NETWORK_POLICY.kind]
        workloads = [i for i, (kind, _) in enumerate(order) if kind in ("StatefulSet", "Deployment", "Job")]
        assert max(policies) < min(workloads)
        assert order[max(policies)] == (NETWORK_POLICY.kind, default_deny_policy_name("demo"))


def test_a_datamigration_job_reaches_its_database_dns_and_source_ports_only() -> None:
    platform = Platform()
    spec = migration_spec()
    policy = data_migration_network_policy(MIGRATION_OWNER, spec)
    assert policy["metadata"]["ownerReferences"][0]["kind"] == "DataMigration"
    policies = [*platform.policies, policy]
    pod = migration_pod(spec)
    assert connects(policies, pod, platform.database, DB_PORT)
    assert connects(policies, pod, DNS_SERVER, DNS_PORT, "UDP")
    assert connects(policies, pod, ELSEWHERE, 27017)  # the default: MongoDB's port, wherever the source is
    for port in (443, 80, 27018):
        assert not connects(policies, pod, ELSEWHERE, port), port
    assert not connects(policies, pod, platform.api, API_PORT)
    assert not connects(policies, OUTSIDER, pod, 27017)


def test_a_datamigrations_source_egress_names_its_ports_and_peers() -> None:
    platform = Platform()
    spec = migration_spec(sourceEgress={"ports": [27017, 27018],
                                        "to": [{"ipBlock": {"cidr": "192.0.2.0/24"}},
                                               {"podSelector": {"matchLabels": {"app": "legacy-mongo"}}}]})  # fmt: skip
    policies = [*platform.policies, data_migration_network_policy(MIGRATION_OWNER, spec)]
    pod = migration_pod(spec)
    mongo = Endpoint({"app": "legacy-mongo"})
    for port in (27017, 27018):
        assert connects(policies, pod, Endpoint(None, "192.0.2.10"), port)
        assert connects(policies, pod, mongo, port)
        assert not connects(policies, pod, ELSEWHERE, port)
        assert not connects(policies, pod, Endpoint({"app": "legacy-mongo"}, namespace="other"), port)
    assert not connects(policies, pod, mongo, 443)


def test_a_datamigrations_policy_is_for_its_own_jobs_pods() -> None:
    """Two DataMigrations into one platform may read different sources: each opens its own Job's way out."""
    first, second = migration_spec(), migration_spec(sourceEgress={"ports": [5555]})
    other_owner = Owner(DATA_MIGRATION, "second", NAMESPACE, "uid-2")
    policies = [*Platform().policies, data_migration_network_policy(MIGRATION_OWNER, first),
                data_migration_network_policy(other_owner, second)]  # fmt: skip
    assert connects(policies, migration_pod(first), ELSEWHERE, 27017)
    assert not connects(policies, migration_pod(first), ELSEWHERE, 5555)
    assert connects(policies, migration_pod(second, other_owner), ELSEWHERE, 5555)
    assert not connects(policies, migration_pod(second, other_owner), ELSEWHERE, 27017)


class MigrationKube:
    """The API server as the DataMigration's pass sees it: a Ready target, and a Job once created."""

    def __init__(self, job_status: Manifest | None = None) -> None:
        self.writes: list[tuple[str, str]] = []
        self.job: Manifest | None = (
            None if job_status is None else {"metadata": {"name": "import-migrate"}, "status": job_status}
        )

    def get(self, kind: ResourceKind, namespace: str, name: str) -> Manifest | None:
        if kind is TASK_PLATFORM:
            return {"spec": {}, "status": {"conditions": [{"type": "Ready", "status": "True", "reason": "Ready"}]}}
        return self.job if kind is JOB else None

    def list(self, kind: ResourceKind, namespace: str, label_selector: str) -> list[Manifest]:
        return []

    def apply(self, manifest: Manifest) -> Manifest:
        self.writes.append(("apply", manifest["kind"]))
        return manifest

    def create(self, manifest: Manifest) -> Manifest | None:
        self.writes.append(("create", manifest["kind"]))
        self.job = manifest
        return manifest

    def patch_status(self, kind: ResourceKind, namespace: str, name: str, status: Manifest) -> None:
        pass


def _migration() -> Manifest:
    return {"metadata": {"name": "import", "namespace": NAMESPACE, "uid": "uid-import", "generation": 1},
            "spec": {"target": "demo", "sourceSecretRef": {"name": "mongo"}}}  # fmt: skip


def test_the_datamigrations_pass_writes_its_policy_before_its_job_and_keeps_it_while_the_job_runs() -> None:
    kube = MigrationKube()
    reconcile_migration(kube, _migration())  # type: ignore[arg-type]
    assert kube.writes == [("apply", NETWORK_POLICY.kind), ("create", JOB.kind)]
    running = MigrationKube(job_status={"active": 1})
    reconcile_migration(running, _migration())  # type: ignore[arg-type]
    assert running.writes == [("apply", NETWORK_POLICY.kind)]  # put back, were it deleted meanwhile
    done = MigrationKube(job_status={"conditions": [{"type": "Complete", "status": "True"}], "succeeded": 1})
    reconcile_migration(done, _migration())  # type: ignore[arg-type]
    assert done.writes == []


# --- the fields: bounded and validated alike by the model and the CRD ------------------------------------------------


@pytest.mark.parametrize(
    "peer",
    [
        {},
        {"ipBlock": {"cidr": "10.0.0.0/8"}, "podSelector": {}},
        {"ipBlock": {"cidr": "10.0.0.1/8"}},  # host bits
        {"ipBlock": {"cidr": "10.0.0.0"}},  # no prefix length
        {"ipBlock": {"cidr": "10.0.0.0/255.0.0.0"}},
        {"ipBlock": {"cidr": "10.0.0.0/8", "except": ["11.0.0.0/16"]}},
        {"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.0.0.0/8"]}},  # not a strict subset
        {"ipBlock": {"cidr": "10.0.0.0/8", "except": ["fd00::/64"]}},
        {"podSelector": {"matchLabels": {"-app": "x"}}},
        {"podSelector": {"matchLabels": {"app": "x" * 64}}},
        {"podSelector": {"matchLabels": {"a" * 64: "x"}}},
        {"podSelector": {"matchLabels": {"a" * 254 + "/name": "x"}}},
        {"podSelector": {"matchLabels": {".".join(["a" * 63] * 4) + "/name": "x"}}},  # a prefix of 255
        {"podSelector": {"matchLabels": {f"k{n}": "v" for n in range(17)}}},
        {"podSelector": {"matchExpressions": [{"key": "app", "operator": "In"}]}},
        {"podSelector": {"matchExpressions": [{"key": "app", "operator": "Exists", "values": ["x"]}]}},
        {"podSelector": {"matchExpressions": [{"key": "app", "operator": "Near", "values": ["x"]}]}},
        {"namespaceSelector": {"matchExpressions": [{"key": "a", "operator": "In", "values": ["v"] * 65}]}},
    ],
)
def test_a_peer_the_api_server_would_refuse_in_a_policy_is_refused_by_the_model(peer: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        NetworkPeer.model_validate(peer)


@pytest.mark.parametrize(
    "peer",
    [
        {"podSelector": {}},
        {"namespaceSelector": {}},
        {"ipBlock": {"cidr": "0.0.0.0/0", "except": ["10.0.0.0/8", "169.254.169.254/32"]}},
        {"ipBlock": {"cidr": "fd00::/64"}},
        {"podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus", "a" * 63: "b" * 63}}},
        {"podSelector": {"matchLabels": {"example.com/" + "a" * 63: ""}}},
        {"podSelector": {"matchLabels": {".".join(["a" * 63] * 3 + ["a" * 61]) + "/name": "x"}}},  # a prefix of 253
        {"namespaceSelector": {"matchExpressions": [{"key": "team", "operator": "DoesNotExist"}]}},
    ],
)
def test_peers_as_kubernetes_takes_them_are_accepted(peer: dict[str, Any]) -> None:
    NetworkPeer.model_validate(peer)


def test_the_lists_are_bounded_in_the_model_and_the_crd() -> None:
    too_many = [{"podSelector": {}}] * 17
    for fields in ({"api": {"ingressFrom": too_many}}, {"api": {"metrics": {"scrapeFrom": too_many}}}):
        with pytest.raises(ValidationError):
            TaskPlatformSpec.model_validate(fields)
    with pytest.raises(ValidationError):
        migration_spec(sourceEgress={"ports": []})
    with pytest.raises(ValidationError):
        migration_spec(sourceEgress={"ports": [70000]})
    api = all_crds()["taskplatforms.yaml"]["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    ingress = api["properties"]["api"]["properties"]["ingressFrom"]
    assert ingress["maxItems"] == 16
    selector = ingress["items"]["properties"]["podSelector"]["properties"]
    assert selector["matchLabels"]["maxProperties"] == 16
    assert selector["matchExpressions"]["maxItems"] == 16
    assert selector["matchLabels"]["additionalProperties"]["maxLength"] == 63
    dm = all_crds()["datamigrations.yaml"]["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    ports = dm["properties"]["sourceEgress"]["properties"]["ports"]
    assert (ports["minItems"], ports["maxItems"], ports["items"]["maximum"], ports["default"]) == (
        1,
        16,
        65535,
        [27017],
    )


@pytest.mark.parametrize("endpoint", ["s3:0", "s3:65536", "s3:99999"])
def test_an_s3_endpoints_port_is_a_port(endpoint: str) -> None:
    with pytest.raises(ValidationError):
        S3Location.model_validate({**S3, "endpoint": endpoint})
