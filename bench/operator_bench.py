"""Operator benchmark: time from `kubectl apply` to Ready, for one TaskPlatform and for fifty at once.

Against the local control plane (scripts/cluster-up.sh: real kube-apiserver, controllers, scheduler; kwok
plays the kubelets, so pods are Ready as soon as they are scheduled). Baseline, same run: the same children
applied directly with kubectl (no operator, no ordering), timed until the Kubernetes controllers report them
all ready — what the cluster itself needs. The operator's time over that is its own cost (ordering: the
API waits for its schema Job; watches; status writes).

Results go to docs/benchmarks.md; the last line printed is the summary the issue asks for.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchlib import machine, write_doc
from helpers.kubecluster import LocalCluster, OperatorProcess

from taskplatform.operator.dbroles import ROLES
from taskplatform.operator.jwtkeys import JwtKeys
from taskplatform.operator.kinds import DEPLOYMENT, JOB, STATEFUL_SET, TASK_PLATFORM
from taskplatform.operator.kube import Kube, load_api_client
from taskplatform.operator.models import TaskPlatformSpec
from taskplatform.operator.specs.children import PlatformFacts, platform_children
from taskplatform.operator.specs.common import Owner
from taskplatform.operator.specs.credentials import Credentials, credentials_secret

SPEC: dict[str, Any] = {"api": {"replicas": 2}}


def platforms(ns: str, names: list[str]) -> list[dict[str, Any]]:
    return [
        {"apiVersion": "taskplatform.io/v1alpha1", "kind": "TaskPlatform",
         "metadata": {"name": n, "namespace": ns}, "spec": SPEC}
        for n in names
    ]  # fmt: skip


ROLE_PASSWORDS = {role.key: "r" * 24 for role in ROLES}


def bare_children(ns: str, names: list[str]) -> list[dict[str, Any]]:
    """What the operator would create, minus owner references (their owners do not exist here): the credentials
    Secret and the children of a new platform's passes (the schema Job, then the API once it completed), all at
    once."""
    credentials = Credentials("p" * 24, "j" * 48, JwtKeys("j" * 48), ROLE_PASSWORDS)
    passes = (PlatformFacts(), PlatformFacts(schema_job_exists=True, schema_complete=True))
    manifests = []
    for name in names:
        owner, spec = Owner(TASK_PLATFORM, name, ns, "none"), TaskPlatformSpec.model_validate(SPEC)
        children = {(c.kind.kind, c.name): c.manifest for facts in passes
                    for c in platform_children(owner, spec, credentials, facts) if c.manifest is not None}  # fmt: skip
        for manifest in [credentials_secret(owner, credentials), *children.values()]:
            manifest["metadata"].pop("ownerReferences")
            manifests.append(manifest)
    return manifests


def timed_apply(cluster: LocalCluster, ns: str, items: list[dict[str, Any]], done: Callable[[], bool]) -> float:
    cluster.kubectl("create", "namespace", ns)
    document = json.dumps({"apiVersion": "v1", "kind": "List", "items": items})
    start = time.perf_counter()
    result = cluster.kubectl("apply", "--server-side", "-f", "-", stdin=document, check=False)
    if result.returncode != 0:
        raise SystemExit(result.stderr)
    while not done():
        if time.perf_counter() - start > 600:
            raise SystemExit(f"{ns}: not ready after 600 s")
        time.sleep(0.05)
    return time.perf_counter() - start


def all_platforms_ready(kube: Kube, ns: str, count: int) -> Callable[[], bool]:
    def check() -> bool:
        items = kube.list(TASK_PLATFORM, ns, "")
        ready = [
            tp for tp in items
            if any(c["type"] == "Ready" and c["status"] == "True" for c in tp.get("status", {}).get("conditions", []))
        ]  # fmt: skip
        return len(ready) == count

    return check


def all_children_ready(kube: Kube, ns: str, count: int) -> Callable[[], bool]:
    def check() -> bool:
        deployments = kube.list(DEPLOYMENT, ns, "")
        statefulsets = kube.list(STATEFUL_SET, ns, "")
        jobs = kube.list(JOB, ns, "")
        return (
            sum(d.get("status", {}).get("availableReplicas", 0) == 2 for d in deployments) == count
            and sum(s.get("status", {}).get("readyReplicas", 0) == 1 for s in statefulsets) == count
            and sum(j.get("status", {}).get("succeeded", 0) == 1 for j in jobs) == count
        )

    return check


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--many", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=3, help="runs of the single-platform case (median)")
    parser.add_argument("--no-doc", action="store_true", help="do not update docs/benchmarks.md")
    args = parser.parse_args()

    cluster = LocalCluster().start()
    try:
        cluster.install_crds()
        os.environ["KUBECONFIG"] = str(cluster.kubeconfig)
        kube = Kube(load_api_client())

        bare_one = statistics.median(
            timed_apply(cluster, f"bare-one-{i}", bare_children(f"bare-one-{i}", ["p"]),
                        all_children_ready(kube, f"bare-one-{i}", 1))
            for i in range(args.repeat)
        )  # fmt: skip
        names = [f"p{i:02d}" for i in range(args.many)]
        bare_many = timed_apply(
            cluster, "bare-many", bare_children("bare-many", names), all_children_ready(kube, "bare-many", args.many)
        )

        operator = OperatorProcess(cluster).start()
        try:
            one = statistics.median(
                timed_apply(cluster, f"one-{i}", platforms(f"one-{i}", ["p"]), all_platforms_ready(kube, f"one-{i}", 1))
                for i in range(args.repeat)
            )  # fmt: skip
            many = timed_apply(cluster, "many", platforms("many", names), all_platforms_ready(kube, "many", args.many))
            assert operator.process is not None
            rss_mb = peak_rss_mb(operator.process.pid)
        finally:
            operator.stop()
    finally:
        cluster.stop()

    section = f"""## Operator: apply to Ready (`make bench-operator`)

- Date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC
- Command: `make bench-operator` (`python bench/operator_bench.py --many {args.many} --repeat {args.repeat}`)
- Machine: {machine()}; local control plane
  (kube-apiserver, controller-manager, scheduler v1.35.4, etcd, kwok fake nodes) and the operator on the
  same cores
- Each TaskPlatform: PostgreSQL StatefulSet + volume, schema Job, 2 API replicas, Services, PDB

| case | operator (apply → Ready) | baseline: same children applied directly | ratio |
|---|---:|---:|---:|
| one TaskPlatform (median of {args.repeat}) | {one:.2f} s | {bare_one:.2f} s | {one / bare_one:.2f} |
| {args.many} applied at once | {many:.2f} s | {bare_many:.2f} s | {many / bare_many:.2f} |

Operator peak RSS: {rss_mb:.0f} MB. Goal: one < 2 s, {args.many} < 30 s. The baseline applies every child at
once; the operator orders them (the API waits for its schema Job), which is most of the difference for one.
"""
    if not args.no_doc:
        write_doc(section, begin="<!-- operator-bench:begin -->", end="<!-- operator-bench:end -->")
    print(section)
    print(f"operator-bench: one={one:.2f} fifty={many:.2f} rss_mb={rss_mb:.0f}")


if __name__ == "__main__":
    main()
