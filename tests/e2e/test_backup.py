"""Backups and restores on a cluster whose pods really run (docs/backup.md): a TaskPlatform's tasks dumped by
the operator's Jobs to an S3-compatible server in the cluster (the Versity S3 Gateway, built from the Go
module proxy) and to a volume, under keys of their namespace and platform; the platform deleted with its volume;
each dump restored into a new TaskPlatform whose users log in and find every task identical; retention keeping
exactly N; a tampered dump (its first SQL would create a marker table) refused before pg_restore reads a byte of
it: no marker, no API ever started; two namespaces sharing a bucket and prefix keeping separate histories, one of
them enforcing the restricted Pod Security profile."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import uuid
from typing import Any

import pytest
from helpers.e2ecluster import (
    E2E,
    S3_ENDPOINT,
    S3_SECRET,
    S3_SERVICE,
    assert_confined,
    condition,
    create_namespace,
    diagnose,
    platform_manifest,
    s3_server,
)
from helpers.kubecluster import wait_for
from helpers.tampering import MARKER_EXISTS, altered_near_the_end, craft_marker_dump

from taskplatform.migration.dumpstore import CHUNK
from taskplatform.operator.dbroles import BACKUP_ROLE, OWNER_ROLE
from taskplatform.operator.models import ConditionType
from taskplatform.operator.specs.api import API_COMPONENT
from taskplatform.operator.specs.backup import BACKUP_COMPONENT as BACKUP
from taskplatform.operator.specs.backup import (
    DUMP_CONTAINER,
    RESTORE_CONTAINER,
    SCHEDULED_LABEL,
    SCRATCH_VOLUME,
    TRANSFER_CONTAINER,
    backup_claim_name,
    backup_job_name,
    restore_job_name,
    scratch_bytes,
)
from taskplatform.operator.specs.backup import RESTORE_COMPONENT as RESTORE
from taskplatform.operator.specs.names import Names

pytestmark = pytest.mark.node

SOURCE = "src"
BUCKET = "backups"
ACCESS_KEY, SECRET_KEY = "taskplatform", secrets.token_urlsafe(24)
PASSWORD = "backup and restore 1"
# Task contents as users write them: RTL, emoji, combining marks, an empty and a large description.
TITLES = ["plain", "עברית ومرحبا", "emoji 🧪🚀", "e\u0301\u0301 combining", "empty description"]


def s3_location(endpoint: str = S3_ENDPOINT, prefix: str = "") -> dict[str, Any]:
    return {"endpoint": endpoint, "bucket": BUCKET, "prefix": prefix, "tls": False,
            "credentialsSecretRef": {"name": S3_SECRET}}  # fmt: skip


def backup(name: str, platform: str = SOURCE) -> dict[str, Any]:
    return {
        "apiVersion": "taskplatform.io/v1alpha1",
        "kind": "TaskPlatformBackup",
        "metadata": {"name": name},
        "spec": {"platform": platform},
    }


def s3_answer(e2e: E2E, **plan: Any) -> dict[str, Any]:
    return dict(e2e.in_cluster({"s3": {"endpoint": S3_ENDPOINT, "access_key": ACCESS_KEY,
                                       "secret_key": SECRET_KEY, "bucket": BUCKET, **plan}}))  # fmt: skip


def s3(e2e: E2E, **plan: Any) -> dict[str, int]:
    answer = s3_answer(e2e, **plan)
    assert "error" not in answer, answer
    return dict(answer["objects"])


def api(name: str) -> str:
    return f"http://{Names(name).api}"


def wait_platform(e2e: E2E, name: str) -> dict[str, Any]:
    found = e2e.wait_platform_ready(name, timeout_s=300)
    e2e.wait_serving(api(name))
    return found


def wait_backup(e2e: E2E, name: str, timeout_s: float = 240) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        found = e2e.get("taskplatformbackup", name)
        return found if found.get("status", {}).get("phase") in ("Completed", "Failed") else None

    found = wait_for(check, f"TaskPlatformBackup {name} finished", timeout_s)
    assert found["status"]["phase"] == "Completed", found["status"]
    return dict(found)


def seed(e2e: E2E, base: str) -> list[str]:
    emails = [f"owner{i}@example.com" for i in range(2)]
    for email in emails:
        [registered] = e2e.call({"method": "POST", "url": f"{base}/api/v1/auth/register",
                                  "json": {"email": email, "password": PASSWORD}})  # fmt: skip
        assert registered["status"] == 201, registered
        headers = login(e2e, base, email)
        created = e2e.call(*[
            {"method": "POST", "url": f"{base}/api/v1/tasks", "headers": headers,
             "json": {"title": title, "description": "" if i == len(TITLES) - 1 else title * 200,
                      "tags": [title.split()[0]], "priority": "high"}}
            for i, title in enumerate(TITLES)
        ])  # fmt: skip
        assert all(answer["status"] == 201 for answer in created), created
    return emails


def login(e2e: E2E, base: str, email: str) -> dict[str, str]:
    [answer] = e2e.call({"method": "POST", "url": f"{base}/api/v1/auth/login",
                          "form": {"username": email, "password": PASSWORD}})  # fmt: skip
    assert answer["status"] == 200, answer
    return {"Authorization": f"Bearer {answer['body']['access_token']}"}


def fingerprint(e2e: E2E, base: str, emails: list[str]) -> str:
    """Every task of every user, as the API returns it, hashed: equal only if the data is identical."""
    everything = []
    for email in emails:
        [answer] = e2e.call(
            {"method": "GET", "url": f"{base}/api/v1/tasks?limit=100", "headers": login(e2e, base, email)}
        )
        assert answer["status"] == 200, answer
        everything.append(sorted(answer["body"]["items"], key=lambda task: task["id"]))
    assert sum(len(tasks) for tasks in everything) == len(emails) * len(TITLES)
    return hashlib.sha256(json.dumps(everything, sort_keys=True).encode()).hexdigest()


def scheduled_backups(e2e: E2E, name: str) -> list[dict[str, Any]]:
    """The completed backups the schedule started for platform `name`."""
    found = e2e.get("taskplatformbackup", "-l", f"{SCHEDULED_LABEL}=true")["items"]
    return [b for b in found if b["spec"]["platform"] == name and b.get("status", {}).get("phase") == "Completed"]


def superuser_sql(e2e: E2E, platform: str, sql: str) -> str:
    """SQL as the database's bootstrap superuser, on its pod's local socket: what the test sets up, or looks at,
    beside the platform's own roles."""
    result = e2e.kubectl("exec", Names(platform).database_pod, "-c", "postgres", "--", "sh", "-c",
                         f'psql -X -v ON_ERROR_STOP=1 -U "$POSTGRES_USER" -d "$POSTGRES_DB" -tAc "{sql}"')  # fmt: skip
    return result.stdout.strip()


def key_folder(e2e: E2E, platform: str, prefix: str = "") -> str:
    """Where a platform's dumps go in a store: its prefix, namespace, name and uid."""
    uid = e2e.get("taskplatform", platform)["metadata"]["uid"]
    return "/".join(part for part in (prefix, e2e.namespace, platform, uid) if part)


@pytest.fixture(scope="module")
def store(e2e: E2E) -> None:
    """The S3-compatible server, its bucket made."""
    e2e.apply(*s3_server(e2e.s3server_image, ACCESS_KEY, SECRET_KEY))
    e2e.kubectl("rollout", "status", f"deployment/{S3_SERVICE}", "--timeout=120s")
    # Until the Service routes (its rules follow the pod's readiness by a moment), the store is unreachable.
    wait_for(lambda: "objects" in s3_answer(e2e, make_bucket=True), "the bucket", 120)


# Incompressible rows (4 MB, as the owner role creates tables): the source's dumps span several MiB, so that the
# downloader of the operator before verified restores, which fed pg_restore all but the last MiB of a dump before
# comparing its checksum, would have run a crafted dump's first entry.
FILLER_SQL = (
    f"SET ROLE {OWNER_ROLE.name}; CREATE TABLE public.filler AS SELECT decode(string_agg(md5(g::text || "  # noqa: S608
    "random()::text), ''), 'hex') AS data FROM generate_series(1, 250000) g"
)


@pytest.fixture(scope="module")
def source(e2e: E2E, store: None) -> tuple[list[str], str]:
    """The platform backed up: its users' emails and a fingerprint of their tasks. Three backups to S3 with retention
    2 (src-1, src-2, src-3), the platform's own filler table among the data."""
    e2e.apply(platform_manifest(SOURCE, database={"backup": {"s3": s3_location(), "retention": 2}}))
    wait_platform(e2e, SOURCE)
    emails = seed(e2e, api(SOURCE))
    superuser_sql(e2e, SOURCE, FILLER_SQL)
    original = fingerprint(e2e, api(SOURCE), emails)
    for name in ("src-1", "src-2", "src-3"):
        e2e.apply(backup(name))
        wait_backup(e2e, name)
    return emails, original


def delete_platform(e2e: E2E, name: str) -> None:
    e2e.kubectl("delete", "taskplatform", name, "--wait=true", "--timeout=120s")
    claim = f"persistentvolumeclaim/{Names(name).database_claim}"
    wait_for(lambda: e2e.kubectl("get", claim, check=False).returncode != 0, f"{claim} deleted", 120)


# The first test of the suite also starts the node and installs the operator.
@pytest.mark.timeout(900)
def test_backups_restore_into_new_platforms(e2e: E2E, source: tuple[list[str], str]) -> None:
    emails, original = source
    folder = key_folder(e2e, SOURCE)
    for name in ("src-2", "src-3"):  # (src-1 is pruned once src-3 is stored: below)
        done = e2e.get("taskplatformbackup", name)["status"]
        # Under the namespace, the platform's name and its uid.
        assert done["location"] == f"s3://{BUCKET}/{folder}/{name}.dump"
        assert done["sizeBytes"] > 3 << 20 and len(done["sha256"]) == 64
    # Retention 2 keeps the last two, resources and objects alike.
    wait_for(lambda: e2e.kubectl("get", "taskplatformbackup", "src-1", check=False).returncode != 0, "src-1 pruned")
    objects = s3(e2e)
    assert sorted(objects) == [f"{folder}/src-2.dump", f"{folder}/src-2.dump.sha256",
                               f"{folder}/src-3.dump", f"{folder}/src-3.dump.sha256"]  # fmt: skip
    assert objects[f"{folder}/src-3.dump"] == e2e.get("taskplatformbackup", "src-3")["status"]["sizeBytes"]
    status = e2e.get("taskplatform", SOURCE)["status"]
    assert (status["lastBackup"], status["lastSuccessfulBackup"]) == ("src-3", "src-3")
    # pg_dump ran as the backup role (the Job's own settings): it reads everything and may write nothing.
    dumper = e2e.probe_job(backup_job_name("src-3"), DUMP_CONTAINER, "-", SOURCE, BACKUP)
    assert_confined(dumper, BACKUP_ROLE.name, owns_schema=False)
    assert dumper["checks"]["write_tasks"]["refused"], dumper["checks"]["write_tasks"]
    healthy = condition(e2e.get("taskplatform", SOURCE), ConditionType.BACKUP_HEALTHY)
    assert healthy is not None and healthy["status"] == "True", healthy

    # The destination switched to a volume, which outlives the platform.
    e2e.kubectl("patch", "taskplatform", SOURCE, "--type=merge", "-p",
                json.dumps({"spec": {"database": {"backup": {"s3": None, "volume": {"size": "256Mi"}}}}}))  # fmt: skip
    e2e.apply(backup("src-vol"))
    on_volume = wait_backup(e2e, "src-vol")["status"]
    assert on_volume["location"] == f"pvc://{backup_claim_name(SOURCE)}/{folder}/src-vol.dump"

    delete_platform(e2e, SOURCE)
    assert e2e.kubectl("get", f"pvc/{backup_claim_name(SOURCE)}", check=False).returncode == 0
    assert e2e.kubectl("get", "taskplatformbackup", "src-3", "src-vol", check=False).returncode == 0

    # Restored platforms; the first also backs up on a schedule (every minute), which the operator then runs.
    every_minute = {"backup": {"schedule": "* * * * *", "s3": s3_location(prefix="scheduled")}}
    for restored, origin, extra in (("from-s3", "src-3", every_minute), ("from-volume", "src-vol", {})):
        e2e.apply(platform_manifest(restored, database={"restoreFrom": {"backup": origin}, **extra}))
        found = wait_platform(e2e, restored)
        assert condition(found, ConditionType.DATABASE_RESTORED)["status"] == "True"  # type: ignore[index]
        assert fingerprint(e2e, api(restored), emails) == original, f"{restored} differs from the original"
        # The download verified the whole dump (its recorded size and checksum) on the pod's own scratch volume,
        # then pg_restore ran as the owner role (the Job's own settings), never as a superuser.
        recorded = e2e.get("taskplatformbackup", origin)["status"]
        (pod,) = e2e.get("pods", "-l", f"batch.kubernetes.io/job-name={restore_job_name(restored)}")["items"]
        (download,) = pod["status"]["initContainerStatuses"]
        summary = json.loads(download["state"]["terminated"]["message"])
        assert (download["name"], summary["verified"], summary["sha256"], summary["sizeBytes"]) == (
            TRANSFER_CONTAINER, True, recorded["sha256"], recorded["sizeBytes"],
        )  # fmt: skip
        scratch = e2e.get("pvc", f"{pod['metadata']['name']}-{SCRATCH_VOLUME}")
        assert scratch["metadata"]["ownerReferences"][0]["name"] == pod["metadata"]["name"]  # goes with the pod
        requested = scratch["spec"]["resources"]["requests"]["storage"]
        assert requested == f"{scratch_bytes(recorded['sizeBytes']) >> 20}Mi" and scratch["status"]["phase"] == "Bound"
        restorer = e2e.probe_job(restore_job_name(restored), RESTORE_CONTAINER, "-", restored, RESTORE)
        assert_confined(restorer, OWNER_ROLE.name, owns_schema=True)
        if extra:
            scheduled = wait_for(lambda: scheduled_backups(e2e, "from-s3"), "a scheduled backup completed", 180)
            assert scheduled[0]["status"]["location"].startswith(
                f"s3://{BUCKET}/{key_folder(e2e, 'from-s3', 'scheduled')}/from-s3-"
            )
            first = scheduled[0]["metadata"]["name"]
            status = wait_for(lambda: (st := e2e.get("taskplatform", "from-s3")["status"]).get("lastSuccessfulBackup")
                              and st, "from-s3's status naming its backups")  # fmt: skip
            assert status["lastScheduleTime"] and status["lastSuccessfulBackup"].startswith("from-s3-"), status
            assert first.startswith("from-s3-")
        delete_platform(e2e, restored)
    e2e.kubectl("delete", f"pvc/{backup_claim_name(SOURCE)}", "--wait=false")


def test_a_tampered_dump_runs_nothing(e2e: E2E, source: tuple[list[str], str]) -> None:
    """A backup of several MiB whose first SQL an attacker rewrote to leave pg_restore's transaction and create a
    marker table (the checksum recorded is the crafted dump's: the attacker controls the store, not the status),
    then altered near its end: the download refuses it before pg_restore starts, so the marker does not exist, the
    database holds no table, and no API pod ever starts. (The operator before verified restores streamed all but the
    last MiB into pg_restore before comparing checksums: the marker existed.)"""
    key = e2e.get("taskplatformbackup", "src-3")["status"]["key"]
    crafted = craft_marker_dump(base64.b64decode(s3_answer(e2e, get=key)["got"]))
    assert len(crafted) > 3 * CHUNK
    tampered = altered_near_the_end(crafted)
    s3(e2e, put=["tampered/src-3.dump", base64.b64encode(tampered).decode()])
    recorded = hashlib.sha256(crafted).hexdigest()
    source_spec = {"s3": {**s3_location(), "key": "tampered/src-3.dump"}, "sha256": recorded, "size": str(len(crafted))}
    e2e.apply(platform_manifest("tampered", database={"restoreFrom": source_spec}))

    def degraded() -> dict[str, Any] | None:
        found = condition(e2e.get("taskplatform", "tampered"), ConditionType.DEGRADED)
        return found if found and found["reason"] == "RestoreFailed" else None

    reason = wait_for(degraded, "tampered Degraded with RestoreFailed", 240)
    assert reason["status"] == "True" and "checksum mismatch" in reason["message"], reason
    assert recorded in reason["message"], reason
    # The operator acts on the pod's exit; the Job controller records the failure a moment later, not retrying.
    job = restore_job_name("tampered")
    wait_for(lambda: e2e.get("job", job)["status"].get("failed") == 1, f"Job {job} failed once")
    assert e2e.get("job", job)["spec"]["backoffLimit"] == 0
    ready = condition(e2e.get("taskplatform", "tampered"), ConditionType.READY)
    assert ready is not None and ready["status"] == "False"
    # Nothing ran: the database (once it serves) has neither the marker nor any table, and the pod's pg_restore
    # container never started.
    wait_for(lambda: (c := condition(e2e.get("taskplatform", "tampered"), ConditionType.DATABASE_READY))
             and c["status"] == "True", "tampered's database serving")  # fmt: skip
    assert superuser_sql(e2e, "tampered", MARKER_EXISTS) == "f"
    assert superuser_sql(e2e, "tampered", "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'") == "0"
    (pod,) = e2e.get("pods", "-l", f"batch.kubernetes.io/job-name={job}")["items"]
    for container in pod["status"].get("containerStatuses") or []:
        assert container["name"] != RESTORE_CONTAINER or "waiting" in container["state"], container
    assert e2e.kubectl("get", f"deployment/{Names('tampered').api}", check=False).returncode != 0
    assert e2e.pods(API_COMPONENT, "tampered") == []
    delete_platform(e2e, "tampered")


def twin_history(e2e: E2E, other: E2E) -> None:
    """Both namespaces' twin platforms back up to the same bucket and prefix, under the same backup names: twin-a
    in each, then twin-b in the other (retention 1: it prunes its own twin-a)."""
    for suite in (e2e, other):
        suite.apply(backup("twin-a", "twin"))
        wait_backup(suite, "twin-a")
    other.apply(backup("twin-b", "twin"))
    wait_backup(other, "twin-b")
    wait_for(lambda: other.kubectl("get", "taskplatformbackup", "twin-a", check=False).returncode != 0,
             "the other namespace's twin-a pruned")  # fmt: skip


@pytest.mark.timeout(600)
def test_two_namespaces_sharing_a_bucket_keep_separate_histories(e2e: E2E, store: None) -> None:
    """Two platforms of one name in two namespaces, one bucket and prefix, the same backup names: neither overwrites
    nor prunes the other's dumps (the operator before namespaced keys wrote both to `<prefix>/twin/twin-a.dump`, and
    the second namespace's retention deleted the first's). The second namespace enforces the restricted Pod Security
    profile: its backup and restore Jobs (the scratch volume included) run there, and the restore is verified."""
    namespace = f"e2e-{uuid.uuid4().hex[:6]}"
    create_namespace(e2e.cluster, namespace)
    e2e.cluster.kubectl("label", "namespace", namespace, "pod-security.kubernetes.io/enforce=restricted")
    other = E2E(e2e.cluster, namespace, e2e.ferretdb_image, e2e.s3server_image)
    try:
        keys = next(m for m in s3_server(e2e.s3server_image, ACCESS_KEY, SECRET_KEY) if m["kind"] == "Secret")
        other.apply(keys)
        shared = {"retention": 1}
        e2e.apply(platform_manifest("twin", database={"backup": {"s3": s3_location(prefix="shared"), **shared}}))
        cross_namespace = s3_location(f"{S3_SERVICE}.{e2e.namespace}:{S3_ENDPOINT.split(':')[1]}", "shared")
        other.apply(platform_manifest("twin", database={"backup": {"s3": cross_namespace, **shared}}))
        other_api = f"{api('twin')}.{namespace}"
        for suite in (e2e, other):
            suite.wait_platform_ready("twin", timeout_s=300)
        e2e.wait_serving(other_api)
        [registered] = e2e.call({"method": "POST", "url": f"{other_api}/api/v1/auth/register",
                                 "json": {"email": "twin@example.com", "password": PASSWORD}})  # fmt: skip
        assert registered["status"] == 201, registered
        twin_history(e2e, other)

        mine = e2e.get("taskplatformbackup", "twin-a")["status"]
        theirs = other.get("taskplatformbackup", "twin-b")["status"]
        objects = s3(e2e)
        # This namespace's dump is where its backup recorded it, as it was written (its size), and it restores below
        # only if its checksum still holds; the other namespace's history is its own.
        assert objects.get(mine["key"]) == mine["sizeBytes"], (mine, objects)
        assert objects.get(theirs["key"]) == theirs["sizeBytes"], (theirs, objects)
        assert mine["key"].startswith(f"shared/{e2e.namespace}/twin/") and theirs["key"].startswith(
            f"shared/{namespace}/"
        )
        assert [k for k in objects if k.startswith(f"shared/{namespace}/") and k.endswith(".dump")] == [theirs["key"]]
        assert e2e.kubectl("get", "taskplatformbackup", "twin-a", check=False).returncode == 0

        # Restored under the restricted profile, from the other namespace's backup: its user logs in. And this
        # namespace's twin-a, which the other namespace's retention must not have touched, restores too (its
        # recorded checksum holds).
        other.apply(platform_manifest("twin-restored", database={"restoreFrom": {"backup": "twin-b"}}))
        e2e.apply(platform_manifest("twin-mine", database={"restoreFrom": {"backup": "twin-a"}}))
        for suite, name in ((other, "twin-restored"), (e2e, "twin-mine")):
            restored = suite.wait_platform_ready(name, timeout_s=300)
            assert condition(restored, ConditionType.DATABASE_RESTORED)["status"] == "True"  # type: ignore[index]
        restored_api = f"{api('twin-restored')}.{namespace}"
        e2e.wait_serving(restored_api)
        login(e2e, restored_api, "twin@example.com")
    except AssertionError as failure:  # the suite's diagnosis covers its own namespace: add the other's
        raise AssertionError(f"{failure}\n{diagnose(e2e.cluster, namespace)}") from failure
    finally:
        for name in ("twin", "twin-mine"):
            e2e.kubectl("delete", "taskplatform", name, "--wait=false", check=False)
        e2e.cluster.kubectl("delete", "namespace", namespace, "--wait=false", check=False)
