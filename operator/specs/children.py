"""A TaskPlatform's children as one pass writes them: which, in what order, each applied, created once or deleted.
operator/platform.py writes exactly this list (reconcile_platform); the builder tests check the same list.

The gating between the children lives here, decided from what the pass observed (PlatformFacts):
- the database's Services, the NetworkPolicies (each component's, then the default deny) and the StatefulSet
  first; the StatefulSet's claim template carries the size the storage plan allows (operator/storage.py), and it
  is not applied while the old one is being re-created;
- with spec.database.restoreFrom, the restore Job and its NetworkPolicy (once its dump is known), and no schema Job
  before the database holds the dump;
- the schema Job of the API image, created once;
- autoscaling just turned on: the current replicas handed to another field manager before the Deployment's apply
  drops them (the Deployment would otherwise fall back to one replica before the autoscaler acts);
- the API Deployment on a new image only once that image's schema Job has completed (until then with the image it
  runs; none at all while no JWT key is known), then its Service, disruption budget and autoscaler (deleted when
  not wanted).

The children come in two groups: the database's, then the workloads' (the Jobs and the API's). The pass looks at
the restore and the backup schedule between the two, so that its Degraded condition names problems in the order
it meets them.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from taskplatform.operator.kinds import (
    HORIZONTAL_POD_AUTOSCALER,
    NETWORK_POLICY,
    POD_DISRUPTION_BUDGET,
    Manifest,
    ResourceKind,
    kind_of,
)
from taskplatform.operator.models import TaskPlatformSpec
from taskplatform.operator.specs.api import (
    HANDOVER_MANAGER,
    api_deployment,
    api_hpa,
    api_pdb,
    api_service,
    replicas_handover,
)
from taskplatform.operator.specs.backup import Dump, restore_job
from taskplatform.operator.specs.common import Owner
from taskplatform.operator.specs.credentials import Credentials
from taskplatform.operator.specs.database import database_config, database_services, database_statefulset
from taskplatform.operator.specs.names import Names
from taskplatform.operator.specs.networkpolicy import platform_network_policies, restore_network_policy
from taskplatform.operator.specs.schema import schema_migration_job
from taskplatform.operator.specs.serviceaccount import platform_service_account


@dataclass(frozen=True, slots=True)
class Child:
    """One write of a pass: apply `manifest` (server-side apply), create it once (a Job: never changed once it
    exists), or, with no manifest, delete the child (one that is not wanted any more)."""

    kind: ResourceKind
    name: str
    manifest: Manifest | None
    create_once: bool = False
    field_manager: str | None = None  # another field manager than the operator's (the autoscaler hand-over)
    # A refusal fails the pass, to be retried, instead of being reported while the pass goes on: what follows
    # must not be written without it.
    required: bool = False

    @staticmethod
    def apply(manifest: Manifest, field_manager: str | None = None, required: bool = False) -> Child:
        return Child(kind_of(manifest), manifest["metadata"]["name"], manifest, False, field_manager, required)

    @staticmethod
    def create(manifest: Manifest) -> Child:
        return Child(kind_of(manifest), manifest["metadata"]["name"], manifest, create_once=True)

    @staticmethod
    def apply_or_delete(kind: ResourceKind, name: str, manifest: Manifest | None) -> Child:
        return Child.apply(manifest) if manifest is not None else Child(kind, name, None)

    @property
    def description(self) -> str:
        """How the status names it: `Job demo-restore`."""
        return self.kind.named(self.name)


@dataclass(frozen=True, slots=True)
class PlatformFacts:
    """What a pass observed that decides which children it writes, and how. The defaults describe a new platform:
    nothing exists yet."""

    # The storage plan (operator/storage.py): the volume size for the StatefulSet's claim template (None: the
    # spec's), and whether the StatefulSet is held back (its old object is being deleted for re-creation).
    volume_size: str | None = None
    statefulset_held: bool = False
    # A digest of the certificate the database serves (certificates.py): a renewed one restarts the database.
    database_tls_digest: str | None = None
    # spec.database.restoreFrom (operator/restore.py): the dump to restore while the restore Job is still to be
    # created, and whether the database holds its data (True without restoreFrom): the schema Job waits for it.
    restore: Dump | None = None
    restored: bool = True
    # The schema Job of spec.api.image: whether it exists, and whether it has completed.
    schema_job_exists: bool = False
    schema_complete: bool = False
    # The API Deployment as it is: the image it runs (None: there is none), and its replicas while the operator's
    # field manager still holds them (None: it does not, or there is no Deployment).
    deployed_image: str | None = None
    operator_owned_replicas: int | None = None


@dataclass(frozen=True, slots=True)
class PlatformChildren:
    database: tuple[Child, ...]
    workloads: tuple[Child, ...]

    def __iter__(self) -> Iterator[Child]:
        yield from self.database
        yield from self.workloads

    def find(self, kind: ResourceKind, name: str) -> Child | None:
        return next((c for c in self if c.kind is kind and c.name == name), None)


def platform_children(
    owner: Owner, spec: TaskPlatformSpec, credentials: Credentials, facts: PlatformFacts
) -> PlatformChildren:
    """Everything a TaskPlatform's pass writes after its credentials Secret (credentials.py; every child depends
    on it), in order."""
    names = Names(owner.name)
    database = [
        # Before any pod: every pod of the platform runs as it.
        Child.apply(platform_service_account(owner)),
        *(Child.apply(service) for service in database_services(owner)),
        # Before any pod they govern; the default deny after every component's (networkpolicy.py).
        *(
            Child.apply_or_delete(NETWORK_POLICY, name, policy)
            for name, policy in platform_network_policies(owner, spec)
        ),
        Child.apply(database_config(owner)),
    ]
    if not facts.statefulset_held:
        statefulset = database_statefulset(owner, spec, credentials, facts.volume_size, facts.database_tls_digest)
        database.append(Child.apply(statefulset))

    workloads: list[Child] = []
    if facts.restore is not None:
        dump = facts.restore
        # Its policy with it (the dump's store is known here only); left in place afterwards, inert.
        workloads.append(Child.apply(restore_network_policy(owner, dump.store)))
        workloads.append(Child.create(restore_job(owner, spec, dump)))
    # After a restore only: the schema Job upgrades the restored schema, and an empty database never serves.
    if not facts.schema_job_exists and facts.restored:
        workloads.append(Child.create(schema_migration_job(owner, spec)))
    if spec.api.autoscaling is not None and facts.operator_owned_replicas is not None:
        handover = replicas_handover(owner, facts.operator_owned_replicas)
        workloads.append(Child.apply(handover, field_manager=HANDOVER_MANAGER, required=True))
    if credentials.jwt_keys is None:
        pass  # no key known yet (the referenced Secret is missing): API pods could not start
    elif facts.schema_complete:
        workloads.append(Child.apply(api_deployment(owner, spec, credentials)))
    elif facts.deployed_image is not None:
        # Hold the image until its schema is in place; scale, resources and env still apply.
        held = spec.model_copy(update={"api": spec.api.model_copy(update={"image": facts.deployed_image})})
        workloads.append(Child.apply(api_deployment(owner, held, credentials)))
    workloads += [
        Child.apply(api_service(owner, spec)),
        Child.apply_or_delete(POD_DISRUPTION_BUDGET, names.api, api_pdb(owner, spec)),
        Child.apply_or_delete(HORIZONTAL_POD_AUTOSCALER, names.api, api_hpa(owner, spec)),
    ]
    return PlatformChildren(tuple(database), tuple(workloads))
