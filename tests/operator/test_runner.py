"""KeyedRunner: one pass at a time per key, bursts coalesced, failures retried, earlier schedules win; and the
runtime on kopf's memo, as the handlers find it."""

import asyncio
import base64
import re
import threading
from typing import Any

import kopf
import pytest

from taskplatform.operator import handlers, main
from taskplatform.operator.jwtkeys import fingerprint
from taskplatform.operator.kinds import SECRET, TASK_PLATFORM, ResourceKind
from taskplatform.operator.platform import Result
from taskplatform.operator.runner import Key, KeyedRunner
from taskplatform.operator.runtime import SECRET_REF_POLL_S, OperatorMemo, Runtime
from taskplatform.operator.specs.api import API_COMPONENT as API
from taskplatform.operator.specs.backup import BACKUP_COMPONENT as BACKUP
from taskplatform.operator.specs.backup import BACKUP_LABEL
from taskplatform.operator.specs.backup import RESTORE_COMPONENT as RESTORE
from taskplatform.operator.specs.common import labels

KEY: Key = ("ns", "demo")


async def _settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


def test_a_burst_during_a_pass_collapses_into_one_more_pass() -> None:
    async def scenario() -> list[int]:
        release = asyncio.Event()
        calls: list[int] = []
        active = 0
        overlaps: list[int] = []

        async def work(key: Key) -> float | None:
            nonlocal active
            active += 1
            overlaps.append(active)
            calls.append(len(calls))
            if len(calls) == 1:
                await release.wait()
            active -= 1
            return None

        runner = KeyedRunner(work, "test")
        runner.enqueue(KEY)
        await _settle()  # the first pass is now blocked inside work()
        for _ in range(5):
            runner.enqueue(KEY)
        release.set()
        await _settle()
        assert max(overlaps) == 1  # never two passes of one key at once
        assert runner.pending == 0
        await runner.drain()
        return calls

    assert asyncio.run(scenario()) == [0, 1]


def test_run_waits_for_the_pass_in_progress_and_raises_its_error() -> None:
    async def scenario() -> None:
        order: list[str] = []
        release = asyncio.Event()

        async def work(key: Key) -> float | None:
            if not order:
                order.append("background")
                await release.wait()
                return None
            order.append("run")
            raise RuntimeError("refused")

        runner = KeyedRunner(work, "test")
        runner.enqueue(KEY)
        await _settle()
        waiting = asyncio.ensure_future(runner.run(KEY))
        await _settle()
        assert not waiting.done()
        release.set()
        with pytest.raises(RuntimeError, match="refused"):
            await waiting
        assert order == ["background", "run"]
        await runner.drain()

    asyncio.run(scenario())


def test_failures_are_retried_until_a_pass_succeeds() -> None:
    async def scenario() -> int:
        attempts = 0

        async def work(key: Key) -> float | None:
            nonlocal attempts
            attempts += 1
            if attempts < 3:
                raise ConnectionResetError("apiserver went away")
            return None

        runner = KeyedRunner(work, "test", retry_delays_s=(0.0,))
        runner.enqueue(KEY)
        for _ in range(10):
            await _settle()
        await runner.drain()
        return attempts

    assert asyncio.run(scenario()) == 3


def test_an_earlier_schedule_supersedes_a_later_one() -> None:
    async def scenario() -> int:
        passes = 0

        async def work(key: Key) -> float | None:
            nonlocal passes
            passes += 1
            return None

        runner = KeyedRunner(work, "test")
        runner.enqueue(KEY, 3600)  # a resync an hour away
        runner.enqueue(KEY)  # a child changed: now
        runner.enqueue(KEY, 7200)  # later than what is scheduled: nothing to do
        await _settle()
        assert runner.pending == 0
        await runner.drain()
        return passes

    assert asyncio.run(scenario()) == 1


class Reads:
    """A stand-in for the API server that has nothing and records what the passes read (from worker threads);
    `expected` reads set `done`."""

    def __init__(self, expected: int) -> None:
        self.reads: list[tuple[str, str, str]] = []
        self.expected = expected
        self.done = threading.Event()

    def _read(self, *read: str) -> None:
        self.reads.append(read)
        if len(self.reads) >= self.expected:
            self.done.set()

    def get(self, kind: ResourceKind, namespace: str, name: str) -> None:
        self._read(kind.kind, namespace, name)

    def list(self, kind: ResourceKind, namespace: str, selector: str) -> list[dict[str, Any]]:
        self._read(kind.kind, namespace, selector)
        return []


def test_a_backup_or_restore_pod_change_runs_its_owners_pass_at_once() -> None:
    """The pods of backup and restore Jobs are watched: their change reaches the backup's pass (by the pod's
    backup label) or the restore's watch (by its platform), without waiting for the next poll."""

    async def scenario() -> list[tuple[str, str, str]]:
        kube = Reads(expected=2)
        memo = OperatorMemo(runtime=Runtime(kube))  # type: ignore[arg-type]
        backup_pod = {**labels("demo", BACKUP), BACKUP_LABEL: "nightly-1"}
        await handlers.stream_pod_changed(labels=backup_pod, namespace="apps", memo=memo)
        await handlers.stream_pod_changed(labels=labels("restored", RESTORE), namespace="apps", memo=memo)
        await handlers.stream_pod_changed(labels=labels("demo", API), namespace="apps", memo=memo)  # not a stream pod
        assert memo.runtime.pending() == {"platforms": 0, "migrations": 0, "backups": 1, "restores": 1}
        assert await asyncio.to_thread(kube.done.wait, 30)
        await memo.runtime.drain()
        return kube.reads

    assert sorted(asyncio.run(scenario())) == [
        ("Pod", "apps", "batch.kubernetes.io/job-name=restored-restore"),  # the restore's watch: its Job's pod
        ("TaskPlatformBackup", "apps", "nightly-1"),  # the backup's pass: the TaskPlatformBackup
    ]


def _matches(selector: str, pod_labels: dict[str, str]) -> bool:
    """A Kubernetes label selector of `key=value` and `key in (a,b)` terms, as the API server applies it."""
    terms = re.findall(r"([\w./-]+)\s*(?:=([\w.-]+)|\s+in\s+\(([^)]*)\))", selector)
    assert terms and all(value or choices for _, value, choices in terms), selector
    return all(
        pod_labels.get(key) in ([value] if value else [c.strip() for c in choices.split(",")])
        for key, value, choices in terms
    )


def test_watches_are_selected_by_the_api_server(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only the operator's own children reach it, and of pods only the backup and restore Jobs' ones: the API
    server filters (kopf's own `labels=` filters only after receiving every object of the kind)."""
    monkeypatch.setattr(handlers, "load_api_client", lambda: None)
    settings, memo = kopf.OperatorSettings(), OperatorMemo()
    asyncio.run(handlers.startup(settings=settings, memo=memo))
    assert isinstance(memo.runtime, Runtime)  # on the memo every handler receives
    assert not settings.scanning.disabled  # cluster-wide: kopf follows CRDs and namespaces
    pods = kopf.Resource(group="", version="v1", plural="pods")
    (pod_selector,) = settings.watching.label_selectors.collect(pods)
    assert _matches(pod_selector, {**labels("demo", BACKUP), BACKUP_LABEL: "nightly"})
    assert _matches(pod_selector, labels("demo", RESTORE))
    assert not _matches(pod_selector, labels("demo", API))  # API pods change all the time: not wanted
    assert not _matches(pod_selector, {"app.kubernetes.io/component": BACKUP})  # not the operator's
    secrets = kopf.Resource(group="", version="v1", plural="secrets")
    (secret_selector,) = settings.watching.label_selectors.collect(secrets)
    assert _matches(secret_selector, labels("demo", "credentials"))
    assert not _matches(secret_selector, {"kubernetes.io/service-account.name": "default"})


def test_a_referenced_secrets_change_starts_its_platforms_pass() -> None:
    """spec.auth.secretRef names a Secret no watch announces: each platform's pass arms a re-read of it every
    SECRET_REF_POLL_S (one GET), which starts the platform's pass when its `jwt-secret` changed."""

    class Cluster:
        value = "o" * 48  # the referenced Secret's `jwt-secret`
        references = True  # the platform's spec.auth.secretRef is set
        exists = True

        def get(self, kind: ResourceKind, namespace: str, name: str) -> dict[str, Any] | None:
            if kind is TASK_PLATFORM:
                return {"metadata": {"name": name, "namespace": namespace}} if self.exists else None
            assert (kind, namespace, name) == (SECRET, "ns", "company-jwt")
            return {"data": {"jwt-secret": base64.b64encode(self.value.encode()).decode()}}

    cluster = Cluster()
    passes: list[str] = []
    second_pass = threading.Event()

    def reconcile_platform(kube: Any, platform: dict[str, Any]) -> Result:
        """The platform's pass as far as the poll cares: the referenced Secret's fingerprint as it read it."""
        passes.append(platform["metadata"]["name"])
        if len(passes) == 2:
            second_pass.set()
        return Result(jwt_source=("company-jwt", fingerprint(cluster.value)) if cluster.references else None)

    async def scenario() -> None:
        runtime = Runtime(cluster, reconcile_platform=reconcile_platform)  # type: ignore[arg-type]
        await runtime.platform_pass(KEY)  # the platform's pass records what it saw and arms the poll
        assert runtime.secret_refs.pending == 1 and passes == ["demo"]

        assert await runtime.secret_ref_poll(KEY) == SECRET_REF_POLL_S
        assert runtime.platforms.pending == 0  # unchanged: no pass
        cluster.value = "n" * 48
        assert await runtime.secret_ref_poll(KEY) == SECRET_REF_POLL_S
        assert runtime.platforms.pending == 1  # changed: the platform's pass, now
        assert await asyncio.to_thread(second_pass.wait, 30)
        assert passes == ["demo", "demo"]

        cluster.references = False
        await runtime.platforms.run(KEY)  # (after the pass in progress) secretRef removed from the spec: the poll ends
        assert await runtime.secret_ref_poll(KEY) is None
        cluster.references, cluster.exists = True, False
        await runtime.platforms.run(KEY)  # the platform is gone
        assert KEY not in runtime.jwt_sources
        await runtime.drain()

    asyncio.run(scenario())


def test_the_liveness_probe_shows_every_work_queue() -> None:
    memo = OperatorMemo(runtime=Runtime(Reads(expected=0)))  # type: ignore[arg-type]
    assert handlers.runners(memo=memo) == {"platforms": 0, "migrations": 0, "backups": 0, "restores": 0}
    assert handlers.runners(memo=OperatorMemo()) == {}  # before the startup handler ran


@pytest.mark.parametrize(
    ("namespaces", "exact"), [([], False), (["-n", "apps", "-n", "team-b"], True), (["-n", "team-*"], False)]
)
def test_main_hands_the_namespaces_to_the_startup_handler_on_the_memo(
    monkeypatch: pytest.MonkeyPatch, namespaces: list[str], exact: bool
) -> None:
    """Named namespaces only: kopf's cluster-wide scanning is turned off at startup (no CRD or namespace watch, nor
    the RBAC for it); with a pattern or none, it stays on. Passed on kopf's memo, not through the environment."""
    ran: dict[str, Any] = {}
    monkeypatch.setattr(kopf, "configure", lambda **_: None)
    monkeypatch.setattr(kopf, "run", lambda **kwargs: ran.update(kwargs))
    monkeypatch.setattr(handlers, "load_api_client", lambda: None)
    monkeypatch.delenv("WATCH_NAMESPACES", raising=False)
    main.main([*namespaces, "--metrics-port", "0"])
    memo = ran["memo"]
    assert isinstance(memo, OperatorMemo) and memo.exact_namespaces is exact
    settings = kopf.OperatorSettings()
    asyncio.run(handlers.startup(settings=settings, memo=memo))
    assert settings.scanning.disabled is exact
