"""The operator, run as its own process, against a real kube-apiserver with its controllers (kwok nodes).

Every test works in its own namespace and waits for the cluster to converge (no sleeps, no timings).
"""

import base64
import itertools
import json
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import kubernetes
import pytest
import sqlalchemy as sa
from helpers import previousoperator
from helpers.kubecluster import LocalCluster, OperatorProcess, wait_for

from taskplatform.operator.dbroles import API_ROLE, ROLES
from taskplatform.operator.jwtkeys import JwtKeys, Retiring
from taskplatform.operator.kube import Kube
from taskplatform.operator.specs.credentials import CREDENTIALS_ANNOTATION as DIGEST
from taskplatform.operator.specs.credentials import Credentials
from taskplatform.operator.status import rolled_out

_names = itertools.count()


@pytest.fixture(scope="module")
def operator(cluster: LocalCluster) -> Iterator[OperatorProcess]:
    process = OperatorProcess(cluster).start()
    try:
        yield process
    finally:
        process.stop()
        print(process.log()[-5000:])  # shown when a test failed


@pytest.fixture
def ns(cluster: LocalCluster, operator: OperatorProcess) -> Iterator[str]:
    name = f"op-{next(_names)}"
    cluster.kubectl("create", "namespace", name)
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


def platform(ns: str, name: str, spec: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "taskplatform.io/v1alpha1",
        "kind": "TaskPlatform",
        "metadata": {"name": name, "namespace": ns},
        "spec": spec or {},
    }


def migration(ns: str, name: str, target: str, pod_annotations: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "taskplatform.io/v1alpha1",
        "kind": "DataMigration",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"target": target, "sourceSecretRef": {"name": "legacy"}, "podAnnotations": pod_annotations},
    }


def apply(cluster: LocalCluster, manifest: dict[str, Any]) -> None:
    result = cluster.apply(manifest)
    assert result.returncode == 0, result.stderr


def get(cluster: LocalCluster, ns: str, *what: str) -> dict[str, Any] | None:
    result = cluster.kubectl("get", *what, "-n", ns, "-o", "json", check=False)
    return json.loads(result.stdout) if result.returncode == 0 else None


def condition(obj: dict[str, Any] | None, type_: str) -> dict[str, Any]:
    for item in ((obj or {}).get("status") or {}).get("conditions") or []:
        if item["type"] == type_:
            return dict(item)
    return {}


def wait_ready(cluster: LocalCluster, ns: str, name: str) -> dict[str, Any]:
    result = cluster.kubectl("wait", f"tp/{name}", "-n", ns, "--for=condition=Ready", "--timeout=120s", check=False)
    assert result.returncode == 0, (result.stderr, get(cluster, ns, "tp", name))
    tp = get(cluster, ns, "tp", name)
    assert tp is not None
    return tp


ROLE_KEYS = {key for role in ROLES for key in (role.password_key, role.url_key)}
JWT_KEYS = {"jwt-signing", "jwt-additional", "jwt-rotation"}  # the keys in effect (jwtkeys.py)
CREDENTIAL_KEYS = {"postgres-password", *ROLE_KEYS, "jwt-secret", *JWT_KEYS}


def secret_data(cluster: LocalCluster, ns: str, name: str) -> dict[str, str]:
    secret = get(cluster, ns, "secret", name) or {}
    return {k: base64.b64decode(v).decode() for k, v in (secret.get("data") or {}).items()}


def test_a_platform_comes_up_ready_with_every_child_owned(cluster: LocalCluster, ns: str) -> None:
    apply(cluster, platform(ns, "shop", {"api": {"replicas": 2}}))
    tp = wait_ready(cluster, ns, "shop")
    uid = tp["metadata"]["uid"]

    children = get(cluster, ns, "secret,service,statefulset,job,deployment,poddisruptionbudget,networkpolicy")
    assert children is not None
    names = {(c["kind"], c["metadata"]["name"]) for c in children["items"]}
    assert {("Secret", "shop-credentials"), ("Service", "shop-db"), ("Service", "shop-db-headless"),
            ("StatefulSet", "shop-db"), ("Deployment", "shop-api"), ("Service", "shop-api"),
            ("PodDisruptionBudget", "shop-api"), ("NetworkPolicy", "shop-db")} <= names  # fmt: skip
    assert any(kind == "Job" and name.startswith("shop-schema-") for kind, name in names)
    for child in children["items"]:
        (owner,) = child["metadata"]["ownerReferences"]
        assert (owner["kind"], owner["uid"], owner["controller"]) == ("TaskPlatform", uid, True)

    # The database's NetworkPolicy, read back from the API server, admits exactly the platform's API and Job pods.
    policy = (get(cluster, ns, "networkpolicy", "shop-db") or {})["spec"]
    clients = policy["ingress"][0]["from"][0]["podSelector"]
    selector = ",".join(
        [f"{k}={v}" for k, v in clients["matchLabels"].items()]
        + [f"{e['key']} in ({','.join(e['values'])})" for e in clients["matchExpressions"]]
    )
    admitted = {
        p["metadata"]["labels"]["app.kubernetes.io/component"]
        for p in get(cluster, ns, "pods", "-l", selector)["items"]
    }  # type: ignore[index]
    assert admitted == {"api", "schema-migration"}
    guarded = get(
        cluster, ns, "pods", "-l", ",".join(f"{k}={v}" for k, v in policy["podSelector"]["matchLabels"].items())
    )
    assert [p["metadata"]["name"] for p in (guarded or {})["items"]] == ["shop-db-0"]

    assert set(secret_data(cluster, ns, "shop-credentials")) == CREDENTIAL_KEYS
    pvc = get(cluster, ns, "pvc", "data-shop-db-0")
    assert pvc is not None and pvc["status"]["phase"] == "Bound"  # a real volume from the provisioner

    status = tp["status"]
    assert (status["replicas"], status["readyReplicas"]) == (2, 2)
    assert status["endpoint"] == f"http://shop-api.{ns}.svc:80"
    assert status["observedGeneration"] == tp["metadata"]["generation"]
    for item in status["conditions"]:
        assert item["observedGeneration"] == tp["metadata"]["generation"] and item["lastTransitionTime"]
    assert [(c["type"], c["status"]) for c in status["conditions"]] == [
        ("Ready", "True"), ("DatabaseReady", "True"), ("ApiReady", "True"), ("Degraded", "False"),
        ("StorageReady", "True"), ("JWTKeyCurrent", "True"),
    ]  # fmt: skip
    assert " True " in cluster.kubectl("get", "tp", "shop", "-n", ns).stdout  # the READY printer column

    events = wait_for(
        lambda: (
            {
                e["reason"]
                for e in (get(cluster, ns, "events", "--field-selector", "involvedObject.name=shop") or {}).get(
                    "items", []
                )
            }
            >= {"CredentialsGenerated", "SchemaMigrationStarted", "Ready"}
        ),
        "the operator's events",
    )
    assert events


def test_scale_and_a_new_image_roll_out_after_its_schema_migration(cluster: LocalCluster, ns: str) -> None:
    apply(cluster, platform(ns, "web", {"api": {"image": "api:1", "replicas": 2}}))
    wait_ready(cluster, ns, "web")

    cluster.kubectl("scale", "tp/web", "-n", ns, "--replicas=4")
    wait_for(lambda: (get(cluster, ns, "deployment", "web-api") or {})["spec"]["replicas"] == 4, "4 replicas")
    scale = json.loads(cluster.kubectl("get", "tp/web", "-n", ns, "--subresource=scale", "-o", "json").stdout)
    wait_ready(cluster, ns, "web")
    assert scale["spec"]["replicas"] == 4

    # The new image's schema Job keeps running (kwok runs the pod for an hour): the API keeps its image.
    slow = {"kwok.x-k8s.io/run-for": "1h"}
    apply(cluster, platform(ns, "web", {"api": {"image": "api:2", "replicas": 4, "podAnnotations": slow}}))
    api = wait_for(
        lambda: (
            condition(get(cluster, ns, "tp", "web"), "ApiReady").get("reason") == "WaitingForSchema"
            and condition(get(cluster, ns, "tp", "web"), "ApiReady")
        ),
        "ApiReady=False WaitingForSchema",
    )
    assert "api:2 rolls out once its schema migration finishes" in api["message"]
    deployment = get(cluster, ns, "deployment", "web-api")
    assert deployment is not None
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == "api:1"

    # The migration finishes (a fresh Job without the hold): the new image rolls out.
    apply(cluster, platform(ns, "web", {"api": {"image": "api:2", "replicas": 4}}))
    jobs = get(cluster, ns, "jobs") or {}
    (held,) = [j["metadata"]["name"] for j in jobs["items"] if not j.get("status", {}).get("succeeded")]
    cluster.kubectl("delete", "job", held, "-n", ns)
    tp = wait_ready(cluster, ns, "web")
    wait_for(
        lambda: (
            (get(cluster, ns, "deployment", "web-api") or {})["spec"]["template"]["spec"]["containers"][0]["image"]
            == "api:2"
        ),
        "the new image",
    )
    tp = wait_for(
        lambda: (
            (t := get(cluster, ns, "tp", "web"))
            and condition(t, "Ready").get("status") == "True"
            and t["status"]["observedGeneration"] == t["metadata"]["generation"]
            and t
        ),
        "Ready at the latest generation",
    )
    assert condition(tp, "Ready")["observedGeneration"] == tp["metadata"]["generation"]


def test_conditions_set_by_someone_else_survive_the_operators_status_writes(cluster: LocalCluster, ns: str) -> None:
    """Conditions are merged by type (meta.SetStatusCondition): a type the operator does not compute stays."""
    apply(cluster, platform(ns, "shared", {"api": {"replicas": 1}}))
    ready = wait_ready(cluster, ns, "shared")
    conditions = [*ready["status"]["conditions"], {"type": "AuditPassed", "status": "True", "reason": "Done",
                  "message": "set by an audit controller", "lastTransitionTime": "2026-01-01T00:00:00Z"}]  # fmt: skip
    patch = json.dumps({"status": {"conditions": conditions}})
    cluster.kubectl("patch", "tp/shared", "-n", ns, "--subresource=status", "--type=merge", "-p", patch)
    cluster.kubectl("scale", "tp/shared", "-n", ns, "--replicas=3")
    tp = wait_for(
        lambda: (t := get(cluster, ns, "tp", "shared")) and t["status"].get("replicas") == 3 and t, "status written"
    )
    assert condition(tp, "AuditPassed")["message"] == "set by an audit controller"
    assert condition(tp, "Ready")["observedGeneration"] == tp["metadata"]["generation"]


def test_deleted_and_edited_children_are_restored(cluster: LocalCluster, ns: str) -> None:
    apply(cluster, platform(ns, "app", {"api": {"replicas": 2}}))
    wait_ready(cluster, ns, "app")
    credentials = secret_data(cluster, ns, "app-credentials")
    old = {kind: (get(cluster, ns, kind, name) or {})["metadata"]["uid"]
           for kind, name in (("deployment", "app-api"), ("service", "app-api"))}  # fmt: skip

    cluster.kubectl("delete", "deployment/app-api", "service/app-api", "-n", ns)
    cluster.kubectl("scale", "statefulset/app-db", "-n", ns, "--replicas=0")
    for kind in old:
        wait_for(
            lambda kind=kind: (obj := get(cluster, ns, kind, "app-api")) and obj["metadata"]["uid"] != old[kind],
            f"the {kind} to be re-created",
        )
    wait_for(lambda: (get(cluster, ns, "statefulset", "app-db") or {})["spec"]["replicas"] == 1, "1 database")

    # A key removed by hand comes back; the credentials that are there are never regenerated.
    cluster.kubectl("patch", "secret/app-credentials", "-n", ns, "--type=json",
                    "-p", '[{"op": "remove", "path": "/data/jwt-secret"}]')  # fmt: skip
    repaired = wait_for(
        lambda: (data := secret_data(cluster, ns, "app-credentials")).get("jwt-secret") and data, "jwt-secret back"
    )
    assert repaired["postgres-password"] == credentials["postgres-password"]
    apply(cluster, platform(ns, "app", {"api": {"replicas": 3, "env": [{"name": "LOG_LEVEL", "value": "DEBUG"}]}}))
    wait_for(lambda: (get(cluster, ns, "deployment", "app-api") or {})["spec"]["replicas"] == 3, "3 replicas")
    assert secret_data(cluster, ns, "app-credentials")["postgres-password"] == credentials["postgres-password"]
    wait_ready(cluster, ns, "app")


def test_a_deleted_secret_is_regenerated_and_the_pods_using_it_roll(cluster: LocalCluster, ns: str) -> None:
    apply(cluster, platform(ns, "lost", {"api": {"replicas": 1}}))
    wait_ready(cluster, ns, "lost")
    digest = "taskplatform.io/credentials-digest"

    def digests() -> tuple[str, str]:
        sts, deployment = get(cluster, ns, "statefulset", "lost-db"), get(cluster, ns, "deployment", "lost-api")
        pick = [(obj or {})["spec"]["template"]["metadata"]["annotations"][digest] for obj in (sts, deployment)]
        return pick[0], pick[1]

    before, password = digests(), secret_data(cluster, ns, "lost-credentials")["postgres-password"]
    cluster.kubectl("delete", "secret", "lost-credentials", "-n", ns)
    fresh = wait_for(lambda: secret_data(cluster, ns, "lost-credentials"), "a new Secret")
    assert fresh["postgres-password"] != password and set(fresh) == CREDENTIAL_KEYS
    # Both workloads roll onto the new credentials (the database adopts the password on start: postStart).
    wait_for(lambda: all(a != b for a, b in zip(digests(), before, strict=True)), "both pod templates to change")
    wait_ready(cluster, ns, "lost")


def template_digests(cluster: LocalCluster, ns: str, name: str) -> tuple[str, str]:
    """The credentials digests of the database's and the API's pod templates."""
    sts, deployment = get(cluster, ns, "statefulset", f"{name}-db"), get(cluster, ns, "deployment", f"{name}-api")
    pick = [(obj or {})["spec"]["template"]["metadata"]["annotations"][DIGEST] for obj in (sts, deployment)]
    return pick[0], pick[1]


def test_editing_a_roles_password_rolls_the_pods_that_use_it_and_its_url_follows(
    cluster: LocalCluster, ns: str
) -> None:
    """The rotation path of every database role: edit its password in the Secret (any characters)."""
    apply(cluster, platform(ns, "edit", {"api": {"replicas": 1}}))
    wait_ready(cluster, ns, "edit")
    database, api = template_digests(cluster, ns, "edit")
    awkward = "new p@ss:w/rd's 100%"
    patch = json.dumps({"stringData": {"api-password": awkward}})
    cluster.kubectl("patch", "secret", "edit-credentials", "-n", ns, "--type=merge", "-p", patch)
    wait_for(lambda: all(a != b for a, b in zip(template_digests(cluster, ns, "edit"), (database, api), strict=True)),
             "the database and the API to roll")  # fmt: skip
    url = secret_data(cluster, ns, "edit-credentials")["api-database-url"]
    assert sa.engine.make_url(url).password == awkward and sa.engine.make_url(url).username == API_ROLE.name

    database, api = template_digests(cluster, ns, "edit")
    patch = json.dumps({"stringData": {"backup-password": "another"}})
    cluster.kubectl("patch", "secret", "edit-credentials", "-n", ns, "--type=merge", "-p", patch)
    wait_for(lambda: template_digests(cluster, ns, "edit")[0] != database, "the database to roll")
    assert template_digests(cluster, ns, "edit")[1] == api  # the API does not hold the backup role's password
    wait_ready(cluster, ns, "edit")


def test_a_platform_the_previous_operator_made_moves_to_the_database_roles(
    cluster: LocalCluster, operator: OperatorProcess, ns: str, tmp_path: Path
) -> None:
    """Its objects as that operator wrote them (tests/helpers/previousoperator.py: its builders from git), running; then
    this operator takes over. (On kwok nothing really connects: tests/integration/test_database_roles.py runs the
    database side, tests/e2e/test_upgrade.py both on a real node.)"""
    operator.kill()
    try:
        apply(cluster, platform(ns, "old", {"api": {"replicas": 2}}))
        uid = (get(cluster, ns, "tp", "old") or {})["metadata"]["uid"]
        kube = Kube(kubernetes.config.new_client_from_config(config_file=str(cluster.kubeconfig)))
        previous = previousoperator.platform_objects(tmp_path, "old", ns, uid, {"api": {"replicas": 2}})
        previousoperator.apply_as_it_did(kube, previous)
        old_deployment = next(m for m in previous if m["kind"] == "Deployment")
        old_digest = old_deployment["spec"]["template"]["metadata"]["annotations"][DIGEST]
        wait_for(lambda: rolled_out(get(cluster, ns, "deployment", "old-api"), old_digest), "the old API running")
        before = secret_data(cluster, ns, "old-credentials")
        assert set(before) == {"postgres-password", "database-url", "jwt-secret", *JWT_KEYS}
        jobs = {j["metadata"]["name"] for j in (get(cluster, ns, "jobs") or {})["items"]}
    finally:
        operator.start()

    tp = wait_ready(cluster, ns, "old")
    data = wait_for(lambda: (d := secret_data(cluster, ns, "old-credentials")) and "database-url" not in d and d,
                    "the superuser's URL removed once the API runs on its role")  # fmt: skip
    assert set(data) == CREDENTIAL_KEYS
    assert data["postgres-password"] == before["postgres-password"]  # the database's superuser is the same
    assert (data["jwt-signing"], data["jwt-secret"]) == (before["jwt-signing"], before["jwt-secret"])  # no rotation
    env = {e["name"]: e for e in (get(cluster, ns, "deployment", "old-api") or {})["spec"]["template"]["spec"]
           ["containers"][0]["env"]}  # fmt: skip
    assert env["DATABASE_URL"]["valueFrom"]["secretKeyRef"]["key"] == API_ROLE.url_key
    statefulset = get(cluster, ns, "statefulset", "old-db") or {}
    db_env = {e["name"] for e in statefulset["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert {role.password_env for role in ROLES} <= db_env
    # The same API image: its schema Job ran under the previous operator and does not run again.
    assert {j["metadata"]["name"] for j in (get(cluster, ns, "jobs") or {})["items"]} == jobs
    reasons = {e["reason"] for e in (get(cluster, ns, "events", "--field-selector", "involvedObject.name=old")
                                     or {})["items"]}  # fmt: skip
    assert {"DatabaseRolesAdded", "SuperuserUrlRemoved"} <= reasons
    assert condition(tp, "Degraded")["status"] == "False"


def test_autoscaling_leaves_replicas_to_the_autoscaler(cluster: LocalCluster, ns: str) -> None:
    scaling = {"autoscaling": {"minReplicas": 2, "maxReplicas": 6, "targetCpuUtilizationPercentage": 60}}
    apply(cluster, platform(ns, "auto", {"api": scaling}))
    wait_for(lambda: get(cluster, ns, "deployment", "auto-api"), "the Deployment")
    hpa = wait_for(lambda: get(cluster, ns, "hpa", "auto-api"), "the HorizontalPodAutoscaler")
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 6)
    assert get(cluster, ns, "pdb", "auto-api") is not None

    cluster.kubectl("scale", "deployment/auto-api", "-n", ns, "--replicas=5")  # what the autoscaler does
    apply(cluster, platform(ns, "auto", {"api": {**scaling, "env": [{"name": "X", "value": "1"}]}}))
    wait_for(
        lambda: any(e["name"] == "X" for e in (get(cluster, ns, "deployment", "auto-api") or {})["spec"]["template"]
                    ["spec"]["containers"][0]["env"]),
        "the spec change to roll out",
    )  # fmt: skip
    assert (get(cluster, ns, "deployment", "auto-api") or {})["spec"]["replicas"] == 5

    apply(cluster, platform(ns, "auto", {"api": {"replicas": 1}}))  # autoscaling off: the HPA and PDB go
    wait_for(lambda: get(cluster, ns, "hpa", "auto-api") is None, "the HPA to be removed")
    wait_for(lambda: get(cluster, ns, "pdb", "auto-api") is None, "the PDB to be removed")
    wait_for(lambda: (get(cluster, ns, "deployment", "auto-api") or {})["spec"]["replicas"] == 1, "1 replica")


def test_turning_autoscaling_on_keeps_the_running_replicas(cluster: LocalCluster, ns: str) -> None:
    apply(cluster, platform(ns, "grow", {"api": {"replicas": 3}}))
    wait_ready(cluster, ns, "grow")
    apply(cluster, platform(ns, "grow", {"api": {"autoscaling": {"minReplicas": 2, "maxReplicas": 6}}}))
    wait_for(lambda: get(cluster, ns, "hpa", "grow-api"), "the HorizontalPodAutoscaler")
    tp = wait_for(
        lambda: (
            (t := get(cluster, ns, "tp", "grow"))
            and t["status"]["observedGeneration"] == t["metadata"]["generation"]
            and t
        ),
        "the change to be reconciled",
    )
    assert tp is not None
    deployment = get(cluster, ns, "deployment", "grow-api", "--show-managed-fields") or {}
    # Not reset to 1 (the field's default) when the operator stopped setting it: the autoscaler decides now.
    assert deployment["spec"]["replicas"] == 3
    managers = {e["manager"] for e in deployment["metadata"]["managedFields"] if "f:replicas" in
                str(e.get("fieldsV1", {}).get("f:spec", {}))}  # fmt: skip
    assert "taskplatform-operator" not in managers


def test_a_restarted_operator_converges(cluster: LocalCluster, operator: OperatorProcess, ns: str) -> None:
    apply(cluster, platform(ns, "before", {"api": {"replicas": 2}}))
    wait_ready(cluster, ns, "before")

    operator.kill()  # SIGKILL: whatever it was doing is cut off
    try:
        # Changes while it is down: a scale, and a new platform whose Secret a previous run had already made.
        cluster.kubectl("scale", "tp/before", "-n", ns, "--replicas=3")
        apply(cluster, platform(ns, "during"))
        tp = get(cluster, ns, "tp", "during")
        assert tp is not None
        owner = {"apiVersion": "taskplatform.io/v1alpha1", "kind": "TaskPlatform", "name": "during",
                 "uid": tp["metadata"]["uid"], "controller": True}  # fmt: skip
        apply(cluster, {
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "during-credentials", "namespace": ns, "ownerReferences": [owner],
                         "labels": {"app.kubernetes.io/managed-by": "taskplatform-operator"}},
            "stringData": {"postgres-password": "made-before-the-crash", "jwt-secret": "j" * 40},
        })  # fmt: skip
    finally:
        operator.start()

    wait_ready(cluster, ns, "during")
    data = secret_data(cluster, ns, "during-credentials")
    assert data["postgres-password"] == "made-before-the-crash"  # kept, not regenerated
    assert set(data) == CREDENTIAL_KEYS  # the missing keys filled in
    assert f"{data['api-password']}@during-db." in data["api-database-url"]
    # A Secret as the operator wrote them before JWT key rotation: its key goes on signing, nothing else.
    assert (data["jwt-signing"], json.loads(data["jwt-additional"])) == ("j" * 40, [])
    wait_for(lambda: (get(cluster, ns, "deployment", "before-api") or {})["spec"]["replicas"] == 3, "3 replicas")
    wait_ready(cluster, ns, "before")


def test_deletion_cascades_and_the_volume_follows_its_policy(cluster: LocalCluster, ns: str) -> None:
    for name, policy in (("kept", "Retain"), ("gone", "Delete")):
        apply(cluster, platform(ns, name, {"database": {"pvcRetentionPolicy": policy}, "api": {"replicas": 1}}))
    for name in ("kept", "gone"):
        wait_ready(cluster, ns, name)
        assert get(cluster, ns, "pvc", f"data-{name}-db-0") is not None

    cluster.kubectl("delete", "tp", "kept", "gone", "-n", ns, "--timeout=60s")
    for kind in ("statefulset", "deployment", "service", "secret", "job"):
        wait_for(
            lambda kind=kind: not [o for o in (get(cluster, ns, kind) or {"items": [1]})["items"]
                                   if o["metadata"]["name"].startswith(("kept-", "gone-"))],
            f"every {kind} to be deleted",
        )  # fmt: skip
    wait_for(lambda: get(cluster, ns, "pvc", "data-gone-db-0") is None, "the Delete-policy volume to go")
    assert get(cluster, ns, "pvc", "data-kept-db-0") is not None


def test_a_missing_referenced_jwt_secret_degrades_until_it_appears(cluster: LocalCluster, ns: str) -> None:
    apply(cluster, platform(ns, "ref", {"auth": {"secretRef": {"name": "company-jwt"}}}))
    degraded = wait_for(
        lambda: (c := condition(get(cluster, ns, "tp", "ref"), "Degraded")).get("status") == "True" and c,
        "Degraded",
    )
    assert degraded["reason"] == "SecretRefInvalid" and "company-jwt" in degraded["message"]
    assert get(cluster, ns, "deployment", "ref-api") is None  # pods would only fail to start

    cluster.kubectl("create", "secret", "generic", "company-jwt", "-n", ns, "--from-literal=jwt-secret=" + "s" * 40)
    wait_ready(cluster, ns, "ref")
    env = (get(cluster, ns, "deployment", "ref-api") or {})["spec"]["template"]["spec"]["containers"][0]["env"]
    jwt = next(e for e in env if e["name"] == "JWT_SECRET")
    # The pods read the key in effect from the operator's Secret, which took the referenced key as it was.
    assert jwt["valueFrom"]["secretKeyRef"] == {"name": "ref-credentials", "key": "jwt-signing"}
    assert secret_data(cluster, ns, "ref-credentials")["jwt-signing"] == "s" * 40


def api_digest(cluster: LocalCluster, ns: str, name: str) -> str:
    deployment = get(cluster, ns, "deployment", f"{name}-api") or {}
    return str(deployment["spec"]["template"]["metadata"]["annotations"][DIGEST])


def jwt_keys(cluster: LocalCluster, ns: str, name: str) -> tuple[str, list[str]]:
    data = secret_data(cluster, ns, f"{name}-credentials")
    return data.get("jwt-signing", ""), json.loads(data.get("jwt-additional", "[]"))


def rollout_digests(cluster: LocalCluster, ns: str, name: str) -> list[str]:
    """The credentials digest of each of the Deployment's ReplicaSets (one per rollout), oldest first."""
    sets = (get(cluster, ns, "replicasets", "-l", f"app.kubernetes.io/instance={name}") or {})["items"]
    sets.sort(key=lambda rs: int(rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"]))
    return [rs["spec"]["template"]["metadata"]["annotations"][DIGEST] for rs in sets]


def test_a_changed_referenced_secret_rolls_the_api_pods_onto_the_new_key(cluster: LocalCluster, ns: str) -> None:
    """No watch announces a Secret the operator does not own: it re-reads the referenced one (every 10 s)."""
    cluster.kubectl("create", "secret", "generic", "company-jwt", "-n", ns, "--from-literal=jwt-secret=" + "a" * 40)
    apply(cluster, platform(ns, "ext", {"auth": {"secretRef": {"name": "company-jwt"}}, "api": {"replicas": 2}}))
    wait_ready(cluster, ns, "ext")
    before = api_digest(cluster, ns, "ext")

    apply(cluster, {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "company-jwt", "namespace": ns},
                    "stringData": {"jwt-secret": "b" * 40}})  # fmt: skip
    wait_for(lambda: api_digest(cluster, ns, "ext") != before, "the API's pod template to change", timeout_s=60)
    wait_for(lambda: jwt_keys(cluster, ns, "ext") == ("b" * 40, ["a" * 40]), "the new key signing", timeout_s=120)
    wait_ready(cluster, ns, "ext")


def test_a_rotated_key_goes_through_its_phases_without_dropping_the_old_one(cluster: LocalCluster, ns: str) -> None:
    """The generated Secret's `jwt-secret`, edited by hand: first accepted everywhere, then signing, the old key
    kept as additional for the longest token lifetime."""
    spec = {"api": {"replicas": 2}, "auth": {"accessTokenTtlSeconds": 600, "refreshTokenTtlSeconds": 7200}}
    apply(cluster, platform(ns, "rot", spec))
    wait_ready(cluster, ns, "rot")
    old = secret_data(cluster, ns, "rot-credentials")["jwt-secret"]
    assert jwt_keys(cluster, ns, "rot") == (old, [])
    new = "r" * 64

    patch = json.dumps({"stringData": {"jwt-secret": new}})
    cluster.kubectl("patch", "secret", "rot-credentials", "-n", ns, "--type=merge", "-p", patch)
    wait_for(lambda: jwt_keys(cluster, ns, "rot") == (new, [old]), "the new key signing, the old one accepted",
             timeout_s=120)  # fmt: skip

    def deadline() -> str | None:
        retiring = json.loads(secret_data(cluster, ns, "rot-credentials")["jwt-rotation"])["retiring"]
        return retiring[0]["until"] if retiring else None

    until = datetime.fromisoformat(wait_for(deadline, "the old key's deadline (once no pod signs with it)"))
    assert timedelta(seconds=7200 - 120) < until - datetime.now(UTC) <= timedelta(seconds=7200)
    tp = wait_ready(cluster, ns, "rot")
    assert condition(tp, "JWTKeyCurrent")["reason"] == "RetiringPreviousKey"

    # Each phase was one rollout, in order: old key alone, new key accepted, new key signing.
    def digest(signing: str, *additional: str) -> str:
        keys = JwtKeys(signing, retiring=tuple(Retiring(k) for k in additional))
        api = {API_ROLE.key: secret_data(cluster, ns, "rot-credentials")[API_ROLE.password_key]}
        return Credentials(secret_data(cluster, ns, "rot-credentials")["postgres-password"], new, keys, api).api_digest

    phases = [digest(old), digest(old, new), digest(new, old)]
    assert [d for d in rollout_digests(cluster, ns, "rot") if d in phases] == phases
    events = get(cluster, ns, "events", "--field-selector", "involvedObject.name=rot,reason=JWTKeyRotating") or {}
    messages = sorted(e["message"] for e in events["items"])
    assert [m[:9] for m in messages] == ["phase 1/3", "phase 2/3", "phase 3/3"]
    deployment = json.dumps(get(cluster, ns, "deployment", "rot-api"))
    assert old not in deployment and new not in deployment and "jwt-signing" in deployment


def _summary(code: int, error: str | None = None) -> str:
    collections = [{"collection": "users", "read": 10, "written": 9, "rejected": 1},
                   {"collection": "tasks", "read": 200, "written": 200, "rejected": 0}]  # fmt: skip
    return json.dumps({"exitCode": code, "collections": collections, "error": error})


def test_a_data_migration_succeeds_and_reports_its_counts(cluster: LocalCluster, ns: str) -> None:
    cluster.kubectl("create", "secret", "generic", "legacy", "-n", ns, "--from-literal=uri=mongodb://legacy:27017/")
    apply(cluster, platform(ns, "target", {"api": {"replicas": 1}}))
    apply(cluster, migration(ns, "import", "target", {"kwok.x-k8s.io/termination-message": _summary(0)}))
    result = cluster.kubectl("wait", "dm/import", "-n", ns, "--for=condition=Succeeded", "--timeout=120s", check=False)
    assert result.returncode == 0, get(cluster, ns, "dm", "import")
    dm = get(cluster, ns, "dm", "import")
    assert dm is not None
    status = dm["status"]
    assert (status["read"], status["written"], status["rejected"], status["progress"]) == (210, 209, 1, "100%")
    assert status["jobName"] == "import-migrate" and status["startTime"] and status["completionTime"]
    job = get(cluster, ns, "job", "import-migrate")
    assert job is not None
    assert job["metadata"]["ownerReferences"][0]["uid"] == dm["metadata"]["uid"]
    env = {e["name"]: e for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["TARGET_URL"]["valueFrom"]["secretKeyRef"] == {
        "name": "target-credentials",
        "key": "migration-database-url",
    }


def test_a_failed_data_migration_reports_why(cluster: LocalCluster, ns: str) -> None:
    cluster.kubectl("create", "secret", "generic", "legacy", "-n", ns, "--from-literal=uri=mongodb://legacy:27017/")
    apply(cluster, platform(ns, "target", {"api": {"replicas": 1}}))
    verdict = {"kwok.x-k8s.io/exit-code": "3",
               "kwok.x-k8s.io/termination-message": _summary(3, "verification found differences")}  # fmt: skip
    apply(cluster, migration(ns, "import", "target", verdict))
    result = cluster.kubectl("wait", "dm/import", "-n", ns, "--for=condition=Failed", "--timeout=120s", check=False)
    assert result.returncode == 0, get(cluster, ns, "dm", "import")
    failed = condition(get(cluster, ns, "dm", "import"), "Failed")
    assert (failed["reason"], failed["message"]) == ("VerificationFailed", "verification found differences")
    assert condition(get(cluster, ns, "dm", "import"), "Succeeded")["status"] == "False"
    events = get(cluster, ns, "events", "--field-selector", "involvedObject.name=import") or {"items": []}
    assert any(e["type"] == "Warning" and e["reason"] == "VerificationFailed" for e in events["items"])


def test_a_data_migration_waits_for_its_target_and_shows_it_running(cluster: LocalCluster, ns: str) -> None:
    cluster.kubectl("create", "secret", "generic", "legacy", "-n", ns, "--from-literal=uri=mongodb://legacy:27017/")
    apply(cluster, migration(ns, "early", "later", {"kwok.x-k8s.io/run-for": "1h"}))
    waiting = wait_for(
        lambda: (c := condition(get(cluster, ns, "dm", "early"), "Running")).get("reason") == "TargetNotFound" and c,
        "TargetNotFound",
    )
    assert waiting["status"] == "False" and "later" in waiting["message"]
    assert get(cluster, ns, "job", "early-migrate") is None

    apply(cluster, platform(ns, "later", {"api": {"replicas": 1}}))
    result = cluster.kubectl("wait", "dm/early", "-n", ns, "--for=condition=Running", "--timeout=120s", check=False)
    assert result.returncode == 0, get(cluster, ns, "dm", "early")
    dm = get(cluster, ns, "dm", "early")
    assert dm is not None and dm["status"]["jobName"] == "early-migrate"
    assert condition(dm, "Succeeded")["status"] == "False"

    # While it runs, the counts follow the pod's last JSON progress line (read through `pods/log`).
    progress = {"event": "progress", "collection": "tasks", "total": 400, "read": 160, "written": 158, "rejected": 2}
    cluster.write_container_log("starting", json.dumps(progress), "a library's warning")
    status = wait_for(
        lambda: (d := get(cluster, ns, "dm", "early")) and d["status"].get("read") == 160 and d["status"],
        "the progress in the status",
    )
    assert (status["written"], status["rejected"], status["progress"]) == (158, 2, "tasks 40%")


def test_the_operator_exports_prometheus_metrics(cluster: LocalCluster, operator: OperatorProcess, ns: str) -> None:
    apply(cluster, platform(ns, "measured", {"api": {"replicas": 1}}))
    wait_ready(cluster, ns, "measured")
    with urllib.request.urlopen(f"http://127.0.0.1:{operator.metrics_port}/metrics", timeout=5) as response:
        scraped = response.read().decode()
    samples = {
        line.split(" ")[0]: float(line.split(" ")[1]) for line in scraped.splitlines() if not line.startswith("#")
    }
    assert samples['taskplatform_operator_reconcile_passes_total{kind="TaskPlatform",outcome="success"}'] >= 1
    assert samples['taskplatform_operator_reconcile_duration_seconds_count{kind="TaskPlatform"}'] >= 1
    assert 'taskplatform_operator_queue_depth{kind="TaskPlatform"}' in samples
    assert 'taskplatform_operator_queue_depth{kind="DataMigration"}' in samples


def test_the_liveness_endpoint_answers(operator: OperatorProcess) -> None:
    with urllib.request.urlopen(operator.liveness_url, timeout=5) as response:  # noqa: S310 (local)
        assert response.status == 200
        # Every work queue's pending passes (the restore watch's was missing before the runtime held their list).
        assert set(json.loads(response.read())["runners"]) == {"platforms", "migrations", "backups", "restores"}


# --- edits after day one: applied, refused at admission (tests/operator/test_crds_cluster.py), or reported ---


def statefulset_volume(cluster: LocalCluster, ns: str, name: str) -> tuple[str, str]:
    """(uid, template size) of the database StatefulSet; ("", "") in the moment it is being re-created."""
    sts = get(cluster, ns, "statefulset", f"{name}-db")
    if sts is None:
        return "", ""
    template = sts["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"]
    return sts["metadata"]["uid"], template


def applied_in_full(cluster: LocalCluster, ns: str, name: str) -> dict[str, Any]:
    """Wait until status.observedGeneration reaches the latest generation; the TaskPlatform as it is then."""
    tp: dict[str, Any] = wait_for(
        lambda: (
            (t := get(cluster, ns, "tp", name))
            and t["status"].get("observedGeneration") == t["metadata"]["generation"]
            and t
        ),
        f"tp/{name}'s latest generation applied in full",
    )
    return tp


def scaled_to(cluster: LocalCluster, ns: str, name: str, replicas: int) -> None:
    cluster.kubectl("scale", f"tp/{name}", "-n", ns, f"--replicas={replicas}")
    wait_for(
        lambda: (get(cluster, ns, "deployment", f"{name}-api") or {})["spec"]["replicas"] == replicas,
        f"the Deployment at {replicas} replicas",
    )


def test_a_grown_volume_is_expanded_in_place_and_the_statefulset_recreated_around_its_pod(
    cluster: LocalCluster, ns: str
) -> None:
    storage_class = f"expandable-{ns}"
    expandable = {"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": storage_class},
                  "provisioner": "kubernetes.io/host-path", "allowVolumeExpansion": True,
                  "volumeBindingMode": "Immediate"}  # fmt: skip
    apply(cluster, expandable)
    try:
        spec = {"api": {"replicas": 1}, "database": {"storage": {"size": "1Gi", "storageClassName": storage_class}}}
        apply(cluster, platform(ns, "vol", spec))
        wait_ready(cluster, ns, "vol")
        sts_uid, _ = statefulset_volume(cluster, ns, "vol")
        pod_uid = (get(cluster, ns, "pod", "vol-db-0") or {})["metadata"]["uid"]

        spec["database"]["storage"]["size"] = "2Gi"
        apply(cluster, platform(ns, "vol", spec))
        wait_for(
            lambda: (
                (get(cluster, ns, "pvc", "data-vol-db-0") or {})["spec"]["resources"]["requests"]["storage"] == "2Gi"
            ),
            "the claim expanded in place",
        )
        wait_for(lambda: statefulset_volume(cluster, ns, "vol")[1] == "2Gi", "a StatefulSet carrying 2Gi volumes")
        assert statefulset_volume(cluster, ns, "vol")[0] != sts_uid  # re-created ...
        assert (get(cluster, ns, "pod", "vol-db-0") or {})["metadata"]["uid"] == pod_uid  # ... around its pod
        storage = wait_for(lambda: condition(get(cluster, ns, "tp", "vol"), "StorageReady"), "StorageReady")
        # The host-path volume itself cannot grow: the claim waits on the storage driver, and the status says so.
        assert (storage["status"], storage["reason"]) in {("False", "Resizing"), ("True", "AsRequested")}, storage
        scaled_to(cluster, ns, "vol", 3)  # nothing else is held up meanwhile
        tp = get(cluster, ns, "tp", "vol") or {}
        assert condition(tp, "Degraded")["status"] == "False"
    finally:
        cluster.kubectl("delete", "storageclass", storage_class, check=False)


def test_a_volume_its_class_cannot_expand_is_reported_and_nothing_else_is_blocked(
    cluster: LocalCluster, ns: str
) -> None:
    spec = {"api": {"replicas": 1}, "database": {"storage": {"size": "1Gi"}}}  # the default class: no expansion
    apply(cluster, platform(ns, "fixed", spec))
    wait_ready(cluster, ns, "fixed")
    sts_uid, _ = statefulset_volume(cluster, ns, "fixed")

    spec["database"]["storage"]["size"] = "3Gi"
    apply(cluster, platform(ns, "fixed", spec))
    storage = wait_for(
        lambda: (
            (c := condition(get(cluster, ns, "tp", "fixed"), "StorageReady")).get("reason") == "ExpansionNotSupported"
            and c
        ),
        "StorageReady=False ExpansionNotSupported",
    )
    assert storage["status"] == "False" and "data-fixed-db-0" in storage["message"]
    scaled_to(cluster, ns, "fixed", 4)  # an unrelated change after the refused one still applies
    assert statefulset_volume(cluster, ns, "fixed") == (sts_uid, "1Gi")  # the StatefulSet was left as it was
    tp = get(cluster, ns, "tp", "fixed") or {}
    assert condition(tp, "Degraded")["status"] == "False"
    assert tp["status"]["observedGeneration"] < tp["metadata"]["generation"]  # the 3Gi generation is not applied
    assert tp["status"]["volumeSize"] == "1Gi"

    # Not a wedge: the size may go back to what the volume holds (never below it), and all applies again.
    spec["database"]["storage"]["size"] = "512Mi"
    refused = cluster.apply(platform(ns, "fixed", spec))
    assert refused.returncode != 0 and "the volume holds 1Gi, the smallest size it may be set back to" in refused.stderr
    spec["database"]["storage"]["size"] = "1Gi"
    spec["api"]["replicas"] = 4
    apply(cluster, platform(ns, "fixed", spec))
    tp = applied_in_full(cluster, ns, "fixed")
    assert condition(tp, "StorageReady")["status"] == "True"


def test_a_child_refused_by_cluster_policy_is_reported_by_name_and_the_rest_still_applies(
    cluster: LocalCluster, ns: str
) -> None:
    """A ValidatingAdmissionPolicy, as policy engines set them, refuses the new database image."""
    policy = f"approved-images-{ns}"
    manifests = [
        {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicy",
         "metadata": {"name": policy},
         "spec": {"failurePolicy": "Fail",
                  "matchConstraints": {"resourceRules": [{"apiGroups": ["apps"], "apiVersions": ["v1"],
                                                          "operations": ["CREATE", "UPDATE"],
                                                          "resources": ["statefulsets"]}]},
                  "validations": [{"expression": "object.spec.template.spec.containers.all(c, "
                                                 "c.image.startsWith('taskplatform-postgres'))",
                                   "message": "database images must come from the approved registry"}]}},
        {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicyBinding",
         "metadata": {"name": policy},
         "spec": {"policyName": policy, "validationActions": ["Deny"],
                  "matchResources": {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": ns}}}}},
    ]  # fmt: skip
    apply(cluster, manifests)
    try:
        spec: dict[str, Any] = {"api": {"replicas": 1}}
        apply(cluster, platform(ns, "guarded", spec))
        wait_ready(cluster, ns, "guarded")

        spec["database"] = {"image": "elsewhere.example/postgres:15"}
        apply(cluster, platform(ns, "guarded", spec))
        degraded = wait_for(
            lambda: (c := condition(get(cluster, ns, "tp", "guarded"), "Degraded")).get("status") == "True" and c,
            "Degraded=True",
        )
        assert degraded["reason"] == "ApplyFailed"
        assert "StatefulSet guarded-db" in degraded["message"] and "approved registry" in degraded["message"]
        scaled_to(cluster, ns, "guarded", 3)  # the Deployment is not held hostage by the StatefulSet
        tp = get(cluster, ns, "tp", "guarded") or {}
        assert condition(tp, "Ready")["reason"] == "ApplyFailed"
        assert tp["status"]["observedGeneration"] < tp["metadata"]["generation"]
        wide = cluster.kubectl("get", "tp", "guarded", "-n", ns, "-o", "wide").stdout
        assert "ApplyFailed" in wide  # the printer columns show it
        events = get(cluster, ns, "events", "--field-selector", "involvedObject.name=guarded,reason=ApplyFailed")
        assert len((events or {})["items"]) == 1  # one Warning for the transition, not one per pass

        del spec["database"]  # back to an approved image: everything applies again
        apply(cluster, platform(ns, "guarded", spec))
        tp = applied_in_full(cluster, ns, "guarded")
        assert condition(tp, "Degraded")["status"] == "False"
    finally:
        cluster.kubectl("delete", "validatingadmissionpolicybinding,validatingadmissionpolicy", policy, check=False)


def test_a_service_type_change_is_applied(cluster: LocalCluster, ns: str) -> None:
    spec: dict[str, Any] = {"api": {"replicas": 1, "service": {"type": "NodePort"}}}
    apply(cluster, platform(ns, "exposed", spec))
    wait_ready(cluster, ns, "exposed")
    spec["api"]["service"]["type"] = "ClusterIP"
    apply(cluster, platform(ns, "exposed", spec))
    wait_for(lambda: (get(cluster, ns, "service", "exposed-api") or {})["spec"]["type"] == "ClusterIP", "ClusterIP")
    tp = wait_ready(cluster, ns, "exposed")
    assert condition(tp, "Degraded")["status"] == "False"
