"""The API server's Secrets as far as platform.ensure_credentials uses them: get, create, apply, merge-patch, in
memory with resourceVersions (tests/operator/test_jwtkeys.py, test_credentials.py)."""

from __future__ import annotations

import base64
from typing import Any

from taskplatform.operator.kinds import SECRET, ResourceKind


class SecretsKube:
    def __init__(self, *secrets: dict[str, Any]) -> None:
        self.secrets = {s["metadata"]["name"]: s for s in secrets}
        self.applied: list[dict[str, Any]] = []
        self.patched: list[dict[str, Any]] = []

    def get(self, kind: ResourceKind, namespace: str, name: str) -> dict[str, Any] | None:
        assert kind is SECRET
        return self.secrets.get(name)

    def create(self, manifest: dict[str, Any]) -> dict[str, Any]:
        self.secrets[manifest["metadata"]["name"]] = {**manifest, "metadata": {**manifest["metadata"],
                                                                                "resourceVersion": "1"}}  # fmt: skip
        return manifest

    def _bump(self, name: str) -> str:
        return str(int(self.secrets[name]["metadata"]["resourceVersion"]) + 1)

    def apply(self, manifest: dict[str, Any]) -> dict[str, Any]:
        """Server-side apply of the whole data, as the operator's field manager owns every key it writes."""
        self.applied.append(manifest)
        name = manifest["metadata"]["name"]
        version = self._bump(name)
        self.secrets[name] = {**manifest, "metadata": {**manifest["metadata"], "resourceVersion": version}}
        return manifest

    def merge_patch(self, kind: ResourceKind, namespace: str, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        assert kind is SECRET and set(patch) == {"data"}
        self.patched.append(patch)
        data = {k: v for k, v in {**self.secrets[name]["data"], **patch["data"]}.items() if v is not None}
        self.secrets[name] = {**self.secrets[name], "data": data}
        self.secrets[name]["metadata"] = {**self.secrets[name]["metadata"], "resourceVersion": self._bump(name)}
        return self.secrets[name]


def secret(name: str, version: str = "5", **data: str) -> dict[str, Any]:
    """A Secret in namespace apps; keyword `postgres_password` is the key `postgres-password`."""
    return {
        "metadata": {"name": name, "namespace": "apps", "resourceVersion": version},
        "data": {k.replace("_", "-"): base64.b64encode(v.encode()).decode() for k, v in data.items()},
    }


def decoded(kube: SecretsKube, name: str = "demo-credentials") -> dict[str, str]:
    return {k: base64.b64decode(v).decode() for k, v in kube.secrets[name]["data"].items()}
