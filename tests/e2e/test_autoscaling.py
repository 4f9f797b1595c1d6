"""spec.api.autoscaling scales for real: metrics-server runs on the cluster (scripts/metrics-server-up.sh, from
scripts/kind-up.sh), so the HorizontalPodAutoscaler the operator makes reads the API pods' CPU. Bounded load
through the Service moves the API from one replica to at least two, and back to one once the load stops (the
scale-down window shortened through spec.api.autoscaling.scaleDownStabilizationSeconds); the TaskPlatform's status
and `kubectl get tp` show the replicas the autoscaler chose."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from helpers.e2ecluster import E2E, platform_manifest, wait_ready_pods
from helpers.kubecluster import wait_for

from taskplatform.operator.specs.api import API_COMPONENT as API
from taskplatform.operator.specs.names import Names

pytestmark = pytest.mark.node

PLATFORM = "scaled"
NAMES = Names(PLATFORM)
ACCOUNT = {"email": "load@example.com", "password": "correct horse battery staple"}
AUTOSCALING = {"minReplicas": 1, "maxReplicas": 3, "targetCpuUtilizationPercentage": 50,
               "scaleDownStabilizationSeconds": 15}  # fmt: skip
# A small CPU request, so that a bounded load from one client is well above the target.
API_RESOURCES = {"requests": {"cpu": "50m", "memory": "96Mi"}, "limits": {"memory": "512Mi"}}


@pytest.fixture(scope="module")
def scaled(e2e: E2E) -> Iterator[dict[str, str]]:
    manifest = platform_manifest(PLATFORM, replicas=1, api_resources=API_RESOURCES)
    manifest["spec"]["api"]["autoscaling"] = AUTOSCALING
    e2e.apply(manifest)
    e2e.wait_platform_ready(PLATFORM)
    base = f"http://{NAMES.api}.{e2e.namespace}.svc.cluster.local"
    e2e.wait_serving(base)
    headers = e2e.sign_up(base, ACCOUNT["email"], ACCOUNT["password"])
    try:
        yield headers
    finally:
        e2e.kubectl("delete", "taskplatform", PLATFORM, "--wait=false", check=False)


def hpa(e2e: E2E) -> dict[str, Any]:
    return dict(e2e.get("hpa", NAMES.api))


def printed_replicas(e2e: E2E) -> str:
    """The Replicas column of `kubectl get tp`."""
    table = e2e.kubectl("get", "tp", PLATFORM, "--no-headers", "-o",
                        "custom-columns=REPLICAS:.status.replicas").stdout  # fmt: skip
    return table.strip()


def test_load_scales_the_api_out_and_its_end_scales_it_back_in(
    e2e: E2E, scaled: dict[str, str], record_property: Any
) -> None:
    wait_ready_pods(e2e, API, PLATFORM, 1)
    # The autoscaler reads the pods' CPU through the metrics API before any load (metrics-server is running).
    wait_for(lambda: hpa(e2e).get("status", {}).get("currentMetrics"), "the HPA reading CPU", timeout_s=180)

    base = f"http://{NAMES.api}.{e2e.namespace}.svc.cluster.local"
    with e2e.client_loop(url=f"{base}/api/v1/tasks?limit=50", stop_file="/tmp/stop-load", headers=scaled,
                         max_requests=60000, max_seconds=300) as loop:  # fmt: skip
        load_started = time.monotonic()
        wait_for(lambda: hpa(e2e)["status"].get("desiredReplicas", 1) >= 2, "the HPA asking for 2+", timeout_s=240)
        pods = wait_ready_pods(e2e, API, PLATFORM, 2, timeout_s=240, at_least=True)
        scaled_up_s = time.monotonic() - load_started
    assert loop.summary["ok"] > 0, loop.summary
    record_property("hpa_scale_up_s", round(scaled_up_s, 1))
    print(f"hpa: a second API pod Ready {scaled_up_s:.1f} s after the load began ({len(pods)} pods)")

    # What the autoscaler chose, in the platform's status and `kubectl get tp`.
    chosen = hpa(e2e)["status"]["desiredReplicas"]
    wait_for(lambda: e2e.get("tp", PLATFORM).get("status", {}).get("replicas", 0) >= 2, "status.replicas >= 2")
    assert int(printed_replicas(e2e)) >= 2
    assert chosen >= 2

    # The load has stopped: back to one replica after the (shortened) scale-down window.
    wait_for(lambda: hpa(e2e)["status"].get("desiredReplicas") == 1, "the HPA back to 1", timeout_s=300)
    wait_ready_pods(e2e, API, PLATFORM, 1, timeout_s=180)
    wait_for(lambda: e2e.get("tp", PLATFORM)["status"].get("replicas") == 1, "status.replicas back to 1")
    assert printed_replicas(e2e) == "1"
