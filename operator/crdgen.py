"""Generate crds/*.yaml from the typed models: `python -m taskplatform.operator.crdgen crds/`.

Kubernetes wants a structural OpenAPI v3 schema: no `$ref`, `nullable` instead of `anyOf [..., null]`,
and parents defaulted to `{}` so that the API server fills in nested defaults.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from taskplatform.operator.kinds import (
    CUSTOM_RESOURCE_DEFINITION,
    DATA_MIGRATION,
    TASK_PLATFORM,
    TASK_PLATFORM_BACKUP,
    CustomResourceKind,
    Manifest,
)
from taskplatform.operator.models import TASKPLATFORM_RULES, ConditionType
from taskplatform.operator.specs.limits import (
    NAME_PART_MAX,
    backup_child_names,
    max_name_length,
    migration_child_names,
    platform_child_names,
)

_KEEP = {
    "type", "description", "default", "enum", "minimum", "maximum", "pattern", "minLength", "maxLength",
    "maxItems", "minItems", "maxProperties", "items", "properties", "required", "x-kubernetes-validations", "format",
    "nullable",
}  # fmt: skip


def structural(schema: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    if "$ref" in schema:
        target = defs[schema["$ref"].rsplit("/", 1)[-1]]
        return structural({**target, **{k: v for k, v in schema.items() if k != "$ref"}}, defs)
    nullable = False
    if "anyOf" in schema:
        options = [o for o in schema["anyOf"] if o.get("type") != "null"]
        nullable = len(options) < len(schema["anyOf"])
        merged = {**structural(options[0], defs), **{k: v for k, v in schema.items() if k != "anyOf"}}
        schema = merged
    out: dict[str, Any] = {k: v for k, v in schema.items() if k in _KEEP}
    if "enum" in out and "type" not in out:
        out["type"] = "string"
    if "properties" in out:
        out["type"] = "object"
        out["properties"] = {name: structural(prop, defs) for name, prop in out["properties"].items()}
        for name, prop in out["properties"].items():
            # An optional object with defaults inside is defaulted to {} so that those defaults apply.
            optional_object = prop.get("type") == "object" and not prop.get("nullable")
            if optional_object and "default" not in prop and name not in out.get("required", []):
                prop["default"] = {}
    if isinstance(schema.get("additionalProperties"), dict):  # a map, e.g. dict[str, str]
        out["additionalProperties"] = structural(schema["additionalProperties"], defs)
    if "items" in out:
        out["items"] = structural(out["items"], defs)
        if "description" not in out["items"] and "enum" in out["items"]:
            out["items"]["description"] = "One of: " + ", ".join(out["items"]["enum"]) + "."
    if isinstance(out.get("default"), dict):
        out["default"] = _drop_nulls(out["default"])
    if out.get("default", 0) is None:
        del out["default"]
    if nullable:
        out["nullable"] = True
    if "description" not in out and out.get("type") == "object" and "properties" not in out:
        out["description"] = "Free-form object."
    return out


def _drop_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _drop_nulls(v) for k, v in value.items() if v is not None}
    return value


def model_schema(model: type[BaseModel]) -> dict[str, Any]:
    raw = model.model_json_schema(by_alias=True, mode="validation")
    return structural(raw, raw.get("$defs", {}))


def crd(
    kind: CustomResourceKind,
    description: str,
    printer_columns: list[dict[str, Any]],
    subresources: dict[str, Any],
    child_names: Callable[[str], list[str]],
    rules: list[dict[str, str]] | None = None,
) -> Manifest:
    spec_schema = model_schema(kind.spec_model)
    spec_schema["description"] = kind.spec_model.__doc__ or f"Desired state of the {kind.kind}."
    status_schema = model_schema(kind.status_model)
    status_schema["description"] = f"Observed state of the {kind.kind}, written by the operator."
    return {
        **CUSTOM_RESOURCE_DEFINITION.type_meta(),
        "metadata": {"name": kind.crd_name},
        "spec": {
            "group": kind.group,
            "scope": "Namespaced",
            "names": {
                "kind": kind.kind,
                "listKind": f"{kind.kind}List",
                "plural": kind.plural,
                "singular": kind.singular,
                "shortNames": [kind.short_name],
            },
            "versions": [
                {
                    "name": kind.version,
                    "served": True,
                    "storage": True,
                    "subresources": subresources,
                    "additionalPrinterColumns": printer_columns,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "description": description,
                            "required": ["spec"],
                            "x-kubernetes-validations": [_name_rule(child_names), *(rules or [])],
                            "properties": {
                                "apiVersion": {"type": "string", "description": "API version of this object."},
                                "kind": {"type": "string", "description": "Kind of this object."},
                                # The API server rejects anything but the type here (metadata is implicit).
                                "metadata": {"type": "object"},
                                "spec": spec_schema,
                                "status": status_schema,
                            },
                        }
                    },
                }
            ],
        },
    }


def _name_rule(child_names: Callable[[str], list[str]]) -> dict[str, str]:
    """Names whose children could not exist are refused at admission, with the limit in the message."""
    max_name = max_name_length(child_names)
    longest_child = max(child_names("<name>"), key=len)
    return {
        "rule": f"size(self.metadata.name) <= {max_name}",
        "message": f"metadata.name may have at most {max_name} characters: the operator names children after it "
        f"(the longest, {longest_child}, must fit in {NAME_PART_MAX})",
    }


def _ready_column(condition: ConditionType) -> dict[str, Any]:
    name = condition.value
    return {"name": name, "type": "string", "jsonPath": f'.status.conditions[?(@.type=="{name}")].status'}


def _reason_column(condition: ConditionType) -> dict[str, Any]:
    """Why the condition is as it is: when not Ready, the failing child's reason (ApplyFailed, RolloutStuck…)."""
    name = condition.value
    return {"name": "Reason", "type": "string", "jsonPath": f'.status.conditions[?(@.type=="{name}")].reason'}


AGE = {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}
# `kubectl get -o wide`: a spec generation not yet applied in full shows as Observed < Generation.
GENERATION_COLUMNS = [
    {"name": "Generation", "type": "integer", "jsonPath": ".metadata.generation", "priority": 1},
    {"name": "Observed", "type": "integer", "jsonPath": ".status.observedGeneration", "priority": 1},
]


def all_crds() -> dict[str, Manifest]:
    """File name → CRD manifest."""
    task_platform = crd(
        TASK_PLATFORM,
        "A task API with its PostgreSQL database, run and scaled by the TaskPlatform operator.",
        [
            _ready_column(ConditionType.READY),
            _reason_column(ConditionType.READY),
            {"name": "Replicas", "type": "integer", "jsonPath": ".status.replicas"},
            {"name": "Endpoint", "type": "string", "jsonPath": ".status.endpoint"},
            AGE,
            *GENERATION_COLUMNS,
        ],
        {
            "status": {},
            "scale": {
                "specReplicasPath": ".spec.api.replicas",
                "statusReplicasPath": ".status.replicas",
                "labelSelectorPath": ".status.selector",
            },
        },
        platform_child_names,
        TASKPLATFORM_RULES,
    )
    data_migration = crd(
        DATA_MIGRATION,
        "A one-off migration of legacy MongoDB data into a TaskPlatform's database, run as a Job.",
        [
            {"name": "Target", "type": "string", "jsonPath": ".spec.target"},
            _ready_column(ConditionType.SUCCEEDED),
            {"name": "Progress", "type": "string", "jsonPath": ".status.progress"},
            {"name": "Rejected", "type": "integer", "jsonPath": ".status.rejected"},
            AGE,
        ],
        {"status": {}},
        migration_child_names,
    )
    backup = crd(
        TASK_PLATFORM_BACKUP,
        "One pg_dump of a TaskPlatform's database to the destination of its spec.database.backup, run as a Job; "
        "created on demand or by the backup schedule. It outlives the TaskPlatform (docs/backup.md).",
        [
            {"name": "Platform", "type": "string", "jsonPath": ".spec.platform"},
            {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
            {"name": "Size", "type": "integer", "jsonPath": ".status.sizeBytes"},
            {"name": "Completed", "type": "date", "jsonPath": ".status.completionTime"},
            {"name": "Location", "type": "string", "jsonPath": ".status.location", "priority": 1},
            {"name": "Message", "type": "string", "jsonPath": ".status.message", "priority": 1},
            AGE,
        ],
        {"status": {}},
        backup_child_names,
    )
    return {f"{crd['spec']['names']['plural']}.yaml": crd for crd in (task_platform, data_migration, backup)}


HEADER = "# Generated from taskplatform/operator/models.py by `make crds`; do not edit by hand.\n"


def render(manifest: dict[str, Any]) -> str:
    # Through JSON first: a schema the models share (a selector's, a peer's) is written out in full each time it
    # appears, not as YAML anchors and aliases.
    return HEADER + str(yaml.safe_dump(json.loads(json.dumps(manifest)), sort_keys=False, width=120))


def main(argv: list[str] | None = None) -> None:
    """Write the CRDs into each folder given: crds/ and the Helm chart's crds/ (`make crds` passes both)."""
    for folder in argv or sys.argv[1:] or ["crds"]:
        out = Path(folder)
        out.mkdir(parents=True, exist_ok=True)
        for name, manifest in all_crds().items():
            (out / name).write_text(render(manifest))


if __name__ == "__main__":
    main()
