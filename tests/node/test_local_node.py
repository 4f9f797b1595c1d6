"""The local real node (scripts/node-up.sh) keeps to itself while it runs and leaves nothing behind when it stops,
even when its processes die without cleaning up (docs/e2e.md, "Nothing outlives it")."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from kubecluster import LocalCluster, wait_for

pytestmark = pytest.mark.e2e

KERNEL_SETTINGS = ("vm/overcommit_memory", "vm/panic_on_oom", "kernel/panic", "kernel/panic_on_oops")


def kernel_settings() -> dict[str, str]:
    return {key: Path("/proc/sys", key).read_text().strip() for key in KERNEL_SETTINGS}


def iptables_rules() -> str:
    return "\n".join(
        subprocess.run(["iptables-save", "-t", table], capture_output=True, text=True, check=True).stdout
        for table in ("filter", "nat", "mangle")
    )


def processes_mentioning(text: str) -> list[str]:
    found = []
    for pid in Path("/proc").iterdir():
        try:
            command = (pid / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if pid.name.isdigit() and text in command:
            found.append(f"{pid.name}: {command}")
    return found


def test_the_node_runs_confined_and_leaves_nothing_behind() -> None:
    settings_before = kernel_settings()
    kube_chains_before = {line for line in iptables_rules().splitlines() if line.startswith(":KUBE-")}
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

        # While it runs: the kubelet's and the pod's mounts are not the host's, nor are the kernel settings.
        kubelet_pid = (node_dir / "kubelet.pid").read_text().strip()
        kubelet = json.dumps(processes_mentioning(f"{node_dir}/kubelet.yaml"))
        assert os.readlink(f"/proc/{kubelet_pid}/ns/mnt") != os.readlink("/proc/self/ns/mnt"), kubelet
        assert str(cluster.dir) not in Path("/proc/self/mountinfo").read_text()
        assert kernel_settings() == settings_before
        assert "taskplatform-node" in iptables_rules()

        # A crash: every node process killed at once, nothing shut down in order.
        for name in ("kubelet", "containerd"):
            subprocess.run(["kill", "-9", (node_dir / f"{name}.pid").read_text().strip()], check=False)
    finally:
        cluster.stop()

    assert processes_mentioning(str(cluster.dir)) == []
    assert not list(Path("/sys/fs/cgroup").glob(f"*/taskplatform-{cluster.dir.name}"))
    assert subprocess.run(["ip", "link", "show", "tpbr0"], capture_output=True).returncode != 0
    rules = iptables_rules()
    assert "taskplatform-node" not in rules
    assert {line for line in rules.splitlines() if line.startswith(":KUBE-")} <= kube_chains_before
    assert not list(Path("/run/netns").glob("cni-*"))  # no pod network namespace pinned on the host
    assert kernel_settings() == settings_before
    assert not cluster.dir.exists()
