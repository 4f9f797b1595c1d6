"""charts/taskplatform: lint, render, validate against the API server, install, and run on its own RBAC.

`make chart-check` runs this file; `make test` runs it with everything else.
"""

import itertools
import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from helpers.kubecluster import ROOT, LocalCluster, OperatorProcess, wait_for

CHART = ROOT / "charts" / "taskplatform"
_workspaces = itertools.count()


@pytest.fixture(scope="module")
def helm_bin() -> str:
    return subprocess.run([str(ROOT / "scripts" / "build-helm.sh")], capture_output=True, text=True,
                          check=True).stdout.strip()  # fmt: skip


def helm(helm_bin: str, *args: str, cluster: LocalCluster | None = None) -> subprocess.CompletedProcess[str]:
    env_args = ["--kubeconfig", str(cluster.kubeconfig)] if cluster else []
    return subprocess.run([helm_bin, *args, *env_args], capture_output=True, text=True, check=False, timeout=300)


def render(helm_bin: str, *sets: str) -> list[dict[str, Any]]:
    result = helm(helm_bin, "template", "tp", str(CHART), "--namespace", "tp-system", *sets)
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def by_kind(manifests: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [m for m in manifests if m["kind"] == kind]


# What operator/ calls (kube.py, handlers.py; kopf's own posting of Events), per the chart's README.
OPERATOR_RULES = {
    ("taskplatform.io", "taskplatforms"): {"get", "list", "watch", "patch"},
    ("taskplatform.io", "datamigrations"): {"get", "list", "watch", "patch"},
    ("taskplatform.io", "taskplatforms/status"): {"patch"},
    ("taskplatform.io", "datamigrations/status"): {"patch"},
    ("taskplatform.io", "taskplatformbackups"): {"get", "list", "watch", "patch", "create", "delete"},
    ("taskplatform.io", "taskplatformbackups/status"): {"patch"},
    ("", "secrets"): {"get", "list", "watch", "create", "patch"},
    ("", "services"): {"get", "list", "watch", "create", "patch", "delete"},
    ("", "serviceaccounts"): {"get", "list", "watch", "create", "patch"},  # the platform's pods' account
    ("", "configmaps"): {"get", "list", "watch", "create", "patch"},  # the database's client authentication
    ("apps", "statefulsets"): {"get", "list", "watch", "create", "patch", "delete"},
    ("apps", "deployments"): {"get", "list", "watch", "create", "patch", "delete"},
    ("policy", "poddisruptionbudgets"): {"get", "list", "watch", "create", "patch", "delete"},
    ("autoscaling", "horizontalpodautoscalers"): {"get", "list", "watch", "create", "patch", "delete"},
    ("networking.k8s.io", "networkpolicies"): {"get", "list", "watch", "create", "patch", "delete"},
    ("batch", "jobs"): {"get", "list", "watch", "create"},
    ("", "persistentvolumeclaims"): {"get", "patch", "create"},  # operator/storage.py; the backup volume
    ("", "pods"): {"list", "watch"},
    ("", "pods/log"): {"get"},
    ("", "events"): {"create"},
    ("events.k8s.io", "events"): {"create"},
}


FORBIDDEN_STATUS = re.compile(r"(?<![\d.:])403(?!\d)")


def flatten(rules: list[dict[str, Any]]) -> dict[tuple[str, str], set[str]]:
    granted: dict[tuple[str, str], set[str]] = {}
    for rule in rules:
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                granted.setdefault((group, resource), set()).update(rule["verbs"])
    return granted


def test_lint_is_clean_in_strict_mode(helm_bin: str, tmp_path: Path) -> None:
    values = tmp_path / "values.yaml"
    values.write_text(yaml.safe_dump({"watchNamespaces": ["team-a"], "example": {"enabled": True, "name": "x"}}))
    for extra in ([], ["--values", str(values)]):
        result = helm(helm_bin, "lint", "--strict", str(CHART), *extra)
        assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("image.pullPolicy=Sometimes", "/image/pullPolicy"),
        ("watchNamespaces={Team_A}", "/watchNamespaces/0"),
        ("livenessPort=80", "/livenessPort"),
        ("metrics.port=80", "/metrics/port"),
        ("replicaCount=3", "additional properties 'replicaCount' not allowed"),
    ],
)
def test_bad_values_fail_at_install_with_the_field(helm_bin: str, setting: str, message: str) -> None:
    result = helm(helm_bin, "template", "tp", str(CHART), "--set", setting)
    assert result.returncode != 0
    assert message in result.stderr


def test_cluster_wide_rbac_is_exactly_what_the_operator_calls(helm_bin: str) -> None:
    manifests = render(helm_bin)
    roles = {r["metadata"]["name"]: r for r in by_kind(manifests, "ClusterRole")}
    assert flatten(roles["tp-taskplatform"]["rules"]) == OPERATOR_RULES
    assert flatten(roles["tp-taskplatform-crds"]["rules"]) == {
        ("apiextensions.k8s.io", "customresourcedefinitions"): {"list", "watch"},
        ("", "namespaces"): {"list", "watch"},
    }
    assert not by_kind(manifests, "Role")
    (deployment,) = by_kind(manifests, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["image"] == "taskplatform-operator:0.1.0"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert deployment["spec"]["strategy"]["type"] == "Recreate"


def _readme_rows() -> dict[str, set[str]]:
    """The chart README's permission table: each listed resource (`plural.group`, or the core plural) and its verbs."""
    rows: dict[str, set[str]] = {}
    for line in (CHART / "README.md").read_text().splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) != 3 or cells[0] in ("resource", "---"):
            continue
        verbs = {verb.strip() for verb in cells[1].split(",")}
        for resource in cells[0].split(","):
            rows[resource.strip().removesuffix(" (core)")] = verbs
    return rows


def test_the_readme_says_why_for_every_permission_granted(helm_bin: str) -> None:
    """Each rule the chart grants has its row, with exactly its verbs, in the table that says why."""
    manifests = render(helm_bin)
    granted = {}
    for role in by_kind(manifests, "ClusterRole"):
        granted.update(flatten(role["rules"]))
    rows = _readme_rows()
    for (group, resource), verbs in granted.items():
        # Subresources and the core group (events.k8s.io's events share core's row) by their plural alone.
        plain = "/" in resource or group in ("", "events.k8s.io")
        name = resource if plain else f"{resource}.{group}"
        assert rows.get(name) == verbs, (name, verbs)


def test_metrics_are_served_and_a_service_monitor_only_when_asked(helm_bin: str) -> None:
    default = render(helm_bin)
    assert not by_kind(default, "ServiceMonitor")
    container = by_kind(default, "Deployment")[0]["spec"]["template"]["spec"]["containers"][0]
    assert "--metrics-port=8081" in container["args"]
    assert {"name": "metrics", "containerPort": 8081} in container["ports"]

    manifests = render(helm_bin, "--set", "metrics.serviceMonitor.enabled=true",
                       "--set", "metrics.serviceMonitor.labels.release=prometheus")  # fmt: skip
    (monitor,) = by_kind(manifests, "ServiceMonitor")
    service = next(s for s in by_kind(manifests, "Service") if s["metadata"]["name"].endswith("-metrics"))
    pod_labels = by_kind(manifests, "Deployment")[0]["spec"]["template"]["metadata"]["labels"]
    assert monitor["metadata"]["labels"]["release"] == "prometheus"
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert monitor["spec"]["endpoints"] == [{"port": "metrics", "path": "/metrics", "interval": "30s"}]

    off = render(helm_bin, "--set", "metrics.port=0", "--set", "metrics.serviceMonitor.enabled=true")
    assert not by_kind(off, "ServiceMonitor")
    assert "--metrics-port=0" in by_kind(off, "Deployment")[0]["spec"]["template"]["spec"]["containers"][0]["args"]


def test_namespaced_mode_grants_roles_only_where_it_watches(helm_bin: str) -> None:
    manifests = render(helm_bin, "--set", "watchNamespaces={team-a,team-b}", "--set", "example.enabled=true")
    roles = by_kind(manifests, "Role")
    assert sorted(r["metadata"]["namespace"] for r in roles) == ["team-a", "team-b"]
    assert all(flatten(r["rules"]) == OPERATOR_RULES for r in roles)
    assert not by_kind(manifests, "ClusterRole")  # nothing cluster-wide in namespaced mode
    assert not by_kind(manifests, "ClusterRoleBinding")
    args = by_kind(manifests, "Deployment")[0]["spec"]["template"]["spec"]["containers"][0]["args"]
    assert {"--namespace=team-a", "--namespace=team-b"} <= set(args)
    (example,) = by_kind(manifests, "TaskPlatform")
    assert example["spec"] == {"api": {"replicas": 2}}


def test_rendered_manifests_pass_server_side_validation(helm_bin: str, cluster: LocalCluster) -> None:
    for namespace in ("tp-system", "team-a"):
        cluster.kubectl("create", "namespace", namespace, check=False)
    for sets in ([], ["--set", "watchNamespaces={team-a}", "--set", "example.enabled=true", "--set", "verbose=true"]):
        document = json.dumps({"apiVersion": "v1", "kind": "List", "items": render(helm_bin, *sets)})
        result = cluster.kubectl("apply", "--dry-run=server", "-f", "-", stdin=document, check=False)
        assert result.returncode == 0, result.stderr


@pytest.fixture(params=["cluster-wide", "namespaced"])
def release(request: pytest.FixtureRequest, helm_bin: str, cluster: LocalCluster) -> Iterator[tuple[str, str]]:
    """The chart installed in `tp-<mode>`; yields that namespace and one the operator may work in."""
    mode = request.param
    namespace, workspace = f"tp-{mode}", f"work-{mode}-{next(_workspaces)}"
    cluster.kubectl("create", "namespace", workspace)
    sets = ["--set", f"watchNamespaces={{{workspace}}}"] if mode == "namespaced" else []
    result = helm(helm_bin, "install", "tp", str(CHART), "--namespace", namespace, "--create-namespace",
                  "--wait", "--timeout", "2m", *sets, cluster=cluster)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "kubectl wait --for=condition=Ready tp/demo" in result.stdout  # NOTES.txt tells the next step
    yield namespace, workspace
    helm(helm_bin, "uninstall", "tp", "--namespace", namespace, "--wait", cluster=cluster)
    cluster.kubectl("delete", "namespace", workspace, "--wait=false", check=False)


def test_install_runs_the_operator_and_uninstall_cleans_up(
    helm_bin: str, cluster: LocalCluster, release: tuple[str, str]
) -> None:
    namespace, workspace = release
    deployment = cluster.get("deployment", "tp-taskplatform", "-n", namespace)
    assert deployment["status"]["availableReplicas"] == 1
    installed = [
        ("deployment", "tp-taskplatform", "-n", namespace),
        ("serviceaccount", "tp-taskplatform", "-n", namespace),
        *(
            [("role", "tp-taskplatform", "-n", workspace), ("rolebinding", "tp-taskplatform", "-n", workspace)]
            if namespace.endswith("namespaced")
            else [("clusterrole", name) for name in ("tp-taskplatform", "tp-taskplatform-crds")]
            + [("clusterrolebinding", name) for name in ("tp-taskplatform", "tp-taskplatform-crds")]
        ),
    ]
    for what in installed:
        assert cluster.kubectl("get", *what, check=False).returncode == 0, what

    result = helm(helm_bin, "uninstall", "tp", "--namespace", namespace, "--wait", cluster=cluster)
    assert result.returncode == 0, result.stderr
    for what in installed:
        assert cluster.kubectl("get", *what, check=False).returncode != 0, what
    # The CRDs stay (Helm never deletes them): the custom resources users made are not lost.
    assert cluster.kubectl("get", "crd", "taskplatforms.taskplatform.io", check=False).returncode == 0


def test_the_operator_works_with_only_the_charts_rbac(
    cluster: LocalCluster, release: tuple[str, str], tmp_path: Path
) -> None:
    release_namespace, workspace = release
    kubeconfig = cluster.kubeconfig_for("tp-taskplatform", release_namespace, tmp_path / "sa-kubeconfig")
    # As the chart's Deployment runs it: all namespaces, or only the watched one.
    args = ("--namespace", workspace) if release_namespace.endswith("namespaced") else ()
    operator = OperatorProcess(cluster, *args, kubeconfig=kubeconfig).start()
    try:
        cluster.kubectl("create", "secret", "generic", "legacy", "-n", workspace, "--from-literal=uri=mongodb://x/")
        summary = json.dumps({"exitCode": 0, "collections": [{"read": 3, "written": 3, "rejected": 0}]})
        documents = [
            {"apiVersion": "taskplatform.io/v1alpha1", "kind": "TaskPlatform",
             "metadata": {"name": "rbac", "namespace": workspace},
             "spec": {"api": {"replicas": 2, "autoscaling": {"minReplicas": 2, "maxReplicas": 3}}}},
            {"apiVersion": "taskplatform.io/v1alpha1", "kind": "DataMigration",
             "metadata": {"name": "rbac", "namespace": workspace},
             "spec": {"target": "rbac", "sourceSecretRef": {"name": "legacy"},
                      "podAnnotations": {"kwok.x-k8s.io/termination-message": summary}}},
        ]  # fmt: skip
        assert cluster.apply(documents).returncode == 0
        for kind, condition in (("tp", "Ready"), ("dm", "Succeeded")):
            result = cluster.kubectl("wait", f"{kind}/rbac", "-n", workspace, f"--for=condition={condition}",
                                     "--timeout=120s", check=False)  # fmt: skip
            assert result.returncode == 0, (result.stderr, operator.log()[-3000:])
        # Turning autoscaling off deletes the HPA: the delete verb is used, and granted.
        cluster.kubectl("patch", "tp/rbac", "-n", workspace, "--type=merge", "-p",
                        '{"spec": {"api": {"autoscaling": null, "replicas": 1}}}')  # fmt: skip
        wait_for(lambda: cluster.kubectl("get", "hpa/rbac-api", "-n", workspace, check=False).returncode != 0,
                 "the HPA to be deleted")  # fmt: skip
        # A status code, not the digits of a log line's timestamp (".403052" once failed this on wall time).
        assert "Forbidden" not in operator.log() and not FORBIDDEN_STATUS.search(operator.log())
    finally:
        operator.stop()
