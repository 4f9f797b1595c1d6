"""An upgrade on a cluster whose pods really run: a TaskPlatform set up by the operator from before the database
roles (its objects from that commit's builders, tests/helpers/previousoperator.py: one superuser role, whose URL every
pod used) is handed to this operator, while a client reads tasks through the Service. Nothing is lost, every pod
ends up on its own role, and the only requests that fail are those of the database pod's one restart."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import kubernetes
import pytest
from helpers import previousoperator
from helpers.e2ecluster import (
    E2E,
    OPERATOR_NAMESPACE,
    RELEASE,
    assert_confined,
    platform_manifest,
    ready,
    wait_ready_pods,
)
from helpers.kubecluster import wait_for

from taskplatform.operator.dbroles import API_ROLE, ROLES, SUPERUSER
from taskplatform.operator.kube import Kube
from taskplatform.operator.specs.api import API_COMPONENT as API
from taskplatform.operator.specs.credentials import CREDENTIALS_ANNOTATION, LEGACY_DATABASE_URL_KEY
from taskplatform.operator.specs.database import DATABASE_COMPONENT as DATABASE
from taskplatform.operator.specs.names import Names

pytestmark = pytest.mark.node

PLATFORM = "legacy"
NAMES = Names(PLATFORM)
PASSWORD = "an upgrade loses nothing"
OPERATOR = f"deployment/{RELEASE}-taskplatform"


def base() -> str:
    return f"http://{NAMES.api}"


def login(e2e: E2E, email: str) -> dict[str, str]:
    [answer] = e2e.call({"method": "POST", "url": f"{base()}/api/v1/auth/login",
                          "form": {"username": email, "password": PASSWORD}})  # fmt: skip
    assert answer["status"] == 200, answer
    return {"Authorization": f"Bearer {answer['body']['access_token']}"}


def task_titles(e2e: E2E, headers: dict[str, str]) -> list[str]:
    [answer] = e2e.call({"method": "GET", "url": f"{base()}/api/v1/tasks?limit=100", "headers": headers})
    assert answer["status"] == 200, answer
    return sorted(task["title"] for task in answer["body"]["items"])


def scale_operator(e2e: E2E, replicas: int) -> None:
    e2e.cluster.kubectl("scale", "-n", OPERATOR_NAMESPACE, OPERATOR, f"--replicas={replicas}")
    selector = f"app.kubernetes.io/instance={RELEASE}"

    def settled() -> bool:
        pods = json.loads(e2e.cluster.kubectl("get", "pods", "-n", OPERATOR_NAMESPACE, "-l", selector, "-o",
                                              "json").stdout)["items"]  # fmt: skip
        return len(pods) == replicas and all(ready(p) for p in pods)

    wait_for(settled, f"{replicas} operator pods", 180)


def test_a_platform_of_the_previous_operator_moves_to_the_roles_without_losing_data(e2e: E2E, tmp_path: Path) -> None:
    scale_operator(e2e, 0)
    try:
        manifest = platform_manifest(PLATFORM, replicas=2)
        e2e.apply(manifest)
        uid = e2e.get("taskplatform", PLATFORM)["metadata"]["uid"]
        kube = Kube(kubernetes.config.new_client_from_config(config_file=str(e2e.cluster.kubeconfig)))
        previous = previousoperator.platform_objects(tmp_path, PLATFORM, e2e.namespace, uid, manifest["spec"])
        previousoperator.apply_as_it_did(kube, previous)
        # That operator started the API only once the schema Job had succeeded; applied all at once here, the
        # API pods can be ready (the database answers) before the tables exist.
        schema_job = next(m for m in previous if m["kind"] == "Job")["metadata"]["name"]
        wait_for(lambda: (e2e.get("job", schema_job).get("status", {}).get("succeeded") or 0) >= 1,
                 f"Job {schema_job} to succeed", 300)  # fmt: skip
        wait_ready_pods(e2e, API, PLATFORM, 2, timeout_s=300)
        e2e.wait_serving(base())
        emails = [f"before-{n}@example.com" for n in range(2)]
        for email in emails:
            [registered] = e2e.call({"method": "POST", "url": f"{base()}/api/v1/auth/register",
                                      "json": {"email": email, "password": PASSWORD}})  # fmt: skip
            assert registered["status"] == 201, registered
            created = e2e.call(*({"method": "POST", "url": f"{base()}/api/v1/tasks", "headers": login(e2e, email),
                                  "json": {"title": f"{email} {n}"}} for n in range(3)))  # fmt: skip
            assert [answer["status"] for answer in created] == [201] * 3, created
        before = {email: task_titles(e2e, login(e2e, email)) for email in emails}
        old_api = wait_ready_pods(e2e, API, PLATFORM, 2)[0]["metadata"]["name"]
        old = e2e.probe_pod(old_api, API, "DATABASE_URL")
        assert (old["user"], old["superuser"]) == (SUPERUSER, True)  # what the previous design gave every pod
        assert not old["checks"]["copy_to_program"]["refused"]
        database_uid = e2e.get("pod", NAMES.database_pod)["metadata"]["uid"]
    except BaseException:
        scale_operator(e2e, 1)
        raise

    # A client reads tasks through the Service (a new connection each time) while this operator takes over.
    headers = login(e2e, emails[0])
    with e2e.client_loop(url=f"{base()}/api/v1/tasks", headers=headers, stop_file="/tmp/stop-upgrade",
                         max_requests=50000, max_seconds=400) as loop:  # fmt: skip
        scale_operator(e2e, 1)

        def moved() -> dict[str, Any] | None:
            secret = e2e.get("secret", NAMES.secret)
            pods = e2e.pods(API, PLATFORM)
            deployment = e2e.get("deployment", NAMES.api)
            digest = deployment["spec"]["template"]["metadata"]["annotations"][CREDENTIALS_ANNOTATION]
            on_role = len(pods) == 2 and all(
                ready(p) and p["metadata"]["annotations"][CREDENTIALS_ANNOTATION] == digest for p in pods
            )
            return secret if on_role and LEGACY_DATABASE_URL_KEY not in secret["data"] else None

        secret = wait_for(moved, "the API on its role, the superuser's URL gone", 300)
        e2e.wait_platform_ready(PLATFORM)
    summary = loop.summary
    print(f"upgrade under load: {summary}")  # the measured interruption (docs/e2e.md)
    assert summary["stopped"] and summary["ok"] > 0, (summary, loop.errors)

    assert {role.password_key for role in ROLES} <= set(secret["data"])
    [database] = wait_ready_pods(e2e, DATABASE, PLATFORM, 1)
    assert database["metadata"]["uid"] != database_uid  # restarted once, onto its new template (the hook)
    if summary["failed"]:
        # Only while the database restarted: one window, shorter than the pod's stop and start take.
        first, last = summary["failures_s"]
        assert last - first < 60, summary
        # What the API answered meanwhile (the last ten failures): 503 while it cannot use its database, be it
        # down or refusing a role not yet in place; never a 500.
        assert not [e for e in summary["errors"] if e.startswith("HTTP 5") and e != "HTTP 503"], summary
    assert {email: task_titles(e2e, login(e2e, email)) for email in emails} == before  # nothing lost
    api_pod = wait_ready_pods(e2e, API, PLATFORM, 2)[0]["metadata"]["name"]
    assert_confined(e2e.probe_pod(api_pod, API, "DATABASE_URL"), API_ROLE.name, owns_schema=False)
    # The schema the previous operator's Job made belongs to the owner role now.
    owners = e2e.kubectl("exec", NAMES.database_pod, "-c", "postgres", "--", "sh", "-c",
                         'psql -U "$POSTGRES_USER" -d "$POSTGRES_DB" -tAc "SELECT DISTINCT tableowner FROM '
                         "pg_tables WHERE schemaname = 'public'\"").stdout.split()  # fmt: skip
    assert owners == ["taskplatform_owner"], owners
    e2e.kubectl("delete", "taskplatform", PLATFORM, "--wait=true", "--timeout=120s")
