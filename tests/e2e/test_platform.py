"""The whole platform on a cluster whose pods really run (docs/e2e.md). The tests build on each other in file
order, as a user's day would: install, use, scale, lose pods, import legacy data, rotate credentials, delete.
"""

from __future__ import annotations

import json
from typing import Any

import bcrypt
import pytest
from helpers.e2ecluster import E2E, assert_confined, condition, platform_manifest, probe_counts, ready, wait_ready_pods
from helpers.kubecluster import wait_for

from taskplatform.operator.dbroles import API_ROLE, MIGRATION_ROLE, OWNER_ROLE
from taskplatform.operator.models import ConditionType
from taskplatform.operator.specs.api import API_COMPONENT as API
from taskplatform.operator.specs.api import API_PORT
from taskplatform.operator.specs.common import selector_string
from taskplatform.operator.specs.credentials import PASSWORD_KEY
from taskplatform.operator.specs.database import DATABASE_COMPONENT as DATABASE
from taskplatform.operator.specs.datamigration import DATA_MIGRATION_COMPONENT as DATA_MIGRATION
from taskplatform.operator.specs.datamigration import data_migration_job_name
from taskplatform.operator.specs.names import Names
from taskplatform.operator.specs.schema import SCHEMA_COMPONENT as SCHEMA_MIGRATION

pytestmark = pytest.mark.node

PLATFORM = "demo"
NAMES = Names(PLATFORM)
PASSWORD = "correct horse battery staple"
LEGACY_PASSWORD = "legacy password 1"
LEGACY_USERS, LEGACY_TASKS_EACH = 5, 40


def service_url(e2e: E2E) -> str:
    return f"http://{NAMES.api}.{e2e.namespace}.svc.cluster.local"


def pod_url(pod: dict[str, Any]) -> str:
    return f"http://{pod['status']['podIP']}:{API_PORT}"


def login(e2e: E2E, base: str, email: str, password: str) -> dict[str, str]:
    return e2e.login(base, email, password)


def tasks(e2e: E2E, base: str, headers: dict[str, str]) -> list[dict[str, Any]]:
    [answer] = e2e.call({"method": "GET", "url": f"{base}/api/v1/tasks?limit=100", "headers": headers})
    assert answer["status"] == 200, answer
    return list(answer["body"]["items"])


def database_count(e2e: E2E, table: str) -> int:
    query = f"SELECT count(*) FROM {table}"  # noqa: S608 (a table name of this file, not input)
    result = e2e.kubectl("exec", NAMES.database_pod, "-c", "postgres", "--", "sh", "-c",
                         f'psql -U "$POSTGRES_USER" -d "$POSTGRES_DB" -tAc "{query}"')  # fmt: skip
    return int(result.stdout.strip())


def test_a_taskplatform_comes_up_with_postgresql_and_the_api_really_running(e2e: E2E) -> None:
    e2e.apply(platform_manifest(PLATFORM, replicas=2))
    platform = e2e.wait_platform_ready(PLATFORM)

    [database] = wait_ready_pods(e2e, DATABASE, PLATFORM, 1)
    claim = e2e.get("pvc", NAMES.database_claim)
    assert claim["status"]["phase"] == "Bound"
    jobs = e2e.get("jobs", "-l", f"app.kubernetes.io/instance={PLATFORM}")["items"]
    assert [job["status"].get("succeeded") for job in jobs] == [1]  # the schema Job, Complete
    api_pods = wait_ready_pods(e2e, API, PLATFORM, 2)
    assert platform["status"]["readyReplicas"] == 2
    for pod in [database, *api_pods]:  # Ready because the kubelet ran the readiness probe, and it passed
        assert wait_for(lambda pod=pod: probe_counts(e2e, pod).get("Readiness", 0) >= 1, "a readiness probe")


def test_the_api_serves_through_its_service_and_logout_holds_on_every_replica(e2e: E2E) -> None:
    base = service_url(e2e)
    e2e.wait_serving(service_url(e2e))
    [registered] = e2e.call({"method": "POST", "url": f"{base}/api/v1/auth/register",
                              "json": {"email": "ada@example.com", "password": PASSWORD}})  # fmt: skip
    assert registered["status"] == 201, registered
    headers = login(e2e, base, "ada@example.com", PASSWORD)
    created = e2e.call(*({"method": "POST", "url": f"{base}/api/v1/tasks", "headers": headers,
                           "json": {"title": f"task {n}", "tags": ["e2e"]}} for n in range(3)))  # fmt: skip
    assert [answer["status"] for answer in created] == [201, 201, 201], created
    assert sorted(task["title"] for task in tasks(e2e, base, headers)) == ["task 0", "task 1", "task 2"]

    first, second = wait_ready_pods(e2e, API, PLATFORM, 2)
    fresh = login(e2e, base, "ada@example.com", PASSWORD)
    before, logout, after = e2e.call(
        {"method": "GET", "url": f"{pod_url(second)}/api/v1/tasks", "headers": fresh},
        {"method": "POST", "url": f"{pod_url(first)}/api/v1/auth/logout", "headers": fresh},
        {"method": "GET", "url": f"{pod_url(second)}/api/v1/tasks", "headers": fresh},
    )
    assert before["status"] == 200, before  # the token works on the other pod ...
    assert logout["status"] == 204, logout  # ... until it is revoked through the first one
    assert after["status"] == 401, after


def test_every_pod_connects_as_its_own_role_and_none_can_leave_the_database(e2e: E2E) -> None:
    """Through each pod's own connection settings: the API pod's DATABASE_URL, the schema Job's (a pod given its
    container's environment). No superuser: no program, no C or plpython function, no server file; the API may
    write tasks but not drop or create a table. Only the database pod is given the superuser's password."""
    api_pod = wait_ready_pods(e2e, API, PLATFORM, 2)[0]["metadata"]["name"]
    api = e2e.probe_pod(api_pod, API, "DATABASE_URL")
    assert_confined(api, API_ROLE.name, owns_schema=False)
    assert not api["checks"]["write_tasks"]["refused"], api["checks"]["write_tasks"]

    [schema_job] = e2e.get("jobs", "-l", selector_string(PLATFORM, SCHEMA_MIGRATION))["items"]
    schema = e2e.probe_job(schema_job["metadata"]["name"], "migrate", "DATABASE_URL", PLATFORM, SCHEMA_MIGRATION)
    assert_confined(schema, OWNER_ROLE.name, owns_schema=True)

    pods = e2e.get("pods", "-l", f"app.kubernetes.io/instance={PLATFORM}")["items"]
    readers = {
        p["metadata"]["labels"]["app.kubernetes.io/component"]
        for p in pods
        for c in p["spec"]["containers"]
        for e in c.get("env", [])
        if e.get("valueFrom", {}).get("secretKeyRef", {}) == {"name": NAMES.secret, "key": PASSWORD_KEY}
    }
    assert readers == {DATABASE}, readers
    # The database pod's hook says so in its log (what it did; no password).
    log = e2e.kubectl("logs", NAMES.database_pod, "-c", "postgres").stdout
    assert "taskplatform role sync: roles in step" in log, log[-2000:]


def test_no_pod_of_the_platform_holds_a_kubernetes_credential(e2e: E2E) -> None:
    """Every pod the operator made runs as the platform's own ServiceAccount, which may do nothing, and none has
    its token: no projected token volume, and nothing at the path where Kubernetes would put it."""
    pods = e2e.get("pods", "-l", f"app.kubernetes.io/instance={PLATFORM}")["items"]
    assert {p["metadata"]["labels"]["app.kubernetes.io/component"] for p in pods} >= {API, DATABASE, SCHEMA_MIGRATION}
    for pod in pods:
        spec, name = pod["spec"], pod["metadata"]["name"]
        account = (spec["serviceAccountName"], spec["automountServiceAccountToken"])
        assert account == (NAMES.service_account, False), name
        projected = [v for v in spec.get("volumes", []) if "serviceAccountToken" in json.dumps(v.get("projected", {}))]
        assert not projected, (name, projected)
    api_pod = wait_ready_pods(e2e, API, PLATFORM, 2)[0]["metadata"]["name"]
    mounted = e2e.kubectl("exec", api_pod, "-c", API, "--", "ls", "/var/run/secrets/kubernetes.io", check=False)
    assert mounted.returncode != 0 and "No such file" in mounted.stderr, mounted
    account = f"system:serviceaccount:{e2e.namespace}:{NAMES.service_account}"
    for verb, resource in (("get", "secrets"), ("list", "pods"), ("create", "pods"), ("get", "taskplatforms")):
        answer = e2e.kubectl("auth", "can-i", verb, resource, "--as", account, check=False)
        assert answer.stdout.strip() == "no", (verb, resource, answer.stdout, answer.stderr)


def test_scaling_and_losing_pods_fails_no_request_and_loses_no_task(e2e: E2E) -> None:
    base = service_url(e2e)
    e2e.kubectl("scale", f"taskplatform/{PLATFORM}", "--replicas=3")
    pods = wait_ready_pods(e2e, API, PLATFORM, 3)
    e2e.wait_serving(service_url(e2e))

    # A client loops through the Service (new connection each time) while one API pod is replaced.
    with e2e.client_loop(url=f"{base}/readyz", stop_file="/tmp/stop-loop", max_requests=20000,
                         max_seconds=240) as loop:  # fmt: skip
        victim = pods[0]["metadata"]["name"]
        e2e.kubectl("delete", "pod", victim, "--wait=true")
        replaced = wait_ready_pods(e2e, API, PLATFORM, 3)
        assert victim not in {p["metadata"]["name"] for p in replaced}
    summary = loop.summary
    assert summary["stopped"] and summary["ok"] > 0, (summary, loop.errors)
    assert summary["failed"] == 0, summary

    # The database pod is deleted: it comes back on the same volume, with every task.
    headers = login(e2e, base, "ada@example.com", PASSWORD)
    before = tasks(e2e, base, headers)
    volume = e2e.get("pvc", NAMES.database_claim)["spec"]["volumeName"]
    old_uid = e2e.get("pod", NAMES.database_pod)["metadata"]["uid"]
    e2e.kubectl("delete", "pod", NAMES.database_pod, "--wait=true")
    [database] = wait_ready_pods(e2e, DATABASE, PLATFORM, 1)
    assert database["metadata"]["uid"] != old_uid
    assert e2e.get("pvc", NAMES.database_claim)["spec"]["volumeName"] == volume
    e2e.wait_platform_ready(PLATFORM)
    e2e.wait_serving(service_url(e2e))
    assert wait_for(lambda: tasks(e2e, base, login(e2e, base, "ada@example.com", PASSWORD)) == before,
                    "the same tasks after the database pod came back")  # fmt: skip


def legacy_documents() -> dict[str, str]:
    from bson import ObjectId, json_util

    hashed = bcrypt.hashpw(LEGACY_PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()
    users = [{"_id": ObjectId(), "email": f"legacy{n}@example.com", "password": hashed, "name": f"Légacy {n} ✓"}
             for n in range(LEGACY_USERS)]  # fmt: skip
    tasks_ = [{"_id": ObjectId(), "owner": user["_id"], "title": f"old task {n} \u202eRTL", "status": "done"}
              for user in users for n in range(LEGACY_TASKS_EACH)]  # fmt: skip
    return {"users": json_util.dumps(users), "tasks": json_util.dumps(tasks_)}


def migration_manifest(name: str, secret: str) -> dict[str, Any]:
    return {
        "apiVersion": "taskplatform.io/v1alpha1",
        "kind": "DataMigration",
        "metadata": {"name": name},
        "spec": {"target": PLATFORM, "sourceSecretRef": {"name": secret}, "sourceDatabase": "legacy",
                 "collections": ["users", "tasks"], "batchSize": 50, "verify": True},
    }  # fmt: skip


def wait_migration(e2e: E2E, name: str, outcome: str, timeout_s: float = 300) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        migration = e2e.get("datamigration", name)
        found = condition(migration, outcome)
        return migration if found and found["status"] == "True" else None

    return wait_for(check, f"DataMigration {name} {outcome}", timeout_s)


def test_a_datamigration_job_imports_legacy_data_and_a_bad_source_fails_cleanly(e2e: E2E) -> None:
    mongo = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "legacy-mongo"},
        "spec": {
            "selector": {"matchLabels": {"app": "legacy-mongo"}},
            "template": {
                "metadata": {"labels": {"app": "legacy-mongo"}},
                "spec": {
                    # Pod Security "restricted", as the suite's namespace enforces.
                    "securityContext": {"runAsNonRoot": True, "runAsUser": 65534,
                                        "seccompProfile": {"type": "RuntimeDefault"}},
                    "containers": [{
                        "name": "ferretdb", "image": e2e.ferretdb_image, "imagePullPolicy": "IfNotPresent",
                        "args": ["-listen", "0.0.0.0:27017", "-sqlite-dir", "/data"],
                        "ports": [{"containerPort": 27017}],
                        "readinessProbe": {"tcpSocket": {"port": 27017}, "periodSeconds": 2},
                        "volumeMounts": [{"name": "data", "mountPath": "/data"}],
                        "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": "512Mi"}},
                        "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
                    }],
                    "volumes": [{"name": "data", "emptyDir": {}}],
                },
            },
        },
    }  # fmt: skip
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "legacy-mongo"},
               "spec": {"selector": {"app": "legacy-mongo"}, "ports": [{"port": 27017}]}}  # fmt: skip
    e2e.apply(mongo, service)
    e2e.kubectl("rollout", "status", "deployment/legacy-mongo", "--timeout=120s")
    uri = f"mongodb://legacy-mongo.{e2e.namespace}.svc.cluster.local:27017/"
    seeded = e2e.in_cluster({"mongo": {"uri": uri, "database": "legacy", "collections": legacy_documents()}})
    assert seeded["inserted"] == {"users": LEGACY_USERS, "tasks": LEGACY_USERS * LEGACY_TASKS_EACH}
    for name, value in (("legacy-mongo", uri), ("bad-mongo", "mongodb://no-such-host.invalid:27017/")):
        e2e.kubectl("create", "secret", "generic", name, f"--from-literal=uri={value}")
    tasks_before = database_count(e2e, "tasks")

    e2e.apply(migration_manifest("legacy-import", "legacy-mongo"))
    migration = wait_migration(e2e, "legacy-import", ConditionType.SUCCEEDED)
    total = LEGACY_USERS + LEGACY_USERS * LEGACY_TASKS_EACH
    assert migration["status"]["written"] == total, migration["status"]
    assert migration["status"]["rejected"] == 0, migration["status"]
    assert database_count(e2e, "tasks") == tasks_before + LEGACY_USERS * LEGACY_TASKS_EACH
    headers = login(e2e, service_url(e2e), "legacy3@example.com", LEGACY_PASSWORD)  # the old password
    assert len(tasks(e2e, service_url(e2e), headers)) == LEGACY_TASKS_EACH
    # It imported as the migration role: a member of the owner's (its index deferral), never a superuser.
    job = data_migration_job_name("legacy-import")
    migration_probe = e2e.probe_job(job, "migrate", "TARGET_URL", PLATFORM, DATA_MIGRATION)
    assert_confined(migration_probe, MIGRATION_ROLE.name, owns_schema=True)

    rows = (database_count(e2e, "users"), database_count(e2e, "tasks"))
    e2e.apply(migration_manifest("broken-import", "bad-mongo"))
    failed = wait_migration(e2e, "broken-import", ConditionType.FAILED)
    reason = condition(failed, ConditionType.FAILED)
    assert reason is not None and "no-such-host.invalid" in reason["message"], reason
    assert (database_count(e2e, "users"), database_count(e2e, "tasks")) == rows  # nothing partial

    # Deleting a DataMigration takes its Job and pods with it; the imported rows stay.
    e2e.kubectl("delete", "datamigration", "legacy-import", "broken-import", "--wait=true", "--timeout=120s")
    wait_for(lambda: not e2e.get("jobs,pods", "-l", f"app.kubernetes.io/component={DATA_MIGRATION}")["items"],
             "the DataMigrations' Jobs and pods gone")  # fmt: skip
    assert database_count(e2e, "tasks") == rows[1]


def test_a_deleted_credentials_secret_is_regenerated_and_both_workloads_roll_onto_it(e2e: E2E) -> None:
    old_secret = e2e.get("secret", NAMES.secret)
    old_pods = {p["metadata"]["uid"] for p in e2e.pods(API, PLATFORM) + e2e.pods(DATABASE, PLATFORM)}
    e2e.kubectl("delete", "secret", NAMES.secret)

    def regenerated() -> dict[str, Any] | None:
        found = e2e.kubectl("get", "secret", NAMES.secret, "-o", "json", check=False)
        secret = json.loads(found.stdout) if found.returncode == 0 else None
        return secret if secret and secret["metadata"]["uid"] != old_secret["metadata"]["uid"] else None

    secret = wait_for(regenerated, "the credentials Secret regenerated")
    assert secret["data"]["postgres-password"] != old_secret["data"]["postgres-password"]

    def rolled() -> bool:
        pods = e2e.pods(API, PLATFORM) + e2e.pods(DATABASE, PLATFORM)
        return len(pods) == 4 and all(ready(p) and p["metadata"]["uid"] not in old_pods for p in pods)

    wait_for(rolled, "every API and database pod replaced and Ready", 300)
    e2e.wait_platform_ready(PLATFORM)
    e2e.wait_serving(service_url(e2e))
    base = service_url(e2e)  # the API reaches the database with the new password: a login reads the users table
    assert len(tasks(e2e, base, login(e2e, base, "ada@example.com", PASSWORD))) == 3
    for role in (API_ROLE, OWNER_ROLE):  # every role's password was regenerated
        assert secret["data"][role.password_key] != old_secret["data"][role.password_key]
    api_pod = wait_ready_pods(e2e, API, PLATFORM, 3)[0]["metadata"]["name"]
    assert_confined(e2e.probe_pod(api_pod, API, "DATABASE_URL"), API_ROLE.name, owns_schema=False)


def test_deleting_the_taskplatform_removes_every_child_and_its_volume_claim(e2e: E2E) -> None:
    e2e.kubectl("delete", "taskplatform", PLATFORM, "--wait=true", "--timeout=120s")
    selector = f"app.kubernetes.io/instance={PLATFORM}"

    def left() -> list[str]:
        kinds = "all,secrets,configmaps,serviceaccounts,pvc,networkpolicies,poddisruptionbudgets"
        items = e2e.get(kinds, "-l", selector)["items"]
        claim = e2e.kubectl("get", "pvc", NAMES.database_claim, check=False)
        return [f"{i['kind']}/{i['metadata']['name']}" for i in items] + (["the PVC"] if claim.returncode == 0 else [])

    seen: list[str] = []

    def gone() -> bool:
        seen[:] = left()
        return not seen

    try:
        wait_for(gone, "every child of the TaskPlatform and its PVC (pvcRetentionPolicy: Delete) gone", 180)
    except AssertionError as timeout:
        raise AssertionError(f"{timeout}; still there: {seen}") from None
