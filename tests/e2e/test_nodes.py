"""The platform over several nodes (kind: a control plane and two workers, docs/e2e.md). API pods spread over the
workers; draining a worker that holds API pods fails no request (the PodDisruptionBudget holds and the pods move);
draining the node that holds PostgreSQL interrupts the service for a measured time, loses no committed task, and
the API recovers without a restart.

The suite's client pod runs on the control plane (helpers.e2ecluster.client_pod), which is never drained. With
E2E_CLUSTER=local there is one node, and these tests cannot apply: they are skipped, with that reason, only then."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import Any

import pytest
from helpers.e2ecluster import CONTROL_PLANE_LABEL, E2E, platform_manifest, wait_ready_pods
from helpers.kubecluster import wait_for

from taskplatform.operator.specs.api import API_COMPONENT as API
from taskplatform.operator.specs.database import DATABASE_COMPONENT as DATABASE
from taskplatform.operator.specs.names import Names

pytestmark = pytest.mark.node

PLATFORM = "spread"
NAMES = Names(PLATFORM)
REPLICAS = 3
ACCOUNT = {"email": "nodes@example.com", "password": "correct horse battery staple"}


def service_url(e2e: E2E) -> str:
    return f"http://{NAMES.api}.{e2e.namespace}.svc.cluster.local"


def workers(e2e: E2E) -> list[str]:
    nodes = e2e.cluster.get("nodes")["items"]
    return sorted(node["metadata"]["name"] for node in nodes if CONTROL_PLANE_LABEL not in node["metadata"]["labels"])


def drain(e2e: E2E, node: str) -> None:
    """`kubectl drain` as an operator runs it: cordon, then evict every pod but the DaemonSets' (PDBs respected)."""
    e2e.cluster.kubectl("drain", node, "--ignore-daemonsets", "--delete-emptydir-data", "--timeout=240s")


@pytest.fixture(scope="module")
def spread(e2e: E2E) -> Iterator[dict[str, str]]:
    if os.environ.get("E2E_CLUSTER") == "local" and not os.environ.get("E2E_KUBECONFIG"):
        pytest.skip("E2E_CLUSTER=local: one node, nothing to spread over or drain")
    assert len(workers(e2e)) >= 2, "the kind cluster has two workers (scripts/kind-up.sh, KIND_NODES)"
    e2e.apply(platform_manifest(PLATFORM, replicas=REPLICAS))
    e2e.wait_platform_ready(PLATFORM)
    base = service_url(e2e)
    e2e.wait_serving(base)
    headers = e2e.sign_up(base, ACCOUNT["email"], ACCOUNT["password"])
    try:
        yield headers
    finally:
        for node in workers(e2e):
            e2e.cluster.kubectl("uncordon", node, check=False)
        e2e.kubectl("delete", "taskplatform", PLATFORM, "--wait=false", check=False)


def nodes_of(pods: list[dict[str, Any]]) -> set[str]:
    return {pod["spec"]["nodeName"] for pod in pods}


def titles(e2e: E2E, headers: dict[str, str]) -> list[str]:
    [answer] = e2e.call({"method": "GET", "url": f"{service_url(e2e)}/api/v1/tasks?limit=100", "headers": headers})
    assert answer["status"] == 200, answer
    return sorted(task["title"] for task in answer["body"]["items"])


def test_api_pods_spread_over_the_workers(e2e: E2E, spread: dict[str, str]) -> None:
    pods = wait_ready_pods(e2e, API, PLATFORM, REPLICAS)
    assert nodes_of(pods) == set(workers(e2e)), [(p["metadata"]["name"], p["spec"]["nodeName"]) for p in pods]


def test_draining_a_worker_with_api_pods_fails_no_request(e2e: E2E, spread: dict[str, str]) -> None:
    [database] = wait_ready_pods(e2e, DATABASE, PLATFORM, 1)
    [drained] = [node for node in workers(e2e) if node != database["spec"]["nodeName"]][:1]
    assert drained in nodes_of(wait_ready_pods(e2e, API, PLATFORM, REPLICAS))
    with e2e.client_loop(url=f"{service_url(e2e)}/readyz", stop_file="/tmp/stop-drain", max_requests=20000,
                         max_seconds=300) as loop:  # fmt: skip
        drain(e2e, drained)
        moved = wait_ready_pods(e2e, API, PLATFORM, REPLICAS)
        assert drained not in nodes_of(moved)
    e2e.cluster.kubectl("uncordon", drained)
    summary = loop.summary
    assert summary["stopped"] and summary["ok"] > 0, (summary, loop.errors)
    assert summary["failed"] == 0, summary


def test_draining_the_database_node_loses_no_task_and_the_api_recovers_without_a_restart(
    e2e: E2E, spread: dict[str, str], record_property: Any
) -> None:
    base = service_url(e2e)
    created = e2e.call(*({"method": "POST", "url": f"{base}/api/v1/tasks", "headers": spread,
                          "json": {"title": f"before the drain {n}"}} for n in range(5)))  # fmt: skip
    assert [answer["status"] for answer in created] == [201] * 5, created
    before = titles(e2e, spread)
    api_restarts = {pod["metadata"]["name"]: pod["status"]["containerStatuses"][0]["restartCount"]
                    for pod in wait_ready_pods(e2e, API, PLATFORM, REPLICAS)}  # fmt: skip
    [database] = wait_ready_pods(e2e, DATABASE, PLATFORM, 1)
    node = database["spec"]["nodeName"]

    # A request that needs the database, through the Service, on a new connection each time.
    with e2e.client_loop(url=f"{base}/api/v1/tasks?limit=1", stop_file="/tmp/stop-db-drain", headers=spread,
                         max_requests=30000, max_seconds=420) as loop:  # fmt: skip
        drained_at = time.monotonic()
        drain(e2e, node)
        # The database's volume lives on that node (kind's local-path volumes): its pod waits for the node.
        wait_for(lambda: not wait_pods_on(e2e, node), f"no pod of the platform left on {node}")
        e2e.cluster.kubectl("uncordon", node)
        uncordoned_at = time.monotonic()
        wait_ready_pods(e2e, DATABASE, PLATFORM, 1, timeout_s=240)
        e2e.wait_platform_ready(PLATFORM)
        wait_for(lambda: titles_or_none(e2e, spread) == before, "every task back after the drain", timeout_s=180)
        recovered_at = time.monotonic()
    summary = loop.summary
    assert summary["stopped"] and summary["ok"] > 0, (summary, loop.errors)
    # While the database is away the API answers 503, and once every API pod is unready the Service has no
    # endpoint left, so connections are refused: the user sees an outage, never a wrong answer or a server error.
    wrong = [error for error in summary["errors"] if error.startswith("HTTP") and error != "HTTP 503"]
    assert wrong == [], summary
    window = summary["failures_s"][1] - summary["failures_s"][0] if summary["failures_s"] else 0.0
    record_property("database_drain_failed_requests", summary["failed"])
    record_property("database_drain_failure_window_s", round(window, 2))
    record_property("database_back_after_uncordon_s", round(recovered_at - uncordoned_at, 2))
    record_property("database_drain_total_s", round(recovered_at - drained_at, 2))
    print(
        f"database drain: {summary['failed']} failed requests over {window:.2f} s; back "
        f"{recovered_at - uncordoned_at:.1f} s after the uncordon, {recovered_at - drained_at:.1f} s after the drain"
    )

    assert titles(e2e, spread) == before  # no committed task lost
    after = {pod["metadata"]["name"]: pod["status"]["containerStatuses"][0]["restartCount"]
             for pod in wait_ready_pods(e2e, API, PLATFORM, REPLICAS)}  # fmt: skip
    unchanged = {name: count for name, count in after.items() if name in api_restarts}
    assert unchanged == {name: api_restarts[name] for name in unchanged}, (api_restarts, after)


def wait_pods_on(e2e: E2E, node: str) -> list[str]:
    pods = e2e.get("pods", "-l", f"app.kubernetes.io/instance={PLATFORM}", "--field-selector",
                   f"spec.nodeName={node}")["items"]  # fmt: skip
    return [pod["metadata"]["name"] for pod in pods if pod["status"].get("phase") in ("Running", "Pending")]


def titles_or_none(e2e: E2E, headers: dict[str, str]) -> list[str] | None:
    [answer] = e2e.call({"method": "GET", "url": f"{service_url(e2e)}/api/v1/tasks?limit=100", "headers": headers})
    return sorted(task["title"] for task in answer["body"]["items"]) if answer["status"] == 200 else None
