"""Shared fixtures: one throwaway PostgreSQL per test session, migrated with the real Alembic migrations. Every
test is marked with the environments its fixtures start (helpers.environments; pyproject's markers)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from fastapi.testclient import TestClient
from helpers import environments
from helpers.kubecluster import LocalCluster
from helpers.mongoserver import ThrowawayMongo
from helpers.pgcluster import ThrowawayPostgres
from helpers.support import TEST_JWT_SECRET, LiveServer

from taskplatform.api.config import Settings
from taskplatform.api.main import create_app
from taskplatform.api.migrate import upgrade_head

# pytest-timeout's bound for a test on real nodes: the first test of a cluster also creates it (kind's nodes,
# metrics-server, the images loaded, the chart), on two cores shared with the other runs (scripts/run-tests.sh).
NODE_TEST_TIMEOUT_S = 900

TABLES = (
    "users, tasks, token_families, refresh_tokens, revoked_tokens, idempotency_records, "
    "migration_checkpoints, migration_rejects, migration_alterations, login_failures"
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A test that uses a fixture which starts an environment, directly or through other fixtures, is marked with
    that environment, so that `-m "not node"` (or `-m postgres`) selects by what a test needs."""
    for item in items:
        callspec = getattr(item, "callspec", None)
        parameters = set(callspec.params) if callspec is not None else set()  # a parametrize argument is no fixture
        fixtures = [name for name in getattr(item, "fixturenames", ()) if name not in parameters]
        for environment in sorted(environments.environments_of(fixtures)):
            item.add_marker(environment)
        if item.get_closest_marker(environments.NODE) and not item.get_closest_marker("timeout"):
            item.add_marker(pytest.mark.timeout(NODE_TEST_TIMEOUT_S))


def check_marked(item: pytest.Item) -> None:
    unmarked = environments.unmarked(environments.take_started(), (mark.name for mark in item.iter_markers()))
    if unmarked:
        pytest.fail(f"{item.nodeid} started {', '.join(unmarked)} without that marker: list its fixture in "
                    "helpers.environments.FIXTURES or mark the test (pyproject's markers)", pytrace=False)  # fmt: skip


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Iterator[None]:
    """The markers stay true: a test whose fixtures or body start an environment its markers do not name fails."""
    environments.take_started()  # forget what started outside a test
    yield
    check_marked(item)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    yield
    check_marked(item)


@pytest.fixture(scope="session")
def pg() -> Iterator[ThrowawayPostgres]:
    with ThrowawayPostgres() as cluster:
        yield cluster


@pytest.fixture(scope="session")
def mongo() -> Iterator[ThrowawayMongo]:
    """FerretDB, a real MongoDB wire-protocol server; each test uses a database of its own in it."""
    with ThrowawayMongo() as server:
        yield server


@pytest.fixture(scope="session")
def cluster() -> Iterator[LocalCluster]:
    """One local control plane (scripts/cluster-up.sh) for the session, with the CRDs installed."""
    local = LocalCluster().start()
    try:
        local.install_crds()
        yield local
    finally:
        local.stop()


@pytest.fixture(scope="session")
def database_url(pg: ThrowawayPostgres) -> str:
    url = pg.create_database("taskplatform_test")
    upgrade_head(url)
    return url


@pytest.fixture(scope="session")
def settings(database_url: str) -> Settings:
    return Settings(
        environment="test",
        database_url=database_url,
        jwt_secret=TEST_JWT_SECRET,  # type: ignore[arg-type]
        bcrypt_rounds=4,
        db_pool_size=20,
    )


@pytest.fixture(scope="session")
def app(settings: Settings) -> FastAPI:
    return create_app(settings)


@pytest.fixture(scope="session")
def db_engine(database_url: str) -> Iterator[sa.Engine]:
    engine = sa.create_engine(database_url)
    yield engine
    engine.dispose()


@pytest.fixture(autouse=True)
def _clean_tables(request: pytest.FixtureRequest) -> Iterator[None]:
    """Tests that touch the database leave it empty for the next one."""
    uses_db = "database_url" in request.fixturenames
    engine: sa.Engine | None = request.getfixturevalue("db_engine") if uses_db else None
    yield
    if engine is not None:
        with engine.begin() as conn:
            conn.execute(sa.text(f"TRUNCATE {TABLES} RESTART IDENTITY CASCADE"))


@pytest.fixture
def client(app: FastAPI, database_url: str) -> Iterator[TestClient]:
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


@pytest.fixture
def live_server_factory(database_url: str) -> Iterator[Callable[..., LiveServer]]:
    servers: list[LiveServer] = []

    def start(**kwargs: object) -> LiveServer:
        server = LiveServer(database_url, **kwargs)  # type: ignore[arg-type]
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()
