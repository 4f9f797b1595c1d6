"""The local real node (scripts/node-up.sh) keeps to itself while it runs and leaves nothing behind when it stops,
even when its processes die without cleaning up (docs/e2e.md, "Nothing outlives it")."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest
from helpers.hoststate import every_iptables_rule, kernel_settings, processes_mentioning
from helpers.kubecluster import LocalCluster, wait_for

pytestmark = pytest.mark.node


def iptables_rules(command: str = "iptables-save") -> str:
    return "\n".join(
        subprocess.run([command, "-t", table], capture_output=True, text=True, check=True).stdout
        for table in ("filter", "nat", "mangle")
    )


def kube_chains(rules: str) -> set[str]:
    return {line for line in rules.splitlines() if line.startswith(":KUBE-")}


# What kube-router (the node's NetworkPolicy enforcer) makes on the host: its chains, and its ipsets (by kube-router's
# names; scripts/node/network.sh has the same patterns, by which node-down.sh removes them).
ENFORCER_CHAINS = re.compile(r"KUBE-ROUTER-|KUBE-NWPLCY-|KUBE-POD-FW-")
ENFORCER_IPSETS = re.compile(r"^(inet6:)?(KUBE-SRC-|KUBE-DST-|TMP-|kube-router-)", re.M)


def ipsets() -> str:
    return subprocess.run(["ipset", "list", "-n"], capture_output=True, text=True, check=True).stdout


def test_the_node_runs_confined_and_leaves_nothing_behind() -> None:
    settings_before = kernel_settings()
    kube_chains_before = kube_chains(iptables_rules())
    kube_ipv6_chains_before = kube_chains(iptables_rules("ip6tables-save"))
    cluster = LocalCluster(node="local")
    node_dir = cluster.dir / "node"
    try:
        cluster.start()
        cluster.load_images("taskplatform-api:0.1.0")
        pod = {
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "sleeper", "namespace": "default"},
            "spec": {
                "containers": [{"name": "sleeper", "image": "taskplatform-api:0.1.0", "command": ["sleep", "infinity"],
                                "volumeMounts": [{"name": "scratch", "mountPath": "/scratch"}]}],
                "volumes": [{"name": "scratch", "emptyDir": {"medium": "Memory"}}],
                "terminationGracePeriodSeconds": 0,
            },
        }  # fmt: skip
        wait_for(lambda: cluster.kubectl("get", "sa", "default", check=False).returncode == 0, "the default SA")
        assert cluster.apply(pod).returncode == 0
        cluster.kubectl("wait", "--for=condition=Ready", "pod/sleeper", "--timeout=120s")
        # A policy with a peer selector: the enforcer makes a chain for the pod and ipsets for the peers.
        only_from_clients = {
            "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": "sleeper-from-clients", "namespace": "default"},
            "spec": {"podSelector": {}, "policyTypes": ["Ingress"],
                     "ingress": [{"from": [{"podSelector": {"matchLabels": {"role": "client"}}}]}]},
        }  # fmt: skip
        assert cluster.apply(only_from_clients).returncode == 0
        wait_for(lambda: ENFORCER_IPSETS.search(ipsets()), "the enforcer's ipsets")
        assert ENFORCER_CHAINS.search(every_iptables_rule())

        # While it runs: the kubelet's and the pod's mounts are not the host's, nor are the kernel settings.
        kubelet_pid = (node_dir / "kubelet.pid").read_text().strip()
        kubelet = json.dumps(processes_mentioning(f"{node_dir}/kubelet.yaml"))
        assert os.readlink(f"/proc/{kubelet_pid}/ns/mnt") != os.readlink("/proc/self/ns/mnt"), kubelet
        assert str(cluster.dir) not in Path("/proc/self/mountinfo").read_text()
        assert kernel_settings() == settings_before
        assert "taskplatform-node" in iptables_rules()

        # A crash: every node process killed at once, nothing shut down in order.
        for name in ("kubelet", "containerd", "kube-router"):
            subprocess.run(["kill", "-9", (node_dir / f"{name}.pid").read_text().strip()], check=False)
    finally:
        cluster.stop()

    assert processes_mentioning(str(cluster.dir)) == []
    assert not list(Path("/sys/fs/cgroup").glob(f"*/taskplatform-{cluster.dir.name}"))
    assert subprocess.run(["ip", "link", "show", "tpbr0"], capture_output=True).returncode != 0
    rules = iptables_rules()
    assert "taskplatform-node" not in rules
    assert kube_chains(rules) <= kube_chains_before
    assert kube_chains(iptables_rules("ip6tables-save")) <= kube_ipv6_chains_before
    every_rule = every_iptables_rule()
    assert not ENFORCER_CHAINS.search(every_rule), [line for line in every_rule.splitlines()
                                                     if ENFORCER_CHAINS.search(line)]  # fmt: skip
    assert not ENFORCER_IPSETS.search(ipsets()), ipsets()
    assert not list(Path("/run/netns").glob("cni-*"))  # no pod network namespace pinned on the host
    assert kernel_settings() == settings_before
    assert not cluster.dir.exists()
