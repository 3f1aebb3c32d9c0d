"""genlab's import graph, read from the source with ast (every import, those inside
functions too): no cycle, and no module imports a part of a higher layer or another part
of its own layer (genlab.LAYERS; the ground floor's modules excepted among themselves)."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

import genlab

GENLAB = Path(genlab.__file__).resolve().parent


def module_names(root: Path) -> dict[str, Path]:
    """Dotted name -> file of every module under ``root`` (a package folder)."""
    out = {}
    for p in sorted(root.rglob("*.py")):
        parts = (root.name, *p.relative_to(root).with_suffix("").parts)
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = p
    return out


def import_graph(root: Path) -> dict[str, set[str]]:
    """module -> the package's modules it imports (``from pkg import mod`` counts as the
    module, ``from pkg.mod import name`` as pkg.mod)."""
    mods = module_names(root)
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for m, path in mods.items():
        package = m if path.name == "__init__.py" else m.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            targets = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = package.split(".")[:len(package.split(".")) - node.level + 1]
                    base = ".".join(up + ([base] if base else []))
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in mods else base
                           for a in node.names]
            for t in targets:
                while t and t not in mods:  # genlab.runs.store.X -> genlab.runs.store
                    t = t.rpartition(".")[0]
                if t and t != m and t != root.name:
                    graph[m].add(t)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module, and self-loops
    (Tarjan's algorithm): a graph without cycles has none."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1 or v in graph.get(v, ()):
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(out)


def layer_breaches(graph: dict[str, set[str]], layers) -> list[str]:
    """Each import of a part of a higher layer, or of another part of the same layer
    above the ground floor (layers[0]), as "a -> b"; a part of genlab no layer names is
    one too."""
    level = {part: i for i, parts in enumerate(layers) for part in parts}
    out = []
    for m, targets in sorted(graph.items()):
        part = m.split(".")[1] if "." in m else None
        if part is None:
            continue
        if part not in level:
            out.append(f"{m}: in no layer of genlab.LAYERS")
            continue
        for t in sorted(targets):
            other = t.split(".")[1]
            if other == part or other not in level:
                continue
            if level[other] > level[part] or (level[other] == level[part] and level[part] > 0):
                out.append(f"{m} -> {t}")
    return out


def test_genlab_has_no_import_cycle():
    graph = import_graph(GENLAB)
    assert len(graph) > 40 and "genlab.evaluation.metrics" in graph  # the package was read
    assert cycles(graph) == []


def test_no_module_imports_a_higher_layer():
    graph = import_graph(GENLAB)
    assert {"genlab.config", "genlab.nn"} <= graph["genlab.models.base"]  # relative imports read
    assert "genlab.evaluation.metrics" in graph["genlab.training.loop"]
    assert layer_breaches(graph, genlab.LAYERS) == []


def test_every_part_of_genlab_is_in_a_layer():
    parts = {p.stem for p in GENLAB.iterdir() if p.suffix == ".py" or (p / "__init__.py").exists()}
    named = {part for layer in genlab.LAYERS for part in layer}
    assert parts - {"__init__"} == named


@pytest.fixture
def toy(tmp_path) -> Path:
    """A package of three layers (low < mid < high) whose imports break both rules:
    mid.a and mid.b import each other inside functions, and low imports high."""
    root = tmp_path / "toy"
    (root / "mid").mkdir(parents=True)
    (root / "__init__.py").write_text("")
    (root / "low.py").write_text("def f():\n    from .high import g\n")
    (root / "high.py").write_text("from .mid import a\nfrom toy.low import f\n")
    (root / "mid" / "__init__.py").write_text("")
    (root / "mid" / "a.py").write_text("def f():\n    from . import b\n")
    (root / "mid" / "b.py").write_text("import toy.mid.a\n")
    return root


def test_the_checks_find_a_cycle_and_an_upward_import(toy):
    graph = import_graph(toy)
    assert graph["toy.high"] == {"toy.mid.a", "toy.low"} and graph["toy.mid.b"] == {"toy.mid.a"}
    assert cycles(graph) == [["toy.high", "toy.low"], ["toy.mid.a", "toy.mid.b"]]
    assert layer_breaches(graph, (("low",), ("mid",), ("high",))) == ["toy.low -> toy.high"]
    # low and high both on the ground floor: allowed between them, but high -> mid goes up
    assert layer_breaches(graph, (("low", "high"), ("mid",))) == ["toy.high -> toy.mid.a"]
    assert layer_breaches(graph, (("low",), ("mid", "high"))) == ["toy.high -> toy.mid.a",
                                                                 "toy.low -> toy.high"]
    assert layer_breaches(graph, (("low",), ("high",))) == ["toy.low -> toy.high"] + [
        f"toy.mid{m}: in no layer of genlab.LAYERS" for m in ("", ".a", ".b")]
