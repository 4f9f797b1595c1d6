"""KeyedRunner: one pass at a time per key, bursts coalesced, failures retried, earlier schedules win."""

import asyncio
import base64
import re
from typing import Any

import kopf
import pytest
from kopf._cogs.structs.references import Resource

from taskplatform.operator import handlers
from taskplatform.operator.handlers import Key, KeyedRunner
from taskplatform.operator.jwtkeys import fingerprint
from taskplatform.operator.kinds import SECRET, ResourceKind
from taskplatform.operator.platform import Result
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


def test_failures_are_retried_until_a_pass_succeeds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(handlers, "RETRY_DELAYS_S", (0.0,))

    async def scenario() -> int:
        attempts = 0

        async def work(key: Key) -> float | None:
            nonlocal attempts
            attempts += 1
            if attempts < 3:
                raise ConnectionResetError("apiserver went away")
            return None

        runner = KeyedRunner(work, "test")
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


def test_a_backup_or_restore_pod_change_runs_its_owners_pass_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """The pods of backup and restore Jobs are watched: their change reaches the backup's pass (by the pod's
    backup label) or the restore's watch (by its platform), without waiting for the next poll."""

    async def scenario() -> dict[str, list[Key]]:
        seen: dict[str, list[Key]] = {"backups": [], "restores": []}

        def recorder(name: str) -> KeyedRunner:
            async def work(key: Key) -> float | None:
                seen[name].append(key)
                return None

            return KeyedRunner(work, name)

        runtime = type("FakeRuntime", (), {"backups": recorder("backups"), "restores": recorder("restores")})()
        monkeypatch.setattr(handlers, "_runtime", runtime)
        backup_pod = {**labels("demo", BACKUP), BACKUP_LABEL: "nightly-1"}
        await handlers.stream_pod_changed(labels=backup_pod, namespace="apps")
        await handlers.stream_pod_changed(labels=labels("restored", RESTORE), namespace="apps")
        await handlers.stream_pod_changed(labels=labels("demo", API), namespace="apps")  # not a stream pod
        await _settle()
        return seen

    assert asyncio.run(scenario()) == {"backups": [("apps", "nightly-1")], "restores": [("apps", "restored")]}


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
    monkeypatch.setattr(handlers, "_runtime", handlers._runtime)  # startup sets it; put back afterwards
    settings = kopf.OperatorSettings()
    asyncio.run(handlers.startup(settings=settings))
    pods = Resource(group="", version="v1", plural="pods")
    (pod_selector,) = settings.watching.label_selectors.collect(pods)
    assert _matches(pod_selector, {**labels("demo", BACKUP), BACKUP_LABEL: "nightly"})
    assert _matches(pod_selector, labels("demo", RESTORE))
    assert not _matches(pod_selector, labels("demo", API))  # API pods change all the time: not wanted
    assert not _matches(pod_selector, {"app.kubernetes.io/component": BACKUP})  # not the operator's
    secrets = Resource(group="", version="v1", plural="secrets")
    (secret_selector,) = settings.watching.label_selectors.collect(secrets)
    assert _matches(secret_selector, labels("demo", "credentials"))
    assert not _matches(secret_selector, {"kubernetes.io/service-account.name": "default"})


def test_a_referenced_secrets_change_starts_its_platforms_pass() -> None:
    """spec.auth.secretRef names a Secret no watch announces: each platform's pass arms a re-read of it every
    SECRET_REF_POLL_S (one GET), which starts the platform's pass when its `jwt-secret` changed."""

    class SecretReads:
        value = "o" * 48

        def get(self, kind: ResourceKind, namespace: str, name: str) -> dict[str, Any]:
            assert (kind, namespace, name) == (SECRET, "ns", "company-jwt")
            return {"data": {"jwt-secret": base64.b64encode(self.value.encode()).decode()}}

    async def scenario() -> None:
        kube = SecretReads()
        runtime = handlers.Runtime(kube)  # type: ignore[arg-type]
        passes: list[Key] = []

        async def platform_pass(key: Key) -> float | None:
            passes.append(key)
            return None

        async def reconciled(kind: str, reconcile: Any, key: Key) -> Result | None:
            return results.pop(0)

        results: list[Result | None] = [Result(jwt_source=("company-jwt", fingerprint("o" * 48))), Result(), None]
        runtime._reconciled = reconciled  # type: ignore[method-assign]
        await runtime._reconcile_platform(KEY)  # the platform's pass records what it saw and arms the poll
        assert runtime.secret_refs.pending == 1
        runtime.platforms = KeyedRunner(platform_pass, "TaskPlatform")

        assert await runtime._poll_secret_ref(KEY) == handlers.SECRET_REF_POLL_S
        await _settle()
        assert passes == []  # unchanged: no pass
        kube.value = "n" * 48
        assert await runtime._poll_secret_ref(KEY) == handlers.SECRET_REF_POLL_S
        await _settle()
        assert passes == [KEY]

        await runtime._reconcile_platform(KEY)  # secretRef removed from the spec: the poll ends
        assert await runtime._poll_secret_ref(KEY) is None
        await runtime._reconcile_platform(KEY)  # the platform is gone
        assert KEY not in runtime._jwt_sources
        for runner in (runtime.platforms, runtime.secret_refs):
            await runner.drain()

    asyncio.run(scenario())
