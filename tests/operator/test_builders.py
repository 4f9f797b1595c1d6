"""The desired-state builders are pure: spec in, manifests out, tested without a cluster. A platform's children
come from platform_children, the assembly reconcile_platform writes (tests/operator/test_platform.py checks that)."""

import base64
import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from taskplatform.migration import contract
from taskplatform.migration.read_order import ReadOrder
from taskplatform.operator import jwtkeys
from taskplatform.operator.crdgen import all_crds
from taskplatform.operator.dbroles import API_ROLE, BACKUP_ROLE, MIGRATION_ROLE, OWNER_ROLE, ROLES, DatabaseRole
from taskplatform.operator.jwtkeys import JwtKeys, Retiring
from taskplatform.operator.kinds import (
    DATA_MIGRATION,
    DEPLOYMENT,
    JOB,
    STATEFUL_SET,
    TASK_PLATFORM,
    TASK_PLATFORM_BACKUP,
)
from taskplatform.operator.models import DataMigrationSpec, TaskPlatformSpec
from taskplatform.operator.specs.api import HANDOVER_MANAGER, api_deployment
from taskplatform.operator.specs.backup import Dump, Store, backup_job, restore_job
from taskplatform.operator.specs.children import PlatformFacts, platform_children
from taskplatform.operator.specs.common import Owner
from taskplatform.operator.specs.credentials import (
    CREDENTIALS_ANNOTATION,
    PASSWORD_KEY,
    Credentials,
    credentials_secret,
)
from taskplatform.operator.specs.database import database_statefulset
from taskplatform.operator.specs.datamigration import data_migration_job
from taskplatform.operator.specs.limits import MAX_PLATFORM_NAME
from taskplatform.operator.specs.schema import schema_job_name

ROOT = Path(__file__).resolve().parents[2]
OWNER = Owner(kind=TASK_PLATFORM, name="demo", namespace="apps", uid="1234-5678")
ROLE_PASSWORDS = {role.key: f"{role.key}-pass-456" for role in ROLES}
# As ensure_credentials gives them once the JWT key is known: the key in effect is the generated one.
CREDS = Credentials(db_password="db-pass-123", jwt_secret="j" * 48, jwt_keys=JwtKeys("j" * 48),
                    role_passwords=ROLE_PASSWORDS)  # fmt: skip
NEW = PlatformFacts()  # a new platform's first pass: nothing exists yet
SCHEMA_DONE = PlatformFacts(schema_job_exists=True, schema_complete=True)  # the pass after its schema Job completed


def desired(owner: Owner, spec: TaskPlatformSpec, credentials: Credentials) -> list[dict[str, Any]]:
    """Every object a new platform gets over its first passes, as the operator writes them: its credentials
    Secret, the children of its first pass (the schema Job among them), and those of the pass after the schema
    Job completed (the API Deployment)."""
    passes = [
        *platform_children(owner, spec, credentials, NEW),
        *platform_children(owner, spec, credentials, SCHEMA_DONE),
    ]
    children = {(c.kind.kind, c.name): c.manifest for c in passes if c.manifest is not None}
    return [credentials_secret(owner, credentials), *children.values()]


def build(spec: dict[str, Any] | None = None) -> dict[tuple[str, str], dict[str, Any]]:
    manifests = desired(OWNER, TaskPlatformSpec.model_validate(spec or {}), CREDS)
    return {(m["kind"], m["metadata"]["name"]): m for m in manifests}


def _writes(facts: PlatformFacts, spec: dict[str, Any] | None = None) -> list[tuple[str, str]]:
    children = platform_children(OWNER, TaskPlatformSpec.model_validate(spec or {}), CREDS, facts)
    return [(c.kind.kind, "delete" if c.manifest is None else "create" if c.create_once else "apply") for c in children]


# The database's, the API's, the schema Job's, the backup Jobs' (none without spec.database.backup), the default deny.
POLICIES = [("NetworkPolicy", "apply")] * 3 + [("NetworkPolicy", "delete"), ("NetworkPolicy", "apply")]


def test_defaults_build_the_whole_platform_in_dependency_order() -> None:
    """Database before schema before API: a new platform's first pass creates the schema Job beside the database,
    and its API Deployment comes with the pass after that Job completed. The ServiceAccount its pods run as comes
    before any of them."""
    assert _writes(NEW) == [
        ("ServiceAccount", "apply"),
        ("Service", "apply"),
        ("Service", "apply"),
        *POLICIES,
        ("ConfigMap", "apply"),
        ("StatefulSet", "apply"),
        ("Job", "create"),
        ("Service", "apply"),
        ("PodDisruptionBudget", "apply"),
        ("HorizontalPodAutoscaler", "delete"),
    ]
    assert _writes(SCHEMA_DONE) == [
        ("ServiceAccount", "apply"),
        ("Service", "apply"),
        ("Service", "apply"),
        *POLICIES,
        ("ConfigMap", "apply"),
        ("StatefulSet", "apply"),
        ("Deployment", "apply"),
        ("Service", "apply"),
        ("PodDisruptionBudget", "apply"),
        ("HorizontalPodAutoscaler", "delete"),
    ]
    assert [m["kind"] for m in desired(OWNER, TaskPlatformSpec(), CREDS)][:1] == ["Secret"]


def _matches(selector: dict[str, Any], pod_labels: dict[str, str]) -> bool:
    if any(pod_labels.get(k) != v for k, v in selector.get("matchLabels", {}).items()):
        return False
    return all(pod_labels.get(e["key"]) in e["values"] for e in selector.get("matchExpressions", []))


def test_only_the_platforms_own_clients_may_reach_its_database() -> None:
    children = build()
    policy = children[("NetworkPolicy", "demo-db")]["spec"]
    (rule,) = policy["ingress"]
    assert rule["ports"] == [{"protocol": "TCP", "port": 5432}]
    (clients,) = rule["from"]
    database = children[("StatefulSet", "demo-db")]["spec"]["template"]["metadata"]["labels"]
    api = children[("Deployment", "demo-api")]["spec"]["template"]["metadata"]["labels"]
    schema = next(m for k, m in children.items() if k[0] == "Job")["spec"]["template"]["metadata"]["labels"]
    migration = data_migration_job(
        Owner(DATA_MIGRATION, "import", "apps", "9"),
        DataMigrationSpec.model_validate({"target": "demo", "sourceSecretRef": {"name": "m"}}),
        TaskPlatformSpec(),
    )["spec"]["template"]["metadata"]["labels"]
    other_platform = build_for("other")[("Deployment", "other-api")]["spec"]["template"]["metadata"]["labels"]
    assert _matches(policy["podSelector"], database)
    assert all(_matches(clients["podSelector"], pod) for pod in (api, schema, migration))
    assert not _matches(clients["podSelector"], other_platform)
    assert not _matches(clients["podSelector"], database)


def build_for(name: str) -> dict[tuple[str, str], dict[str, Any]]:
    owner = Owner(kind=TASK_PLATFORM, name=name, namespace="apps", uid="0")
    return {(m["kind"], m["metadata"]["name"]): m for m in desired(owner, TaskPlatformSpec(), CREDS)}


def test_every_child_is_owned_labelled_and_namespaced() -> None:
    for manifest in desired(OWNER, TaskPlatformSpec.model_validate({"api": {"autoscaling": {}}}), CREDS):
        meta = manifest["metadata"]
        assert meta["namespace"] == "apps"
        assert meta["ownerReferences"] == [
            {"apiVersion": "taskplatform.io/v1alpha1", "kind": "TaskPlatform", "name": "demo", "uid": "1234-5678",
             "controller": True, "blockOwnerDeletion": True}
        ]  # fmt: skip
        assert meta["labels"]["app.kubernetes.io/instance"] == "demo"
        assert meta["labels"]["app.kubernetes.io/managed-by"] == "taskplatform-operator"


def test_secret_holds_credentials_and_connection_uri() -> None:
    data = build()[("Secret", "demo-credentials")]["data"]
    decoded = {k: base64.b64decode(v).decode() for k, v in data.items()}
    assert decoded["postgres-password"] == "db-pass-123"
    assert decoded["jwt-secret"] == "j" * 48
    assert decoded["api-password"] == "api-pass-456"
    assert (
        decoded["api-database-url"] == "postgresql://taskplatform_api:api-pass-456@demo-db.apps.svc:5432/taskplatform"
    )
    assert {k for k in decoded if k.endswith("-database-url")} == {f"{role.key}-database-url" for role in ROLES}
    assert "db-pass-123" not in "".join(v for k, v in decoded.items() if k != "postgres-password")  # no superuser URL
    awkward = Credentials("x", "j" * 48, role_passwords={**ROLE_PASSWORDS, "owner": "a'b@c:d/e%f g\""})
    url = base64.b64decode(credentials_secret(OWNER, awkward)["data"]["owner-database-url"]).decode()
    assert url == "postgresql://taskplatform_owner:a%27b%40c%3Ad%2Fe%25f%20g%22@demo-db.apps.svc:5432/taskplatform"


def test_no_secret_value_appears_outside_the_secret() -> None:
    for manifest in desired(OWNER, TaskPlatformSpec(), CREDS):
        if manifest["kind"] != "Secret":
            assert "db-pass-123" not in str(manifest)
            assert "j" * 48 not in str(manifest)


def test_database_statefulset_volume_probes_and_retention() -> None:
    sts = build({"database": {"storage": {"size": "5Gi", "storageClassName": "fast"}, "pvcRetentionPolicy": "Delete"}})[
        ("StatefulSet", "demo-db")
    ]
    claim = sts["spec"]["volumeClaimTemplates"][0]["spec"]
    assert claim["resources"]["requests"]["storage"] == "5Gi"
    assert claim["storageClassName"] == "fast"
    assert sts["spec"]["persistentVolumeClaimRetentionPolicy"]["whenDeleted"] == "Delete"
    container = sts["spec"]["template"]["spec"]["containers"][0]
    assert container["readinessProbe"]["exec"]["command"][0] == "pg_isready"
    assert sts["spec"]["serviceName"] == "demo-db-headless"
    default = build()[("StatefulSet", "demo-db")]
    assert default["spec"]["persistentVolumeClaimRetentionPolicy"]["whenDeleted"] == "Retain"
    assert "storageClassName" not in default["spec"]["volumeClaimTemplates"][0]["spec"]


def test_api_deployment_probes_env_and_security() -> None:
    deployment = build({"api": {"replicas": 3, "env": [{"name": "LOG_LEVEL", "value": "DEBUG"}]}})[
        ("Deployment", "demo-api")
    ]
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert deployment["spec"]["replicas"] == 3
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    env = {e["name"]: e for e in container["env"]}
    assert env["DATABASE_URL"]["valueFrom"]["secretKeyRef"] == {"name": "demo-credentials", "key": "api-database-url"}
    assert env["LOG_LEVEL"]["value"] == "DEBUG"
    assert env["ENVIRONMENT"]["value"] == "prod"
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert pod["enableServiceLinks"] is False
    # A stopping pod keeps serving while it leaves the Service (tests/e2e replaces one under load), well
    # within its grace period.
    drain = container["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert 0 < drain < pod["terminationGracePeriodSeconds"]


def test_api_pods_prefer_to_spread_over_nodes() -> None:
    """Preferred, so that a one-node cluster still runs every replica; counted among the Deployment's own pods."""
    deployment = build({"api": {"replicas": 3}})[("Deployment", "demo-api")]
    [spread] = deployment["spec"]["template"]["spec"]["topologySpreadConstraints"]
    assert spread["topologyKey"] == "kubernetes.io/hostname"
    assert spread["whenUnsatisfiable"] == "ScheduleAnyway"
    assert spread["labelSelector"]["matchLabels"] == deployment["spec"]["selector"]["matchLabels"]
    assert spread["matchLabelKeys"] == ["pod-template-hash"]


def test_metrics_are_served_on_a_port_the_service_does_not_expose_and_docs_only_when_asked() -> None:
    children = build()
    container = children[("Deployment", "demo-api")]["spec"]["template"]["spec"]["containers"][0]
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["METRICS_PORT"] == str(ports["metrics"]) and ports["metrics"] != ports["http"]
    service_ports = children[("Service", "demo-api")]["spec"]["ports"]
    assert [port["targetPort"] for port in service_ports] == ["http"]
    assert env["API_DOCS"] == "false"
    with_docs = build({"api": {"docs": True}})[("Deployment", "demo-api")]["spec"]["template"]["spec"]
    assert {e["name"]: e.get("value") for e in with_docs["containers"][0]["env"]}["API_DOCS"] == "true"


def test_a_restarted_database_keeps_a_data_directory_postgresql_accepts() -> None:
    """Found on the real node: re-owning the volume on every start made PGDATA group-writable, and PostgreSQL
    refused to start ("invalid permissions") once its pod was replaced. Ownership is now fixed only once."""
    pod = build()[("StatefulSet", "demo-db")]["spec"]["template"]["spec"]
    assert pod["securityContext"]["fsGroupChangePolicy"] == "OnRootMismatch"
    entrypoint = (ROOT / "docker" / "postgres-entrypoint.sh").read_text()
    assert entrypoint.index('chmod 700 "$PGDATA"\nexec postgres') > entrypoint.index("initdb")


@pytest.mark.parametrize("auth", [{}, {"secretRef": {"name": "my-jwt"}}])
def test_api_pods_take_the_jwt_keys_in_effect_from_the_credentials_secret(auth: dict[str, Any]) -> None:
    """Even with a referenced Secret: the operator copies its key into the credentials Secret phase by phase
    (jwtkeys.py), so the pods never switch keys all at once, and the Deployment holds no key."""
    keys = JwtKeys("s" * 48, pending="n" * 48, retiring=(Retiring("o" * 48, datetime(2026, 1, 1, tzinfo=UTC)),))
    credentials = Credentials(CREDS.db_password, CREDS.jwt_secret, keys, ROLE_PASSWORDS)
    manifests = desired(OWNER, TaskPlatformSpec.model_validate({"auth": auth}), credentials)
    deployment = next(m for m in manifests if m["kind"] == "Deployment")
    env = {e["name"]: e for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["JWT_SECRET"]["valueFrom"]["secretKeyRef"] == {"name": "demo-credentials", "key": "jwt-signing"}
    assert env["JWT_ADDITIONAL_SECRETS"]["valueFrom"]["secretKeyRef"] == {
        "name": "demo-credentials",
        "key": "jwt-additional",
    }
    (secret,) = [m for m in manifests if m["kind"] == "Secret"]
    data = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
    assert data["jwt-signing"] == "s" * 48
    assert json.loads(data["jwt-additional"]) == ["n" * 48, "o" * 48]  # what JWT_ADDITIONAL_SECRETS parses
    assert data["jwt-secret"] == CREDS.jwt_secret  # the desired key, which users may edit, is kept apart
    for manifest in manifests:
        if manifest["kind"] != "Secret":
            assert not {"s" * 48, "n" * 48, "o" * 48, CREDS.jwt_secret} & set(_strings(manifest))


def _strings(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return [value] if isinstance(value, str) else []


def _api_digest(credentials: Credentials) -> str:
    template = api_deployment(OWNER, TaskPlatformSpec(), credentials)["spec"]["template"]
    return str(template["metadata"]["annotations"][CREDENTIALS_ANNOTATION])


def test_each_rotation_phase_and_a_changed_referenced_key_roll_the_api_pods_not_the_database() -> None:
    old, new = "o" * 48, "n" * 48
    now = datetime(2026, 3, 1, tzinfo=UTC)
    # A changed referenced Secret (the desired key) starts phase 1: the API's template changes.
    phases = [JwtKeys(old)]
    for rolled_out in (True, True, True):
        phases.append(jwtkeys.plan(new, phases[-1], rolled_out, now, 3600).keys)
    phases.append(jwtkeys.plan(new, phases[-1], True, now + timedelta(hours=1), 3600).keys)
    assert [k.phase for k in phases] == ["Steady", "Distributing", "Switching", "Retiring", "Steady"]
    digests = [_api_digest(Credentials(CREDS.db_password, CREDS.jwt_secret, keys, ROLE_PASSWORDS)) for keys in phases]
    # Each phase that changes what the pods hold is one rollout; starting the previous key's clock is not.
    assert digests[2] == digests[3]
    assert len({digests[0], digests[1], digests[2], digests[4]}) == 4
    database = set()
    for keys in phases:
        credentials = Credentials(CREDS.db_password, CREDS.jwt_secret, keys, ROLE_PASSWORDS)
        sts = database_statefulset(OWNER, TaskPlatformSpec(), credentials)
        database.add(sts["spec"]["template"]["metadata"]["annotations"][CREDENTIALS_ANNOTATION])
    assert len(database) == 1  # the database does not use the JWT keys


def test_trusted_proxies_reach_the_api_as_one_variable() -> None:
    proxies = ["10.0.0.0/16", "fd00::/64", "192.168.1.7"]
    deployment = build({"api": {"trustedProxies": proxies}})[("Deployment", "demo-api")]
    env = {e["name"]: e for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["TRUSTED_PROXIES"] == {"name": "TRUSTED_PROXIES", "value": "10.0.0.0/16,fd00::/64,192.168.1.7"}
    default = build()[("Deployment", "demo-api")]["spec"]["template"]["spec"]["containers"][0]["env"]
    assert "TRUSTED_PROXIES" not in {e["name"] for e in default}  # unset: the API ignores forwarded headers


@pytest.mark.parametrize(
    "proxy",
    ["10.0.0.0/255.0.0.0", "ingress.example", "fe80::1%eth0", "::ffff:10.0.0.1", "10.0.0.0/33", "010.0.0.1", "",
     " 10.0.0.1", "10.0.0.0/ 8", "1" * 50],
)  # fmt: skip
def test_trusted_proxies_must_be_addresses_or_cidrs(proxy: str) -> None:
    with pytest.raises(ValidationError, match=r"trustedProxies\.0"):
        TaskPlatformSpec.model_validate({"api": {"trustedProxies": [proxy]}})


def test_trusted_proxies_are_bounded_in_the_model_and_the_crd() -> None:
    accepted = ["10.0.0.7", "10.0.0.1/8", "fd00::/64", "2001:db8::1", "::1.2.3.4", "0.0.0.0/0"]
    assert TaskPlatformSpec.model_validate({"api": {"trustedProxies": accepted}}).api.trusted_proxies == accepted
    with pytest.raises(ValidationError, match="at most 64 items"):
        TaskPlatformSpec.model_validate({"api": {"trustedProxies": ["10.0.0.1"] * 65}})
    api = all_crds()["taskplatforms.yaml"]["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    schema = api["properties"]["api"]["properties"]["trustedProxies"]
    assert (schema["maxItems"], schema["items"]["maxLength"]) == (64, 49)
    assert schema["items"]["x-kubernetes-validations"][0]["rule"] == "isIP(self) || isCIDR(self)"


def test_autoscaling_adds_an_hpa_and_leaves_replicas_to_it() -> None:
    manifests = build({"api": {"replicas": 4, "autoscaling": {"minReplicas": 2, "maxReplicas": 8}}})
    hpa = manifests[("HorizontalPodAutoscaler", "demo-api")]
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 8)
    assert hpa["spec"]["behavior"]["scaleDown"]["stabilizationWindowSeconds"] == 300  # Kubernetes' own default
    assert "replicas" not in manifests[("Deployment", "demo-api")]["spec"]
    assert ("PodDisruptionBudget", "demo-api") in manifests
    quick_scaling = {"api": {"autoscaling": {"scaleDownStabilizationSeconds": 15}}}
    quick = build(quick_scaling)[("HorizontalPodAutoscaler", "demo-api")]
    assert quick["spec"]["behavior"]["scaleDown"]["stabilizationWindowSeconds"] == 15


@pytest.mark.parametrize(("replicas", "pdb"), [(0, False), (1, False), (2, True)])
def test_pdb_only_when_more_than_one_replica(replicas: int, pdb: bool) -> None:
    assert (("PodDisruptionBudget", "demo-api") in build({"api": {"replicas": replicas}})) is pdb


def test_the_pdb_never_keeps_an_unready_api_pod_from_being_evicted() -> None:
    """A drain of the database's node made every API pod unready; the budget then blocked the drain for good."""
    budget = build({"api": {"replicas": 3}})[("PodDisruptionBudget", "demo-api")]
    assert budget["spec"]["maxUnavailable"] == 1
    assert budget["spec"]["unhealthyPodEvictionPolicy"] == "AlwaysAllow"


def test_a_new_image_gets_a_new_schema_migration_job() -> None:
    old = TaskPlatformSpec()
    new = TaskPlatformSpec.model_validate({"api": {"image": "taskplatform-api:0.2.0"}})
    assert schema_job_name(OWNER, old) != schema_job_name(OWNER, new)
    assert schema_job_name(OWNER, old) == schema_job_name(OWNER, TaskPlatformSpec())
    job = build()[("Job", schema_job_name(OWNER, old))]
    assert job["spec"]["template"]["spec"]["containers"][0]["args"] == ["migrate", "--wait", "600"]


def test_api_deployment_is_a_pure_function_of_the_spec() -> None:
    spec = TaskPlatformSpec.model_validate({"api": {"replicas": 5}})
    assert api_deployment(OWNER, spec) == api_deployment(OWNER, spec)


def test_data_migration_job_runs_the_cli_against_the_platform_database() -> None:
    owner = Owner(kind=DATA_MIGRATION, name="import-1", namespace="apps", uid="u-1")
    spec = DataMigrationSpec.model_validate(
        {"target": "demo", "sourceSecretRef": {"name": "mongo"}, "batchSize": 2000, "collections": ["tasks"],
         "readOrder": "id"}
    )  # fmt: skip
    job = data_migration_job(owner, spec, TaskPlatformSpec())
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == ["taskplatform-migrate"]
    assert container["args"] == ["--batch-size", "2000", "--collections", "tasks", "--read-order", "id",
                                 "--progress", "json", "--verify"]  # fmt: skip
    unset = DataMigrationSpec.model_validate({"target": "demo", "sourceSecretRef": {"name": "mongo"}})
    default = data_migration_job(owner, unset, TaskPlatformSpec())["spec"]["template"]["spec"]["containers"][0]
    assert default["args"][4:6] == ["--read-order", ReadOrder.NATURAL]
    env = {e["name"]: e for e in container["env"]}
    assert env["SOURCE_URI"]["valueFrom"]["secretKeyRef"] == {"name": "mongo", "key": "uri"}
    assert env["TARGET_URL"]["valueFrom"]["secretKeyRef"] == {
        "name": "demo-credentials",
        "key": "migration-database-url",
    }
    # A new pod's first connections may be refused until a NetworkPolicy enforcer admits its address: it waits.
    assert env[contract.CONNECT_WAIT_ENV]["value"] == str(contract.JOB_CONNECT_WAIT_S)
    assert env[contract.BATCH_BYTES_ENV]["value"] == str(contract.BATCH_BYTES_DEFAULT)
    assert job["metadata"]["ownerReferences"][0]["kind"] == "DataMigration"
    dry = data_migration_job(owner, spec.model_copy(update={"dry_run": True}), TaskPlatformSpec())
    assert "--dry-run" in dry["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--verify" not in dry["spec"]["template"]["spec"]["containers"][0]["args"]


def test_the_examples_parse_as_typed_specs() -> None:
    from pathlib import Path

    import yaml

    examples = Path(__file__).resolve().parents[2] / "examples"
    platform = TaskPlatformSpec.model_validate(yaml.safe_load((examples / "taskplatform.yaml").read_text())["spec"])
    assert platform.api.replicas == 3
    assert platform.database.storage.size == "5Gi"
    migration = DataMigrationSpec.model_validate(yaml.safe_load((examples / "datamigration.yaml").read_text())["spec"])
    assert migration.target == "demo"
    assert migration.source_secret_ref.name == "legacy-mongo"


def _digests(credentials: Credentials) -> tuple[str, str]:
    database, api = (
        build_one(OWNER, TaskPlatformSpec(), credentials)["spec"]["template"]["metadata"]["annotations"]
        for build_one in (database_statefulset, api_deployment)
    )
    return database[CREDENTIALS_ANNOTATION], api[CREDENTIALS_ANNOTATION]


@pytest.mark.parametrize("changed", ["superuser", *(role.key for role in ROLES)])
def test_a_changed_password_rolls_exactly_the_pods_that_use_it(changed: str) -> None:
    """The database pod holds every password (its hook sets them); the API pods only the API role's. The Jobs
    read theirs when they start (create-once: a completed Job does not run again)."""
    if changed == "superuser":
        rotated = Credentials("another", CREDS.jwt_secret, role_passwords=ROLE_PASSWORDS)
    else:
        rotated = Credentials(CREDS.db_password, CREDS.jwt_secret, role_passwords={**ROLE_PASSWORDS, changed: "x"})
    (database, api), (database_after, api_after) = _digests(CREDS), _digests(rotated)
    assert database != database_after
    assert (api != api_after) is (changed == API_ROLE.key)
    # Editing the generated Secret's `jwt-secret` rolls the API (in phases, jwtkeys.py), not the database.
    assert _digests(Credentials(CREDS.db_password, "k" * 48, role_passwords=ROLE_PASSWORDS))[0] == database


def _credential_refs(container: dict[str, Any]) -> set[str]:
    """The keys of the credentials Secret a container's environment reads."""
    return {
        e["valueFrom"]["secretKeyRef"]["key"]
        for e in container.get("env", [])
        if "valueFrom" in e and e["valueFrom"]["secretKeyRef"]["name"] == "demo-credentials"
    }


def _containers(workload: dict[str, Any]) -> list[dict[str, Any]]:
    """A workload's init containers (a restore's download) and containers."""
    pod = workload["spec"]["template"]["spec"]
    return [*pod.get("initContainers", []), *pod["containers"]]


def _role_keys(role: DatabaseRole) -> set[str]:
    return {role.password_key, role.url_key}


def test_each_pod_reads_only_its_own_roles_keys_and_only_the_database_has_the_superusers() -> None:
    children = build()
    store = Store(volume_claim="demo-backups")
    backup = backup_job(Owner(TASK_PLATFORM_BACKUP, "b", "apps", "3"), "demo", TaskPlatformSpec(), "k", store, [])
    migration = data_migration_job(
        Owner(DATA_MIGRATION, "import", "apps", "9"),
        DataMigrationSpec.model_validate({"target": "demo", "sourceSecretRef": {"name": "m"}}),
        TaskPlatformSpec(),
    )
    schema = next(m for (kind, _), m in children.items() if kind == "Job")
    workloads = {
        "database": children[("StatefulSet", "demo-db")],
        "api": children[("Deployment", "demo-api")],
        "schema": schema,
        "migration": migration,
        "backup": backup,
        "restore": restore_job(OWNER, TaskPlatformSpec(), Dump(store, "k", "ab" * 32, 1000)),
    }
    refs = {
        name: {(c["name"], key) for c in _containers(w) for key in _credential_refs(c)} for name, w in workloads.items()
    }
    jwt = {"jwt-signing", "jwt-additional"}
    assert {key for _, key in refs["database"]} == {PASSWORD_KEY, *(role.password_key for role in ROLES)}
    assert {key for _, key in refs["api"]} == {API_ROLE.url_key, *jwt}
    # The schema Job shares the API container's environment (the CLI's settings want a JWT key), not its role.
    assert {key for _, key in refs["schema"]} == {OWNER_ROLE.url_key, *jwt}
    assert refs["migration"] == {("migrate", MIGRATION_ROLE.url_key)}
    assert refs["backup"] == {("pg-dump", BACKUP_ROLE.password_key)}
    assert refs["restore"] == {("pg-restore", OWNER_ROLE.password_key)}
    for name, role in (("backup", BACKUP_ROLE), ("restore", OWNER_ROLE)):
        containers = _containers(workloads[name])
        users = {e["value"] for c in containers for e in c["env"] if e["name"] == "PGUSER"}
        assert users == {role.name}, name
    for name, workload in workloads.items():
        if name != "database":
            assert not any(key == PASSWORD_KEY for _, key in refs[name]), name
        roles = [role for role in ROLES if {key for _, key in refs[name]} & _role_keys(role)]
        assert len(roles) == (len(ROLES) if name == "database" else 1), (name, roles)
        for password in (CREDS.db_password, *ROLE_PASSWORDS.values()):
            assert password not in json.dumps(workload), name  # only secretKeyRefs, in env and args alike


def test_the_database_resets_its_password_from_the_secret_on_start() -> None:
    container = database_statefulset(OWNER, TaskPlatformSpec(), CREDS)["spec"]["template"]["spec"]["containers"][0]
    hook = " ".join(container["lifecycle"]["postStart"]["exec"]["command"])
    assert "ALTER ROLE" in hook
    # From the Secret through the environment into a psql variable, never pasted into SQL or an argument (the
    # hook run against a real server: tests/integration/test_database_roles.py).
    for variable, env in [("superuser_password", "POSTGRES_PASSWORD")] + [
        (f"{role.key}_password", role.password_env) for role in ROLES
    ]:
        assert f"\\getenv {variable} {env}" in hook and f"PASSWORD :'{variable}'" in hook
        assert f"${env}" not in hook
    assert not [p for p in (CREDS.db_password, *ROLE_PASSWORDS.values()) if p in hook]


def test_pod_annotations_reach_the_api_and_schema_pods() -> None:
    manifests = build({"api": {"podAnnotations": {"prometheus.io/scrape": "true"}}})
    deployment = manifests[("Deployment", "demo-api")]
    job = next(m for (kind, _), m in manifests.items() if kind == "Job")
    for workload in (deployment, job):
        assert workload["spec"]["template"]["metadata"]["annotations"]["prometheus.io/scrape"] == "true"


def test_data_migration_job_reports_through_its_termination_message() -> None:
    spec = DataMigrationSpec.model_validate(
        {"target": "demo", "sourceSecretRef": {"name": "mongo"}, "podAnnotations": {"sidecar.istio.io/inject": "false"}}
    )
    owner = Owner(kind=DATA_MIGRATION, name="import", namespace="apps", uid="42")
    job = data_migration_job(owner, spec, TaskPlatformSpec())
    container = job["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["SUMMARY_FILE"] == "/dev/termination-log"
    assert container["terminationMessagePolicy"] == "FallbackToLogsOnError"
    assert job["spec"]["template"]["metadata"]["annotations"] == {"sidecar.istio.io/inject": "false"}
    # A verification failure (exit 3) ends the Job at once instead of burning the retries.
    (rule,) = job["spec"]["podFailurePolicy"]["rules"]
    assert rule == {"action": "FailJob", "onExitCodes": {"containerName": "migrate", "operator": "In", "values": [3]}}


# --- the gating between a platform's children (specs/children.py) -------------------------------------------------


def _children(facts: PlatformFacts, spec: dict[str, Any] | None = None, credentials: Credentials = CREDS) -> Any:
    return platform_children(OWNER, TaskPlatformSpec.model_validate(spec or {}), credentials, facts)


def _image(children: Any) -> str | None:
    deployment = children.find(DEPLOYMENT, "demo-api")
    return None if deployment is None else deployment.manifest["spec"]["template"]["spec"]["containers"][0]["image"]


def test_a_new_api_image_waits_for_its_schema_job() -> None:
    new_image = {"api": {"image": "taskplatform-api:0.2.0"}}
    running = PlatformFacts(schema_job_exists=False, deployed_image="taskplatform-api:0.1.0")
    held = _children(running, new_image)
    assert held.find(JOB, schema_job_name(OWNER, TaskPlatformSpec.model_validate(new_image))).create_once
    assert _image(held) == "taskplatform-api:0.1.0"  # replicas, resources and env still apply: only the image waits
    assert _image(_children(replace(running, schema_job_exists=True), new_image)) == "taskplatform-api:0.1.0"
    done = replace(running, schema_job_exists=True, schema_complete=True)
    assert _image(_children(done, new_image)) == "taskplatform-api:0.2.0"
    assert _image(_children(NEW)) is None  # no API before its first schema Job completed


def test_no_api_pods_while_no_jwt_key_is_known() -> None:
    unknown = Credentials(CREDS.db_password, CREDS.jwt_secret, None, ROLE_PASSWORDS)
    assert _image(_children(SCHEMA_DONE, credentials=unknown)) is None
    assert _image(_children(replace(NEW, deployed_image="api:1"), credentials=unknown)) is None


def test_a_restore_comes_before_the_schema_job() -> None:
    spec = {"database": {"restoreFrom": {"backup": "nightly"}}}
    dump = Dump(Store(volume_claim="old-backups"), "old/nightly.dump", "ab" * 32, 1000)
    restoring = _children(PlatformFacts(restore=dump, restored=False), spec)
    restore = restoring.find(JOB, "demo-restore")
    assert restore is not None and restore.create_once
    assert restore.manifest == restore_job(OWNER, TaskPlatformSpec.model_validate(spec), dump)
    assert [c.kind.kind for c in restoring.workloads if c.kind is JOB] == ["Job"]  # the restore's alone
    waiting = _children(PlatformFacts(restored=False), spec)  # the restore Job runs
    assert not [c for c in waiting if c.kind is JOB]
    restored = _children(PlatformFacts(restored=True), spec)
    assert [c.name for c in restored if c.kind is JOB] == [schema_job_name(OWNER, TaskPlatformSpec())]


def test_the_statefulset_follows_the_storage_plan() -> None:
    spec = {"database": {"storage": {"size": "2Gi"}}}
    kept = _children(PlatformFacts(volume_size="1Gi"), spec).find(STATEFUL_SET, "demo-db")
    assert kept.manifest["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"] == "1Gi"
    grown = _children(NEW, spec).find(STATEFUL_SET, "demo-db")
    assert grown.manifest["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"] == "2Gi"
    # While the old object is deleted (orphaning its pod) to be re-created with the new template: not applied.
    held = _children(PlatformFacts(statefulset_held=True), spec)
    assert held.find(STATEFUL_SET, "demo-db") is None
    assert [c.kind.kind for c in held.database] == [
        "ServiceAccount",
        "Service",
        "Service",
        *(["NetworkPolicy"] * len(POLICIES)),
        "ConfigMap",
    ]


def test_turning_autoscaling_on_hands_the_replicas_over_before_the_deployment_drops_them() -> None:
    autoscaled = {"api": {"autoscaling": {"minReplicas": 2}}}
    facts = replace(SCHEMA_DONE, deployed_image="taskplatform-api:0.1.0", operator_owned_replicas=3)
    writes = list(_children(facts, autoscaled).workloads)
    (handover,) = [c for c in writes if c.field_manager is not None]
    assert handover.field_manager == HANDOVER_MANAGER and handover.required  # refused: the pass stops, retried
    assert handover.manifest == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "demo-api", "namespace": "apps"},
        "spec": {"replicas": 3},
    }
    deployment = next(c for c in writes if c.kind is DEPLOYMENT and c.field_manager is None)
    assert writes.index(handover) < writes.index(deployment) and "replicas" not in deployment.manifest["spec"]
    # Not when the operator no longer holds the replicas (handed over already), nor without autoscaling.
    assert not [c for c in _children(replace(facts, operator_owned_replicas=None), autoscaled) if c.field_manager]
    assert not [c for c in _children(facts) if c.field_manager]


def test_a_budget_or_autoscaler_no_longer_wanted_is_deleted() -> None:
    one = {c.kind.kind: c for c in _children(SCHEMA_DONE, {"api": {"replicas": 1}}).workloads}
    assert one["PodDisruptionBudget"].manifest is None and one["PodDisruptionBudget"].name == "demo-api"
    assert one["HorizontalPodAutoscaler"].manifest is None
    scaled = {c.kind.kind: c for c in _children(SCHEMA_DONE, {"api": {"autoscaling": {"minReplicas": 2}}}).workloads}
    assert scaled["PodDisruptionBudget"].manifest is not None and scaled["HorizontalPodAutoscaler"].manifest is not None


def test_every_child_of_the_longest_platform_name_is_a_valid_label_value() -> None:
    """The name limit (specs/limits.py) holds for every child the assembly writes, and for the Jobs' pods' labels."""
    longest = Owner(TASK_PLATFORM, "n" * MAX_PLATFORM_NAME, "apps", "u")
    dump = Dump(Store(volume_claim="b"), "k", None, 1000)
    spec = TaskPlatformSpec.model_validate({"api": {"autoscaling": {}}})
    for facts in (NEW, SCHEMA_DONE, PlatformFacts(restore=dump, restored=False)):
        for child in platform_children(longest, spec, CREDS, facts):
            assert len(child.name) <= 63, child.name
            if child.manifest is not None:
                assert all(len(value) <= 63 for value in child.manifest["metadata"].get("labels", {}).values())
