"""Reconcile one TaskPlatform: apply its children in order, then write what is observed into its status.

One code path for create, update, resume, a child's change and the periodic resync: it reads the current
state, applies the desired state (server-side apply, so a deleted or hand-edited child is restored), and
reports. The children and their order are specs/children.py's (platform_children), from what this pass
observed (PlatformFacts): credentials → database → restore → schema migration (started beside the database; it
waits for it) → API. A new API image rolls out only after its schema migration Job has completed; until then the
Deployment keeps its current image while every other change still applies. A new JWT key (in the referenced
Secret, or the credentials Secret's `jwt-secret`) reaches the API pods in the phases of jwtkeys.py, one per pass
that finds the previous phase rolled out.

RBAC this needs (namespaced kinds, cluster-wide or per watched namespace): secrets get/list/watch/create/patch
(get: also the referenced JWT Secret, which runtime.py re-reads every SECRET_REF_POLL_S);
services, statefulsets, deployments, poddisruptionbudgets, horizontalpodautoscalers, networkpolicies
get/list/watch/create/patch/delete
(server-side apply creating an object needs create);
jobs get/list/watch/create; persistentvolumeclaims get/patch (growing the volume, operator/storage.py);
taskplatforms get/list/watch/patch, taskplatforms/status patch; events create.

A child the API server refuses (an invalid or forbidden object) is reported in the status (Degraded, naming
the child and the cause) and the other children are still reconciled; status.observedGeneration then stays at
the last generation applied in full.
"""

from __future__ import annotations

import base64
import secrets
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from taskplatform.api.limits import JWT_SECRET_MIN
from taskplatform.operator import backups, certificates, conditions, dbroles, jwtkeys, restore, status, storage
from taskplatform.operator.conditions import (
    ConditionType,
    Event,
    EventReason,
    Observation,
    Reason,
    newly_true,
    now_rfc3339,
)
from taskplatform.operator.jwtkeys import JwtKeys
from taskplatform.operator.kinds import (
    DEPLOYMENT,
    JOB,
    SECRET,
    STATEFUL_SET,
    TASK_PLATFORM,
    Manifest,
)
from taskplatform.operator.kube import Kube, KubeError, owns_field
from taskplatform.operator.models import TaskPlatformSpec, TaskPlatformStatus, connections_needed
from taskplatform.operator.specs import api, schema
from taskplatform.operator.specs import credentials as credentials_spec
from taskplatform.operator.specs.backup import restore_job_name
from taskplatform.operator.specs.children import Child, PlatformFacts, platform_children
from taskplatform.operator.specs.common import Owner
from taskplatform.operator.specs.credentials import (
    JWT_SECRET_KEY,
    LEGACY_DATABASE_URL_KEY,
    PASSWORD_KEY,
    Credentials,
)
from taskplatform.operator.specs.names import Names


@dataclass(slots=True)
class Result:
    events: list[Event] = field(default_factory=list)
    # Degraded by something no watched object announces (a referenced Secret): look again soon.
    recheck_soon: bool = False
    requeue_after_s: float | None = None  # the next scheduled backup is due then
    # The restore Job running: its pod is watched closely (runtime.py), the whole pass not repeated meanwhile.
    restoring: bool = False
    # spec.auth.secretRef's name and the fingerprint of its `jwt-secret` as this pass saw it (None: unreadable):
    # runtime.py re-reads that Secret, which no watch announces, and starts a pass when it changed.
    jwt_source: tuple[str, str | None] | None = None


def _sooner(a: float | None, b: float | None) -> float | None:
    return b if a is None else a if b is None else min(a, b)


def generate_credentials() -> Credentials:
    # URL-safe, though a password a user puts in the Secret may hold anything: the URLs percent-encode it and
    # the database pod reads it into a psql variable (dbroles.py).
    roles = {role.key: secrets.token_urlsafe(24) for role in dbroles.ROLES}
    return Credentials(secrets.token_urlsafe(24), secrets.token_urlsafe(48), role_passwords=roles)


def _decoded(secret: Manifest | None, key: str) -> str | None:
    value = ((secret or {}).get("data") or {}).get(key)
    return base64.b64decode(value).decode() if value else None


_CREDENTIAL_KEYS = (
    PASSWORD_KEY,
    *(role.password_key for role in dbroles.ROLES),
    LEGACY_DATABASE_URL_KEY,
    JWT_SECRET_KEY,
    jwtkeys.SIGNING_KEY,
    jwtkeys.ADDITIONAL_KEY,
    jwtkeys.ROTATION_KEY,
)


def _desired_key(
    kube: Kube, owner: Owner, spec: TaskPlatformSpec, own_key: str, result: Result
) -> tuple[str | None, Observation | None]:
    """The key that should sign: the referenced Secret's `jwt-secret`, else the credentials Secret's. None, with
    the reason, when it cannot be used; the key in effect then goes on signing."""
    key: str | None
    if spec.auth.secret_ref is None:
        source, key = Names(owner.name).secret, own_key
        reason = Reason.JWT_KEY_INVALID
    else:
        source = spec.auth.secret_ref.name
        key = _decoded(kube.get(SECRET, owner.namespace, source), JWT_SECRET_KEY)
        result.jwt_source = (source, jwtkeys.fingerprint(key) if key else None)
        reason = Reason.SECRET_REF_INVALID
    if not key:
        return None, Observation(
            ConditionType.DEGRADED, "True", reason, f"{SECRET.named(source)} with a `jwt-secret` key not found"
        )
    if len(key) < JWT_SECRET_MIN:
        return None, Observation(
            ConditionType.DEGRADED,
            "True",
            reason,
            f"{SECRET.named(source)}: `jwt-secret` has fewer than {JWT_SECRET_MIN} characters, which the API refuses; "
            "the key in effect goes on signing",
        )
    return key, None


def ensure_credentials(
    kube: Kube,
    owner: Owner,
    spec: TaskPlatformSpec,
    deployment: Manifest | None,
    observed: status.PlatformObservation,
    result: Result,
    now: datetime,
) -> Credentials:
    """The Secret's credentials, with the JWT keys the API pods should have now (jwtkeys.plan, from the
    desired key, the Secret's state and whether `deployment` has rolled that state out). The passwords and
    `jwt-secret` are generated only when missing (a Secret from an operator before the database roles gains one
    password per role, its superuser's kept); the URLs follow the passwords; a `jwt-secret` removed by hand comes
    back as the key that signs (not as a new key, which would start a rotation). Written back only when something
    changed, with the Secret's resourceVersion as a precondition: an edit made meanwhile fails the write, and the
    retried pass reads it. The superuser's URL such a Secret holds goes once the API pods no longer use it."""
    name = Names(owner.name).secret
    for _ in range(3):  # the Secret created, or deleted, by someone else between the read and the write
        existing = kube.get(SECRET, owner.namespace, name)
        data = {key: value for key in _CREDENTIAL_KEYS if (value := _decoded(existing, key)) is not None}
        current = JwtKeys.from_secret_data(data)
        password = data.get(PASSWORD_KEY)
        jwt_secret = data.get(JWT_SECRET_KEY) or (current.signing if current else None)
        fresh = generate_credentials()
        missing_roles = [role for role in dbroles.ROLES if role.password_key not in data]
        role_passwords = {role.key: data.get(role.password_key) or fresh.password(role) for role in dbroles.ROLES}
        credentials = Credentials(
            password or fresh.db_password, jwt_secret or fresh.jwt_secret, current, role_passwords
        )

        desired, problem = _desired_key(kube, owner, spec, credentials.jwt_secret, result)
        key_plan = None
        if desired is not None:
            rolled_out = current is None or status.rolled_out(deployment, credentials.api_digest)
            key_plan = jwtkeys.plan(desired, current, rolled_out, now, api.max_token_ttl_s(spec))
            credentials = replace(credentials, jwt_keys=key_plan.keys)

        # The superuser's URL of a Secret from before the roles: carried while an API pod may still start on it.
        legacy_url = data.get(LEGACY_DATABASE_URL_KEY)
        if legacy_url is not None and status.rolled_out(deployment, credentials.api_digest):
            legacy_url = None
        manifest = credentials_spec.credentials_secret(owner, credentials, legacy_url)
        stored = (existing or {}).get("data") or {}
        if existing is None:
            if kube.create(manifest) is None:
                continue  # created meanwhile by another reconcile: read that one
            result.events.append(Event("Normal", EventReason.CREDENTIALS_GENERATED, f"generated {SECRET.named(name)}"))
        elif any(stored.get(key) != value for key, value in manifest["data"].items()):
            manifest["metadata"]["resourceVersion"] = existing["metadata"]["resourceVersion"]
            kube.apply(manifest)
            if password is not None and len(missing_roles) == len(dbroles.ROLES):
                # Made by an operator from before the database roles: the pods move to their roles now.
                message = f"{SECRET.named(name)}: a password and URL for each database role"
                result.events.append(Event("Normal", EventReason.DATABASE_ROLES_ADDED, message))
            elif password is None or JWT_SECRET_KEY not in data or missing_roles:
                # Someone removed a key: put back what is missing, keep what is there.
                result.events.append(
                    Event("Warning", EventReason.CREDENTIALS_REPAIRED, f"{SECRET.named(name)} was missing keys")
                )
        if LEGACY_DATABASE_URL_KEY in data and legacy_url is None:
            # No API pod uses it any more (the schema and migration Jobs never restart onto it). A merge patch: the
            # key may be held by the field manager of the Secret's creation, which an apply leaves alone.
            kube.merge_patch(SECRET, owner.namespace, name, {"data": {LEGACY_DATABASE_URL_KEY: None}})
            message = f"{SECRET.named(name)}: the superuser's {LEGACY_DATABASE_URL_KEY} removed"
            result.events.append(Event("Normal", EventReason.SUPERUSER_URL_REMOVED, message))
        if key_plan is not None:
            result.events.extend(key_plan.events)
            result.requeue_after_s = _sooner(result.requeue_after_s, key_plan.recheck_after_s)
        if problem is not None:
            observed.problems.append(problem)
            result.recheck_soon = True
        observed.jwt = jwtkeys.condition(credentials.jwt_keys if desired is not None else None)
        return credentials
    raise RuntimeError(f"{SECRET.named(name)} kept changing while being created")


def _write(
    kube: Kube, namespace: str, child: Child, observed: status.PlatformObservation
) -> tuple[Manifest | None, str | None]:
    """Write one child: what the API server returned (None for a create-once child that already exists, and for a
    delete), and its refusal, if it refused. A refusal (an invalid or forbidden object) is reported as Degraded,
    naming the child and the cause, and the pass goes on: independent children are not held hostage by one that
    fails. Transient trouble (conflicts, throttling, server errors) raises, to be retried, as does any refusal of
    a child the pass cannot go on without."""
    try:
        if child.manifest is None:
            kube.delete(child.kind, namespace, child.name)
            return None, None
        if child.create_once:
            return kube.create(child.manifest), None
        if child.field_manager is not None:
            return kube.apply(child.manifest, field_manager=child.field_manager), None
        return kube.apply(child.manifest), None
    except KubeError as exc:
        if exc.transient or child.required:
            raise
        refusal = f"{child.description}: {exc.message}"
        observed.problems.append(Observation(ConditionType.DEGRADED, "True", Reason.APPLY_FAILED, refusal))
        return None, refusal


def _facts(
    plan: storage.StoragePlan,
    restoring: restore.RestorePlan | None,
    schema_job: Manifest | None,
    deployment: Manifest | None,
    database_tls_digest: str,
) -> PlatformFacts:
    """What the children depend on, as this pass found it."""
    replicas_owned = deployment is not None and owns_field(deployment, "spec", "replicas")
    return PlatformFacts(
        volume_size=plan.volume_size,
        database_tls_digest=database_tls_digest,
        statefulset_held=not plan.apply_statefulset,
        restore=restoring.dump if restoring is not None else None,
        restored=restoring.restored if restoring is not None else True,
        schema_job_exists=schema_job is not None,
        schema_complete=status.job_outcome(schema_job) == "Complete",
        deployed_image=status.deployment_image(deployment) if deployment is not None else None,
        operator_owned_replicas=deployment["spec"].get("replicas") if deployment and replicas_owned else None,
    )


def reconcile_platform(kube: Kube, platform: Manifest) -> Result:
    meta = platform["metadata"]
    if meta.get("deletionTimestamp"):
        return Result()  # children go with it (owner references); the volume per its retention policy
    namespace, name = meta["namespace"], meta["name"]
    spec = TaskPlatformSpec.model_validate(platform.get("spec") or {})
    owner = Owner(TASK_PLATFORM, name, namespace, meta["uid"])
    names = Names(name)
    result = Result()
    observed = status.PlatformObservation()

    # The API Deployment as it is: whether it has rolled out the JWT keys in effect decides the next phase.
    current = kube.get(DEPLOYMENT, namespace, names.api)
    # Every other child depends on the credentials and the database's TLS material: failures raise.
    now = datetime.now(UTC)
    credentials = ensure_credentials(kube, owner, spec, current, observed, result, now)
    database_tls = certificates.ensure_database_tls(kube, owner, result.events, now)
    needed = connections_needed(spec.api)
    if needed > spec.database.max_connections:  # stored before admission refused such a spec (models.CAPACITY_RULE)
        message = f"spec.database.maxConnections ({spec.database.max_connections}) is too few: the spec needs {needed}"
        observed.problems.append(Observation(ConditionType.DEGRADED, "True", Reason.CAPACITY_EXCEEDED, message))

    # What decides the children: the volume's size (growing it first, where the spec asks), the restore, the
    # schema Job of the API image.
    current_statefulset = kube.get(STATEFUL_SET, namespace, names.database)
    plan = storage.plan_storage(kube, owner, spec, current_statefulset)
    observed.storage = plan.observation
    observed.volume_size = plan.capacity
    if plan.applied and not plan.observation.holds:
        result.recheck_soon = True  # a volume's resize or binding shows on no object the operator watches
    restoring = restore.plan_restore(kube, platform, owner, spec) if spec.database.restore_from else None
    schema_job_name = schema.schema_job_name(owner, spec)
    observed.schema_job = kube.get(JOB, namespace, schema_job_name)
    facts = _facts(plan, restoring, observed.schema_job, current, database_tls.digest)
    children = platform_children(owner, spec, credentials, facts)

    observed.statefulset = current_statefulset
    for child in children.database:
        written, _ = _write(kube, namespace, child, observed)
        if child.kind is STATEFUL_SET:
            observed.statefulset = written or current_statefulset

    if restoring is not None:
        observed.restore = restoring.observation
        if restoring.problem is not None:
            observed.problems.append(restoring.problem)
    backup_schedule = None
    if spec.database.backup is not None:
        backup_schedule = backups.reconcile_platform_backups(kube, platform, owner, spec.database.backup, observed)
    elif conditions.find(
        conditions.parse((platform.get("status") or {}).get("conditions")), ConditionType.BACKUP_HEALTHY
    ):
        # Backups were turned off: say so rather than keep the last verdict.
        observed.backup = Observation(
            ConditionType.BACKUP_HEALTHY, "Unknown", Reason.NOT_CONFIGURED, "spec.database.backup is unset"
        )

    for child in children.workloads:
        written, refusal = _write(kube, namespace, child, observed)
        if (child.kind, child.name) == (JOB, restore_job_name(name)) and restoring and restoring.dump:
            observed.restore, started = restore.job_created(owner, restoring.dump, refusal)
            result.events.extend(started)
        elif (child.kind, child.name) == (JOB, schema_job_name):
            observed.schema_job = written or kube.get(JOB, namespace, schema_job_name)
            if observed.schema_job is not None:
                result.events.append(Event("Normal", EventReason.SCHEMA_MIGRATION_STARTED, child.description))
        elif child.kind is DEPLOYMENT and child.field_manager is None:
            observed.deployment = written or current

    if observed.restore is not None:
        result.recheck_soon |= observed.restore.reason == Reason.RESTORE_SOURCE_INVALID
        result.restoring = observed.restore.reason == Reason.RESTORING
    if observed.problems:
        result.recheck_soon = True
    # observedGeneration says which generation was last applied in full: not this one if anything of it failed
    # or was refused (the conditions say what and why).
    fully_applied = not observed.problems and plan.applied
    _write_status(kube, platform, spec, observed, result, fully_applied, backup_schedule)
    if backup_schedule is not None:
        result.requeue_after_s = _sooner(result.requeue_after_s, backup_schedule.requeue_after_s)
    return result


def _write_status(
    kube: Kube,
    platform: Manifest,
    spec: TaskPlatformSpec,
    observed: status.PlatformObservation,
    result: Result,
    fully_applied: bool,
    backup_schedule: backups.PlatformBackups | None,
) -> None:
    meta = platform["metadata"]
    raw_previous = platform.get("status") or {}
    previous = TaskPlatformStatus.model_validate(raw_previous)
    conditions_before = conditions.parse(raw_previous.get("conditions"))
    observations = status.platform_conditions(spec, observed)
    new_status = status.platform_fields(meta["name"], meta["namespace"], spec, observed.deployment)
    new_status.observed_generation = meta.get("generation") if fully_applied else previous.observed_generation
    new_status.volume_size = observed.volume_size
    if backup_schedule is not None:
        backup_schedule.fill(new_status, previous)
    new_status.conditions = conditions.merge(conditions_before, observations, meta.get("generation"), now_rfc3339())
    for observation in newly_true(conditions_before, observations):
        if observation.type == ConditionType.DEGRADED:
            result.events.append(Event("Warning", observation.reason, observation.message))
        else:
            result.events.append(Event("Normal", observation.type, observation.message))
    if observed.backup is not None and conditions.newly_failing(conditions_before, observed.backup):
        result.events.append(Event("Warning", observed.backup.reason, observed.backup.message))
    if status.status_changed(previous, new_status):
        kube.patch_status(TASK_PLATFORM, meta["namespace"], meta["name"], status.status_patch(new_status))
