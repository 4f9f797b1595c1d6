"""Status from observation: conditions computed from children as the API server reports them, no cluster."""

import io
import json
from pathlib import Path
from typing import Any

import pytest

from taskplatform.migration import cli
from taskplatform.migration.contract import SOURCE_URI_ENV, SOURCE_URI_FALLBACK_ENV, ExitCode
from taskplatform.migration.progress import CollectionStats, Reporter
from taskplatform.operator.conditions import ConditionType, Observation, merge, parse
from taskplatform.operator.models import TaskPlatformSpec, TaskPlatformStatus
from taskplatform.operator.status import (
    MigrationCounts,
    PlatformObservation,
    migration_conditions,
    parse_progress,
    parse_termination,
    platform_conditions,
    platform_fields,
    status_changed,
    status_patch,
)

SPEC = TaskPlatformSpec.model_validate({"api": {"image": "api:2", "replicas": 3}})


def statefulset(ready: int, generation: int = 1, observed: int = 1) -> dict[str, Any]:
    return {"metadata": {"generation": generation}, "status": {"readyReplicas": ready, "observedGeneration": observed}}


def job(condition: str | None = None, message: str = "") -> dict[str, Any]:
    conditions = [{"type": condition, "status": "True", "reason": "BackoffLimitExceeded", "message": message}]
    return {"metadata": {"name": "demo-schema-1"}, "status": {"conditions": conditions if condition else []}}


def deployment(image: str = "api:2", replicas: int = 3, updated: int = 3, available: int = 3) -> dict[str, Any]:
    return {
        "metadata": {"generation": 4},
        "spec": {"replicas": replicas, "template": {"spec": {"containers": [{"image": image}]}}},
        "status": {
            "observedGeneration": 4,
            "replicas": updated,
            "updatedReplicas": updated,
            "availableReplicas": available,
            "readyReplicas": available,
        },
    }


def by_type(observations: list[Observation]) -> dict[str, Observation]:
    return {o.type: o for o in observations}


def test_all_parts_serving_is_ready() -> None:
    seen = by_type(platform_conditions(SPEC, PlatformObservation(statefulset(1), job("Complete"), deployment())))
    assert [seen[t].status for t in ("Ready", "DatabaseReady", "ApiReady", "Degraded")] == [
        "True",
        "True",
        "True",
        "False",
    ]


@pytest.mark.parametrize(
    ("observed", "ready_reason", "detail"),
    [
        (PlatformObservation(), "DatabaseNotReady", "creating the PostgreSQL StatefulSet"),
        (PlatformObservation(statefulset(0)), "DatabaseNotReady", "waiting for the PostgreSQL pod"),
        # A status from before the latest spec change does not count.
        (PlatformObservation(statefulset(1, generation=2, observed=1)), "DatabaseNotReady", "waiting"),
        (PlatformObservation(statefulset(1), job()), "ApiNotReady", "schema migration has not finished"),
        (PlatformObservation(statefulset(1), job("Complete")), "ApiNotReady", "creating the API Deployment"),
        (
            PlatformObservation(statefulset(1), job(), deployment(image="api:1")),
            "ApiNotReady",
            "api:2 rolls out once its schema migration finishes",
        ),
        (
            PlatformObservation(statefulset(1), job("Complete"), deployment(updated=2, available=2)),
            "ApiNotReady",
            "2/3 replicas updated",
        ),
    ],
)
def test_what_is_missing_is_the_reason_ready_is_false(
    observed: PlatformObservation, ready_reason: str, detail: str
) -> None:
    ready = by_type(platform_conditions(SPEC, observed))["Ready"]
    assert (ready.status, ready.reason) == ("False", ready_reason)
    assert detail in ready.message


def test_a_failed_schema_migration_degrades_the_platform() -> None:
    observed = PlatformObservation(statefulset(1), job("Failed", "Job has reached the specified backoff limit"))
    seen = by_type(platform_conditions(SPEC, observed))
    assert (seen["Degraded"].status, seen["Degraded"].reason) == ("True", "SchemaMigrationFailed")
    assert "backoff limit" in seen["Degraded"].message
    assert (seen["Ready"].status, seen["Ready"].reason) == ("False", "SchemaMigrationFailed")


def test_a_stuck_rollout_degrades_the_platform() -> None:
    stuck = deployment(updated=1, available=0)
    stuck["status"]["conditions"] = [
        {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded", "message": "too slow"}
    ]
    degraded = by_type(platform_conditions(SPEC, PlatformObservation(statefulset(1), job("Complete"), stuck)))[
        "Degraded"
    ]
    assert (degraded.status, degraded.reason, degraded.message) == ("True", "RolloutStuck", "too slow")


READY, DEGRADED = ConditionType.READY, ConditionType.DEGRADED


def test_transition_time_moves_only_when_the_status_does() -> None:
    first = merge([], [Observation(READY, "False", "Starting")], generation=1, now="t1")
    same = merge(first, [Observation(READY, "False", "StillStarting", "x")], generation=2, now="t2")
    flipped = merge(same, [Observation(READY, "True", "Ready")], generation=2, now="t3")
    assert first[0].last_transition_time == same[0].last_transition_time == "t1"
    assert (same[0].reason, same[0].observed_generation) == ("StillStarting", 2)
    assert flipped[0].last_transition_time == "t3"


def test_merge_is_by_type_and_keeps_the_types_this_pass_did_not_observe() -> None:
    """As meta.SetStatusCondition: another controller's condition, or one of ours not computed this pass, stays."""
    previous = parse(
        [
            {"type": "BackupHealthy", "status": "True", "reason": "Done", "lastTransitionTime": "t0"},
            {"type": "Ready", "status": "True", "reason": "Ready", "lastTransitionTime": "t0"},
            {"type": "Degraded", "status": "False", "reason": "AsExpected", "lastTransitionTime": "t0"},
            {"no": "type"},
        ]
    )
    merged = merge(previous, [Observation(DEGRADED, "True", "Broken", "why")], generation=3, now="t1")
    assert [(c.type, c.status, c.last_transition_time) for c in merged] == [
        ("BackupHealthy", "True", "t0"),
        ("Ready", "True", "t0"),
        ("Degraded", "True", "t1"),
    ]
    appended = merge(merged, [Observation(ConditionType.API_READY, "False", "Creating")], generation=3, now="t2")
    assert [c.type for c in appended] == ["BackupHealthy", "Ready", "Degraded", "ApiReady"]


def test_status_is_written_from_the_typed_model_in_camel_case() -> None:
    fields = platform_fields("demo", "ns", SPEC, deployment())
    fields.observed_generation = 4
    fields.conditions = merge([], [Observation(READY, "True", "Ready")], generation=4, now="t1")
    assert status_patch(fields) == {
        "observedGeneration": 4,
        "conditions": [
            {"type": "Ready", "status": "True", "reason": "Ready", "message": "", "lastTransitionTime": "t1",
             "observedGeneration": 4}
        ],
        "replicas": 3,
        "readyReplicas": 3,
        "selector": "app.kubernetes.io/instance=demo,app.kubernetes.io/component=api",
        "endpoint": "http://demo-api.ns.svc:80",
    }  # fmt: skip
    assert not status_changed(TaskPlatformStatus.model_validate(status_patch(fields)), fields)
    fields.ready_replicas = 2
    assert status_changed(
        TaskPlatformStatus.model_validate(status_patch(fields)), platform_fields("demo", "ns", SPEC, deployment())
    )


def test_progress_is_the_last_json_progress_line() -> None:
    log = "\n".join(
        [
            json.dumps({"event": "progress", "collection": "users", "total": 10, "read": 10, "written": 10}),
            "some warning from a library",
            json.dumps({"event": "progress", "collection": "tasks", "total": 200, "read": 50, "written": 48,
                        "rejected": 2}),
            "{not json",
        ]
    )  # fmt: skip
    counts = parse_progress(log)
    assert counts is not None
    assert (counts.read, counts.written, counts.rejected, counts.progress) == (50, 48, 2, "tasks 25%")
    assert parse_progress("nothing useful\n") is None


def pod(code: int, message: str) -> dict[str, Any]:
    terminated = {"exitCode": code, "message": message}
    return {"status": {"containerStatuses": [{"name": "migrate", "state": {"terminated": terminated}}]}}


def test_final_counts_come_from_the_termination_message() -> None:
    summary = {"exitCode": 0, "collections": [{"read": 10, "written": 9, "rejected": 1},
                                             {"read": 100, "written": 100, "rejected": 0}]}  # fmt: skip
    termination = parse_termination(pod(0, json.dumps(summary)))
    assert termination is not None and termination.counts is not None
    assert (termination.counts.read, termination.counts.written, termination.counts.rejected) == (110, 109, 1)
    assert termination.counts.progress == "100%"


def test_a_crash_before_the_summary_reports_the_last_log_line() -> None:
    termination = parse_termination(pod(1, "Traceback ...\nMemoryError: out of memory"))
    assert termination is not None
    assert (termination.exit_code, termination.counts, termination.error) == (1, None, "MemoryError: out of memory")
    assert parse_termination({"status": {"containerStatuses": [{"state": {"running": {}}}]}}) is None


def test_migration_conditions_follow_the_job() -> None:
    assert by_type(migration_conditions(None, None))["Running"].reason == "Pending"
    assert by_type(migration_conditions(job(), None))["Running"].status == "True"
    assert by_type(migration_conditions(job("Complete"), None))["Succeeded"].status == "True"
    failed = by_type(migration_conditions(job("Failed", "backoff limit"), None))["Failed"]
    assert (failed.status, failed.reason, failed.message) == ("True", "BackoffLimitExceeded", "backoff limit")
    verdict = parse_termination(pod(3, json.dumps({"exitCode": 3, "error": "verification found differences"})))
    failed = by_type(migration_conditions(job("Failed"), verdict))["Failed"]
    assert (failed.reason, failed.message) == ("VerificationFailed", "verification found differences")


@pytest.mark.parametrize(
    ("code", "reason"), [(2, "MigrationError"), (3, "VerificationFailed"), (4, "MigrationInterrupted")]
)
def test_every_exit_code_of_the_migration_has_its_reason(code: int, reason: str) -> None:
    """The CLI's exit codes (migration/contract.py) each say why the DataMigration failed, 4 included: the source or
    the target failed mid-run, and a new DataMigration resumes from the last checkpoint."""
    message = json.dumps({"exitCode": code, "error": f"exit {code}"})
    termination = parse_termination(pod(code, message))
    failed = by_type(migration_conditions(job("Failed", "backoff limit"), termination))["Failed"]
    assert (failed.status, failed.reason, failed.message) == ("True", reason, f"exit {code}")


def test_the_operator_reads_what_the_cli_writes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Both sides of migration/contract.py: the summary file of a real CLI run (refused at once: no source given)
    read as the migration pod's termination message, and the progress and summary lines of the CLI's own Reporter
    read as the running pod's log."""
    monkeypatch.delenv(SOURCE_URI_ENV, raising=False)
    monkeypatch.delenv(SOURCE_URI_FALLBACK_ENV, raising=False)
    summary = tmp_path / "summary"
    assert cli.main(["--summary-file", str(summary)]) == ExitCode.FAILED
    failed = by_type(migration_conditions(job("Failed"), parse_termination(pod(ExitCode.FAILED, summary.read_text()))))
    assert (failed["Failed"].reason, failed["Failed"].message) == (
        "MigrationError",
        f"no source: give --source-uri or set {SOURCE_URI_ENV}",
    )

    log = io.StringIO()
    users = CollectionStats("users", total=10, read=10, written=9, rejected=1)
    tasks = CollectionStats("tasks", total=200, read=50, written=48, rejected=2)
    with Reporter(log, interactive=False) as reporter:
        reporter.update(users, force=True)
        reporter.update(tasks, force=True)
        counts = parse_progress(log.getvalue())
        assert counts == MigrationCounts(50, 48, 2, "tasks 25%")
        reporter.summary([users, tasks], dry_run=False)
    assert parse_progress(log.getvalue()) == MigrationCounts(60, 57, 3, "100%")
