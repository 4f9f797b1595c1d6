"""The API's layers import one way: the value types and tables, then the database layer, then the services, then
the routes, then the app. Read from the modules' import statements."""

import ast
from pathlib import Path

import pytest

API = Path(__file__).resolve().parents[2] / "api"
PACKAGE = "taskplatform.api"

# What a module of each layer may not import (by the first name below taskplatform.api).
FORBIDDEN = {
    "values": {"db", "services", "routes", "deps", "main", "errors", "observability"},
    "db": {"services", "routes", "deps", "main", "errors", "observability", "models", "schemas"},
    "services": {"routes", "deps", "main", "observability"},
    "routes": {"main"},
}
LAYER_OF = {
    "limits": "values",
    "config": "values",
    "columns": "values",
    "models": "values",
    "schemas": "values",
    "db": "db",
    "services": "services",
    "routes": "routes",
    "deps": "routes",
}


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return {name.removeprefix(PACKAGE + ".") for name in names if name.startswith(PACKAGE + ".")}


MODULES = sorted(path for path in API.rglob("*.py") if "migrations" not in path.parts)


def test_every_layered_module_is_found() -> None:
    found = {path.relative_to(API).parts[0].removesuffix(".py") for path in MODULES}
    assert set(LAYER_OF) <= found


@pytest.mark.parametrize("path", MODULES, ids=lambda path: str(path.relative_to(API)))
def test_imports_run_one_way(path: Path) -> None:
    layer = LAYER_OF.get(path.relative_to(API).parts[0].removesuffix(".py"))
    if layer is None:
        return  # the app's edges (main, cli, errors, observability...) may import any layer
    wrong = {name for name in _imports(path) if name.split(".")[0] in FORBIDDEN[layer]}
    assert not wrong, f"{path.relative_to(API)} ({layer}) imports {sorted(wrong)}"
