"""One local control plane for the operator tests (scripts/cluster-up.sh), CRDs installed."""

from collections.abc import Iterator
from pathlib import Path

import pytest
from kubecluster import LocalCluster

CRDS = Path(__file__).resolve().parents[2] / "crds"


@pytest.fixture(scope="session")
def cluster() -> Iterator[LocalCluster]:
    local = LocalCluster().start()
    try:
        local.kubectl("apply", "-f", str(CRDS))
        local.kubectl(
            "wait", "--for=condition=Established", "--timeout=60s",
            "crd/taskplatforms.taskplatform.io", "crd/datamigrations.taskplatform.io",
        )  # fmt: skip
        yield local
    finally:
        local.stop()
