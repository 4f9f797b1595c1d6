"""Fixtures of the end-to-end suite; the cluster and its helpers are in tests/helpers/e2ecluster.py."""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers.e2ecluster import (
    API_IMAGE,
    CLIENT_POD,
    E2E,
    OPERATOR_IMAGE,
    OPERATOR_NAMESPACE,
    POSTGRES_IMAGE,
    RELEASE,
    RESTRICTED,
    client_pod,
    create_namespace,
    diagnose,
    ferretdb_image,
    helm_binary,
    install_chart,
    s3server_image,
)  # fmt: skip
from helpers.kubecluster import ROOT, ExistingCluster, LocalCluster


@pytest.fixture(scope="package")  # the node stops when tests/e2e ends, not with the session
def e2e() -> Iterator[E2E]:
    kubeconfig = os.environ.get("E2E_KUBECONFIG")
    cluster: LocalCluster = ExistingCluster(Path(kubeconfig)) if kubeconfig else LocalCluster(node="local")
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
            if kubeconfig:  # someone else's cluster: take back what the suite made
                cluster.kubectl("delete", "namespace", namespace, "--wait=false", check=False)
                subprocess.run([helm, "uninstall", RELEASE, "-n", OPERATOR_NAMESPACE, "--kubeconfig",
                                str(cluster.kubeconfig)], capture_output=True, check=False)  # fmt: skip
            cluster.stop()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    suite = getattr(item, "funcargs", {}).get("e2e")
    if report.failed and isinstance(suite, E2E):
        report.sections.append(("e2e diagnosis", diagnose(suite.cluster, suite.namespace)))
