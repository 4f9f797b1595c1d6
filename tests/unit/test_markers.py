"""The environment markers (pyproject; tests/conftest.py applies them from the fixtures a test uses): collected as a
user selects them, each names the tests that start its environment and no others; a test that starts an environment
its markers do not name fails."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import pytest
from helpers import environments

ROOT = Path(__file__).resolve().parents[2]
ENVIRONMENTS = ("postgres", "mongo", "s3", "kube", "node", "docker")
# One module per environment whose tests all start it, and a pure unit module that starts none.
TASKS = "tests/integration/test_tasks.py"  # the API on conftest's PostgreSQL (client -> app -> ... -> pg)
TLS = "tests/integration/test_database_tls.py"  # a PostgreSQL of the module's own (pytestmark)
FIDELITY = "tests/integration/test_migration_fidelity.py"  # FerretDB and PostgreSQL
CRDS = "tests/operator/test_crds_cluster.py"  # the local control plane
NETWORK_POLICY = "tests/node/test_network_policy.py"  # the local node (its `node` fixture)
PLATFORM = "tests/e2e/test_platform.py"  # the e2e suite's node (`e2e`)
IMAGES = "tests/images/test_images.py"  # Docker (`built_images`)
PURE = "tests/unit/test_transform.py"
DUMPSTORE = "tests/integration/test_dumpstore.py"  # the S3 server in some tests, a stub store in others
MODULES = (TASKS, TLS, FIDELITY, CRDS, NETWORK_POLICY, PLATFORM, IMAGES, PURE)


# One collection of these modules, in a child pytest, reporting each test's environment markers.
REPORT_MARKERS = """
import json, sys
import pytest

class Report:
    def pytest_collection_finish(self, session):
        self.markers = {item.nodeid: sorted({m.name for m in item.iter_markers()} & set(sys.argv[1].split(",")))
                        for item in session.items}

report = Report()
code = pytest.main(["--collect-only", "-q", "-p", "no:cacheprovider", *sys.argv[2:]], plugins=[report])
print("MARKERS" + json.dumps(report.markers))
sys.exit(code)
"""


@pytest.fixture(scope="module")
def markers() -> dict[str, list[str]]:
    """Test id -> its environment markers, as collected."""
    result = subprocess.run([sys.executable, "-c", REPORT_MARKERS, ",".join(ENVIRONMENTS), *MODULES, DUMPSTORE],
                            cwd=ROOT, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    found: dict[str, list[str]] = json.loads(result.stdout.rsplit("MARKERS", 1)[1])
    return found


def of_module(markers: dict[str, list[str]], module: str) -> set[tuple[str, ...]]:
    """The distinct marker sets of a module's tests."""
    sets = {tuple(found) for test, found in markers.items() if test.startswith(f"{module}::")}
    assert sets, f"no test collected in {module}"
    return sets


@pytest.mark.parametrize(
    ("module", "expected"),
    [
        (TASKS, {("postgres",)}),
        (TLS, {("postgres",)}),
        (FIDELITY, {("mongo", "postgres")}),
        (CRDS, {("kube",)}),
        (NETWORK_POLICY, {("node",)}),
        (PLATFORM, {("node",)}),
        (PURE, {()}),
    ],
)
def test_each_test_carries_the_environments_it_starts(
    module: str, expected: set[tuple[str, ...]], markers: dict[str, list[str]]
) -> None:
    assert of_module(markers, module) == expected


def test_the_images_tests_carry_docker_and_what_each_runs_beside(markers: dict[str, list[str]]) -> None:
    assert markers[f"{IMAGES}::test_images_run_as_non_root_numeric_users"] == ["docker"]
    assert markers[f"{IMAGES}::test_the_migration_cli_runs_from_the_api_image"] == ["docker", "mongo", "postgres"]
    assert markers[f"{IMAGES}::test_the_operator_image_reconciles_on_the_local_control_plane"] == ["docker", "kube"]


def test_a_test_that_starts_the_s3_server_carries_s3_and_one_with_a_stub_store_does_not(
    markers: dict[str, list[str]],
) -> None:
    with_s3 = f"{DUMPSTORE}::test_a_dump_of_an_older_schema_restores_and_the_schema_migration_upgrades_it"
    stub_only = f"{DUMPSTORE}::test_a_wrong_content_length_fails_the_download"
    assert markers[with_s3] == ["postgres", "s3"]
    assert markers[stub_only] == []


def test_minus_m_selects_by_environment() -> None:
    """As a user selects: `-m postgres`, `-m "not postgres"`."""

    def selected(expression: str) -> set[str]:
        result = subprocess.run(
            [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", "-m", expression, TLS,
             PURE],
            cwd=ROOT, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert result.returncode == 0, result.stdout + result.stderr
        return {line.split("::", 1)[0] for line in result.stdout.splitlines() if "::" in line}

    assert selected("postgres") == {TLS}
    assert selected("not postgres") == {PURE}


def test_every_environment_has_one_declared_marker() -> None:
    declared = {
        line.split(":", 1)[0]
        for line in tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]["markers"]
    }
    assert set(environments.FIXTURES.values()) <= declared
    assert set(ENVIRONMENTS) <= declared


def test_starting_an_environment_without_its_marker_fails_the_test(tmp_path: Path) -> None:
    """tests/conftest.py loaded as a plugin into a run of a few stand-in tests that only record a start."""
    (tmp_path / "test_standin.py").write_text(
        textwrap.dedent(
            """
            import pytest
            from helpers import environments

            @pytest.fixture
            def pg():  # the name conftest's own PostgreSQL has: the test that uses it is marked postgres
                environments.started(environments.POSTGRES)

            @pytest.fixture
            def own_database():  # a module's own fixture, not listed in helpers.environments.FIXTURES
                environments.started(environments.POSTGRES)

            def test_through_a_listed_fixture(pg):
                pass

            @pytest.mark.postgres
            def test_marked_itself():
                environments.started(environments.POSTGRES)

            def test_unmarked_body():
                environments.started(environments.POSTGRES)

            def test_unmarked_fixture(own_database):
                pass

            def test_none():
                pass
            """
        )
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT / "tests")}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rA", "-p", "no:cacheprovider", "-p", "conftest", "test_standin.py"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    outcomes = {
        line.split(" ")[1].split("::")[-1]: line.split(" ")[0]
        for line in result.stdout.splitlines()
        if line.startswith(("PASSED ", "FAILED ", "ERROR "))
    }
    assert outcomes == {
        "test_through_a_listed_fixture": "PASSED",
        "test_marked_itself": "PASSED",
        "test_unmarked_body": "FAILED",
        "test_unmarked_fixture": "ERROR",
        "test_none": "PASSED",
    }, result.stdout + result.stderr
    assert "test_unmarked_body started postgres without that marker" in result.stdout


def test_the_record_of_started_environments_is_taken_once() -> None:
    environments.take_started()
    environments.started(environments.KUBE)
    environments.started(environments.POSTGRES)
    assert environments.take_started() == [environments.KUBE, environments.POSTGRES]
    assert environments.take_started() == []
    assert environments.unmarked([environments.KUBE, environments.POSTGRES], ["postgres", "slow"]) == ["kube"]
    assert environments.environments_of(["client", "app", "pg", "cluster"]) == {"postgres", "kube"}
