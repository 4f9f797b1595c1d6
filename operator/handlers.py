"""kopf wiring: which events start a reconcile. The reconciles themselves live in platform.py/datamigration.py.

Every trigger for a resource — its own create/update/resume, a change to any child it owns (watched by
label, mapped back through the owner reference), the periodic resync — goes through one `KeyedRunner`, so
reconciles of one object never overlap and a burst of child events collapses into one pass.

A TaskPlatform's spec.auth.secretRef names a Secret the operator does not own, so no watch announces its
change (the Secret watch is selected by the API server to the operator's own; kopf's other filters act only
after receiving every Secret of the namespace). Instead, `Runtime.secret_refs` re-reads each referenced Secret
every SECRET_REF_POLL_S (one GET of one Secret) and starts the platform's pass when its `jwt-secret` changed.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol, TypeVar, cast

import kopf
from kubernetes.config import ConfigException
from pydantic import ValidationError

from taskplatform.operator import backups, conditions, metrics
from taskplatform.operator.backups import reconcile_backup
from taskplatform.operator.conditions import ConditionType, Event, EventReason
from taskplatform.operator.datamigration import reconcile_migration
from taskplatform.operator.jwtkeys import fingerprint
from taskplatform.operator.kinds import (
    DATA_MIGRATION,
    OWNED_KINDS,
    POD,
    SECRET,
    TASK_PLATFORM,
    TASK_PLATFORM_BACKUP,
    Manifest,
    ResourceKind,
    owner_kind,
)
from taskplatform.operator.kube import Kube, KubeError, load_api_client, newest_job_pod
from taskplatform.operator.platform import reconcile_platform
from taskplatform.operator.specs.backup import BACKUP_COMPONENT, BACKUP_LABEL, RESTORE_COMPONENT, restore_job_name
from taskplatform.operator.specs.common import COMPONENT_LABEL, INSTANCE_LABEL, MANAGED_BY
from taskplatform.operator.specs.credentials import JWT_SECRET_KEY

log = logging.getLogger("taskplatform.operator")
Key = tuple[str, str]  # namespace, name


class _PassResult(Protocol):
    @property
    def events(self) -> list[Event]: ...


R = TypeVar("R", bound=_PassResult)
# The pods of backup and restore Jobs, watched so that their containers' exit is acted on at once (the
# Job controller marks the Job complete a second or two later); the poll every JOB_POLL_S stays the fallback.
STREAM_POD_COMPONENTS = (BACKUP_COMPONENT, RESTORE_COMPONENT)
RESYNC_INTERVAL_S = 300.0
RECHECK_S = 5.0
SECRET_REF_POLL_S = 10.0
MIGRATION_POLL_S = 5.0
RETRY_DELAYS_S = (1.0, 2.0, 5.0, 10.0, 30.0, 60.0)


class KeyedRunner:
    """Per-key serialised work with coalescing, backoff and scheduled re-runs (a controller work queue).

    `work` returns the seconds after which the key wants another pass (resync, polling), or None. Scheduling
    lives here rather than in kopf timers: kopf guards timers with a finalizer, and a finalizer would keep
    resources from being deleted while the operator is not running.
    """

    def __init__(self, work: Callable[[Key], Awaitable[float | None]], name: str):
        self._work = work
        self.name = name
        self._locks: defaultdict[Key, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._scheduled: dict[Key, tuple[float, object]] = {}  # the earliest pass still to come, and its token
        self._failures: Counter[Key] = Counter()
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def pending(self) -> int:
        return len(self._scheduled)

    async def run(self, key: Key) -> None:
        """Reconcile now (after any pass in progress) and raise what it raises: for kopf's own retries."""
        async with self._locks[key]:
            await self._pass(key)

    def enqueue(self, key: Key, delay_s: float = 0.0) -> None:
        loop = asyncio.get_running_loop()
        due = loop.time() + delay_s
        if key in self._scheduled and self._scheduled[key][0] <= due:
            return  # an earlier pass is already scheduled; it will see this change too
        token = object()
        self._scheduled[key] = (due, token)  # supersedes any later-scheduled pass
        task = loop.create_task(self._background(key, delay_s, token))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _background(self, key: Key, delay_s: float, token: object) -> None:
        if delay_s:
            await asyncio.sleep(delay_s)
        async with self._locks[key]:
            if self._scheduled.get(key, (0.0, None))[1] is not token:
                return  # superseded by an earlier pass, which scheduled its own follow-up
            del self._scheduled[key]  # changes from here on need another pass
            try:
                await self._pass(key)
            except Exception as exc:  # retried with backoff; kopf handlers see errors through run()
                self._failures[key] += 1
                delay = RETRY_DELAYS_S[min(self._failures[key], len(RETRY_DELAYS_S)) - 1]
                log.warning("%s %s/%s failed (%s); retrying in %.0fs", self.name, *key, exc, delay)
                self.enqueue(key, delay)

    async def _pass(self, key: Key) -> None:
        started = time.monotonic()
        try:
            again = await self._work(key)
        except Exception:
            metrics.PASSES.labels(self.name, "error").inc()
            raise
        finally:
            metrics.PASS_SECONDS.labels(self.name).observe(time.monotonic() - started)
        metrics.PASSES.labels(self.name, "success").inc()
        self._failures.pop(key, None)
        if again is not None:
            self.enqueue(key, again)

    async def drain(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


class Runtime:
    """The operator's shared state, created at startup."""

    def __init__(self, kube: Kube):
        self.kube = kube
        self.platforms = KeyedRunner(self._reconcile_platform, TASK_PLATFORM.kind)
        self.migrations = KeyedRunner(self._reconcile_migration, DATA_MIGRATION.kind)
        self.backups = KeyedRunner(self._reconcile_backup, TASK_PLATFORM_BACKUP.kind)
        self.restores = KeyedRunner(self._watch_restore, "Restore")
        for runner in (self.platforms, self.migrations, self.backups, self.restores):
            metrics.QUEUE_DEPTH.watch(runner.name, runner)
        # Not a queue of work (every referencing platform always has its next read scheduled): not in the metric.
        self.secret_refs = KeyedRunner(self._poll_secret_ref, "SecretRef")
        # platform → (referenced Secret, fingerprint of its `jwt-secret` as the platform's last pass saw it)
        self._jwt_sources: dict[Key, tuple[str, str | None]] = {}

    async def _reconciled(self, kind: ResourceKind, reconcile: Callable[[Kube, Manifest], R], key: Key) -> R | None:
        """Read the resource, run one pass in a worker thread, post its Events; None when it is gone.
        A failed pass becomes a Warning event on the resource, then the error goes on, to be retried."""
        obj = await asyncio.to_thread(self.kube.get, kind, *key)
        if obj is None:
            return None
        try:
            result = await asyncio.to_thread(reconcile, self.kube, obj)
        except Exception as exc:
            _post(obj, [Event("Warning", EventReason.RECONCILE_FAILED, str(exc)[:1000])])
            raise
        _post(obj, result.events)
        return result

    async def _reconcile_platform(self, key: Key) -> float | None:
        result = await self._reconciled(TASK_PLATFORM, reconcile_platform, key)
        if result is None or result.jwt_source is None:
            self._jwt_sources.pop(key, None)  # its poll stops at its next turn
        else:
            self._jwt_sources[key] = result.jwt_source
            self.secret_refs.enqueue(key, SECRET_REF_POLL_S)  # a no-op while its next read is scheduled
        if result is None:
            return None
        if result.restoring:
            self.restores.enqueue(key, backups.JOB_POLL_S)
        # The resync catches what no watched object announces, such as a change to a referenced Secret.
        again = RECHECK_S if result.recheck_soon else RESYNC_INTERVAL_S
        return min(again, result.requeue_after_s) if result.requeue_after_s is not None else again

    async def _reconcile_migration(self, key: Key) -> float | None:
        result = await self._reconciled(DATA_MIGRATION, reconcile_migration, key)
        if result is None or result.finished:
            return None
        return result.retry_after_s or MIGRATION_POLL_S  # progress comes from the pod's log

    async def _poll_secret_ref(self, key: Key) -> float | None:
        """The Secret a platform's spec.auth.secretRef names, read again: a changed `jwt-secret` starts the
        platform's pass now (its rotation's first phase) rather than at the next resync."""
        source = self._jwt_sources.get(key)
        if source is None:
            return None  # the platform is gone or no longer references a Secret
        name, seen = source
        secret = await asyncio.to_thread(self.kube.get, SECRET, key[0], name)
        value = ((secret or {}).get("data") or {}).get(JWT_SECRET_KEY)
        # Never raises on odd bytes (nor shows them in a log line): the platform's pass reports those.
        if (fingerprint(base64.b64decode(value).decode(errors="replace")) if value else None) != seen:
            self.platforms.enqueue(key)
        return SECRET_REF_POLL_S

    async def _watch_restore(self, key: Key) -> float | None:
        """A restore Job's pod, every second while it runs; the platform's pass as soon as its containers have
        exited (the Job controller marks the Job complete a second or two later)."""
        pod = await asyncio.to_thread(newest_job_pod, self.kube, key[0], restore_job_name(key[1]))
        if pod is None:
            return None  # not started, or gone with its platform; the platform's pass arms this again
        if backups.outcome(None, pod) is None:
            return backups.JOB_POLL_S
        self.platforms.enqueue(key)
        return None

    async def _reconcile_backup(self, key: Key) -> float | None:
        result = await self._reconciled(TASK_PLATFORM_BACKUP, reconcile_backup, key)
        if result is None:
            return None
        if result.platform is not None:
            self.platforms.enqueue((key[0], result.platform))  # its lastBackup and BackupHealthy change
        return None if result.finished else result.retry_after_s  # else the Job's events bring the next pass


def _post(obj: dict[str, Any], events: list[Event]) -> None:
    for event in events:
        kopf.event(kopf.Body(cast(kopf.RawBody, obj)), type=event.type, reason=event.reason, message=event.message)


_runtime: Runtime | None = None


def runtime() -> Runtime:
    if _runtime is None:
        raise RuntimeError("the operator has not started")
    return _runtime


@kopf.on.startup()
async def startup(settings: kopf.OperatorSettings, **_: Any) -> None:
    global _runtime
    # kopf's bookkeeping in our own annotation namespace, not in status (status is ours and users').
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix="taskplatform.io")
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix="taskplatform.io", key="last-handled-configuration"
    )
    settings.posting.level = logging.WARNING  # kopf's own per-handler chatter stays in the log
    settings.watching.server_timeout = 300
    # Selected by the API server: the operator receives its own children only, not every Secret or pod.
    managed = ",".join(f"{key}={value}" for key, value in MANAGED_BY.items())
    for kind in OWNED_KINDS:
        settings.watching.label_selectors[kind.api_version, kind.plural] = managed
    settings.watching.label_selectors[POD.api_version, POD.plural] = (
        f"{managed},{COMPONENT_LABEL} in ({','.join(STREAM_POD_COMPONENTS)})"
    )
    if os.environ.get("TASKPLATFORM_EXACT_NAMESPACES") == "1":
        # Only named namespaces: no need to watch the cluster's CRDs and namespaces, nor the permission to.
        settings.scanning.disabled = True
    asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(32, thread_name_prefix="kube"))
    try:
        api_client = load_api_client()
    except ConfigException as exc:  # no service account and no kubeconfig: retrying will not help
        raise kopf.PermanentError(f"no Kubernetes credentials: {exc}") from exc
    _runtime = Runtime(Kube(api_client))


@kopf.on.cleanup()
async def cleanup(**_: Any) -> None:
    if _runtime is not None:
        await _runtime.platforms.drain()
        await _runtime.migrations.drain()
        await _runtime.backups.drain()
        await _runtime.restores.drain()
        await _runtime.secret_refs.drain()


async def _run_for_kopf(runner: KeyedRunner, key: Key, retry: int) -> None:
    try:
        await runner.run(key)
    except ValidationError as exc:
        raise kopf.PermanentError(f"invalid spec: {exc}") from exc
    except KubeError as exc:
        delay = RETRY_DELAYS_S[min(retry, len(RETRY_DELAYS_S) - 1)]
        raise kopf.TemporaryError(f"Kubernetes API: {exc}", delay=delay) from exc
    except OSError as exc:  # connection refused/reset, timeouts
        delay = RETRY_DELAYS_S[min(retry, len(RETRY_DELAYS_S) - 1)]
        raise kopf.TemporaryError(f"Kubernetes API unreachable: {exc}", delay=delay) from exc


@kopf.on.resume(TASK_PLATFORM.api_version, TASK_PLATFORM.plural)
@kopf.on.create(TASK_PLATFORM.api_version, TASK_PLATFORM.plural)
@kopf.on.update(TASK_PLATFORM.api_version, TASK_PLATFORM.plural)
async def platform_changed(namespace: str | None, name: str, retry: int, **_: Any) -> None:
    await _run_for_kopf(runtime().platforms, (namespace or "", name), retry)


@kopf.on.resume(DATA_MIGRATION.api_version, DATA_MIGRATION.plural)
@kopf.on.create(DATA_MIGRATION.api_version, DATA_MIGRATION.plural)
async def migration_created(namespace: str | None, name: str, retry: int, **_: Any) -> None:
    await _run_for_kopf(runtime().migrations, (namespace or "", name), retry)


@kopf.on.resume(TASK_PLATFORM_BACKUP.api_version, TASK_PLATFORM_BACKUP.plural)
@kopf.on.create(TASK_PLATFORM_BACKUP.api_version, TASK_PLATFORM_BACKUP.plural)
async def backup_created(namespace: str | None, name: str, retry: int, **_: Any) -> None:
    await _run_for_kopf(runtime().backups, (namespace or "", name), retry)


@kopf.index(DATA_MIGRATION.api_version, DATA_MIGRATION.plural)
def migrations_by_target(namespace: str | None, name: str, spec: kopf.Spec, **_: Any) -> dict[Key, str]:
    return {(namespace or "", str(spec.get("target", ""))): name}


@kopf.on.event(TASK_PLATFORM.api_version, TASK_PLATFORM.plural)
async def platform_event(namespace: str | None, name: str, status: kopf.Status, **kwargs: Any) -> None:
    """A platform that became Ready releases the DataMigrations waiting for it."""
    waiting = cast(kopf.Index[Key, str], kwargs["migrations_by_target"])  # kopf passes indexes by name
    if conditions.is_true(conditions.parse(status.get("conditions")), ConditionType.READY):
        for migration in waiting.get((namespace or "", name), []):
            runtime().migrations.enqueue((namespace or "", migration))


async def child_changed(body: kopf.Body, namespace: str | None, **_: Any) -> None:
    namespace = namespace or ""
    for ref in body.metadata.get("ownerReferences") or []:
        owner = owner_kind(ref)
        if owner is TASK_PLATFORM:
            runtime().platforms.enqueue((namespace, ref["name"]))
        elif owner is DATA_MIGRATION:
            runtime().migrations.enqueue((namespace, ref["name"]))
        elif owner is TASK_PLATFORM_BACKUP:
            runtime().backups.enqueue((namespace, ref["name"]))


for _kind in OWNED_KINDS:
    kopf.on.event(_kind.api_version, _kind.plural, labels=MANAGED_BY)(child_changed)


@kopf.on.event(POD.api_version, POD.plural, labels=MANAGED_BY)
async def stream_pod_changed(labels: kopf.Labels, namespace: str | None, **_: Any) -> None:
    """A backup or restore pod changed (scheduled, started, its containers exited): that backup's pass, or the
    restore's watch, runs now instead of at its next poll."""
    namespace = namespace or ""
    component = labels.get(COMPONENT_LABEL)
    if component == BACKUP_COMPONENT and BACKUP_LABEL in labels:
        runtime().backups.enqueue((namespace, labels[BACKUP_LABEL]))
    elif component == RESTORE_COMPONENT and INSTANCE_LABEL in labels:
        runtime().restores.enqueue((namespace, labels[INSTANCE_LABEL]))


@kopf.on.probe(id="runners")
def runners(**_: Any) -> dict[str, int]:
    """Shown on the liveness endpoint: pending reconciles (the endpoint answering is the liveness)."""
    if _runtime is None:
        return {}
    return {
        "platforms": _runtime.platforms.pending,
        "migrations": _runtime.migrations.pending,
        "backups": _runtime.backups.pending,
    }
