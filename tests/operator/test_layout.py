"""The operator's rooms, as operator/README.md describes them: every module in its table, no module reaching into
another's private names, the builders free of cluster access, a kind's name spelled in kinds.py alone."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from taskplatform.operator.kinds import KINDS

OPERATOR = Path(__file__).resolve().parents[2] / "operator"
MODULES = sorted([*OPERATOR.glob("*.py"), *(OPERATOR / "specs").glob("*.py")])
# What a builder may not use: the cluster, a pass, the work queue, kopf.
NOT_FOR_BUILDERS = {
    "taskplatform.operator.kube", "taskplatform.operator.platform", "taskplatform.operator.datamigration",
    "taskplatform.operator.backups", "taskplatform.operator.restore", "taskplatform.operator.storage",
    "taskplatform.operator.status", "taskplatform.operator.runtime", "taskplatform.operator.runner",
    "taskplatform.operator.handlers", "taskplatform.operator.main", "taskplatform.operator.crdgen",
    "taskplatform.operator.metrics", "kopf", "kubernetes",
}  # fmt: skip


def _name(path: Path) -> str:
    return str(path.relative_to(OPERATOR).with_suffix(""))


def _imports(path: Path) -> list[tuple[str, str]]:
    """(module, name) of every `from module import name`, and (module, "") of every `import module`."""
    found: list[tuple[str, str]] = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            found += [(node.module, alias.name) for alias in node.names]
        elif isinstance(node, ast.Import):
            found += [(alias.name, "") for alias in node.names]
    return found


@pytest.mark.parametrize("path", [p for p in MODULES if p.name != "__init__.py"], ids=_name)
def test_the_readme_describes_every_module(path: Path) -> None:
    assert f"| `{_name(path)}.py` |" in (OPERATOR / "README.md").read_text()


@pytest.mark.parametrize("path", MODULES, ids=_name)
def test_no_module_imports_another_modules_private_names(path: Path) -> None:
    private = [(m, n) for m, n in _imports(path) if m.startswith("taskplatform.") and n.startswith("_")]
    assert private == []


@pytest.mark.parametrize("path", sorted((OPERATOR / "specs").glob("*.py")), ids=_name)
def test_the_builders_touch_no_cluster(path: Path) -> None:
    used = {m for m, _ in _imports(path)} | {f"{m}.{n}" for m, n in _imports(path)}
    assert not {m for m in used if m in NOT_FOR_BUILDERS or m.split(".")[0] in NOT_FOR_BUILDERS}


def test_the_kopf_wiring_holds_no_state() -> None:
    tree = ast.parse((OPERATOR / "handlers.py").read_text())
    assert not [n for n in tree.body if isinstance(n, ast.ClassDef)]
    assert not [n for n in ast.walk(tree) if isinstance(n, ast.Global)]  # the runtime lives on kopf's memo


@pytest.mark.parametrize("path", [p for p in MODULES if p.name != "kinds.py"], ids=_name)
def test_a_kinds_name_is_spelled_in_kinds_py_alone(path: Path) -> None:
    names = {kind.kind for kind in KINDS}
    spelled = [
        node.value
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in names
    ]
    assert spelled == []
