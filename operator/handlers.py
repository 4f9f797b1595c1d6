"""kopf wiring, and nothing else: which events start which pass. The passes run in the runtime's work queues
(runtime.py, on kopf's `memo`); the reconciles themselves live in platform.py, datamigration.py and backups.py.

Watched: the operator's three resources; every kind they own (kinds.OWNED_KINDS, selected by the API server to
the operator's own objects, and mapped back to their owner through the owner reference); and the pods of backup
and restore Jobs, whose containers' exit is acted on at once (the Job controller marks the Job complete a second
or two later; the poll every backups.JOB_POLL_S stays the fallback).
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any, cast

import kopf
from kubernetes.config import ConfigException
from pydantic import ValidationError

from taskplatform.operator import conditions
from taskplatform.operator.conditions import ConditionType
from taskplatform.operator.kinds import (
    DATA_MIGRATION,
    OWNED_KINDS,
    POD,
    TASK_PLATFORM,
    TASK_PLATFORM_BACKUP,
    owner_kind,
)
from taskplatform.operator.kube import Kube, KubeError, load_api_client
from taskplatform.operator.runner import RETRY_DELAYS_S, Key, KeyedRunner
from taskplatform.operator.runtime import OperatorMemo, Runtime
from taskplatform.operator.specs.backup import BACKUP_COMPONENT, BACKUP_LABEL, RESTORE_COMPONENT
from taskplatform.operator.specs.common import COMPONENT_LABEL, INSTANCE_LABEL, MANAGED_BY

STREAM_POD_COMPONENTS = (BACKUP_COMPONENT, RESTORE_COMPONENT)


@kopf.on.startup()
async def startup(settings: kopf.OperatorSettings, memo: OperatorMemo, **_: Any) -> None:
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
    if memo.exact_namespaces:
        # Only named namespaces: no need to watch the cluster's CRDs and namespaces, nor the permission to.
        settings.scanning.disabled = True
    asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(32, thread_name_prefix="kube"))
    try:
        api_client = load_api_client()
    except ConfigException as exc:  # no service account and no kubeconfig: retrying will not help
        raise kopf.PermanentError(f"no Kubernetes credentials: {exc}") from exc
    memo.runtime = Runtime(Kube(api_client))


@kopf.on.cleanup()
async def cleanup(memo: OperatorMemo, **_: Any) -> None:
    runtime = memo.get("runtime")
    if isinstance(runtime, Runtime):
        await runtime.drain()


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
async def platform_changed(namespace: str | None, name: str, retry: int, memo: OperatorMemo, **_: Any) -> None:
    await _run_for_kopf(memo.runtime.platforms, (namespace or "", name), retry)


@kopf.on.resume(DATA_MIGRATION.api_version, DATA_MIGRATION.plural)
@kopf.on.create(DATA_MIGRATION.api_version, DATA_MIGRATION.plural)
async def migration_created(namespace: str | None, name: str, retry: int, memo: OperatorMemo, **_: Any) -> None:
    await _run_for_kopf(memo.runtime.migrations, (namespace or "", name), retry)


@kopf.on.resume(TASK_PLATFORM_BACKUP.api_version, TASK_PLATFORM_BACKUP.plural)
@kopf.on.create(TASK_PLATFORM_BACKUP.api_version, TASK_PLATFORM_BACKUP.plural)
async def backup_created(namespace: str | None, name: str, retry: int, memo: OperatorMemo, **_: Any) -> None:
    await _run_for_kopf(memo.runtime.backups, (namespace or "", name), retry)


@kopf.index(DATA_MIGRATION.api_version, DATA_MIGRATION.plural)
def migrations_by_target(namespace: str | None, name: str, spec: kopf.Spec, **_: Any) -> dict[Key, str]:
    return {(namespace or "", str(spec.get("target", ""))): name}


@kopf.on.event(TASK_PLATFORM.api_version, TASK_PLATFORM.plural)
async def platform_event(
    namespace: str | None, name: str, status: kopf.Status, memo: OperatorMemo, **kwargs: Any
) -> None:
    """A platform that became Ready releases the DataMigrations waiting for it."""
    waiting = cast(kopf.Index[Key, str], kwargs["migrations_by_target"])  # kopf passes indexes by name
    if conditions.is_true(conditions.parse(status.get("conditions")), ConditionType.READY):
        for migration in waiting.get((namespace or "", name), []):
            memo.runtime.migrations.enqueue((namespace or "", migration))


async def child_changed(body: kopf.Body, namespace: str | None, memo: OperatorMemo, **_: Any) -> None:
    namespace = namespace or ""
    runners = {TASK_PLATFORM: memo.runtime.platforms, DATA_MIGRATION: memo.runtime.migrations,
               TASK_PLATFORM_BACKUP: memo.runtime.backups}  # fmt: skip
    for ref in body.metadata.get("ownerReferences") or []:
        owner = owner_kind(ref)
        if owner is not None and owner in runners:
            runners[owner].enqueue((namespace, ref["name"]))


for _kind in OWNED_KINDS:
    kopf.on.event(_kind.api_version, _kind.plural, labels=MANAGED_BY)(child_changed)


@kopf.on.event(POD.api_version, POD.plural, labels=MANAGED_BY)
async def stream_pod_changed(labels: kopf.Labels, namespace: str | None, memo: OperatorMemo, **_: Any) -> None:
    """A backup or restore pod changed (scheduled, started, its containers exited): that backup's pass, or the
    restore's watch, runs now instead of at its next poll."""
    namespace = namespace or ""
    component = labels.get(COMPONENT_LABEL)
    if component == BACKUP_COMPONENT and BACKUP_LABEL in labels:
        memo.runtime.backups.enqueue((namespace, labels[BACKUP_LABEL]))
    elif component == RESTORE_COMPONENT and INSTANCE_LABEL in labels:
        memo.runtime.restores.enqueue((namespace, labels[INSTANCE_LABEL]))


@kopf.on.probe(id="runners")
def runners(memo: OperatorMemo, **_: Any) -> dict[str, int]:
    """Shown on the liveness endpoint: pending passes per work queue (the endpoint answering is the liveness)."""
    runtime = memo.get("runtime")
    return runtime.pending() if isinstance(runtime, Runtime) else {}
