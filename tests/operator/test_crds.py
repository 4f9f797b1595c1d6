"""crds/ is generated from the typed models; these keep the two (and the CRDs' promises) in step."""

from typing import Any

import pytest
import yaml
from helpers.kubecluster import CRDS, ROOT

from taskplatform.operator.crdgen import all_crds, render
from taskplatform.operator.models import DataMigrationSpec, TaskPlatformSpec

CHART_CRDS = ROOT / "charts" / "taskplatform" / "crds"


@pytest.mark.parametrize("name", sorted(all_crds()))
def test_committed_crds_are_the_generated_ones(name: str) -> None:
    """One source: crds/ and the Helm chart's crds/ are both written from the models by `make crds`."""
    assert (CRDS / name).read_text() == render(all_crds()[name]), "run `make crds` and commit the result"
    assert (CHART_CRDS / name).read_text() == render(all_crds()[name]), "run `make crds` and commit the result"


def _walk(schema: dict[str, Any], path: str = "") -> list[tuple[str, dict[str, Any]]]:
    found = [(path, schema)]
    for name, sub in schema.get("properties", {}).items():
        found += _walk(sub, f"{path}.{name}")
    if "items" in schema:
        found += _walk(schema["items"], f"{path}[]")
    return found


@pytest.mark.parametrize("name", sorted(all_crds()))
def test_every_field_is_described_for_kubectl_explain(name: str) -> None:
    schema = all_crds()[name]["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    undocumented = [p for p, node in _walk(schema) if p and p != ".metadata" and not node.get("description")]
    assert undocumented == []


def _apply_defaults(schema: dict[str, Any], value: Any) -> Any:
    """What the API server's structural defaulting does, for objects."""
    if schema.get("type") != "object" or not isinstance(value, dict):
        return value
    result = dict(value)
    for name, sub in schema.get("properties", {}).items():
        if name not in result and "default" in sub:
            result[name] = sub["default"]
        if name in result:
            result[name] = _apply_defaults(sub, result[name])
    return result


@pytest.mark.parametrize(
    ("name", "model", "minimal"),
    [
        ("taskplatforms.yaml", TaskPlatformSpec, {}),
        ("datamigrations.yaml", DataMigrationSpec, {"target": "tp", "sourceSecretRef": {"name": "s"}}),
    ],
)
def test_server_side_defaults_equal_the_models_defaults(name: str, model: Any, minimal: dict) -> None:
    spec_schema = all_crds()[name]["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    defaulted = _apply_defaults(spec_schema, minimal)
    from_model = model.model_validate(minimal).model_dump(by_alias=True, exclude_none=True)
    assert model.model_validate(defaulted).model_dump(by_alias=True, exclude_none=True) == from_model
    assert defaulted == from_model  # the API server stores exactly what the operator would assume


def test_cel_rules_and_scale_subresource_are_declared() -> None:
    tp = all_crds()["taskplatforms.yaml"]["spec"]["versions"][0]
    assert tp["subresources"]["scale"]["specReplicasPath"] == ".spec.api.replicas"
    spec = tp["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
    rules = spec["api"]["properties"]["autoscaling"]["x-kubernetes-validations"]
    assert rules[0]["rule"].endswith("self.minReplicas <= self.maxReplicas")
    assert "must be <=" in rules[0]["message"]
    dm = all_crds()["datamigrations.yaml"]["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    assert dm["x-kubernetes-validations"][0]["rule"] == "self == oldSelf"
    assert [c["name"] for c in tp["additionalPrinterColumns"]] == [
        "Ready",
        "Reason",
        "Replicas",
        "Endpoint",
        "Age",
        "Generation",
        "Observed",
    ]


def test_crd_files_are_valid_yaml_with_one_document_each() -> None:
    for path in CRDS.glob("*.yaml"):
        docs = list(yaml.safe_load_all(path.read_text()))
        assert len(docs) == 1
        assert docs[0]["kind"] == "CustomResourceDefinition"
