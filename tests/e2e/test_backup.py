"""Backups and restores on a cluster whose pods really run (docs/backup.md): a TaskPlatform's tasks dumped by
the operator's Jobs to an S3-compatible server in the cluster (the Versity S3 Gateway, built from the Go
module proxy) and to a volume; the platform deleted with its volume; each dump restored into a new
TaskPlatform whose users log in and find every task identical; retention keeping exactly N; a corrupted dump
refused with the reason, no API ever started on the empty database."""

from __future__ import annotations

import hashlib
import json
import secrets
from typing import Any

import pytest
from e2ecluster import (
    E2E,
    S3_ENDPOINT,
    S3_SECRET,
    S3_SERVICE,
    assert_confined,
    condition,
    platform_manifest,
    s3_server,
)
from kubecluster import wait_for

from taskplatform.operator.dbroles import BACKUP_ROLE, OWNER_ROLE
from taskplatform.operator.models import ConditionType
from taskplatform.operator.specs.backup import BACKUP_COMPONENT as BACKUP
from taskplatform.operator.specs.backup import (
    DUMP_CONTAINER,
    RESTORE_CONTAINER,
    SCHEDULED_LABEL,
    backup_claim_name,
    backup_job_name,
    restore_job_name,
)
from taskplatform.operator.specs.backup import RESTORE_COMPONENT as RESTORE
from taskplatform.operator.specs.names import Names

pytestmark = pytest.mark.e2e

SOURCE = "src"
BUCKET = "backups"
ACCESS_KEY, SECRET_KEY = "taskplatform", secrets.token_urlsafe(24)
PASSWORD = "backup and restore 1"
# Task contents as users write them: RTL, emoji, combining marks, an empty and a large description.
TITLES = ["plain", "עברית ومرحبا", "emoji 🧪🚀", "e\u0301\u0301 combining", "empty description"]


def s3_location() -> dict[str, Any]:
    return {"endpoint": S3_ENDPOINT, "bucket": BUCKET, "tls": False, "credentialsSecretRef": {"name": S3_SECRET}}


def backup(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "taskplatform.io/v1alpha1",
        "kind": "TaskPlatformBackup",
        "metadata": {"name": name},
        "spec": {"platform": SOURCE},
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


def delete_platform(e2e: E2E, name: str) -> None:
    e2e.kubectl("delete", "taskplatform", name, "--wait=true", "--timeout=120s")
    claim = f"persistentvolumeclaim/{Names(name).database_claim}"
    wait_for(lambda: e2e.kubectl("get", claim, check=False).returncode != 0, f"{claim} deleted", 120)


def test_backups_restore_into_new_platforms_and_a_corrupted_dump_restores_nothing(e2e: E2E) -> None:
    e2e.apply(*s3_server(e2e.s3server_image, ACCESS_KEY, SECRET_KEY))
    e2e.kubectl("rollout", "status", f"deployment/{S3_SERVICE}", "--timeout=120s")
    # Until the Service routes (its rules follow the pod's readiness by a moment), the store is unreachable.
    wait_for(lambda: s3_answer(e2e, make_bucket=True).get("objects") == {}, "the bucket, empty", 120)

    e2e.apply(platform_manifest(SOURCE, database={"backup": {"s3": s3_location(), "retention": 2}}))
    wait_platform(e2e, SOURCE)
    emails = seed(e2e, api(SOURCE))
    original = fingerprint(e2e, api(SOURCE), emails)

    # On demand, three times: retention 2 keeps the last two, resources and objects alike.
    for name in ("src-1", "src-2", "src-3"):
        e2e.apply(backup(name))
        done = wait_backup(e2e, name)["status"]
        assert done["location"] == f"s3://{BUCKET}/{SOURCE}/{name}.dump" and done["sizeBytes"] > 0
        assert len(done["sha256"]) == 64
    wait_for(lambda: e2e.kubectl("get", "taskplatformbackup", "src-1", check=False).returncode != 0, "src-1 pruned")
    objects = s3(e2e)
    assert sorted(objects) == [f"{SOURCE}/src-2.dump", f"{SOURCE}/src-2.dump.sha256",
                               f"{SOURCE}/src-3.dump", f"{SOURCE}/src-3.dump.sha256"]  # fmt: skip
    assert objects[f"{SOURCE}/src-3.dump"] == e2e.get("taskplatformbackup", "src-3")["status"]["sizeBytes"]
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
    assert on_volume["location"] == f"pvc://{backup_claim_name(SOURCE)}/{SOURCE}/src-vol.dump"
    sha_s3 = e2e.get("taskplatformbackup", "src-3")["status"]["sha256"]

    delete_platform(e2e, SOURCE)
    assert e2e.kubectl("get", f"pvc/{backup_claim_name(SOURCE)}", check=False).returncode == 0
    assert e2e.kubectl("get", "taskplatformbackup", "src-3", "src-vol", check=False).returncode == 0

    # Restored platforms; the first also backs up on a schedule (every minute), which the operator then runs.
    every_minute = {"backup": {"schedule": "* * * * *", "s3": {**s3_location(), "prefix": "scheduled"}}}
    for restored, source, extra in (("from-s3", "src-3", every_minute), ("from-volume", "src-vol", {})):
        e2e.apply(platform_manifest(restored, database={"restoreFrom": {"backup": source}, **extra}))
        found = wait_platform(e2e, restored)
        assert condition(found, ConditionType.DATABASE_RESTORED)["status"] == "True"  # type: ignore[index]
        assert fingerprint(e2e, api(restored), emails) == original, f"{restored} differs from the original"
        # pg_restore ran as the owner role (the Job's own settings), never as a superuser.
        restorer = e2e.probe_job(restore_job_name(restored), RESTORE_CONTAINER, "-", restored, RESTORE)
        assert_confined(restorer, OWNER_ROLE.name, owns_schema=True)
        if extra:
            scheduled = wait_for(lambda: scheduled_backups(e2e, "from-s3"), "a scheduled backup completed", 180)
            assert scheduled[0]["status"]["location"].startswith(f"s3://{BUCKET}/scheduled/from-s3/from-s3-")
            first = scheduled[0]["metadata"]["name"]
            status = wait_for(lambda: (st := e2e.get("taskplatform", "from-s3")["status"]).get("lastSuccessfulBackup")
                              and st, "from-s3's status naming its backups")  # fmt: skip
            assert status["lastScheduleTime"] and status["lastSuccessfulBackup"].startswith("from-s3-"), status
            assert first.startswith("from-s3-")
        delete_platform(e2e, restored)

    # A dump altered after it was taken: the restore fails with the reason, and no API pod ever starts.
    s3(e2e, corrupt=[f"{SOURCE}/src-3.dump", "tampered/src-3.dump"])
    location = {**s3_location(), "key": "tampered/src-3.dump"}
    e2e.apply(platform_manifest("tampered", database={"restoreFrom": {"s3": location, "sha256": sha_s3}}))

    def degraded() -> dict[str, Any] | None:
        found = condition(e2e.get("taskplatform", "tampered"), ConditionType.DEGRADED)
        return found if found and found["reason"] == "RestoreFailed" else None

    reason = wait_for(degraded, "tampered Degraded with RestoreFailed", 240)
    assert reason["status"] == "True" and "checksum mismatch" in reason["message"], reason
    assert e2e.kubectl("get", f"deployment/{Names('tampered').api}", check=False).returncode != 0
    # The operator acts on the pod's exit; the Job controller records the failure a moment later, not retrying.
    job = restore_job_name("tampered")
    wait_for(lambda: e2e.get("job", job)["status"].get("failed") == 1, f"Job {job} failed once")
    assert e2e.get("job", job)["spec"]["backoffLimit"] == 0
    ready = condition(e2e.get("taskplatform", "tampered"), ConditionType.READY)
    assert ready is not None and ready["status"] == "False"
    delete_platform(e2e, "tampered")
    e2e.kubectl("delete", f"pvc/{backup_claim_name(SOURCE)}", "--wait=false")
