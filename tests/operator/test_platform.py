"""reconcile_platform against an in-memory stand-in for the API server: the pass writes exactly the children
platform_children assembles (the list the builder tests check), in its order, and reports what the server refuses.
(The real API server runs the same pass in test_operator_cluster.py.)"""

from __future__ import annotations

import base64
import copy
from typing import Any

from taskplatform.operator.dbroles import ROLES
from taskplatform.operator.jwtkeys import JwtKeys
from taskplatform.operator.kinds import JOB, SECRET, TASK_PLATFORM, ResourceKind, kind_of
from taskplatform.operator.kube import FIELD_MANAGER, KubeError
from taskplatform.operator.models import TaskPlatformSpec
from taskplatform.operator.pki import KeyPair
from taskplatform.operator.platform import reconcile_platform
from taskplatform.operator.specs.children import Child, PlatformFacts, platform_children
from taskplatform.operator.specs.common import Owner
from taskplatform.operator.specs.credentials import JWT_SECRET_KEY, PASSWORD_KEY, Credentials
from taskplatform.operator.specs.tls import DatabaseTls

Manifest = dict[str, Any]
Write = tuple[str, str, str, Manifest | None]


class ApiServer:
    """Objects by (kind, name) in one namespace; every write recorded as (verb, kind, name, manifest). `refuse`:
    (kind, name) of objects whose create or apply admission refuses (a policy, a quota)."""

    def __init__(self, *objects: Manifest, refuse: frozenset[tuple[str, str]] = frozenset()) -> None:
        self.objects = {(o["kind"], o["metadata"]["name"]): copy.deepcopy(o) for o in objects}
        self.refuse = refuse
        self.writes: list[Write] = []

    def _refused(self, manifest: Manifest) -> None:
        if (manifest["kind"], manifest["metadata"]["name"]) in self.refuse:
            raise KubeError(403, "Forbidden", f"{manifest['kind']} refused by policy no-jobs")

    def get(self, kind: ResourceKind, namespace: str, name: str) -> Manifest | None:
        return copy.deepcopy(self.objects.get((kind.kind, name)))

    def list(self, kind: ResourceKind, namespace: str, selector: str) -> list[Manifest]:
        return [copy.deepcopy(o) for (k, _), o in self.objects.items() if k == kind.kind]

    def apply(self, manifest: Manifest, field_manager: str = FIELD_MANAGER) -> Manifest:
        verb = "apply" if field_manager == FIELD_MANAGER else f"apply as {field_manager}"
        self.writes.append((verb, manifest["kind"], manifest["metadata"]["name"], manifest))
        self._refused(manifest)
        stored = {**copy.deepcopy(manifest), "metadata": {**manifest["metadata"], "resourceVersion": "2"}}
        self.objects[(manifest["kind"], manifest["metadata"]["name"])] = stored
        return copy.deepcopy(stored)

    def create(self, manifest: Manifest) -> Manifest | None:
        self.writes.append(("create", manifest["kind"], manifest["metadata"]["name"], manifest))
        self._refused(manifest)
        key = (manifest["kind"], manifest["metadata"]["name"])
        if key in self.objects:
            return None
        self.objects[key] = {**copy.deepcopy(manifest), "metadata": {**manifest["metadata"], "resourceVersion": "1"}}
        return copy.deepcopy(self.objects[key])

    def delete(self, kind: ResourceKind, namespace: str, name: str, propagation: str = "Background") -> bool:
        self.writes.append(("delete", kind.kind, name, None))
        return self.objects.pop((kind.kind, name), None) is not None

    def merge_patch(self, kind: ResourceKind, namespace: str, name: str, patch: Manifest) -> Manifest:
        raise AssertionError(f"no merge patch expected here: {kind.kind} {name}")

    def patch_status(self, kind: ResourceKind, namespace: str, name: str, status: Manifest) -> None:
        self.objects[(kind.kind, name)]["status"] = {**(self.objects[(kind.kind, name)].get("status") or {}), **status}

    def pod_log_tail(self, namespace: str, name: str, lines: int) -> str:
        return ""


def platform(name: str, spec: Manifest) -> Manifest:
    return {
        "apiVersion": "taskplatform.io/v1alpha1",
        "kind": "TaskPlatform",
        "metadata": {"name": name, "namespace": "apps", "uid": f"uid-{name}", "generation": 1,
                     "creationTimestamp": "2026-03-01T00:00:00Z"},
        "spec": spec,
    }  # fmt: skip


def credentials(server: ApiServer, name: str) -> Credentials:
    """The credentials the pass keeps in the platform's Secret."""
    secret = server.objects[("Secret", f"{name}-credentials")]
    data = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
    roles = {role.key: data[role.password_key] for role in ROLES}
    return Credentials(data[PASSWORD_KEY], data[JWT_SECRET_KEY], JwtKeys.from_secret_data(data), roles)


def tls_digest(server: ApiServer, name: str) -> str:
    """The digest of the database's TLS material the pass keeps in the platform's two Secrets."""
    ca, served = (server.objects[("Secret", f"{name}-db-{suffix}")]["data"] for suffix in ("ca", "tls"))
    text = {key: base64.b64decode(value).decode() for key, value in {**ca, **served}.items()}
    pair = KeyPair(text["tls.crt"], text["tls.key"])
    return DatabaseTls(KeyPair(text["ca.crt"], text["ca.key"]), pair, text["ca.crt"]).digest


def writes(children: list[Child]) -> list[Write]:
    def verb(child: Child) -> str:
        if child.manifest is None:
            return "delete"
        if child.create_once:
            return "create"
        return "apply" if child.field_manager is None else f"apply as {child.field_manager}"

    return [(verb(c), c.kind.kind, c.name, c.manifest) for c in children]


def children_written(server: ApiServer) -> list[Write]:
    """What the pass wrote besides its credentials Secret."""
    return [w for w in server.writes if w[1] != SECRET.kind]


def test_a_pass_writes_exactly_the_assembled_children_in_their_order() -> None:
    spec = {"api": {"replicas": 3}}
    tp = platform("demo", spec)
    server = ApiServer(tp)
    owner, typed = Owner(TASK_PLATFORM, "demo", "apps", "uid-demo"), TaskPlatformSpec.model_validate(spec)

    reconcile_platform(server, tp)  # type: ignore[arg-type]
    digest = tls_digest(server, "demo")
    first = list(
        platform_children(owner, typed, credentials(server, "demo"), PlatformFacts(database_tls_digest=digest))
    )
    assert children_written(server) == writes(first)
    (schema_job_name,) = [c.name for c in first if c.kind is JOB]
    assert [w[:3] for w in children_written(server) if w[1] == JOB.kind] == [
        ("create", "Job", schema_job_name)  # the schema Job, beside the database; no API yet
    ]

    schema_job = server.objects[("Job", schema_job_name)]
    schema_job["status"] = {"conditions": [{"type": "Complete", "status": "True"}]}
    server.writes.clear()
    reconcile_platform(server, server.objects[("TaskPlatform", "demo")])  # type: ignore[arg-type]
    facts = PlatformFacts(schema_job_exists=True, schema_complete=True, database_tls_digest=digest)
    assert children_written(server) == writes(list(platform_children(owner, typed, credentials(server, "demo"), facts)))
    assert ("apply", "Deployment", "demo-api") in [w[:3] for w in server.writes]


def test_a_refused_restore_job_is_reported_not_retried_silently() -> None:
    s3 = {"endpoint": "s3.example.com:9000", "bucket": "tp-backups", "credentialsSecretRef": {"name": "k"}}
    done = {"phase": "Completed", "key": "prod/demo/b1.dump", "sha256": "a" * 64, "sizeBytes": 1000, "s3": s3}
    backup = {"apiVersion": "taskplatform.io/v1alpha1", "kind": "TaskPlatformBackup",
              "metadata": {"name": "b1", "namespace": "apps"}, "spec": {"platform": "demo"},
              "status": done}  # fmt: skip
    tp = platform("new", {"database": {"restoreFrom": {"backup": "b1"}}})
    server = ApiServer(tp, backup, refuse=frozenset({("Job", "new-restore")}))
    result = reconcile_platform(server, tp)  # type: ignore[arg-type]
    assert ("create", "Job", "new-restore") in [w[:3] for w in server.writes]
    assert not [w for w in server.writes if w[1] == JOB.kind and w[2] != "new-restore"]  # no schema Job before it
    conditions = {c["type"]: c for c in server.objects[("TaskPlatform", "new")]["status"]["conditions"]}
    assert conditions["DatabaseRestored"]["reason"] == "ApplyFailed"
    assert "refused by policy no-jobs" in conditions["DatabaseRestored"]["message"]
    assert (conditions["Degraded"]["status"], conditions["Degraded"]["reason"]) == ("True", "ApplyFailed")
    assert "Job new-restore: Job refused by policy no-jobs" in conditions["Degraded"]["message"]
    assert result.recheck_soon and not result.restoring
    assert not [e for e in result.events if e.reason == "RestoreStarted"]


def test_kind_of_names_every_manifest_the_assembly_builds() -> None:
    owner = Owner(TASK_PLATFORM, "demo", "apps", "u")
    creds = Credentials("p", "j" * 48, JwtKeys("j" * 48), {role.key: "r" for role in ROLES})
    for child in platform_children(owner, TaskPlatformSpec(), creds, PlatformFacts(schema_complete=True)):
        if child.manifest is not None:
            assert kind_of(child.manifest) is child.kind
