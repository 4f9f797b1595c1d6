"""Fixtures of the end-to-end suite; the cluster and its helpers are in tests/helpers/e2ecluster.py."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers.e2ecluster import E2E, diagnose, suite_on
from helpers.kubecluster import ExistingCluster, KindCluster, LocalCluster


def e2e_cluster() -> LocalCluster:
    """E2E_KUBECONFIG's cluster (`make e2e` started it); else a kind cluster with two workers, or with
    E2E_CLUSTER=local the local node (scripts/node-up.sh)."""
    kubeconfig = os.environ.get("E2E_KUBECONFIG")
    if kubeconfig:
        return ExistingCluster(Path(kubeconfig))
    choice = os.environ.get("E2E_CLUSTER", "kind")
    if choice not in ("kind", "local"):
        raise ValueError(f"E2E_CLUSTER is kind or local, not {choice!r}")
    return KindCluster() if choice == "kind" else LocalCluster(node="local")


@pytest.fixture(scope="package")  # the cluster goes when tests/e2e ends, not with the session
def e2e() -> Iterator[E2E]:
    with suite_on(e2e_cluster()) as suite:
        yield suite


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    suite = getattr(item, "funcargs", {}).get("e2e")
    if report.failed and isinstance(suite, E2E):
        report.sections.append(("e2e diagnosis", diagnose(suite.cluster, suite.namespace)))
