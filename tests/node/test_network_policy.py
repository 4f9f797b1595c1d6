"""NetworkPolicies are enforced on the local node (scripts/node-up.sh runs kube-router's firewall; the CNI bridge
plugin alone enforces none, docs/e2e.md "NetworkPolicy enforcement"), alongside kube-proxy's Services.

Each test first shows that the traffic flows without a policy, then applies one and waits until the node enforces
it (kube-router programs a policy a moment after it is created; the tests wait for that state, not for a time).
Without an enforcer each of them fails: the traffic keeps flowing."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers.e2ecluster import API_IMAGE, RESOLVE, RESTRICTED, create_namespace, restricted_pod
from helpers.kubecluster import LocalCluster, wait_for

pytestmark = pytest.mark.node

PORT = 8080
SERVER_LABELS = {"app": "server"}
ALLOWED_LABELS = {"role": "client"}
CONFINED_LABELS = {"role": "confined"}
ENFORCER_ACCOUNT = "system:serviceaccount:kube-system:taskplatform-netpol"  # scripts/node/network.sh

# A TCP server that greets each connection, so a client knows it reached this server and nothing else.
SERVER = f"""
import socket
server = socket.create_server(("0.0.0.0", {PORT}), backlog=16)
while True:
    connection, _ = server.accept()
    connection.sendall(b"hello\\n")
    connection.close()
"""
CONNECT = """
import json, socket, sys
try:
    with socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3) as connection:
        connection.settimeout(3)
        print(json.dumps({"reached": connection.recv(16) == b"hello\\n"}))
except OSError as error:
    print(json.dumps({"reached": False, "error": repr(error)}))
"""


@pytest.fixture(scope="module")
def node() -> Iterator[LocalCluster]:
    cluster = LocalCluster(node="local")
    try:
        cluster.start()
        cluster.load_images(API_IMAGE)
        yield cluster
    finally:
        cluster.stop()


class Namespace:
    """A namespace of its own for one test (Pod Security "restricted"), with its pods and policies."""

    def __init__(self, cluster: LocalCluster, prefix: str) -> None:
        self.cluster = cluster
        self.name = f"{prefix}-{uuid.uuid4().hex[:6]}"
        create_namespace(cluster, self.name, RESTRICTED)

    def apply(self, *manifests: dict[str, Any]) -> None:
        items = [{**m, "metadata": {**m["metadata"], "namespace": self.name}} for m in manifests]
        result = self.cluster.apply(items)
        assert result.returncode == 0, result.stderr

    def get(self, *args: str) -> Any:
        return json.loads(self.cluster.kubectl("-n", self.name, "get", *args, "-o", "json").stdout)

    def run_pods(self, *pods: dict[str, Any]) -> dict[str, str]:
        """Start the pods and wait until each is Ready; their addresses by name."""
        self.apply(*pods)
        for pod in pods:
            self.cluster.kubectl("-n", self.name, "wait", "--for=condition=Ready", f"pod/{pod['metadata']['name']}",
                                 "--timeout=120s")  # fmt: skip
        return {pod["metadata"]["name"]: self.get("pod", pod["metadata"]["name"])["status"]["podIP"] for pod in pods}

    def python(self, pod: str, code: str, *args: str) -> dict[str, Any]:
        result = self.cluster.kubectl("-n", self.name, "exec", pod, "--", "python", "-c", code, *args)
        return dict(json.loads(result.stdout.splitlines()[-1]))

    def reaches(self, pod: str, host: str) -> bool:
        """Whether `pod` opens a connection to the greeting server at `host` (a pod's or a Service's address)."""
        return bool(self.python(pod, CONNECT, host, str(PORT))["reached"])

    def resolves(self, pod: str, name: str) -> list[str]:
        """The addresses `pod` gets for `name` from the cluster's DNS (CoreDNS on the node); none if it cannot."""
        answer = self.python(pod, RESOLVE, name)
        if not answer["addresses"]:
            print(f"{pod} resolving {name}: {answer.get('error')}")  # shown with a failure
        return list(answer["addresses"])

    def comes_to_resolve(self, pod: str, name: str, address: str) -> bool:
        """Whether `pod` gets `address` for `name`, asked until it does (a bounded wait): CoreDNS learns a new
        Service from its watch and may answer NXDOMAIN for a moment (seen on this node after the e2e package:
        `Name or service not known` for a Service made seconds before, then the address)."""
        wait_for(lambda: self.resolves(pod, name) == [address], f"{pod} resolving {name} to {address}", 60)
        return True

    def server(self) -> tuple[str, str]:
        """The greeting server and its Service; the pod's address and the Service's ClusterIP."""
        service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "server"},
                   "spec": {"selector": SERVER_LABELS, "ports": [{"port": PORT, "targetPort": PORT}]}}  # fmt: skip
        self.apply(service)
        server_pod = pod("server", SERVER_LABELS, ["python", "-c", SERVER])
        server_pod["spec"]["containers"][0]["readinessProbe"] = {"tcpSocket": {"port": PORT}, "periodSeconds": 1}
        address = self.run_pods(server_pod)["server"]
        return address, self.get("service", "server")["spec"]["clusterIP"]

    def server_ready(self) -> bool:
        """The kubelet's readiness probe (from the node) still passes: the server runs and listens."""
        conditions = self.get("pod", "server")["status"].get("conditions", [])
        return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def pod(name: str, labels: dict[str, str], command: list[str]) -> dict[str, Any]:
    """A pod of the API image (it has Python), as the "restricted" Pod Security level requires."""
    return restricted_pod(name, labels, {
        "image": API_IMAGE, "command": command,
        "resources": {"requests": {"cpu": "10m", "memory": "32Mi"}, "limits": {"memory": "128Mi"}},
    }, user=10001)  # fmt: skip


def client(name: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
    return pod(name, labels or {}, ["sleep", "infinity"])


def policy(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": name}, "spec": spec}


def test_default_deny_ingress_keeps_every_client_out(node: LocalCluster) -> None:
    ns = Namespace(node, "np-deny")
    server, service = ns.server()
    ns.run_pods(client("client"))
    assert ns.reaches("client", server) and ns.reaches("client", service)  # before any policy

    ns.apply(policy("default-deny-ingress", {"podSelector": {}, "policyTypes": ["Ingress"]}))
    wait_for(lambda: not ns.reaches("client", server), "the client kept out of the server's pod")
    assert not ns.reaches("client", service)  # nor through the Service
    assert ns.server_ready()  # the server still runs: the policy, not the server, stops the client


def test_a_policy_admits_the_labelled_client_only(node: LocalCluster) -> None:
    ns = Namespace(node, "np-allow")
    server, service = ns.server()
    ns.run_pods(client("labelled", ALLOWED_LABELS), client("unlabelled"))
    assert ns.reaches("labelled", server) and ns.reaches("unlabelled", server)  # before any policy

    ns.apply(policy("server-from-clients", {
        "podSelector": {"matchLabels": SERVER_LABELS},
        "policyTypes": ["Ingress"],
        "ingress": [{"from": [{"podSelector": {"matchLabels": ALLOWED_LABELS}}],
                     "ports": [{"protocol": "TCP", "port": PORT}]}],
    }))  # fmt: skip
    wait_for(lambda: not ns.reaches("unlabelled", server), "the unlabelled client kept out")
    assert ns.reaches("labelled", server)
    # Through the Service too: kube-proxy's NAT and the enforcer work together.
    assert ns.reaches("labelled", service)
    assert not ns.reaches("unlabelled", service)


def test_egress_deny_cuts_a_pod_off_from_pods_and_dns(node: LocalCluster) -> None:
    ns = Namespace(node, "np-egress")
    server, service = ns.server()
    ns.run_pods(client("confined", CONFINED_LABELS), client("free"))
    name = f"server.{ns.name}.svc.cluster.local."
    assert ns.reaches("confined", server) and ns.comes_to_resolve("confined", name, service)  # before any policy

    ns.apply(policy("confined-no-egress", {"podSelector": {"matchLabels": CONFINED_LABELS}, "policyTypes": ["Egress"]}))
    wait_for(lambda: not ns.reaches("confined", server), "the confined pod cut off from the server")
    assert not ns.reaches("confined", service)
    assert ns.resolves("confined", name) == []  # CoreDNS, on the node, is out of reach too
    assert ns.reaches("free", server) and ns.comes_to_resolve("free", name, service)  # the policy's pod only


def test_egress_allowed_to_dns_only_resolves_names_and_reaches_nothing_else(node: LocalCluster) -> None:
    ns = Namespace(node, "np-dns")
    server, service = ns.server()
    ns.run_pods(client("confined", CONFINED_LABELS))
    name = f"server.{ns.name}.svc.cluster.local."
    assert ns.reaches("confined", server)  # before any policy

    # DNS by port alone: on this node CoreDNS is not a pod (no selector could name it); on kind it is.
    dns = [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]
    ns.apply(policy("confined-dns-only", {
        "podSelector": {"matchLabels": CONFINED_LABELS}, "policyTypes": ["Egress"], "egress": [{"ports": dns}],
    }))  # fmt: skip
    wait_for(lambda: not ns.reaches("confined", server), "the confined pod cut off from the server")
    assert not ns.reaches("confined", service)
    assert ns.comes_to_resolve("confined", name, service)  # answered by CoreDNS, through the policy


def test_the_enforcer_reads_only_what_it_watches(node: LocalCluster) -> None:
    """kube-router runs on a ServiceAccount token of its own whose role may read what it watches and nothing else."""
    kubeconfig = Path(node.env["CLUSTER_DIR"]) / "node" / "kube-router.kubeconfig"
    whoami = node.kubectl("--kubeconfig", str(kubeconfig), "auth", "whoami", "-o", "json")
    assert json.loads(whoami.stdout)["status"]["userInfo"]["username"] == ENFORCER_ACCOUNT

    def can(verb: str, resource: str) -> bool:
        answer = node.kubectl("auth", "can-i", verb, resource, "-A", "--as", ENFORCER_ACCOUNT, check=False)
        return answer.stdout.strip() == "yes"

    for resource in ("pods", "namespaces", "networkpolicies.networking.k8s.io", "nodes"):
        assert can("list", resource) and can("watch", resource), resource
    assert can("get", "nodes")
    for verb, resource in [("get", "secrets"), ("list", "secrets"), ("get", "configmaps"), ("create", "pods"),
                           ("delete", "pods"), ("patch", "nodes"), ("update", "networkpolicies.networking.k8s.io"),
                           ("create", "pods/exec"), ("get", "pods")]:  # fmt: skip
        assert not can(verb, resource), (verb, resource)
