"""The container images, run as users run them (`make images` builds them first; `make test` does).

Containers use the host network: the throwaway PostgreSQL, FerretDB and local control plane of the other
tests listen on loopback, and no bridge or port mapping is needed to reach them.
"""

import base64
import json
import subprocess
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
import sqlalchemy as sa
from helpers.kubecluster import LocalCluster, wait_for
from helpers.mongoserver import ThrowawayMongo
from helpers.pgcluster import free_port
from pymongo import MongoClient

from taskplatform.operator import dbroles
from taskplatform.operator.dbroles import ROLES
from taskplatform.operator.jwtkeys import JwtKeys
from taskplatform.operator.kinds import TASK_PLATFORM
from taskplatform.operator.models import TaskPlatformSpec
from taskplatform.operator.specs.common import Owner
from taskplatform.operator.specs.credentials import Credentials, credentials_secret
from taskplatform.operator.specs.database import database_statefulset

API_IMAGE = "taskplatform-api:0.1.0"
OPERATOR_IMAGE = "taskplatform-operator:0.1.0"
POSTGRES_IMAGE = "taskplatform-postgres:15"
pytestmark = pytest.mark.slow


def docker(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=check, timeout=300)


@pytest.fixture(scope="module", autouse=True)
def built_images() -> None:
    for image in (API_IMAGE, OPERATOR_IMAGE, POSTGRES_IMAGE):
        result = docker("image", "inspect", image, check=False)
        assert result.returncode == 0, f"{image} is not built: run `make images`"


class Container:
    def __init__(self, image: str, *args: str, env: dict[str, str] | None = None, options: tuple[str, ...] = (),
                 network: str = "host"):  # fmt: skip
        self.name = f"tp-test-{uuid.uuid4().hex[:8]}"
        env_args = [f"--env={k}={v}" for k, v in (env or {}).items()]
        docker("run", "-d", "--name", self.name, "--network", network, *env_args, *options, image, *args)

    def logs(self) -> str:
        result = docker("logs", self.name, check=False)
        return result.stdout + result.stderr

    def remove(self) -> None:
        docker("rm", "-f", self.name, check=False)


@pytest.fixture
def containers() -> Iterator[list[Container]]:
    started: list[Container] = []
    yield started
    for container in started:
        print(container.name, container.logs()[-3000:])  # shown when a test failed
        container.remove()


def test_images_run_as_non_root_numeric_users() -> None:
    users = {image: docker("image", "inspect", "-f", "{{.Config.User}}", image).stdout.strip()
             for image in (API_IMAGE, OPERATOR_IMAGE, POSTGRES_IMAGE)}  # fmt: skip
    assert users == {API_IMAGE: "10001:10001", OPERATOR_IMAGE: "10002:10002", POSTGRES_IMAGE: "999:999"}
    # No build tools or caches in the final stage.
    listing = docker("run", "--rm", "--entrypoint", "sh", API_IMAGE, "-c",
                     "ls /opt/taskplatform/bin; ls /wheels 2>&1; command -v gcc pip || true").stdout  # fmt: skip
    assert "taskplatform-api" in listing and "taskplatform-migrate" in listing
    assert "No such file" in listing and "gcc" not in listing and "/pip" not in listing


def test_the_api_image_serves_against_the_postgres_image(containers: list[Container]) -> None:
    db_port, api_port = free_port(), free_port()
    password = "pw-" + uuid.uuid4().hex
    containers.append(
        Container(
            POSTGRES_IMAGE,
            "-p",
            str(db_port),
            env={"POSTGRES_USER": "taskplatform", "POSTGRES_DB": "tasks", "POSTGRES_PASSWORD": password},
        )
    )
    url = f"postgresql://taskplatform:{password}@127.0.0.1:{db_port}/tasks"
    env = {"DATABASE_URL": url, "ENVIRONMENT": "prod", "JWT_SECRET": "k" * 48}
    migrate = docker("run", "--rm", "--network", "host", *[f"--env={k}={v}" for k, v in env.items()],
                     API_IMAGE, "migrate", "--wait", "60", check=False)  # fmt: skip
    assert migrate.returncode == 0, migrate.stderr
    # As Kubernetes runs it: read-only root filesystem, only /tmp writable.
    containers.append(
        Container(API_IMAGE, "serve", "--port", str(api_port), env=env, options=("--read-only", "--tmpfs", "/tmp"))
    )
    base = f"http://127.0.0.1:{api_port}"
    wait_for(lambda: _get(f"{base}/readyz") == 200, "the API container's /readyz")

    with httpx.Client(base_url=base, timeout=10) as client:
        credentials = {"email": "ada@example.com", "password": "correct horse battery"}
        assert client.post("/api/v1/auth/register", json=credentials).status_code == 201
        login = client.post("/api/v1/auth/login", data={"username": credentials["email"],
                                                        "password": credentials["password"]})  # fmt: skip
        assert login.status_code == 200, login.text
        headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
        created = client.post("/api/v1/tasks", json={"title": "ship the images"}, headers=headers)
        assert created.status_code == 201, created.text
        listed = client.get("/api/v1/tasks", headers=headers).json()
        assert [t["title"] for t in listed["items"]] == ["ship the images"]
    assert password not in containers[1].logs()

    # SIGTERM reaches uvicorn as PID 1: it shuts down cleanly, well inside the grace period.
    started = time.monotonic()
    docker("stop", "--time", "20", containers[1].name)
    assert time.monotonic() - started < 15
    assert "Application shutdown complete" in containers[1].logs()


def _get(url: str) -> int:
    try:
        return httpx.get(url, timeout=2).status_code
    except httpx.HTTPError:
        return 0


def test_the_migration_cli_runs_from_the_api_image(
    mongo: ThrowawayMongo, database_url: str, db_engine: sa.Engine
) -> None:
    source = f"images_{uuid.uuid4().hex[:8]}"
    client: MongoClient = MongoClient(mongo.uri)
    db = client[source]
    db.users.insert_one({"_id": "u1", "email": "old@example.com", "password": "$2b$04$" + "a" * 53})
    db.tasks.insert_many([{"_id": i, "owner": "u1", "title": f"legacy {i}", "status": "open"} for i in range(25)])
    result = docker("run", "--rm", "--network", "host", "--read-only", "--tmpfs", "/tmp",
                    "--entrypoint", "taskplatform-migrate", API_IMAGE,
                    "--source-uri", mongo.uri, "--source-db", source, "--target-url", database_url,
                    "--verify", "--progress", "json", "--summary-file", "/tmp/summary", check=False)  # fmt: skip
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    assert {e["event"] for e in events} >= {"progress", "summary", "verify"}
    with db_engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM tasks")).scalar() == 25
    client.drop_database(source)
    client.close()


def test_the_operator_image_reconciles_on_the_local_control_plane(
    cluster: LocalCluster, containers: list[Container], tmp_path: Path
) -> None:
    # The kubeconfig with its CA inline, readable by the image's non-root user.
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(cluster.kubectl("config", "view", "--raw", "--flatten").stdout)
    kubeconfig.chmod(0o644)
    tmp_path.chmod(0o755)
    port, metrics_port = free_port(), free_port()
    containers.append(
        Container(
            OPERATOR_IMAGE,
            "--liveness",
            f"http://127.0.0.1:{port}/healthz",
            "--metrics-port",
            str(metrics_port),
            "--metrics-address",
            "127.0.0.1",
            "-n",
            "images",
            env={"KUBECONFIG": "/config/kubeconfig"},
            options=("--read-only", "--tmpfs", "/tmp", "-v", f"{tmp_path}:/config:ro"),
        )
    )
    wait_for(lambda: _get(f"http://127.0.0.1:{port}/healthz") == 200, "the operator's liveness endpoint")

    cluster.kubectl("create", "namespace", "images")
    platform = {"apiVersion": "taskplatform.io/v1alpha1", "kind": "TaskPlatform",
                "metadata": {"name": "boxed", "namespace": "images"}, "spec": {"api": {"replicas": 1}}}  # fmt: skip
    assert cluster.apply(platform).returncode == 0
    waited = cluster.kubectl("wait", "tp/boxed", "-n", "images", "--for=condition=Ready", "--timeout=120s",
                             check=False)  # fmt: skip
    assert waited.returncode == 0, waited.stderr
    with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5) as response:
        scraped = response.read().decode()
    assert 'taskplatform_operator_reconcile_passes_total{kind="TaskPlatform",outcome="success"}' in scraped

    started = time.monotonic()
    docker("stop", "--time", "20", containers[0].name)
    assert time.monotonic() - started < 15  # kopf handles SIGTERM as PID 1


def test_the_database_takes_a_changed_password_from_the_hook(containers: list[Container]) -> None:
    """The postStart hook the operator puts on the database (builders.py, dbroles.py), run in the postgres image
    with the StatefulSet's environment: the superuser takes the Secret's password, every role exists with its own,
    none is a superuser, and the outcome is in the container's log (the hook writes to PID 1's stderr)."""
    port = free_port()
    containers.append(Container(POSTGRES_IMAGE, "-p", str(port),
                                env={"POSTGRES_USER": "taskplatform", "POSTGRES_DB": "taskplatform",
                                     "POSTGRES_PASSWORD": "first"}))  # fmt: skip
    roles = {role.key: f"{role.key} p@ss'word" for role in ROLES}
    credentials = Credentials("second", "j" * 48, JwtKeys("j" * 48), roles)
    statefulset = database_statefulset(Owner(TASK_PLATFORM, "x", "ns", "uid"), TaskPlatformSpec(), credentials)
    container = statefulset["spec"]["template"]["spec"]["containers"][0]
    hook = container["lifecycle"]["postStart"]["exec"]["command"]
    secret = {k: base64.b64decode(v).decode() for k, v in credentials_secret(Owner(TASK_PLATFORM, "x", "ns", "uid"),
                                                                              credentials)["data"].items()}  # fmt: skip
    env = {e["name"]: e.get("value") or secret[e["valueFrom"]["secretKeyRef"]["key"]] for e in container["env"]}
    env["PGPORT"] = str(port)
    result = docker("exec", *[f"--env={k}={v}" for k, v in env.items()], containers[0].name, *hook, check=False)
    assert result.returncode == 0, result.stderr
    assert dbroles.SYNC_DONE in containers[0].logs()
    logins = {"taskplatform": "second", **{role.name: roles[role.key] for role in ROLES}}
    for user, password in logins.items():
        url = f"postgresql+psycopg2://{user}:{quote(password, safe='')}@127.0.0.1:{port}/taskplatform"
        engine = sa.create_engine(url)
        try:
            with engine.connect() as conn:
                superuser = conn.execute(sa.text("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")).scalar()
                assert superuser is (user == "taskplatform"), user
        finally:
            engine.dispose()
    with pytest.raises(sa.exc.OperationalError):
        sa.create_engine(f"postgresql+psycopg2://taskplatform:first@127.0.0.1:{port}/taskplatform").connect()
    assert not [p for p in logins.values() if p in containers[0].logs()]


def test_the_database_pod_socket_serves_only_the_final_server(containers: list[Container]) -> None:
    """The postStart hook (the roles' sync) waits for a server on the pod's socket and then runs at once. The first
    server it meets there must be the one that stays: the image's temporary initialisation server (before it creates
    the database, and while it stops) listens on a socket of its own. (It shared the pod's socket: a hook that met it
    failed, the roles were never made, and a restore waited two minutes for a login that never worked.) Watched from
    the first moment, every 10 ms: whatever answers first on the socket has the final server's settings."""
    # Its own network namespace (not the host's): both servers on PostgreSQL's port 5432, as in the pod.
    containers.append(Container(POSTGRES_IMAGE, network="bridge",
                                env={"POSTGRES_USER": "taskplatform", "POSTGRES_DB": "taskplatform",
                                     "POSTGRES_PASSWORD": "first"}))  # fmt: skip
    watch = ("until pg_isready -q -h /var/run/postgresql; do sleep 0.01; done; "
             "psql -X -tA -h /var/run/postgresql -U taskplatform -d postgres -c 'SHOW listen_addresses'")  # fmt: skip
    first = docker("exec", containers[0].name, "sh", "-c", watch, check=False)
    assert (first.returncode, first.stdout.strip()) == (0, "*"), first.stderr
