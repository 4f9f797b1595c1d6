"""The end-to-end suite's cluster (tests/e2e): pods really run. `make test` starts a kind cluster
(helpers.kubecluster.KindCluster, scripts/kind-up.sh), or with E2E_CLUSTER=local one real node on this machine
(scripts/node-up.sh); `make e2e` starts the cluster itself and passes E2E_KUBECONFIG (scripts/e2e.sh).

The chart is installed as a user would (the operator from its image, on its own ServiceAccount's rights), and a
client pod (the API image, sleeping) carries the suite's requests, so traffic goes pod -> Service on kind and on
the local node alike. When a test fails, its report gets what a person would look at first (diagnose()).
"""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from helpers.kubecluster import ROOT, ExistingCluster, KindCluster, LocalCluster, wait_for
from helpers.throwaway import built_binary
from taskplatform.operator.models import ConditionType
from taskplatform.operator.specs.common import COMPONENT_LABEL, INSTANCE_LABEL, selector_string
from taskplatform.operator.specs.tls import CLIENT_VOLUME

CHART = ROOT / "charts" / "taskplatform"
OPERATOR_NAMESPACE = "taskplatform-system"
RELEASE = "tp"
VERSION = "0.1.0"  # scripts/build-images.sh
API_IMAGE, OPERATOR_IMAGE, POSTGRES_IMAGE = (
    f"taskplatform-api:{VERSION}",
    f"taskplatform-operator:{VERSION}",
    "taskplatform-postgres:15",
)
CLIENT_POD = "e2e-client"
CONTROL_PLANE_LABEL = "node-role.kubernetes.io/control-plane"  # kubeadm's, on kind's control-plane node (and taint)
ON_CONTROL_PLANE = {
    "weight": 100,
    "preference": {"matchExpressions": [{"key": CONTROL_PLANE_LABEL, "operator": "Exists"}]},
}
DBPROBE = ROOT / "tests" / "e2e" / "dbprobe.py"


def _run(*command: str, **kwargs: Any) -> str:
    return subprocess.run(command, check=True, capture_output=True, text=True, **kwargs).stdout.strip()


def helm_binary() -> str:
    return _run(str(ROOT / "scripts" / "build-helm.sh"))


def install_chart(cluster: LocalCluster, helm: str) -> subprocess.CompletedProcess[str]:
    """The chart as a user installs it: the operator from its image, on its own ServiceAccount's rights."""
    return subprocess.run(
        [helm, "install", RELEASE, str(CHART), "--namespace", OPERATOR_NAMESPACE, "--create-namespace",
         "--wait", "--timeout", "3m", "--kubeconfig", str(cluster.kubeconfig)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip


# A script for `python -c` in a pod: the IPv4 addresses the pod's resolver gets for argv[1], as JSON
# {"addresses": [...]} (none, with "error", if the lookup fails).
RESOLVE = """
import json, socket, sys
try:
    found = socket.getaddrinfo(sys.argv[1], None, socket.AF_INET)
    print(json.dumps({"addresses": sorted({entry[4][0] for entry in found})}))
except OSError as error:
    print(json.dumps({"addresses": [], "error": repr(error)}))
"""


# Pod Security admission's strictest level, enforced: a pod that does not meet it is refused (issue 29).
RESTRICTED = {"pod-security.kubernetes.io/enforce": "restricted"}


def restricted_pod(name: str, labels: dict[str, str], container: dict[str, Any], user: int = 65534) -> dict[str, Any]:
    """A pod of one container ("main": `container`'s image, command, probes...) that RESTRICTED admits: non-root
    as `user`, the default seccomp profile, no privilege escalation nor capability, no ServiceAccount token."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "securityContext": {"runAsNonRoot": True, "runAsUser": user, "seccompProfile": {"type": "RuntimeDefault"}},
            "automountServiceAccountToken": False,
            "enableServiceLinks": False,
            "terminationGracePeriodSeconds": 0,
            "containers": [{
                "name": "main", "imagePullPolicy": "IfNotPresent",
                "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
                **container,
            }],
        },
    }  # fmt: skip


def create_namespace(cluster: LocalCluster, namespace: str, labels: dict[str, str] | None = None) -> None:
    """A namespace (with `labels`, e.g. RESTRICTED) pods can be created in: its default ServiceAccount exists (the
    ServiceAccount admission refuses pods until the controller has made it). Applied, so a namespace that exists
    (a kept cluster's) gets the labels too."""
    manifest = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace, "labels": labels or {}}}
    result = cluster.apply(manifest)
    assert result.returncode == 0, result.stderr
    wait_for(lambda: cluster.kubectl("get", "serviceaccount", "default", "-n", namespace, check=False).returncode == 0,
             f"namespace {namespace}'s default ServiceAccount")  # fmt: skip


def condition(resource: dict[str, Any], kind: str) -> dict[str, Any] | None:
    return next((c for c in resource.get("status", {}).get("conditions", []) if c["type"] == kind), None)


def platform_ready(platform: dict[str, Any]) -> bool:
    """The TaskPlatform's latest generation is applied and it reports Ready."""
    ready_condition = condition(platform, ConditionType.READY)
    applied = platform.get("status", {}).get("observedGeneration") == platform["metadata"]["generation"]
    return applied and ready_condition is not None and ready_condition["status"] == "True"


def _binary_image(build_script: str, repository: str, extra_args: tuple[str, ...] = ()) -> str:
    """A static binary built by one of scripts/build-*.sh as an image of its own, made here, tagged by the
    binary's cache key (its version)."""
    binary = Path(built_binary(build_script))
    image = f"{repository}:{binary.parent.name.rsplit('-', 1)[-1]}"
    if subprocess.run(["docker", "image", "inspect", image], capture_output=True).returncode != 0:
        entrypoint = json.dumps([f"/{binary.name}", *extra_args])
        tar = subprocess.Popen(["tar", "-C", str(binary.parent), "-c", binary.name], stdout=subprocess.PIPE)
        _run("docker", "import", "--change", f"ENTRYPOINT {entrypoint}", "--change", "USER 65534:65534",
             "-", image, stdin=tar.stdout)  # fmt: skip
        tar.wait()
    return image


def ferretdb_image() -> str:
    """FerretDB (tools/ferretdb, one static binary): the legacy MongoDB in the cluster."""
    return _binary_image("build-ferretdb.sh", "taskplatform-ferretdb")


def s3server_image() -> str:
    """The Versity S3 Gateway (scripts/build-s3server.sh): the S3-compatible store backups go to."""
    return _binary_image("build-s3server.sh", "taskplatform-s3server")


S3_SERVICE, S3_PORT, S3_SECRET = "s3", 7070, "s3-keys"
S3_ENDPOINT = f"{S3_SERVICE}:{S3_PORT}"  # from pods of the same namespace


def s3_server(image: str, access_key: str, secret_key: str) -> list[dict[str, Any]]:
    """The S3-compatible store of the backup tests and bench: the Versity S3 Gateway keeping objects in an
    emptyDir, its root keys in the Secret S3_SECRET (the keys a TaskPlatform's backup reads too)."""
    labels = {"app.kubernetes.io/name": S3_SERVICE}
    env = [
        {"name": variable, "valueFrom": {"secretKeyRef": {"name": S3_SECRET, "key": key}}}
        for variable, key in (("ROOT_ACCESS_KEY", "access-key-id"), ("ROOT_SECRET_KEY", "secret-access-key"))
    ]
    return [
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": S3_SECRET},
         "stringData": {"access-key-id": access_key, "secret-access-key": secret_key}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": S3_SERVICE},
         "spec": {"selector": labels, "ports": [{"port": S3_PORT, "targetPort": S3_PORT}]}},
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": S3_SERVICE},
            "spec": {
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "securityContext": {"runAsNonRoot": True, "runAsUser": 65534,
                                            "seccompProfile": {"type": "RuntimeDefault"}},
                        "containers": [{
                            "name": "versitygw",
                            "image": image,
                            "imagePullPolicy": "IfNotPresent",
                            "args": ["--port", f":{S3_PORT}", "posix", "/data"],
                            "env": env,
                            "readinessProbe": {"tcpSocket": {"port": S3_PORT}, "periodSeconds": 2},
                            "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": "512Mi"}},
                            "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
                            "volumeMounts": [{"name": "data", "mountPath": "/data"}],
                        }],
                        "volumes": [{"name": "data", "emptyDir": {}}],
                    },
                },
            },
        },
    ]  # fmt: skip


# Burstable (requests only): the node cannot lower a Guaranteed pod's oom_score_adj (docs/e2e.md).
E2E_RESOURCES: dict[str, Any] = {"requests": {"cpu": "50m", "memory": "96Mi"}, "limits": {"memory": "512Mi"}}


def platform_manifest(
    name: str,
    *,
    namespace: str | None = None,
    replicas: int = 1,
    database: dict[str, Any] | None = None,
    api_resources: dict[str, Any] = E2E_RESOURCES,
    database_resources: dict[str, Any] = E2E_RESOURCES,
    storage: str = "1Gi",
) -> dict[str, Any]:
    """A TaskPlatform of the project's images whose PVC goes with it; `database` adds to spec.database."""
    metadata = {"name": name, **({"namespace": namespace} if namespace else {})}
    return {
        "apiVersion": "taskplatform.io/v1alpha1",
        "kind": "TaskPlatform",
        "metadata": metadata,
        "spec": {
            "api": {"image": API_IMAGE, "replicas": replicas, "resources": api_resources},
            "database": {"image": POSTGRES_IMAGE, "storage": {"size": storage}, "pvcRetentionPolicy": "Delete",
                         "resources": database_resources, **(database or {})},
        },
    }  # fmt: skip


@dataclass
class ClientLoop:
    """What a client loop (E2E.client_loop) reported once stopped: its counts, and the client's stderr."""

    summary: dict[str, Any] = field(default_factory=dict)
    errors: str = ""


class E2E:
    """The cluster, the namespace the suite works in, and the client pod's requests."""

    def __init__(self, cluster: LocalCluster, namespace: str, ferretdb: str, s3server: str) -> None:
        self.cluster = cluster
        self.namespace = namespace
        self.ferretdb_image = ferretdb
        self.s3server_image = s3server

    def kubectl(self, *args: str, stdin: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.cluster.kubectl("-n", self.namespace, *args, stdin=stdin, check=check)

    def get(self, *args: str) -> Any:
        return json.loads(self.kubectl("get", *args, "-o", "json").stdout)

    def apply(self, *manifests: dict[str, Any]) -> None:
        document = json.dumps({"apiVersion": "v1", "kind": "List", "items": list(manifests)})
        result = self.kubectl("apply", "-f", "-", stdin=document, check=False)
        assert result.returncode == 0, result.stderr

    def client_command(self) -> list[str]:
        """The command that runs incluster.py in the client pod, reading its plan from stdin."""
        return [str(self.cluster.bin / "kubectl"), "--kubeconfig", str(self.cluster.kubeconfig), "-n", self.namespace,
                "exec", "-i", CLIENT_POD, "--", "python", "/tmp/incluster.py"]  # fmt: skip

    @contextmanager
    def client_loop(self, **plan: Any) -> Iterator[ClientLoop]:
        """incluster.py's bounded request loop in the client pod (`plan`: its url, stop_file, max_requests,
        max_seconds, headers), running for the block; stopped through its stop file after it, with its summary
        then on the ClientLoop yielded."""
        process = subprocess.Popen(self.client_command(), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True)  # fmt: skip
        assert process.stdin is not None and process.stdout is not None
        process.stdin.write(json.dumps({"loop": plan}))
        process.stdin.close()
        loop = ClientLoop()
        try:
            assert process.stdout.readline().startswith("#")  # the loop is running
            yield loop
        finally:
            self.kubectl("exec", CLIENT_POD, "--", "touch", plan["stop_file"], check=False)
            output, loop.errors = process.stdout.read(), process.stderr.read() if process.stderr else ""
            process.wait(timeout=120)
            self.kubectl("exec", CLIENT_POD, "--", "rm", "-f", plan["stop_file"], check=False)
        loop.summary = json.loads(output.splitlines()[-1])

    def in_cluster(self, plan: dict[str, Any], timeout_s: float = 120) -> Any:
        """Run a plan of incluster.py in the client pod; its JSON answer."""
        result = subprocess.run(self.client_command(), input=json.dumps(plan), capture_output=True, text=True,
                                timeout=timeout_s, check=False)  # fmt: skip
        assert result.returncode == 0, f"client pod: {result.stderr[-2000:]}"
        return json.loads(result.stdout.splitlines()[-1])

    def pods(self, component: str, instance: str) -> list[dict[str, Any]]:
        return list(self.get("pods", "-l", selector_string(instance, component))["items"])

    def call(self, *requests: dict[str, Any]) -> list[dict[str, Any]]:
        """HTTP requests made from the client pod (incluster.py's `requests` plan); their answers."""
        return list(self.in_cluster({"requests": list(requests)}))

    def login(self, base: str, email: str, password: str) -> dict[str, str]:
        """Logs in through the API at `base`; the bearer header of the access token."""
        [answer] = self.call({"method": "POST", "url": f"{base}/api/v1/auth/login",
                              "form": {"username": email, "password": password}})  # fmt: skip
        assert answer["status"] == 200, answer
        return {"Authorization": f"Bearer {answer['body']['access_token']}"}

    def sign_up(self, base: str, email: str, password: str) -> dict[str, str]:
        """Registers a user through the API at `base`, then logs in: the bearer header."""
        [registered] = self.call({"method": "POST", "url": f"{base}/api/v1/auth/register",
                                  "json": {"email": email, "password": password}})  # fmt: skip
        assert registered["status"] == 201, registered
        return self.login(base, email, password)

    def probe_pod(self, pod: str, container: str, source: str) -> dict[str, Any]:
        """tests/e2e/dbprobe.py run in a running pod's container, through its own connection settings (`source`:
        the variable holding its database URL)."""
        result = self.kubectl("exec", "-i", pod, "-c", container, "--", "python", "-", source,
                              stdin=DBPROBE.read_text())  # fmt: skip
        return dict(json.loads(result.stdout.splitlines()[-1]))

    def probe_job(self, job: str, container: str, source: str, instance: str, component: str) -> dict[str, Any]:
        """tests/e2e/dbprobe.py in a pod given the environment and volumes of a Job's container as the Job has them
        (its secretKeyRefs and the database's CA bundle: the connection settings of its pods, which have finished)
        and the labels the database's NetworkPolicy admits; the API image (Python, psycopg2). `source`: the
        variable holding its URL, or `-` for libpq's PG* variables. No managed-by label: the operator does not take
        it for one of its pods."""
        spec = self.get("job", job)["spec"]["template"]["spec"]
        (found,) = [c for c in spec["containers"] if c["name"] == container]
        # The CA bundle its PGSSLROOTCERT names (the database requires verified TLS), mounted as in the Job.
        mounts = [m for m in found.get("volumeMounts", []) if m["name"] == CLIENT_VOLUME]
        volumes = [v for v in spec.get("volumes", []) if v["name"] == CLIENT_VOLUME]
        name = f"probe-{job}"[:63].rstrip("-")
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "labels": {INSTANCE_LABEL: instance, COMPONENT_LABEL: component}},
            "spec": {
                "restartPolicy": "Never",
                "enableServiceLinks": False,
                "securityContext": spec["securityContext"],
                "containers": [{
                    "name": "probe", "image": API_IMAGE, "imagePullPolicy": "IfNotPresent",
                    "command": ["python", "-c", DBPROBE.read_text(), source], "env": found["env"],
                    "volumeMounts": mounts,
                    "resources": {"requests": {"cpu": "10m", "memory": "64Mi"}, "limits": {"memory": "256Mi"}},
                    "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]},
                                        "runAsUser": 10001, "runAsGroup": 10001},
                }],
                "volumes": volumes,
            },
        }  # fmt: skip
        self.apply(pod)
        try:
            done = wait_for(lambda: (p := self.get("pod", name))["status"].get("phase") in ("Succeeded", "Failed")
                            and p, f"pod {name} finished", 120)  # fmt: skip
            log = self.kubectl("logs", name).stdout
            assert done["status"]["phase"] == "Succeeded", log
            return dict(json.loads(log.splitlines()[-1]))
        finally:
            self.kubectl("delete", "pod", name, "--wait=false", check=False)

    def wait_platform_ready(self, name: str, timeout_s: float = 240) -> dict[str, Any]:
        def check() -> dict[str, Any] | None:
            found = self.get("taskplatform", name)
            return found if platform_ready(found) else None

        return dict(wait_for(check, f"TaskPlatform {name} Ready", timeout_s))

    def wait_serving(self, base_url: str) -> None:
        """Until the API answers through its Service. Ready pods reach the Service's endpoints, and
        kube-proxy's rules, a moment later (seen on a freshly booted machine: refused right after Ready)."""
        wait_for(lambda: self.call({"method": "GET", "url": f"{base_url}/readyz"})[0]["status"] == 200,
                 "the API answering through its Service")  # fmt: skip


def ready(pod: dict[str, Any]) -> bool:
    conditions = pod.get("status", {}).get("conditions", [])
    return pod["metadata"].get("deletionTimestamp") is None and any(
        c["type"] == "Ready" and c["status"] == "True" for c in conditions
    )


def client_pod() -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": CLIENT_POD, "labels": {"app.kubernetes.io/name": "e2e-client"}},
        "spec": {
            # On kind, on the control plane, which no test drains: the client's loop runs through a worker's drain.
            # Preferred, so it runs on a cluster of one node (the local node) as well.
            "tolerations": [{"key": CONTROL_PLANE_LABEL, "operator": "Exists", "effect": "NoSchedule"}],
            "affinity": {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [ON_CONTROL_PLANE]}},
            "securityContext": {"runAsNonRoot": True, "runAsUser": 10001, "seccompProfile": {"type": "RuntimeDefault"}},
            "terminationGracePeriodSeconds": 0,
            "containers": [
                {
                    "name": "client",
                    "image": API_IMAGE,
                    "imagePullPolicy": "IfNotPresent",
                    "command": ["sleep", "infinity"],
                    "resources": {"requests": {"cpu": "10m", "memory": "64Mi"}, "limits": {"memory": "512Mi"}},
                    "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
                }
            ],
        },
    }


def diagnose(cluster: LocalCluster, namespace: str | None = None) -> str:
    """What a person looks at first when the suite fails: the operator's log, the events in time order, the
    custom resources' conditions, pods that are not Ready (described, with their previous logs)."""

    def run(*args: str) -> str:
        result = cluster.kubectl(*args, check=False)
        return (result.stdout + result.stderr).strip()

    scope = ["-n", namespace] if namespace else ["-A"]
    operator = f"deploy/{RELEASE}-taskplatform"
    parts = [
        ("operator log (last 60 lines)", run("logs", "-n", OPERATOR_NAMESPACE, operator, "--tail=60")),
        ("events, oldest first", run("get", "events", *scope, "--sort-by=.lastTimestamp")),
        ("backups", run("get", "taskplatformbackups", *scope, "-o", "wide")),
        ("conditions", run("get", "taskplatforms,datamigrations,taskplatformbackups", *scope, "-o",
                           "jsonpath={range .items[*]}{.kind}/{.metadata.name}: {.status.conditions}{'\\n'}{end}")),
    ]  # fmt: skip
    pods = json.loads(run("get", "pods", *scope, "-o", "json") or "{}").get("items", [])
    for pod in pods:
        if ready(pod) or pod.get("status", {}).get("phase") == "Succeeded":
            continue
        name, ns = pod["metadata"]["name"], pod["metadata"]["namespace"]
        parts.append((f"describe pod {ns}/{name}", run("describe", "pod", "-n", ns, name)))
        restarted = any(c.get("restartCount", 0) for c in pod.get("status", {}).get("containerStatuses", []))
        which = ["--previous"] if restarted else []  # the crashed run's log, else the only one
        log = run("logs", "-n", ns, name, *which, "--all-containers", "--tail=40")
        parts.append((f"{'previous ' if restarted else ''}log of {ns}/{name}", log))
    # The local node's own components (scripts/node-up.sh), when it is one.
    node_logs = Path(cluster.env.get("CLUSTER_DIR", cluster.dir)) / "node" / "logs"
    for name in ("kube-proxy", "kube-router", "kubelet", "containerd", "coredns"):
        log_file = node_logs / f"{name}.log"
        if log_file.exists():
            lines = [line for line in log_file.read_text(errors="replace").splitlines() if name != "kubelet"
                     or line.startswith(("E", "W"))]  # fmt: skip
            parts.append((f"local node: {name} log (last 30 lines)", "\n".join(lines[-30:])))
    if isinstance(cluster, KindCluster):  # every node's journal, kubelet, containerd and pod logs, on disk
        parts.append(("kind export logs", cluster.log_tails()))
    return "\n".join(f"===== {title} =====\n{text}" for title, text in parts)


UNTRUSTED = ("copy_to_program", "c_function", "plpython_function", "read_server_file")


def assert_confined(probe: dict[str, Any], role: str, *, owns_schema: bool) -> None:
    """The probe's answer (dbprobe.py): connected as `role` over TLS, not a superuser, refused every way out of the
    database (a program, a C or plpython function, a server file); DDL only for the schema's owner (and its
    member, the migration role)."""
    assert (probe["user"], probe["superuser"], probe["ssl"]) == (role, False, True), probe
    checks = probe["checks"]
    for name in UNTRUSTED:
        assert checks[name]["refused"], (name, checks[name])
    assert "pg_execute_server_program" in checks["copy_to_program"]["message"], checks["copy_to_program"]
    for name in ("drop_table", "create_table"):
        assert checks[name]["refused"] is not owns_schema, (name, checks[name])


def probe_counts(e2e: E2E, pod: dict[str, Any]) -> dict[str, float]:
    """The kubelet's own count of the probes it ran against this pod (prober_probe_total), by probe type."""
    node = pod["spec"]["nodeName"]
    metrics = e2e.cluster.kubectl("get", "--raw", f"/api/v1/nodes/{node}/proxy/metrics/probes").stdout
    counts: dict[str, float] = {}
    for line in metrics.splitlines():
        if line.startswith("prober_probe_total{") and f'pod="{pod["metadata"]["name"]}"' in line:
            labels, value = line.rsplit(" ", 1)
            probe_type = labels.split('probe_type="', 1)[1].split('"', 1)[0]
            if 'result="successful"' in labels:
                counts[probe_type] = counts.get(probe_type, 0) + float(value)
    return counts


def wait_ready_pods(
    suite: E2E, component: str, instance: str, count: int, timeout_s: float = 180, *, at_least: bool = False
) -> list[dict[str, Any]]:
    """Exactly `count` pods, all Ready; with `at_least`, `count` or more Ready ones (others may be starting)."""

    def check() -> list[dict[str, Any]] | None:
        pods = [p for p in suite.pods(component, instance) if p["metadata"].get("deletionTimestamp") is None]
        if at_least:
            pods = [p for p in pods if ready(p)]
            return pods if len(pods) >= count else None
        return pods if len(pods) == count and all(ready(p) for p in pods) else None

    more = "+" if at_least else ""
    return wait_for(check, f"{count}{more} Ready {component} pods of {instance}", timeout_s)


@contextmanager
def suite_on(cluster: LocalCluster) -> Iterator[E2E]:
    """The suite's setting on a cluster, started here: the images loaded, the chart installed in its namespace and
    a namespace for the tests, both under Pod Security's "restricted" level, and the client pod Ready. The cluster
    is stopped at the end (KEEP=1 keeps it); on someone else's cluster (E2E_KUBECONFIG) only what was made here
    is taken back."""
    helm = helm_binary()
    namespace = f"e2e-{uuid.uuid4().hex[:6]}"
    try:
        cluster.start()
        ferretdb, s3server = ferretdb_image(), s3server_image()
        cluster.load_images(API_IMAGE, OPERATOR_IMAGE, POSTGRES_IMAGE, ferretdb, s3server)
        # Every pod of the suite, the operator's included, under Pod Security's "restricted" level.
        create_namespace(cluster, OPERATOR_NAMESPACE, RESTRICTED)
        result = install_chart(cluster, helm)
        assert result.returncode == 0, f"helm install: {result.stderr}\n{diagnose(cluster)}"
        create_namespace(cluster, namespace, RESTRICTED)
        suite = E2E(cluster, namespace, ferretdb, s3server)
        suite.apply(client_pod())
        suite.kubectl("wait", "--for=condition=Ready", f"pod/{CLIENT_POD}", "--timeout=120s")
        suite.kubectl("exec", "-i", CLIENT_POD, "--", "sh", "-c", "cat > /tmp/incluster.py",
                      stdin=(ROOT / "tests" / "e2e" / "incluster.py").read_text())  # fmt: skip
        yield suite
    finally:
        if not os.environ.get("KEEP"):
            if isinstance(cluster, ExistingCluster):  # someone else's cluster: take back what the suite made
                cluster.kubectl("delete", "namespace", namespace, "--wait=false", check=False)
                subprocess.run([helm, "uninstall", RELEASE, "-n", OPERATOR_NAMESPACE, "--kubeconfig",
                                str(cluster.kubeconfig)], capture_output=True, check=False)  # fmt: skip
            cluster.stop()
