"""The few Kubernetes API calls the operator makes, on the `kubernetes` client's authenticated ApiClient.

Children are written with server-side apply under one field manager: fields the operator sets are restored
when someone edits them, fields it leaves out (an autoscaler's replicas, defaults) are left alone. Every kind
it touches is described in kinds.py; RBAC for exactly these is in charts/ and docs/operator.md.
Blocking calls: the runtime runs them in worker threads.
"""

from __future__ import annotations

import json
import os
from typing import Any
from urllib.parse import urlencode

from kubernetes import client, config

from taskplatform.operator.kinds import POD, Manifest, ResourceKind, kind_of

FIELD_MANAGER = "taskplatform-operator"


def owns_field(obj: Manifest | None, *path: str, manager: str = FIELD_MANAGER) -> bool:
    """Whether `manager` holds this field by server-side apply (per the object's managedFields)."""
    for entry in (obj or {}).get("metadata", {}).get("managedFields") or []:
        if entry.get("manager") != manager or entry.get("operation") != "Apply":
            continue
        fields = entry.get("fieldsV1") or {}
        for key in path:
            fields = fields.get(f"f:{key}")
            if fields is None:
                break
        else:
            return True
    return False


class KubeError(Exception):
    """A refused API call, with the server's status code, reason and message."""

    def __init__(self, status: int, reason: str, message: str):
        super().__init__(f"{status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message

    @property
    def transient(self) -> bool:
        """Worth retrying: conflicts, throttling, server trouble (not a refused or invalid request)."""
        return self.status in (409, 429) or self.status >= 500


def load_api_client(pool_size: int = 32) -> client.ApiClient:
    """In-cluster service account first, else the kubeconfig ($KUBECONFIG or ~/.kube/config)."""
    configuration = client.Configuration()
    try:
        config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    except config.ConfigException:
        # $KUBECONFIG as it is now (the library reads it once, at import).
        config.load_kube_config(  # type: ignore[no-untyped-call]
            config_file=os.environ.get("KUBECONFIG"), client_configuration=configuration
        )
    configuration.connection_pool_maxsize = pool_size
    return client.ApiClient(configuration)


class Kube:
    def __init__(self, api_client: client.ApiClient, timeout_s: float = 30.0):
        self._api = api_client
        self._timeout_s = timeout_s

    def _call(
        self,
        method: str,
        path: str,
        query: dict[str, str] | None = None,
        body: Any = None,
        content_type: str = "application/json",
        raw: bool = False,
    ) -> Any:
        url = self._api.configuration.host + path + (f"?{urlencode(query)}" if query else "")
        headers = {"Accept": "application/json", "Content-Type": content_type}
        # The client adds the bearer token (refreshing in-cluster tokens) and TLS settings.
        self._api.update_params_for_auth(headers, [], ["BearerToken"], path, method, body)
        response = self._api.call_api(method, url, header_params=headers, body=body, _request_timeout=self._timeout_s)
        data = response.read()  # type: ignore[no-untyped-call]
        if response.status >= 400:
            try:
                status = json.loads(data)
                reason, message = status.get("reason", ""), status.get("message", "")
            except ValueError:
                reason, message = response.reason or "", data.decode(errors="replace")[:500]
            raise KubeError(response.status, reason, message)
        if raw:
            return data.decode(errors="replace")
        return json.loads(data) if data else None

    def get(self, kind: ResourceKind, namespace: str, name: str) -> Manifest | None:
        try:
            result: Manifest = self._call("GET", kind.path(namespace, name))
        except KubeError as exc:
            if exc.status == 404:
                return None
            raise
        return result

    def list(self, kind: ResourceKind, namespace: str, label_selector: str) -> list[Manifest]:
        result = self._call("GET", kind.path(namespace), {"labelSelector": label_selector})
        items: list[Manifest] = result.get("items", [])
        return items

    def apply(self, manifest: Manifest, field_manager: str = FIELD_MANAGER) -> Manifest:
        meta = manifest["metadata"]
        result: Manifest = self._call(
            "PATCH",
            kind_of(manifest).path(meta["namespace"], meta["name"]),
            {"fieldManager": field_manager, "force": "true"},
            body=manifest,
            content_type="application/apply-patch+yaml",  # JSON is YAML
        )
        return result

    def create(self, manifest: Manifest) -> Manifest | None:
        """Create, or None when it already exists (create-once objects: generated secrets, Jobs)."""
        meta = manifest["metadata"]
        try:
            result: Manifest = self._call(
                "POST", kind_of(manifest).path(meta["namespace"]), {"fieldManager": FIELD_MANAGER}, manifest
            )
        except KubeError as exc:
            if exc.status == 409 and exc.reason == "AlreadyExists":
                return None
            raise
        return result

    def delete(self, kind: ResourceKind, namespace: str, name: str, propagation: str = "Background") -> bool:
        """Delete; `propagation="Orphan"` keeps what the object owns (a StatefulSet's pods and volumes)."""
        try:
            self._call("DELETE", kind.path(namespace, name), body={"propagationPolicy": propagation})
        except KubeError as exc:
            if exc.status == 404:
                return False
            raise
        return True

    def merge_patch(self, kind: ResourceKind, namespace: str, name: str, patch: dict[str, Any]) -> Manifest:
        """A JSON merge patch, for objects the operator does not own (a StatefulSet's volume claims)."""
        result: Manifest = self._call(
            "PATCH", kind.path(namespace, name), body=patch, content_type="application/merge-patch+json"
        )
        return result

    def patch_status(self, kind: ResourceKind, namespace: str, name: str, status: dict[str, Any]) -> None:
        """Merge-patch the status subresource; lists (conditions) are replaced whole."""
        self._call(
            "PATCH",
            kind.path(namespace, name, "status"),
            body={"status": status},
            content_type="application/merge-patch+json",
        )

    def pod_log_tail(self, namespace: str, name: str, lines: int) -> str:
        text: str = self._call("GET", POD.path(namespace, name, "log"), {"tailLines": str(lines)}, raw=True)
        return text


def newest_job_pod(kube: Kube, namespace: str, job_name: str) -> Manifest | None:
    """The latest pod a Job started (its status holds the containers' termination messages)."""
    pods = kube.list(POD, namespace, f"batch.kubernetes.io/job-name={job_name}")
    return max(pods, key=lambda p: p["metadata"].get("creationTimestamp", ""), default=None)
