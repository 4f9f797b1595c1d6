"""The platform's NetworkPolicies on a node that enforces them (docs/operator.md "NetworkPolicies"; the local node
runs kube-router's firewall, docs/e2e.md): connections really made from pods, through Services and to pod
addresses. A platform with spec.api.metrics.scrapeFrom set, beside targets of the suite's own (FerretDB, the S3
server) and the kube-apiserver.

Every "cannot" below is paired with a "can" that shows the target is there and listening: a pod of the namespace
the policies do not confine reaches it. Without the policies, or without an enforcer, each isolation test fails:
the connection is made. The tests wait for the node to enforce what the API server holds, not for a time."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from helpers.e2ecluster import (
    API_IMAGE,
    CLIENT_POD,
    E2E,
    RESOLVE,
    platform_manifest,
    probe_counts,
    ready,
    restricted_pod,
    wait_ready_pods,
)
from helpers.kubecluster import wait_for

from taskplatform.operator.specs.api import API_COMPONENT as API
from taskplatform.operator.specs.api import API_PORT, METRICS_PORT
from taskplatform.operator.specs.common import COMPONENT_LABEL, INSTANCE_LABEL, MANAGED_BY
from taskplatform.operator.specs.database import DATABASE_COMPONENT as DATABASE
from taskplatform.operator.specs.names import DB_PORT, Names

pytestmark = pytest.mark.node

PLATFORM = "fenced"
NAMES = Names(PLATFORM)
SCRAPER_LABELS = {"role": "scraper"}  # spec.api.metrics.scrapeFrom
FRONTEND_LABELS = {"role": "frontend"}  # spec.api.ingressFrom, once set
FERRETDB_PORT, S3_PORT, STRAY_PORT = 27017, 7070, 8080

CONNECT = """
import json, socket, sys
try:
    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3).close()
    print(json.dumps({"reached": True}))
except OSError as error:
    print(json.dumps({"reached": False, "error": repr(error)}))
"""
GET = """
import json, sys, urllib.request
try:
    with urllib.request.urlopen(sys.argv[1], timeout=5) as response:
        print(json.dumps({"status": response.status, "body": response.read(100000).decode()}))
except OSError as error:
    print(json.dumps({"status": None, "error": repr(error)}))
"""
# Accepts connections (the kubelet's tcpSocket probe shows it listens) and closes them.
SERVE = f"""
import socket
server = socket.create_server(("0.0.0.0", {STRAY_PORT}), backlog=16)
while True:
    server.accept()[0].close()
"""


def pod(name: str, labels: dict[str, str], image: str, args: list[str], port: int, **container: Any) -> dict[str, Any]:
    """A pod the "restricted" Pod Security level admits, Ready once `port` accepts connections."""
    return restricted_pod(name, labels, {
        "image": image, "args": args,
        "readinessProbe": {"tcpSocket": {"port": port}, "periodSeconds": 2},
        "resources": {"requests": {"cpu": "10m", "memory": "32Mi"}, "limits": {"memory": "256Mi"}},
        **container,
    })  # fmt: skip


def python_pod(name: str, labels: dict[str, str], code: str = SERVE) -> dict[str, Any]:
    """A pod of the API image (it has Python) serving STRAY_PORT, from which connections are tried."""
    return pod(name, labels, API_IMAGE, [], STRAY_PORT, command=["python", "-c", code])


@dataclass
class Fenced:
    api_pod: str
    api_ip: str
    database_ip: str
    ferretdb_ip: str
    s3_ip: str
    apiserver_cluster_ip: str  # the `kubernetes` Service
    apiserver_endpoint: tuple[str, int]  # the address the Service leads to (on the local node, the node's)


def run(e2e: E2E, pod_name: str, code: str, *args: str, container: str | None = None) -> dict[str, Any]:
    which = ["-c", container] if container else []
    result = e2e.kubectl("exec", pod_name, *which, "--", "python", "-c", code, *args)
    return dict(json.loads(result.stdout.splitlines()[-1]))


def connects(e2e: E2E, pod_name: str, host: str, port: int, container: str | None = None) -> bool:
    return bool(run(e2e, pod_name, CONNECT, host, str(port), container=container)["reached"])


def reached(e2e: E2E, pod_name: str, host: str, port: int, container: str | None = None) -> None:
    wait_for(lambda: connects(e2e, pod_name, host, port, container), f"{pod_name} reaching {host}:{port}", 60)


def refused(e2e: E2E, pod_name: str, host: str, port: int, container: str | None = None) -> None:
    """Until the node enforces what the policies say: `pod_name` cannot open a connection to host:port."""
    wait_for(lambda: not connects(e2e, pod_name, host, port, container), f"{pod_name} kept from {host}:{port}", 60)


def pod_ip(e2e: E2E, name: str) -> str:
    return str(e2e.get("pod", name)["status"]["podIP"])


@pytest.fixture(scope="module")
def fenced(e2e: E2E) -> Iterator[Fenced]:
    """The platform (one API pod, metrics scraped by SCRAPER_LABELS' pods), the suite's FerretDB and S3 server, a
    scraper pod and a frontend pod (neither of the platform)."""
    platform = platform_manifest(PLATFORM, replicas=1)
    platform["spec"]["api"]["metrics"] = {"scrapeFrom": [{"podSelector": {"matchLabels": SCRAPER_LABELS}}]}
    targets = [
        pod("np-ferretdb", {"app": "np-ferretdb"}, e2e.ferretdb_image,
            ["-listen", f"0.0.0.0:{FERRETDB_PORT}", "-sqlite-dir", "/data"], FERRETDB_PORT,
            volumeMounts=[{"name": "data", "mountPath": "/data"}]),
        pod("np-s3", {"app": "np-s3"}, e2e.s3server_image, ["--port", f":{S3_PORT}", "posix", "/data"], S3_PORT,
            env=[{"name": "ROOT_ACCESS_KEY", "value": "np-access"}, {"name": "ROOT_SECRET_KEY", "value": "np-secret"}],
            volumeMounts=[{"name": "data", "mountPath": "/data"}]),
        python_pod("np-scraper", SCRAPER_LABELS),
        python_pod("np-frontend", FRONTEND_LABELS),
    ]  # fmt: skip
    for target in targets[:2]:
        target["spec"]["volumes"] = [{"name": "data", "emptyDir": {}}]
    try:
        e2e.apply(platform, *targets)
        e2e.wait_platform_ready(PLATFORM)
        for target in targets:
            e2e.kubectl("wait", "--for=condition=Ready", f"pod/{target['metadata']['name']}", "--timeout=120s")
        [api] = wait_ready_pods(e2e, API, PLATFORM, 1)
        [database] = wait_ready_pods(e2e, DATABASE, PLATFORM, 1)
        kubernetes = json.loads(
            e2e.cluster.kubectl(
                "get", "endpointslices", "-n", "default", "-l", "kubernetes.io/service-name=kubernetes", "-o", "json"
            ).stdout
        )
        [slice_] = kubernetes["items"]
        cluster_ip = e2e.cluster.kubectl("get", "service", "kubernetes", "-n", "default", "-o",
                                         "jsonpath={.spec.clusterIP}").stdout.strip()  # fmt: skip
        yield Fenced(
            api_pod=api["metadata"]["name"],
            api_ip=api["status"]["podIP"],
            database_ip=database["status"]["podIP"],
            ferretdb_ip=pod_ip(e2e, "np-ferretdb"),
            s3_ip=pod_ip(e2e, "np-s3"),
            apiserver_cluster_ip=cluster_ip,
            apiserver_endpoint=(slice_["endpoints"][0]["addresses"][0], slice_["ports"][0]["port"]),
        )
    finally:
        e2e.kubectl("delete", "taskplatform", PLATFORM, "--wait=false", check=False)
        e2e.kubectl("delete", "pod", *(t["metadata"]["name"] for t in targets), "np-stray", "--wait=false",
                    "--ignore-not-found", check=False)  # fmt: skip


def test_a_pod_without_the_platforms_labels_reaches_the_api_and_neither_its_database_nor_its_metrics(
    e2e: E2E, fenced: Fenced
) -> None:
    # The client is not confined: it reaches the suite's servers (they listen) ...
    reached(e2e, CLIENT_POD, fenced.ferretdb_ip, FERRETDB_PORT)
    # ... and the API, through its Service and at the pod's own address: anyone may, by default.
    [answer] = e2e.call({"method": "GET", "url": f"http://{NAMES.api}/readyz"})
    assert answer["status"] == 200, answer
    reached(e2e, CLIENT_POD, fenced.api_ip, API_PORT)
    # Not the database (the API reaches it: it listens), nor the metrics port (a scraper reads it: it listens).
    reached(e2e, fenced.api_pod, NAMES.database, DB_PORT, container=API)
    for host in (fenced.database_ip, NAMES.database, NAMES.database_headless):
        refused(e2e, CLIENT_POD, host, DB_PORT)
    reached(e2e, "np-scraper", fenced.api_ip, METRICS_PORT)
    refused(e2e, CLIENT_POD, fenced.api_ip, METRICS_PORT)
    refused(e2e, "np-frontend", fenced.api_ip, METRICS_PORT)
    reached(e2e, CLIENT_POD, fenced.ferretdb_ip, FERRETDB_PORT)  # the client's network still works


def test_a_scraper_that_scrape_from_selects_reads_the_api_pods_metrics(e2e: E2E, fenced: Fenced) -> None:
    url = f"http://{fenced.api_ip}:{METRICS_PORT}/metrics"
    answer = wait_for(lambda: (a := run(e2e, "np-scraper", GET, url))["status"] == 200 and a, "the metrics, read")
    assert "http_requests_total" in answer["body"], answer["body"][:2000]


def test_the_api_pod_reaches_its_database_and_dns_and_nothing_else(e2e: E2E, fenced: Fenced) -> None:
    api = fenced.api_pod
    reached(e2e, api, NAMES.database, DB_PORT, container=API)
    reached(e2e, api, fenced.database_ip, DB_PORT, container=API)
    for name in (NAMES.database, "kubernetes.default.svc.cluster.local"):
        addresses = run(e2e, api, RESOLVE, name, container=API)["addresses"]
        assert addresses, (name, addresses)
    apiserver_ip, apiserver_port = fenced.apiserver_endpoint
    elsewhere = [(fenced.ferretdb_ip, FERRETDB_PORT), (fenced.s3_ip, S3_PORT), (fenced.apiserver_cluster_ip, 443),
                 (apiserver_ip, apiserver_port)]  # fmt: skip
    for host, port in elsewhere:  # each there and listening: the unconfined client reaches it
        reached(e2e, CLIENT_POD, host, port)
    for host, port in elsewhere:
        refused(e2e, api, host, port, container=API)
    reached(e2e, api, NAMES.database, DB_PORT, container=API)  # (its network still works)


def test_the_default_deny_confines_a_pod_of_the_platform_no_other_policy_opens(e2e: E2E, fenced: Fenced) -> None:
    """A pod with the platform's labels and a component no policy names: nothing in, nothing out. The kubelet's
    probe, from the node, still reaches it (it becomes Ready)."""
    labels = {INSTANCE_LABEL: PLATFORM, COMPONENT_LABEL: "stray", **MANAGED_BY}
    e2e.apply(python_pod("np-stray", labels))
    e2e.kubectl("wait", "--for=condition=Ready", "pod/np-stray", "--timeout=120s")
    stray_ip = pod_ip(e2e, "np-stray")
    refused(e2e, CLIENT_POD, stray_ip, STRAY_PORT)
    for host, port in ((fenced.database_ip, DB_PORT), (fenced.ferretdb_ip, FERRETDB_PORT)):
        refused(e2e, "np-stray", host, port)
    assert run(e2e, "np-stray", RESOLVE, NAMES.database)["addresses"] == []  # not even DNS
    reached(e2e, CLIENT_POD, fenced.ferretdb_ip, FERRETDB_PORT)
    e2e.kubectl("delete", "pod", "np-stray", "--wait=false")


def test_with_ingress_from_only_its_peers_reach_the_api_and_the_kubelets_probes_still_pass(
    e2e: E2E, fenced: Fenced
) -> None:
    peers = [{"podSelector": {"matchLabels": FRONTEND_LABELS}}]
    patch = {"spec": {"api": {"ingressFrom": peers}}}
    e2e.kubectl("patch", "taskplatform", PLATFORM, "--type=merge", "-p", json.dumps(patch))
    refused(e2e, CLIENT_POD, fenced.api_ip, API_PORT)
    reached(e2e, "np-frontend", fenced.api_ip, API_PORT)
    # A new API pod becomes Ready under this policy: the kubelet's probes come from the node, which is admitted.
    e2e.kubectl("delete", "pod", fenced.api_pod, "--wait=true")
    [replacement] = wait_ready_pods(e2e, API, PLATFORM, 1)
    assert replacement["metadata"]["name"] != fenced.api_pod and ready(replacement)
    wait_for(lambda: {"Readiness", "Liveness"} <= set(probe_counts(e2e, replacement)), "both probes passed")
    refused(e2e, CLIENT_POD, replacement["status"]["podIP"], API_PORT)
    reached(e2e, "np-frontend", replacement["status"]["podIP"], API_PORT)
