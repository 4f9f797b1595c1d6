"""The platform on the local node (scripts/node-up.sh), the cluster of a machine where kind cannot run: the whole
suite runs on kind (tests/e2e); this smoke test keeps the local path working. A TaskPlatform comes up with its
database on a local volume and its API pods Ready, and a user registers, logs in and keeps tasks through the
Service, with the NetworkPolicies enforced (kube-router's firewall on the node), and the metrics API serves the
pods' CPU (metrics-server, as on kind)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from helpers.e2ecluster import E2E, platform_manifest, suite_on
from helpers.kubecluster import LocalCluster, wait_for

from taskplatform.operator.specs.names import Names

pytestmark = pytest.mark.node

PLATFORM = "smoke"


@pytest.fixture(scope="module")
def local() -> Iterator[E2E]:
    cluster = LocalCluster(node="local")
    cluster.env["CLUSTER_METRICS"] = "1"  # metrics-server too (scripts/cluster-up.sh)
    with suite_on(cluster) as suite:
        yield suite


def test_a_platform_on_the_local_node_serves_its_users_through_its_service(local: E2E) -> None:
    local.apply(platform_manifest(PLATFORM, replicas=2))
    platform = local.wait_platform_ready(PLATFORM)
    assert platform["status"]["readyReplicas"] == 2
    base = f"http://{Names(PLATFORM).api}.{local.namespace}.svc.cluster.local"
    local.wait_serving(base)
    headers = local.sign_up(base, "smoke@example.com", "correct horse battery staple")
    created, listed = local.call(
        {"method": "POST", "url": f"{base}/api/v1/tasks", "headers": headers, "json": {"title": "on the local node"}},
        {"method": "GET", "url": f"{base}/api/v1/tasks", "headers": headers},
    )
    assert created["status"] == 201, created
    assert [task["title"] for task in listed["body"]["items"]] == ["on the local node"], listed

    # The metrics API answers on the local cluster too (the aggregation layer, metrics-server scraping the kubelet):
    # an autoscaler there would read the API pods' CPU.
    def api_pod_usage() -> list[str]:
        raw = local.kubectl("get", "--raw", f"/apis/metrics.k8s.io/v1beta1/namespaces/{local.namespace}/pods")
        return [pod["metadata"]["name"] for pod in json.loads(raw.stdout)["items"]
                if pod["metadata"]["name"].startswith(Names(PLATFORM).api) and pod["containers"]]  # fmt: skip

    assert len(wait_for(api_pod_usage, "the API pods' CPU in the metrics API", timeout_s=120)) == 2
