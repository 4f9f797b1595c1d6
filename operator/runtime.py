"""The operator's runtime: the Kubernetes client and one work queue per kind of pass, created by the startup
handler and kept on kopf's `memo` (OperatorMemo), where every handler finds it.

Every trigger for a resource — its own create/update/resume, a change to any child it owns, the periodic resync —
goes through its kind's KeyedRunner (runner.py), so passes over one object never overlap and a burst of child
events collapses into one pass. Each pass runs in a worker thread (the Kubernetes client blocks) and posts the
Events it returns.

A TaskPlatform's spec.auth.secretRef names a Secret the operator does not own, so no watch announces its
change (the Secret watch is selected by the API server to the operator's own; kopf's other filters act only
after receiving every Secret of the namespace). Instead, `secret_refs` re-reads each referenced Secret
every SECRET_REF_POLL_S (one GET of one Secret) and starts the platform's pass when its `jwt-secret` changed.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any, Protocol, TypeVar, cast

import kopf

from taskplatform.operator import backups, metrics
from taskplatform.operator.backups import BackupResult, reconcile_backup
from taskplatform.operator.conditions import Event, EventReason
from taskplatform.operator.datamigration import MigrationResult, reconcile_migration
from taskplatform.operator.jwtkeys import fingerprint
from taskplatform.operator.kinds import (
    DATA_MIGRATION,
    SECRET,
    TASK_PLATFORM,
    TASK_PLATFORM_BACKUP,
    Manifest,
    ResourceKind,
)
from taskplatform.operator.kube import Kube, newest_job_pod
from taskplatform.operator.platform import Result, reconcile_platform
from taskplatform.operator.runner import Key, KeyedRunner
from taskplatform.operator.specs.backup import restore_job_name
from taskplatform.operator.specs.credentials import JWT_SECRET_KEY

RESYNC_INTERVAL_S = 300.0
RECHECK_S = 5.0
SECRET_REF_POLL_S = 10.0
MIGRATION_POLL_S = 5.0


class _PassResult(Protocol):
    @property
    def events(self) -> list[Event]: ...


R = TypeVar("R", bound=_PassResult)


class Runtime:
    """The operator's shared state, created at startup. The reconcile passes are parameters only so that a test
    can put its own in their place."""

    def __init__(
        self,
        kube: Kube,
        *,
        reconcile_platform: Callable[[Kube, Manifest], Result] = reconcile_platform,
        reconcile_migration: Callable[[Kube, Manifest], MigrationResult] = reconcile_migration,
        reconcile_backup: Callable[[Kube, Manifest], BackupResult] = reconcile_backup,
    ):
        self.kube = kube
        self._reconcile_platform = reconcile_platform
        self._reconcile_migration = reconcile_migration
        self._reconcile_backup = reconcile_backup
        self.platforms = KeyedRunner(self.platform_pass, TASK_PLATFORM.kind)
        self.migrations = KeyedRunner(self.migration_pass, DATA_MIGRATION.kind)
        self.backups = KeyedRunner(self.backup_pass, TASK_PLATFORM_BACKUP.kind)
        self.restores = KeyedRunner(self.restore_watch, "Restore")
        # The work queues, by the name the liveness probe shows; each one's depth is a metric (metrics.py).
        self.queues: Mapping[str, KeyedRunner] = MappingProxyType(
            {"platforms": self.platforms, "migrations": self.migrations, "backups": self.backups,
             "restores": self.restores}
        )  # fmt: skip
        for runner in self.queues.values():
            metrics.QUEUE_DEPTH.watch(runner.name, runner)
        # Not a queue of work (every referencing platform always has its next read scheduled): not among them.
        self.secret_refs = KeyedRunner(self.secret_ref_poll, "SecretRef")
        # platform → (referenced Secret, fingerprint of its `jwt-secret` as the platform's last pass saw it)
        self._jwt_sources: dict[Key, tuple[str, str | None]] = {}

    @property
    def jwt_sources(self) -> Mapping[Key, tuple[str, str | None]]:
        """The Secrets the platforms' spec.auth.secretRef name, as their last passes saw them (re-read here)."""
        return MappingProxyType(self._jwt_sources)

    def pending(self) -> dict[str, int]:
        """Passes scheduled and not yet run, per work queue."""
        return {name: runner.pending for name, runner in self.queues.items()}

    async def drain(self) -> None:
        """Cancel everything scheduled (the operator stops)."""
        for runner in (*self.queues.values(), self.secret_refs):
            await runner.drain()

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

    async def platform_pass(self, key: Key) -> float | None:
        result = await self._reconciled(TASK_PLATFORM, self._reconcile_platform, key)
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

    async def migration_pass(self, key: Key) -> float | None:
        result = await self._reconciled(DATA_MIGRATION, self._reconcile_migration, key)
        if result is None or result.finished:
            return None
        return result.retry_after_s or MIGRATION_POLL_S  # progress comes from the pod's log

    async def secret_ref_poll(self, key: Key) -> float | None:
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

    async def restore_watch(self, key: Key) -> float | None:
        """A restore Job's pod, every second while it runs; the platform's pass as soon as its containers have
        exited (the Job controller marks the Job complete a second or two later)."""
        pod = await asyncio.to_thread(newest_job_pod, self.kube, key[0], restore_job_name(key[1]))
        if pod is None:
            return None  # not started, or gone with its platform; the platform's pass arms this again
        if backups.outcome(None, pod) is None:
            return backups.JOB_POLL_S
        self.platforms.enqueue(key)
        return None

    async def backup_pass(self, key: Key) -> float | None:
        result = await self._reconciled(TASK_PLATFORM_BACKUP, self._reconcile_backup, key)
        if result is None:
            return None
        if result.platform is not None:
            self.platforms.enqueue((key[0], result.platform))  # its lastBackup and BackupHealthy change
        return None if result.finished else result.retry_after_s  # else the Job's events bring the next pass


def _post(obj: dict[str, Any], events: list[Event]) -> None:
    for event in events:
        kopf.event(kopf.Body(cast(kopf.RawBody, obj)), type=event.type, reason=event.reason, message=event.message)


class OperatorMemo(kopf.Memo):
    """kopf's memo as this operator fills it: main.py hands it to kopf.run, the startup handler adds the runtime,
    and every handler receives it as `memo` (kopf gives each object a shallow copy: the runtime is shared)."""

    exact_namespaces: bool  # only named namespaces are watched: no cluster-wide scanning (main.py's -n)
    runtime: Runtime  # set by the startup handler

    def __init__(self, *, exact_namespaces: bool = False, runtime: Runtime | None = None) -> None:
        super().__init__(exact_namespaces=exact_namespaces)
        if runtime is not None:
            self.runtime = runtime
