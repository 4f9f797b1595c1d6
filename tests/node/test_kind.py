"""kind on this machine (scripts/kind-up.sh: kind's nodes in a Docker daemon of their own, scripts/kind-docker.sh,
from a node image built here) keeps to itself while it runs and leaves nothing behind when it is deleted
(docs/e2e.md, "kind on this machine"): no container, daemon, network namespace, link, mount, cgroup, iptables rule
or process, and the host's kernel settings as they were."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
from helpers.hoststate import every_iptables_rule, kernel_settings, processes_mentioning
from helpers.kubecluster import KindCluster, wait_for

pytestmark = pytest.mark.node

KIND_RUN = "/run/taskplatform-kind"  # scripts/kind-docker.sh's defaults
KIND_NETNS = "taskplatform-kind"
KIND_CGROUP_PARENT = "taskplatform-kind"
COUNTERS = re.compile(r"\[\d+:\d+\]")
# What the local node makes on the host: `make test` runs its tests beside this one (scripts/run-tests.sh), so its
# links (its bridge, its pods' veths) and iptables rules (kube-proxy's and kube-router's KUBE- chains, its tagged
# FORWARD rules) may come and go meanwhile. kind's daemon would show other names on the host (br-*, DOCKER chains).
LOCAL_NODE_LINKS = re.compile(r"^(veth|tpbr0)")
LOCAL_NODE_RULES = re.compile(r"KUBE-|taskplatform-node")


def host_state() -> dict[str, Any]:
    """What the kind setup may change on the host while it runs, and must have put back once it is gone."""
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    links = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True, check=True).stdout
    link_names = [line.split(":")[1].strip().split("@")[0] for line in links.splitlines()]
    rules = [COUNTERS.sub("", line) for line in every_iptables_rule().splitlines()]
    return {
        "network namespaces": sorted(line.split()[0] for line in netns.splitlines() if line.strip()),
        "links": sorted(name for name in link_names if not LOCAL_NODE_LINKS.match(name)),
        "mount points": sorted({line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()}),
        "iptables": [rule for rule in rules if not rule.startswith("#") and not LOCAL_NODE_RULES.search(rule)],
        "cgroups": sorted(str(path) for path in Path("/sys/fs/cgroup").glob(f"*/{KIND_CGROUP_PARENT}")),
        "kernel settings": kernel_settings(),
        "/lib/modules": Path("/lib/modules").exists(),
        KIND_RUN: Path(KIND_RUN).exists(),
    }


def test_kind_runs_confined_and_leaves_nothing_behind() -> None:
    before = host_state()
    cluster = KindCluster(workers=1, metrics=False)
    try:
        cluster.start()
        nodes = cluster.get("nodes")["items"]
        assert len(nodes) == 2
        wait_for(lambda: all(condition["status"] == "True" for node in cluster.get("nodes")["items"]
                             for condition in node["status"]["conditions"] if condition["type"] == "Ready"),
                 "both nodes Ready", timeout_s=120)  # fmt: skip

        # While it runs: kind's daemon and its nodes live in their own network namespace, so the host's iptables
        # rules (those of its own Docker too) are untouched, and the kubelets' kernel settings are not the host's.
        during = host_state()
        assert KIND_NETNS in during["network namespaces"]
        assert during["iptables"] == before["iptables"]
        assert during["kernel settings"] == before["kernel settings"]
        assert during["cgroups"], "kind's nodes run under their own cgroup parent"
        assert processes_mentioning(KIND_RUN), "kind's daemon runs"
    finally:
        cluster.stop()

    assert processes_mentioning(KIND_RUN) == []
    after = host_state()
    assert after == before, {key: (before[key], after[key]) for key in before if before[key] != after[key]}
    assert not cluster.dir.exists()
