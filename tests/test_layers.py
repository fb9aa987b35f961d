"""The package's shape: imports point down the layers only, and no import cycle anywhere.

Every ``import`` in every module counts, the ones inside functions too (a lazy import is still
a dependency). The only exception is the root package's ``__getattr__``, which offers
``dflib.load_detector`` as a convenience without importing torch at ``import dflib``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent / "dflib"

# Lower numbers are lower layers; an area may import its own modules and lower layers only.
# Areas on the same layer do not import each other (data knows nothing about models and back).
LAYERS = {
    "dflib": 0,
    "dflib.runtime": 0,
    "dflib.data": 1,
    "dflib.models": 1,
    "dflib.card": 2,
    "dflib.faces": 2,  # faces: detection and cropping, just above data (knows no model)
    "dflib.checkpoint": 3,
    "dflib.evaluation": 4,
    "dflib.explain": 4,
    "dflib.predict_faces": 4.5,  # predict's face mode: faces + explain below it, predict above it
    "dflib.training": 5,
    "dflib.plots": 5,
    "dflib.predict": 5,
    "dflib.export": 5,
    "dflib.notebook_runner": 5,
    "dflib.cli": 6,
    "dflib.__main__": 7,
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def area(module: str) -> str:
    parts = module.split(".")
    return ".".join(parts[:2]) if len(parts) > 1 else parts[0]


def imports_of(path: Path) -> set[str]:
    """The dflib modules ``path`` imports (absolute and relative), except in the root's ``__getattr__``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    me = module_name(path)
    package = me if path.name == "__init__.py" else me.rpartition(".")[0]
    skip: set[int] = set()
    if me == "dflib":
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef) and node.name == "__getattr__":
                skip |= {id(n) for n in ast.walk(node)}
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "dflib"}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "dflib":
                continue
            for alias in node.names:  # `from dflib.data import io` imports the module dflib.data.io
                sub = f"{target}.{alias.name}"
                found.add(sub if _is_module(sub) else target)
    return found


def _is_module(name: str) -> bool:
    rel = Path(*name.split("."))
    return (ROOT.parent / rel).with_suffix(".py").is_file() or (ROOT.parent / rel / "__init__.py").is_file()


MODULES = {module_name(p): p for p in sorted(ROOT.rglob("*.py"))}
GRAPH = {name: {m for m in imports_of(path) if m in MODULES and m != name} for name, path in MODULES.items()}


def test_every_area_has_a_layer():
    assert {area(m) for m in MODULES} <= set(LAYERS), sorted({area(m) for m in MODULES} - set(LAYERS))


@pytest.mark.parametrize("name", sorted(MODULES))
def test_imports_point_down(name):
    mine = area(name)
    bad = [m for m in sorted(GRAPH[name]) if area(m) != mine and LAYERS[area(m)] >= LAYERS[mine]]
    assert not bad, f"{name} (layer {LAYERS[mine]}) imports {bad}, which are not below it"


def test_no_import_cycle():
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(GRAPH[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for start in sorted(GRAPH):
        if start not in state and (cycle := visit(start)):
            pytest.fail("import cycle: " + " -> ".join(cycle))


def test_the_checker_sees_lazy_and_relative_imports():
    assert "dflib.models.registry" in GRAPH["dflib.models.diagnostics"]  # relative
    assert "dflib.checkpoint" in GRAPH["dflib.evaluation.scoring"]  # inside a function
