"""The objects the operator from before the database roles created (commit PREVIOUS_OPERATOR, its
operator/builders.py loaded from git as it was), for upgrade tests: a platform set up by that operator (one
superuser role, whose URL every pod used), then handed to this one.

Its builders import today's jwtkeys.py and models.py, which the database roles did not change."""

from __future__ import annotations

import base64
import importlib.util
import subprocess
import sys
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
PREVIOUS_OPERATOR = "62b861e207e30d5ec34f95fc74b896b9fac161cb"  # the last commit before the database roles


@cache
def builders(folder: Path) -> ModuleType:
    """That commit's operator/builders.py as a module of its own (`folder`: where to write it)."""
    source = subprocess.run(["git", "-C", str(ROOT), "show", f"{PREVIOUS_OPERATOR}:operator/builders.py"],
                            capture_output=True, text=True, check=True).stdout  # fmt: skip
    path = folder / "previous_builders.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("previous_builders", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["previous_builders"] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


def platform_objects(folder: Path, name: str, namespace: str, uid: str, spec: dict[str, Any] | None = None,
                     password: str = "previous-operator-password-0123") -> list[dict[str, Any]]:  # fmt: skip
    """Everything that operator applied for a TaskPlatform (`uid`: the TaskPlatform's), its Secret as that operator
    wrote it (the superuser's password and URL, the JWT keys)."""
    from taskplatform.operator.jwtkeys import JwtKeys
    from taskplatform.operator.models import TaskPlatformSpec

    old = builders(folder)
    owner = old.Owner("TaskPlatform", name, namespace, uid)
    key = base64.b64encode(uid.encode()).decode() * 2  # 32+ characters, the platform's own
    credentials = old.Credentials(password, key, JwtKeys(key))
    return list(old.desired_state(owner, TaskPlatformSpec.model_validate(spec or {}), credentials))


def apply_as_it_did(kube: Any, objects: list[dict[str, Any]]) -> None:
    """Written as that operator wrote them (operator/kube.py, its field manager): the Secret and Jobs created,
    everything else server-side applied."""
    for manifest in objects:
        if manifest["kind"] in ("Secret", "Job"):
            kube.create(manifest)
        else:
            kube.apply(manifest)
