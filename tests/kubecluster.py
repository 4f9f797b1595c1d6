"""The local control plane (scripts/cluster-up.sh) for tests: a real kube-apiserver with its controllers."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


class LocalCluster:
    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="taskplatform-cluster-"))
        self.env = {**os.environ, "CLUSTER_DIR": str(self.dir)}
        self.kubeconfig = self.dir / "kubeconfig"
        self.bin = Path(
            subprocess.run(
                [str(ROOT / "scripts" / "build-k8s.sh")], check=True, capture_output=True, text=True
            ).stdout.strip()
        )

    def start(self) -> LocalCluster:
        subprocess.run([str(ROOT / "scripts" / "cluster-up.sh")], check=True, env=self.env, capture_output=True)
        return self

    def stop(self) -> None:
        subprocess.run([str(ROOT / "scripts" / "cluster-down.sh")], env=self.env, capture_output=True, check=False)
        shutil.rmtree(self.dir, ignore_errors=True)

    def kubectl(self, *args: str, stdin: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.bin / "kubectl"), "--kubeconfig", str(self.kubeconfig), *args],
            input=stdin,
            capture_output=True,
            text=True,
            check=check,
        )

    def apply(self, manifest: dict[str, Any] | list[dict[str, Any]], *flags: str) -> subprocess.CompletedProcess[str]:
        items = manifest if isinstance(manifest, list) else [manifest]
        document = json.dumps({"apiVersion": "v1", "kind": "List", "items": items})
        return self.kubectl("apply", "-f", "-", *flags, stdin=document, check=False)

    def get(self, *args: str) -> Any:
        return json.loads(self.kubectl("get", *args, "-o", "json").stdout)
