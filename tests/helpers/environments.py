"""The environments the tests run against, one pytest marker each (declared in pyproject), and a record of those
a test started, so that tests/conftest.py can check that a test's markers name every environment it started."""

from __future__ import annotations

from collections.abc import Iterable

POSTGRES = "postgres"  # a throwaway PostgreSQL (pgcluster)
MONGO = "mongo"  # FerretDB (mongoserver)
S3 = "s3"  # the S3 server (s3server)
KUBE = "kube"  # a local control plane with kwok nodes (kubecluster)
NODE = "node"  # pods on a real node: the local node (kubecluster, node="local") or E2E_KUBECONFIG's cluster
DOCKER = "docker"  # the images as built, run by Docker (tests/images)

# The fixtures that start each environment: a test that uses one (directly or through another fixture) is marked
# with its environment. A fixture defined in one test module only, under a name that says nothing of what it starts,
# is not listed: that module carries the marker itself (pytestmark), and the check below keeps it true.
FIXTURES = {
    "pg": POSTGRES,
    "mongo": MONGO,
    "s3": S3,
    "cluster": KUBE,
    "e2e": NODE,
    "node": NODE,
    "built_images": DOCKER,
}

_started: list[str] = []


def started(environment: str) -> None:
    """Called by each environment as it starts."""
    _started.append(environment)


def take_started() -> list[str]:
    """The environments started since the last call."""
    taken = list(_started)
    _started.clear()
    return taken


def environments_of(fixturenames: Iterable[str]) -> set[str]:
    return {FIXTURES[name] for name in fixturenames if name in FIXTURES}


def unmarked(started: Iterable[str], markers: Iterable[str]) -> list[str]:
    """The environments a test started that its markers do not name."""
    return sorted(set(started) - set(markers))
