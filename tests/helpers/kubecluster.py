"""The local control plane (scripts/cluster-up.sh) for tests: a real kube-apiserver with its controllers."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from helpers import environments
from helpers.pgcluster import free_port
from taskplatform.operator.crdgen import all_crds

ROOT = Path(__file__).resolve().parents[2]
CRDS = ROOT / "crds"


class CommandFailed(subprocess.CalledProcessError):
    """A failed kubectl or script whose message carries what it printed: a test's error shows why."""

    def __str__(self) -> str:
        printed = "\n".join(part.strip() for part in (self.stdout, self.stderr) if isinstance(part, str))
        return f"{super().__str__()}\n{printed.strip()}" if printed.strip() else super().__str__()


def run_command(command: list[str], check: bool = True, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """`command`'s result, its output captured as text; with `check`, a failure raises CommandFailed."""
    result = subprocess.run(command, capture_output=True, text=True, check=False, **kwargs)
    if check and result.returncode != 0:
        raise CommandFailed(result.returncode, command, result.stdout, result.stderr)
    return result


class LocalCluster:
    """`node="kwok"`: fake nodes (pods "run" at once); `node="local"`: one real node on this machine
    (scripts/node-up.sh: containerd, kubelet, kube-proxy, CoreDNS; needs root)."""

    def __init__(self, node: str = "kwok") -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="taskplatform-cluster-"))
        self.env = {**os.environ, "CLUSTER_DIR": str(self.dir), "CLUSTER_NODE": node}
        self.environment_marker = environments.NODE if node == "local" else environments.KUBE
        self.kubeconfig = self.dir / "kubeconfig"
        self.bin = Path(
            subprocess.run(
                [str(ROOT / "scripts" / "build-k8s.sh")], check=True, capture_output=True, text=True
            ).stdout.strip()
        )

    def start(self) -> LocalCluster:
        environments.started(self.environment_marker)
        try:
            run_command([str(ROOT / "scripts" / "cluster-up.sh")], env=self.env)
        except CommandFailed as failure:
            logs = self.log_tails()
            self.stop()  # what did start (etcd, the API server) must not outlive the failed test
            raise RuntimeError(f"{failure}\n{logs}") from None
        return self

    def log_tails(self, lines: int = 15) -> str:
        """The last lines each control-plane process logged (scripts/cluster-up.sh writes them under logs/)."""
        tails = []
        for log in sorted((self.dir / "logs").glob("*.log")):
            text = log.read_text(errors="replace").splitlines()[-lines:]
            tails.append(f"--- {log.name}\n" + "\n".join(text))
        return "\n".join(tails)

    def install_crds(self, timeout_s: float = 120.0) -> None:
        """Apply crds/ and wait until the API server serves every one (condition Established).

        Polls each CRD by name (a read from etcd) instead of `kubectl wait`, whose list-then-watch goes through
        the API server's watch cache; a failure says what the server reported and what its processes logged."""
        self.kubectl("apply", "-f", str(CRDS))
        names = [crd["metadata"]["name"] for crd in all_crds().values()]  # crds/ is written from these
        deadline = time.monotonic() + timeout_s
        while True:
            result = self.kubectl("get", "crd", *names, "-o", "json", check=False)
            if result.returncode == 0:
                items = json.loads(result.stdout)["items"]
                waiting = {item["metadata"]["name"]: item.get("status", {}).get("conditions", []) for item in items
                           if not any(c["type"] == "Established" and c["status"] == "True"
                                      for c in item.get("status", {}).get("conditions", []))}  # fmt: skip
                if not waiting:
                    return
                last = f"not yet Established: {waiting}"
            else:
                last = result.stderr.strip()
            if time.monotonic() >= deadline:
                break
            time.sleep(0.25)
        raise RuntimeError(f"the CRDs were not Established within {timeout_s:.0f} s; last: {last}\n{self.log_tails()}")

    def stop(self) -> None:
        subprocess.run([str(ROOT / "scripts" / "cluster-down.sh")], env=self.env, capture_output=True, check=False)
        shutil.rmtree(self.dir, ignore_errors=True)

    def load_images(self, *images: str) -> None:
        """Copy images from Docker into the real node (`kind load docker-image`, for the local node)."""
        subprocess.run([str(ROOT / "scripts" / "node-load-images.sh"), *images], check=True, env=self.env,
                       capture_output=True)  # fmt: skip

    def kubectl(self, *args: str, stdin: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
        return run_command([str(self.bin / "kubectl"), "--kubeconfig", str(self.kubeconfig), *args], check, input=stdin)

    def apply(self, manifest: dict[str, Any] | list[dict[str, Any]], *flags: str) -> subprocess.CompletedProcess[str]:
        items = manifest if isinstance(manifest, list) else [manifest]
        document = json.dumps({"apiVersion": "v1", "kind": "List", "items": items})
        return self.kubectl("apply", "-f", "-", *flags, stdin=document, check=False)

    def get(self, *args: str) -> Any:
        return json.loads(self.kubectl("get", *args, "-o", "json").stdout)

    def write_container_log(self, *lines: str) -> None:
        """What every container named `migrate` has printed, as `kubectl logs` shows it (kwok serves the
        file through the kubelet API; scripts/cluster-up.sh). Kubelet's CRI log format, one line each."""
        now = time.strftime("%Y-%m-%dT%H:%M:%S.000000000Z", time.gmtime())
        text = "".join(f"{now} stderr F {line}\n" for line in lines)
        (self.dir / "container-logs" / "migrate.log").write_text(text)

    def kubeconfig_for(self, service_account: str, namespace: str, path: Path) -> Path:
        """A kubeconfig that authenticates as a ServiceAccount (a token from the TokenRequest API)."""
        token = self.kubectl("create", "token", service_account, "-n", namespace, "--duration=1h").stdout.strip()
        config = json.loads(self.kubectl("config", "view", "--raw", "--flatten", "-o", "json").stdout)
        config["users"] = [{"name": "sa", "user": {"token": token}}]
        config["contexts"] = [{"name": "sa", "context": {"cluster": config["clusters"][0]["name"], "user": "sa"}}]
        config["current-context"] = "sa"
        path.write_text(json.dumps(config))
        return path


class ExistingCluster(LocalCluster):
    """A cluster someone else started (`make e2e` on kind): only its kubeconfig; never started or stopped here."""

    def __init__(self, kubeconfig: Path) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="taskplatform-e2e-"))
        self.env = {**os.environ, "KUBECONFIG": str(kubeconfig)}
        self.environment_marker = environments.NODE
        self.kubeconfig = kubeconfig
        self.bin = Path(os.environ.get("E2E_KUBECTL_DIR") or Path(shutil.which("kubectl") or "kubectl").parent)

    def start(self) -> ExistingCluster:
        environments.started(self.environment_marker)  # started by someone else, but its pods really run
        return self

    def stop(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)

    def load_images(self, *images: str) -> None:
        """With the command E2E_LOAD_IMAGES names (scripts/e2e.sh: `kind load docker-image ...`), if any."""
        loader = os.environ.get("E2E_LOAD_IMAGES")
        if loader:
            subprocess.run([*shlex.split(loader), *images], check=True, capture_output=True, env=self.env)


class KindCluster(LocalCluster):
    """A kind cluster (scripts/kind-up.sh): one control plane and `workers` worker nodes, in containers of the host's
    Docker where it can run them, else of a Docker daemon of kind's own (scripts/kind-docker.sh); needs root here."""

    def __init__(self, workers: int = 2, metrics: bool = True) -> None:
        super().__init__(node="kind")
        self.env = {**os.environ, "CLUSTER_DIR": str(self.dir), "KIND_NODES": str(workers),
                    "KIND_METRICS": "1" if metrics else "0"}  # fmt: skip
        self.environment_marker = environments.NODE

    def start(self) -> KindCluster:
        environments.started(self.environment_marker)
        try:
            run_command([str(ROOT / "scripts" / "kind-up.sh")], env=self.env)
        except CommandFailed:
            self.stop()  # a half-made cluster, or the kind daemon, must not outlive the failed test
            raise
        return self

    def log_tails(self, lines: int = 15) -> str:
        """Where a failure's evidence is: kind's own logs, exported (scripts/kind-export-logs.sh)."""
        target = ROOT / ".e2e-logs"
        result = run_command([str(ROOT / "scripts" / "kind-export-logs.sh"), str(target)], check=False, env=self.env)
        return result.stderr.strip()

    def stop(self) -> None:
        subprocess.run([str(ROOT / "scripts" / "kind-down.sh")], env=self.env, capture_output=True, check=False)
        shutil.rmtree(self.dir, ignore_errors=True)

    def load_images(self, *images: str) -> None:
        """`kind load docker-image` (scripts/kind-load-images.sh)."""
        run_command([str(ROOT / "scripts" / "kind-load-images.sh"), *images], env=self.env)


class OperatorProcess:
    """`taskplatform-operator` as a separate process against a LocalCluster, as a user runs it."""

    def __init__(self, cluster: LocalCluster, *args: str, kubeconfig: Path | None = None):
        self.cluster = cluster
        self.args = args
        self.kubeconfig = kubeconfig or cluster.kubeconfig
        self.port = free_port()
        self.metrics_port = free_port()
        self.log_path = cluster.dir / f"operator-{self.port}.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def liveness_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/healthz"

    def start(self) -> OperatorProcess:
        env = {**self.cluster.env, "KUBECONFIG": str(self.kubeconfig)}
        command = [sys.executable, "-m", "taskplatform.operator.main", "--liveness", self.liveness_url,
                   "--metrics-port", str(self.metrics_port), "--metrics-address", "127.0.0.1", *self.args]  # fmt: skip
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the operator exited: {self.log_path.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(self.liveness_url, timeout=2) as response:  # noqa: S310 (local)
                    if response.status == 200:
                        return self
            except OSError:
                time.sleep(0.2)
        raise RuntimeError(f"the operator's liveness endpoint never answered: {self.log_path.read_text()[-3000:]}")

    def kill(self) -> None:
        """SIGKILL: no cleanup, as when a node dies."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def wait_for(check: Callable[[], Any], what: str, timeout_s: float = 90.0) -> Any:
    """Poll until `check()` returns something truthy; the cluster converges, tests wait for it (no timing)."""
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what}; last seen: {last!r}")
