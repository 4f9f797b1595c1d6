"""The generated CRDs and the builders' manifests against a real kube-apiserver (scripts/cluster-up.sh)."""

from pathlib import Path

import pytest
from helpers.kubecluster import LocalCluster

from taskplatform.operator.dbroles import ROLES
from taskplatform.operator.jwtkeys import JwtKeys
from taskplatform.operator.kinds import DATA_MIGRATION, POD, TASK_PLATFORM, TASK_PLATFORM_BACKUP
from taskplatform.operator.models import DataMigrationSpec, NetworkPeer, TaskPlatformSpec, connections_needed
from taskplatform.operator.specs import backup as backup_specs
from taskplatform.operator.specs.backup import Store
from taskplatform.operator.specs.children import PlatformFacts, platform_children
from taskplatform.operator.specs.common import Owner
from taskplatform.operator.specs.credentials import Credentials, credentials_secret
from taskplatform.operator.specs.datamigration import data_migration_job
from taskplatform.operator.specs.limits import (
    MAX_BACKUP_NAME,
    MAX_MIGRATION_NAME,
    MAX_PLATFORM_NAME,
    platform_child_names,
)
from taskplatform.operator.specs.networkpolicy import (
    data_migration_network_policy,
    platform_network_policies,
    restore_network_policy,
)
from taskplatform.operator.specs.serviceaccount import platform_service_account

ROLE_PASSWORDS = {role.key: "r" * 24 for role in ROLES}

_S3 = {"endpoint": "s3.example.com", "bucket": "tp-backups", "credentialsSecretRef": {"name": "keys"}}


def _ingress(*peers: dict) -> dict:
    return {"api": {"ingressFrom": list(peers)}}


_LONG_PREFIX = ".".join(["a" * 63] * 4)  # DNS labels, 255 characters: a label key's prefix has at most 253
_LONGEST_PREFIX = ".".join(["a" * 63] * 3 + ["a" * 61])
# spec.api.ingressFrom, spec.api.metrics.scrapeFrom: what the API server would refuse in a NetworkPolicy is refused
# in the TaskPlatform, with what is wrong.
_BAD_PEERS = [
    (_ingress({}), "set ipBlock alone, or podSelector and/or namespaceSelector"),
    (_ingress({"ipBlock": {"cidr": "10.0.0.0/8"}, "podSelector": {}}), "set ipBlock alone"),
    (_ingress({"ipBlock": {"cidr": "10.0.0.1/8"}}), "must be a CIDR without host bits"),
    (_ingress({"ipBlock": {"cidr": "10.0.0.0"}}), "must be a CIDR without host bits"),
    (_ingress({"ipBlock": {"cidr": "fd00::1/64"}}), "must be a CIDR without host bits"),
    (_ingress({"ipBlock": {"cidr": "10.0.0.0/8", "except": ["11.0.0.0/16"]}}), "strict subset of cidr"),
    (_ingress({"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.0.0.0/8"]}}), "strict subset of cidr"),
    (_ingress({"ipBlock": {"cidr": "10.0.0.0/8", "except": ["fd00::/64"]}}), "strict subset of cidr"),
    (_ingress({"podSelector": {"matchLabels": {"-app": "x"}}}), "every key must be a label key"),
    (_ingress({"podSelector": {"matchLabels": {"a" * 64: "x"}}}), "every key must be a label key"),
    (_ingress({"podSelector": {"matchLabels": {_LONG_PREFIX + "/b": "x"}}}), "every key must be a label key"),
    (_ingress({"podSelector": {"matchLabels": {"app": "x" * 64}}}), "matchLabels.app: Too long"),
    (_ingress({"podSelector": {"matchLabels": {"app": "-x"}}}), "matchLabels.app: Invalid value"),
    (_ingress({"podSelector": {"matchLabels": {f"k{n}": "v" for n in range(17)}}}), "Too many: 17"),
    (
        _ingress({"podSelector": {"matchExpressions": [{"key": "app", "operator": "In"}]}}),
        "values are required with In and NotIn",
    ),
    (
        _ingress({"podSelector": {"matchExpressions": [{"key": "app", "operator": "Exists", "values": ["x"]}]}}),
        "not allowed with Exists and DoesNotExist",
    ),
    (
        _ingress({"namespaceSelector": {"matchExpressions": [{"key": _LONG_PREFIX + "/b", "operator": "Exists"}]}}),
        "a label key's prefix has at most 253 characters",
    ),
    (_ingress(*[{"podSelector": {}}] * 17), "spec.api.ingressFrom: Too many"),
    ({"api": {"metrics": {"scrapeFrom": [{"ipBlock": {"cidr": "10.0.0.1/32", "except": []}}] * 17}}}, "Too many"),
    ({"api": {"metrics": {"scrapeFrom": [{"namespaceSelector": {}, "ipBlock": {"cidr": "::/0"}}]}}}, "set ipBlock"),
]


def _platform(name: str, spec: dict) -> dict:
    return {"apiVersion": "taskplatform.io/v1alpha1", "kind": "TaskPlatform", "metadata": {"name": name}, "spec": spec}


def test_the_server_fills_in_exactly_the_models_defaults(cluster: LocalCluster) -> None:
    assert cluster.apply(_platform("defaults", {})).returncode == 0
    stored = cluster.get("taskplatform", "defaults")["spec"]
    assert stored == TaskPlatformSpec().model_dump(by_alias=True, exclude_none=True)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"api": {"autoscaling": {"minReplicas": 5, "maxReplicas": 2}}}, "minReplicas must be <= maxReplicas"),
        ({"auth": {"accessTokenTtlSeconds": 5000, "refreshTokenTtlSeconds": 3000}}, "must be shorter than"),
        ({"api": {"replicas": -1}}, "spec.api.replicas"),
        ({"database": {"pvcRetentionPolicy": "Sometimes"}}, "spec.database.pvcRetentionPolicy"),
        ({"database": {"storage": {"size": "lots"}}}, "spec.database.storage.size"),
        ({"database": {"backup": {}}}, "set exactly one destination: volume or s3"),
        ({"database": {"backup": {"volume": {}, "s3": _S3}}}, "set exactly one destination: volume or s3"),
        ({"database": {"backup": {"volume": {}, "schedule": "every night"}}}, "spec.database.backup.schedule"),
        ({"database": {"backup": {"volume": {}, "retention": 0}}}, "spec.database.backup.retention"),
        ({"database": {"backup": {"s3": {**_S3, "bucket": "No_Such"}}}}, "spec.database.backup.s3.bucket"),
        ({"database": {"backup": {"s3": {**_S3, "endpoint": "https://s3"}}}}, "spec.database.backup.s3.endpoint"),
        ({"database": {"restoreFrom": {}}}, "set exactly one of backup, volume or s3"),
        ({"database": {"restoreFrom": {"backup": "b", "sha256": "xyz"}}}, "spec.database.restoreFrom.sha256"),
        ({"database": {"restoreFrom": {"s3": {**_S3, "key": "k.dump"}}}}, "an s3 or volume source needs sha256"),
        (
            {"database": {"restoreFrom": {"volume": {"claimName": "c", "path": "k.dump"}, "allowUnverified": False}}},
            "an s3 or volume source needs sha256",
        ),
        ({"database": {"restoreFrom": {"backup": "b", "size": "lots"}}}, "spec.database.restoreFrom.size"),
        ({"api": {"trustedProxies": ["10.0.0.0/8", "ingress.example"]}}, "must be an IP address or a CIDR"),
        ({"api": {"trustedProxies": ["10.0.0.0/255.0.0.0"]}}, "spec.api.trustedProxies[0]: Invalid value"),
        ({"api": {"trustedProxies": ["::ffff:10.0.0.1"]}}, "must be an IP address or a CIDR"),
        ({"api": {"trustedProxies": ["10.0.0.1"] * 65}}, "spec.api.trustedProxies: Too many"),
        *((spec, message) for spec, message in _BAD_PEERS),
        ({"database": {"backup": {"s3": {**_S3, "endpoint": "s3:70000"}}}}, "the port must be 1 to 65535"),
        ({"database": {"restoreFrom": {"s3": {**_S3, "key": "k", "endpoint": "s3:0"}}}}, "the port must be 1 to"),
    ],
)
def test_invalid_specs_are_rejected_with_readable_messages(cluster: LocalCluster, spec: dict, message: str) -> None:
    result = cluster.apply(_platform("invalid", spec))
    assert result.returncode != 0
    assert message in result.stderr


def test_an_unverifiable_restore_is_admitted_only_when_asked_for(cluster: LocalCluster) -> None:
    """s3 and volume sources with their checksum, or with allowUnverified; a backup source carries its own."""
    sources = [
        {"s3": {**_S3, "key": "k.dump"}, "sha256": "a" * 64, "size": "2Gi"},
        {"volume": {"claimName": "c", "path": "k.dump"}, "allowUnverified": True},
        {"backup": "b"},
    ]
    for source in sources:
        result = cluster.apply(_platform("restored", {"database": {"restoreFrom": source}}), "--dry-run=server")
        assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    ("api", "database"),
    [
        ({"replicas": 8}, {}),  # (8 + 1) x 21 + 13 = 202 > 200
        ({"autoscaling": {"maxReplicas": 9}}, {}),
        ({"replicas": 2, "workers": 4}, {}),
        ({"replicas": 2, "databasePool": {"size": 50, "maxOverflow": 50}}, {}),
        ({"replicas": 100}, {"maxConnections": 2000}),
    ],
)
def test_a_spec_whose_api_pools_cannot_fit_the_databases_connections_is_refused(
    cluster: LocalCluster, api: dict, database: dict
) -> None:
    """At peak load every API process may hold its whole pool: a spec whose pools, on the most pods a rollout or the
    autoscaler runs, do not leave room for the Jobs is refused at admission, not found out when a backup is."""
    spec = {"api": api, "database": database}
    typed = TaskPlatformSpec.model_validate(spec)
    assert connections_needed(typed.api) > typed.database.max_connections  # the operator's count agrees
    refused = cluster.apply(_platform("too-many", spec))
    assert refused.returncode != 0
    assert "spec.database.maxConnections is too few for this spec" in refused.stderr
    raised = {**database, "maxConnections": connections_needed(typed.api)}
    accepted = cluster.apply(_platform("just-enough", {"api": api, "database": raised}))
    assert accepted.returncode == 0, accepted.stderr
    cluster.kubectl("delete", "taskplatform", "just-enough")
    # The largest that fits with the defaults: 7 replicas, (7 + 1) x 21 + 13 = 181.
    assert cluster.apply(_platform("fits", {"api": {"replicas": 7}})).returncode == 0
    cluster.kubectl("delete", "taskplatform", "fits")


def test_env_cannot_replace_what_the_operator_sets(cluster: LocalCluster) -> None:
    for name in ("DATABASE_URL", "DB_POOL_SIZE", "PGSSLMODE", "WEB_CONCURRENCY"):
        refused = cluster.apply(_platform("env", {"api": {"env": [{"name": name, "value": "x"}]}}))
        assert refused.returncode != 0
        assert f"{name} is set by the operator" in refused.stderr
        with pytest.raises(ValueError, match="set by the operator"):
            TaskPlatformSpec.model_validate({"api": {"env": [{"name": name, "value": "x"}]}})
    accepted = cluster.apply(_platform("env", {"api": {"env": [{"name": "LOG_LEVEL", "value": "DEBUG"}]}}))
    assert accepted.returncode == 0, accepted.stderr
    cluster.kubectl("delete", "taskplatform", "env")


def test_names_whose_children_cannot_exist_are_refused_with_the_limit(cluster: LocalCluster) -> None:
    longest = "n" * MAX_PLATFORM_NAME
    # The limit is derived from the children: at the limit every child name is a valid label value.
    assert max(len(child) for child in platform_child_names(longest)) == 63
    accepted = cluster.apply(_platform(longest, {}))
    assert accepted.returncode == 0, accepted.stderr
    refused = cluster.apply(_platform("n" * (MAX_PLATFORM_NAME + 1), {}))
    assert refused.returncode != 0
    assert f"metadata.name may have at most {MAX_PLATFORM_NAME} characters" in refused.stderr
    migration = {
        "apiVersion": "taskplatform.io/v1alpha1",
        "kind": "DataMigration",
        "metadata": {"name": "m" * (MAX_MIGRATION_NAME + 1)},
        "spec": {"target": "defaults", "sourceSecretRef": {"name": "mongo"}},
    }
    refused = cluster.apply(migration)
    assert refused.returncode != 0 and f"at most {MAX_MIGRATION_NAME} characters" in refused.stderr
    cluster.kubectl("delete", "tp", longest)


@pytest.mark.parametrize(
    ("before", "after", "message"),
    [
        (
            {"storage": {"size": "1Gi"}},
            {"storage": {"size": "100Mi"}},
            "storage.size cannot shrink (from 1Gi to 100Mi)",
        ),
        ({"storage": {"size": "1Gi"}}, {"storage": {"size": "1023Mi"}}, "cannot shrink"),
        (
            {"version": "15"},
            {"version": "16", "image": "postgres:16"},
            "version cannot change in place (from 15 to 16)",
        ),
        (
            {"storage": {"storageClassName": "a"}},
            {"storage": {"storageClassName": "b"}},
            "storageClassName cannot change",
        ),
        ({}, {"storage": {"storageClassName": "b"}}, "storageClassName cannot change"),
        ({}, {"restoreFrom": {"backup": "b1"}}, "restoreFrom is set only when the TaskPlatform is created"),
        ({"restoreFrom": {"backup": "b1"}}, {"restoreFrom": {"backup": "b2"}}, "restoreFrom cannot change"),
    ],
)
def test_edits_the_database_cannot_take_are_refused_at_admission(
    cluster: LocalCluster, before: dict, after: dict, message: str
) -> None:
    name = f"edit-{abs(hash(message)) % 10**6}"
    assert cluster.apply(_platform(name, {"database": before})).returncode == 0
    try:
        refused = cluster.apply(_platform(name, {"database": after}))
        assert refused.returncode != 0
        assert message in refused.stderr, refused.stderr
    finally:
        cluster.kubectl("delete", "tp", name)


def test_the_database_volume_may_grow(cluster: LocalCluster) -> None:
    assert cluster.apply(_platform("grows", {"database": {"storage": {"size": "1Gi"}}})).returncode == 0
    grown = cluster.apply(_platform("grows", {"database": {"storage": {"size": "1.5Gi"}}}))
    assert grown.returncode == 0, grown.stderr
    cluster.kubectl("delete", "tp", "grows")


def test_kubectl_scale_edits_the_api_replicas(cluster: LocalCluster) -> None:
    assert cluster.apply(_platform("scalable", {"api": {"replicas": 2}})).returncode == 0
    cluster.kubectl("scale", "tp/scalable", "--replicas=5")
    assert cluster.get("tp", "scalable")["spec"]["api"]["replicas"] == 5


@pytest.mark.parametrize(
    ("egress", "message"),
    [
        ({"ports": []}, "spec.sourceEgress.ports: Invalid value"),
        ({"ports": [70000]}, "spec.sourceEgress.ports[0]: Invalid value"),
        ({"ports": list(range(1, 18))}, "spec.sourceEgress.ports: Too many"),
        ({"to": [{"ipBlock": {"cidr": "192.0.2.1/24"}}]}, "must be a CIDR without host bits"),
        ({"to": [{}]}, "set ipBlock alone, or podSelector and/or namespaceSelector"),
    ],
)
def test_a_data_migrations_source_egress_is_checked_at_admission(
    cluster: LocalCluster, egress: dict, message: str
) -> None:
    migration = {
        "apiVersion": "taskplatform.io/v1alpha1",
        "kind": "DataMigration",
        "metadata": {"name": "bad-egress"},
        "spec": {"target": "defaults", "sourceSecretRef": {"name": "mongo"}, "sourceEgress": egress},
    }
    result = cluster.apply(migration)
    assert result.returncode != 0
    assert message in result.stderr, result.stderr


def test_network_peers_as_kubernetes_takes_them_are_accepted_and_so_are_their_policies(cluster: LocalCluster) -> None:
    """What the model accepts the CRD accepts, and the NetworkPolicies built from it pass the API server's own
    validation of NetworkPolicies."""
    peers = [
        {"podSelector": {}},
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}},
         "podSelector": {"matchExpressions": [{"key": "app.kubernetes.io/name", "operator": "In",
                                               "values": ["ingress-nginx", "b" * 63]}]}},
        {"namespaceSelector": {"matchExpressions": [{"key": "example.com/" + "a" * 63, "operator": "DoesNotExist"}]}},
        {"ipBlock": {"cidr": "0.0.0.0/0", "except": ["10.0.0.0/8", "169.254.169.254/32"]}},
        {"ipBlock": {"cidr": "fd00::/64", "except": ["fd00::/128"]}},
        {"podSelector": {"matchLabels": {_LONGEST_PREFIX + "/" + "b" * 63: "c" * 63, "empty": ""}}},
    ]  # fmt: skip
    spec = {
        "api": {"ingressFrom": peers, "metrics": {"scrapeFrom": peers[:2]}},
        "database": {"backup": {"s3": {**_S3, "endpoint": "s3.example.com:65535"}}},
    }
    for peer in peers:
        NetworkPeer.model_validate(peer)
    assert cluster.apply(_platform("fenced", spec), "--dry-run=server").returncode == 0
    owner = Owner(kind=TASK_PLATFORM, name="fenced", namespace="default", uid="00000000-0000-0000-0000-000000000004")
    typed = TaskPlatformSpec.model_validate(spec)
    assert typed.database.backup is not None and typed.database.backup.s3 is not None
    policies = [policy for _, policy in platform_network_policies(owner, typed) if policy is not None]
    policies.append(restore_network_policy(owner, Store(s3=typed.database.backup.s3)))
    migration = {"target": "fenced", "sourceSecretRef": {"name": "m"}, "sourceEgress": {"ports": [27017, 1],
                 "to": peers}}  # fmt: skip
    dm = {"apiVersion": "taskplatform.io/v1alpha1", "kind": "DataMigration", "metadata": {"name": "fenced"},
          "spec": migration}  # fmt: skip
    assert cluster.apply(dm, "--dry-run=server").returncode == 0
    dm_owner = Owner(kind=DATA_MIGRATION, name="fenced", namespace="default", uid="00000000-0000-0000-0000-5")
    policies.append(data_migration_network_policy(dm_owner, DataMigrationSpec.model_validate(migration)))
    assert len(policies) == 7
    result = cluster.apply(policies, "--dry-run=server")
    assert result.returncode == 0, result.stderr


def test_data_migration_spec_is_immutable(cluster: LocalCluster) -> None:
    migration = {
        "apiVersion": "taskplatform.io/v1alpha1",
        "kind": "DataMigration",
        "metadata": {"name": "import-1"},
        "spec": {"target": "defaults", "sourceSecretRef": {"name": "mongo"}},
    }
    assert cluster.apply(migration).returncode == 0
    migration["spec"]["batchSize"] = 10
    result = cluster.apply(migration)
    assert result.returncode != 0
    assert "spec is immutable once created" in result.stderr


def test_builders_manifests_pass_server_side_validation(cluster: LocalCluster) -> None:
    owner = Owner(kind=TASK_PLATFORM, name="defaults", namespace="default", uid="00000000-0000-0000-0000-000000000001")
    proxies = ["10.0.0.7", "10.0.0.1/8", "fd00::/64", "2001:db8::1"]  # what the model accepts, the server does
    assert cluster.apply(_platform("proxied", {"api": {"trustedProxies": proxies}}), "--dry-run=server").returncode == 0
    credentials = Credentials("p" * 24, "j" * 48, JwtKeys("j" * 48), ROLE_PASSWORDS)
    passes = (PlatformFacts(), PlatformFacts(schema_job_exists=True, schema_complete=True))  # schema Job, then API
    for spec in ({}, {"api": {"autoscaling": {"minReplicas": 2}}, "auth": {"secretRef": {"name": "jwt"}}}):
        typed = TaskPlatformSpec.model_validate(spec)
        children = {
            (c.kind.kind, c.name): c.manifest
            for facts in passes
            for c in platform_children(owner, typed, credentials, facts)
            if c.manifest is not None
        }
        manifests = [credentials_secret(owner, credentials), *children.values()]
        assert {"Job", "Deployment", "StatefulSet"} <= {m["kind"] for m in manifests}
        result = cluster.apply(manifests, "--dry-run=server")
        assert result.returncode == 0, result.stderr
    dm_owner = Owner(kind=DATA_MIGRATION, name="import-1", namespace="default", uid="00000000-0000-0000-0000-2")
    job = data_migration_job(
        dm_owner,
        DataMigrationSpec.model_validate({"target": "defaults", "sourceSecretRef": {"name": "m"}}),
        TaskPlatformSpec(),
    )
    result = cluster.apply(job, "--dry-run=server")
    assert result.returncode == 0, result.stderr
    for backup in ({"volume": {}}, {"s3": {**_S3, "tls": False}}):
        spec = TaskPlatformSpec.model_validate({"database": {"backup": backup}})
        assert spec.database.backup is not None
        store = Store.of(spec.database.backup, "defaults")
        backup_owner = Owner(kind=TASK_PLATFORM_BACKUP, name="b1", namespace="default", uid="00000000-0000-0000-0000-3")
        dump = backup_specs.Dump(store, "defaults/b1.dump", "a" * 64, 1 << 30)
        manifests = [backup_specs.backup_job(backup_owner, "defaults", spec, "defaults/b1.dump", store, ["old.dump"]),
                     backup_specs.restore_job(owner, spec, dump)]  # fmt: skip
        claim = backup_specs.backup_claim(owner, spec.database.backup)
        result = cluster.apply([*manifests, *([claim] if claim else [])], "--dry-run=server")
        assert result.returncode == 0, result.stderr


def test_the_backup_and_restore_pods_pass_the_restricted_pod_security_profile(cluster: LocalCluster) -> None:
    """The Jobs' pods as the Job controller makes them, created in a namespace that enforces the restricted profile:
    admitted, the restore's scratch volume (a generic ephemeral volume) included. A pod the profile forbids is refused
    there, so the namespace does enforce it."""
    namespace = "restricted-jobs"
    cluster.kubectl("create", "namespace", namespace, check=False)
    cluster.kubectl("label", "namespace", namespace, "pod-security.kubernetes.io/enforce=restricted", "--overwrite")
    owner = Owner(kind=TASK_PLATFORM, name="demo", namespace=namespace, uid="00000000-0000-0000-0000-000000000004")
    assert cluster.apply(platform_service_account(owner)).returncode == 0  # the pods' own account must exist
    spec = TaskPlatformSpec.model_validate({"database": {"backup": {"s3": _S3}}})
    store = Store(s3=spec.database.backup.s3 if spec.database.backup else None)
    backup_owner = Owner(kind=TASK_PLATFORM_BACKUP, name="b1", namespace=namespace, uid=owner.uid)
    jobs = [backup_specs.backup_job(backup_owner, "demo", spec, "k", store, []),
            backup_specs.restore_job(owner, spec, backup_specs.Dump(store, "k", "a" * 64, 1 << 30))]  # fmt: skip

    def pod(job: dict, name: str) -> dict:
        template = job["spec"]["template"]
        metadata = {**template["metadata"], "name": name, "namespace": namespace}
        return {**POD.type_meta(), "metadata": metadata, "spec": template["spec"]}

    for job in jobs:
        result = cluster.apply(pod(job, job["metadata"]["name"]), "--dry-run=server")
        assert result.returncode == 0, result.stderr
    escalating = pod(jobs[1], "escalating")
    escalating["spec"]["containers"][0]["securityContext"]["allowPrivilegeEscalation"] = True
    result = cluster.apply(escalating, "--dry-run=server")
    assert result.returncode != 0 and 'violates PodSecurity "restricted' in result.stderr, result.stderr


def test_a_backup_names_its_platform_and_is_immutable(cluster: LocalCluster) -> None:
    backup = {
        "apiVersion": "taskplatform.io/v1alpha1",
        "kind": "TaskPlatformBackup",
        "metadata": {"name": "b" * (MAX_BACKUP_NAME + 1)},
        "spec": {"platform": "defaults"},
    }
    refused = cluster.apply(backup)
    assert refused.returncode != 0 and f"at most {MAX_BACKUP_NAME} characters" in refused.stderr
    backup["metadata"]["name"] = "on-demand"
    assert cluster.apply(backup).returncode == 0
    backup["spec"]["platform"] = "other"
    result = cluster.apply(backup)
    assert result.returncode != 0 and "spec is immutable once created" in result.stderr
    missing = cluster.apply({**backup, "metadata": {"name": "no-platform"}, "spec": {}})
    assert missing.returncode != 0 and 'missing required field "platform"' in missing.stderr
    cluster.kubectl("delete", "tpb", "on-demand")


def test_fake_nodes_run_pods_and_complete_jobs(cluster: LocalCluster) -> None:
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "probe"},
        "spec": {
            "template": {
                "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]},
            }
        },
    }
    assert cluster.apply(job).returncode == 0
    cluster.kubectl("wait", "--for=condition=Complete", "job/probe", "--timeout=60s")


@pytest.mark.parametrize("example", ["taskplatform.yaml", "datamigration.yaml", "backup.yaml", "restore.yaml"])
def test_examples_are_accepted_by_the_api_server(cluster: LocalCluster, example: str) -> None:
    path = Path(__file__).resolve().parents[2] / "examples" / example
    result = cluster.kubectl("apply", "--dry-run=server", "-f", str(path), check=False)
    assert result.returncode == 0, result.stderr
