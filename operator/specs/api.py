"""The API: its Deployment (non-root, read-only root filesystem, probes, a pause before a pod stops), Service,
PodDisruptionBudget (more than one replica kept) and HorizontalPodAutoscaler (spec.api.autoscaling). The schema Job
runs the same container with the owner role (schema.py).

Its pods read the API role's URL and the JWT keys in effect from the credentials Secret; the pod template carries a
digest of them, so a changed password or each phase of a key rotation is one rolling update.
"""

from __future__ import annotations

from typing import Any

from taskplatform.operator.dbroles import API_ROLE, DatabaseRole
from taskplatform.operator.jwtkeys import ADDITIONAL_KEY, SIGNING_KEY
from taskplatform.operator.kinds import DEPLOYMENT, HORIZONTAL_POD_AUTOSCALER, POD_DISRUPTION_BUDGET, SERVICE, Manifest
from taskplatform.operator.models import ROLLOUT_SURGE, TaskPlatformSpec
from taskplatform.operator.specs import tls
from taskplatform.operator.specs.common import (
    API_UID,
    RESTRICTED_CONTAINER,
    Owner,
    env_from_secret,
    metadata,
    pod_spec,
    resources,
    selector,
    template_metadata,
)
from taskplatform.operator.specs.credentials import CREDENTIALS_ANNOTATION, Credentials
from taskplatform.operator.specs.names import Names

API_COMPONENT = "api"
API_PORT = 8000
# Prometheus metrics, on a port of the API process's own (METRICS_PORT): a container port the Service does not
# expose, scraped from the pod (a PodMonitor) by the peers spec.api.metrics names (networkpolicy.py).
METRICS_PORT = 9464
METRICS_PORT_NAME = "metrics"
API_DRAIN_SECONDS = 5  # preStop pause of a stopping API pod (api_deployment)
# The field manager that takes the Deployment's replicas over when autoscaling is turned on (replicas_handover).
HANDOVER_MANAGER = "taskplatform-operator-handover"


def api_env(owner: Owner, spec: TaskPlatformSpec, role: DatabaseRole) -> list[dict[str, Any]]:
    """DATABASE_URL is `role`'s (the API's, or the owner's for the schema Job). The JWT keys come from the
    credentials Secret whether or not spec.auth.secretRef is set: the operator copies the referenced key there in
    the phases of a rotation (jwtkeys.py), never all at once."""
    secret = Names(owner.name).secret
    env: list[dict[str, Any]] = [
        {"name": "ENVIRONMENT", "value": "prod"},
        env_from_secret("DATABASE_URL", secret, role.url_key),
        env_from_secret("JWT_SECRET", secret, SIGNING_KEY),
        env_from_secret("JWT_ADDITIONAL_SECRETS", secret, ADDITIONAL_KEY),
        {"name": "ACCESS_TOKEN_TTL_S", "value": str(spec.auth.access_token_ttl_seconds)},
        {"name": "REFRESH_TOKEN_TTL_S", "value": str(spec.auth.refresh_token_ttl_seconds)},
        {"name": "METRICS_PORT", "value": str(METRICS_PORT)},
        {"name": "API_DOCS", "value": str(spec.api.docs).lower()},
        # The pool the database was sized for (models.CAPACITY_RULE).
        {"name": "WEB_CONCURRENCY", "value": str(spec.api.workers)},
        {"name": "DB_POOL_SIZE", "value": str(spec.api.database_pool.size)},
        {"name": "DB_MAX_OVERFLOW", "value": str(spec.api.database_pool.max_overflow)},
        *tls.CLIENT_ENV,
    ]
    if spec.api.trusted_proxies:
        env.append({"name": "TRUSTED_PROXIES", "value": ",".join(spec.api.trusted_proxies)})
    return env + [{"name": e.name, "value": e.value} for e in spec.api.env]


def max_token_ttl_s(spec: TaskPlatformSpec) -> int:
    """How long a token the API signs now may be accepted: the longer of the two lifetimes."""
    return max(spec.auth.access_token_ttl_seconds, spec.auth.refresh_token_ttl_seconds)


def api_container(
    owner: Owner, spec: TaskPlatformSpec, name: str, args: list[str], role: DatabaseRole
) -> dict[str, Any]:
    """The API image's container with the API's environment, connected as `role`."""
    return {
        "name": name,
        "image": spec.api.image,
        "args": args,
        "env": api_env(owner, spec, role),
        "resources": resources(spec.api.resources),
        "securityContext": RESTRICTED_CONTAINER,
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}, tls.CLIENT_MOUNT],  # noqa: S108 (an emptyDir, per pod)
    }


def api_volumes(platform: str) -> list[dict[str, Any]]:
    """The volumes api_container mounts: a scratch directory, and the database's CA bundle."""
    return [{"name": "tmp", "emptyDir": {}}, tls.client_volume(platform)]


def api_deployment(owner: Owner, spec: TaskPlatformSpec, credentials: Credentials | None = None) -> Manifest:
    container = api_container(owner, spec, API_COMPONENT, ["serve", "--port", str(API_PORT)], API_ROLE)
    container["ports"] = [
        {"name": "http", "containerPort": API_PORT},
        {"name": METRICS_PORT_NAME, "containerPort": METRICS_PORT},
    ]
    container["livenessProbe"] = {"httpGet": {"path": "/healthz", "port": "http"}, "periodSeconds": 10}
    container["readinessProbe"] = {"httpGet": {"path": "/readyz", "port": "http"}, "periodSeconds": 5}
    # A deleted pod keeps serving until its address has left the Service's endpoints everywhere (kube-proxy
    # on every node); without the pause, connections routed there meanwhile are refused.
    container["lifecycle"] = {"preStop": {"sleep": {"seconds": API_DRAIN_SECONDS}}}
    digest = {CREDENTIALS_ANNOTATION: credentials.api_digest} if credentials else {}
    deployment_spec: dict[str, Any] = {
        "selector": {"matchLabels": selector(owner.name, API_COMPONENT)},
        "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": ROLLOUT_SURGE}},
        "template": {
            "metadata": template_metadata(owner.name, API_COMPONENT, {**spec.api.pod_annotations, **digest}),
            "spec": pod_spec(
                owner.name,
                API_UID,
                [container],
                api_volumes(owner.name),
                terminationGracePeriodSeconds=30,
                topologySpreadConstraints=[api_spread(owner.name)],
            ),
        },
    }
    if spec.api.autoscaling is None:
        # With autoscaling the HorizontalPodAutoscaler owns replicas; setting them here would fight it.
        deployment_spec["replicas"] = spec.api.replicas
    return {
        **DEPLOYMENT.type_meta(),
        "metadata": metadata(owner, Names(owner.name).api, API_COMPONENT),
        "spec": deployment_spec,
    }


def api_spread(platform: str) -> dict[str, Any]:
    """API pods spread over nodes, so losing or draining one node leaves pods serving elsewhere. Preferred, not
    required (ScheduleAnyway): on a single node every pod still starts. Counted per ReplicaSet (pod-template-hash):
    a rollout's new pods spread among themselves."""
    return {
        "maxSkew": 1,
        "topologyKey": "kubernetes.io/hostname",
        "whenUnsatisfiable": "ScheduleAnyway",
        "labelSelector": {"matchLabels": selector(platform, API_COMPONENT)},
        "matchLabelKeys": ["pod-template-hash"],
    }


def replicas_handover(owner: Owner, replicas: int) -> Manifest:
    """Autoscaling was just turned on. Dropping `replicas` from the operator's apply would delete the field
    (it would fall back to 1) before the autoscaler acts; so first another field manager (HANDOVER_MANAGER) takes
    the current value over, as Kubernetes' server-side apply docs prescribe, and the operator's apply then lets go."""
    return {
        **DEPLOYMENT.type_meta(),
        "metadata": {"name": Names(owner.name).api, "namespace": owner.namespace},
        "spec": {"replicas": replicas},
    }


def api_service(owner: Owner, spec: TaskPlatformSpec) -> Manifest:
    return {
        **SERVICE.type_meta(),
        "metadata": metadata(owner, Names(owner.name).api, API_COMPONENT),
        "spec": {
            "type": spec.api.service.type,
            "selector": selector(owner.name, API_COMPONENT),
            "ports": [{"name": "http", "port": spec.api.service.port, "targetPort": "http"}],
        },
    }


def api_pdb(owner: Owner, spec: TaskPlatformSpec) -> Manifest | None:
    """Only when there is more than one replica to keep: a PDB over one pod would block every drain.

    An API pod that is not Ready may always be evicted (unhealthyPodEvictionPolicy AlwaysAllow): it serves no one,
    so evicting it costs no availability. Found on kind: draining the node that holds the database stopped the
    database, every API pod became unready, and the budget (none healthy to spare) then kept `kubectl drain` from
    ever finishing, while the database could come back only once the node was uncordoned (tests/e2e/test_nodes.py)."""
    fewest = spec.api.autoscaling.min_replicas if spec.api.autoscaling else spec.api.replicas
    if fewest <= 1:
        return None
    return {
        **POD_DISRUPTION_BUDGET.type_meta(),
        "metadata": metadata(owner, Names(owner.name).api, API_COMPONENT),
        "spec": {
            "maxUnavailable": 1,
            "selector": {"matchLabels": selector(owner.name, API_COMPONENT)},
            "unhealthyPodEvictionPolicy": "AlwaysAllow",
        },
    }


def api_hpa(owner: Owner, spec: TaskPlatformSpec) -> Manifest | None:
    scaling = spec.api.autoscaling
    if scaling is None:
        return None
    return {
        **HORIZONTAL_POD_AUTOSCALER.type_meta(),
        "metadata": metadata(owner, Names(owner.name).api, API_COMPONENT),
        "spec": {
            "scaleTargetRef": {**DEPLOYMENT.type_meta(), "name": Names(owner.name).api},
            "minReplicas": scaling.min_replicas,
            "maxReplicas": scaling.max_replicas,
            "behavior": {"scaleDown": {"stabilizationWindowSeconds": scaling.scale_down_stabilization_seconds}},
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {
                            "type": "Utilization",
                            "averageUtilization": scaling.target_cpu_utilization_percentage,
                        },
                    },
                }
            ],
        },
    }
