"""The package's shape, read from the source with ``ast`` (nothing is imported):

* no import cycle among ``rag`` modules, counting imports inside functions too;
* no ``rag`` module imports from a higher layer (:data:`LAYERS`);
* no module of ``rag``, ``training`` or ``benchmarks`` imports another module's private
  (``_name``) names (tests may use those of the module they test);
* no ``sys.path`` edits: scripts run as ``python -m training.NAME`` / ``python -m benchmarks.NAME``
  from the repository root and import ``rag`` (installed) and their siblings as packages.

Run this file as a script to print the import graph's cycles and layer violations.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("rag", "training", "benchmarks")

#: Lowest first: a module may import from its own layer and the ones below, never from above.
#: A name is a module or a subpackage (then every module under it); ``rag`` is the package's
#: own ``__init__`` only. Every ``rag`` module must be in a layer, so a new one is placed on purpose.
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("basics", ("rag.types", "rag.errors", "rag.settings", "rag.environment", "rag.normalize", "rag.hashing",
                "rag.terminal", "rag.fs")),
    ("ingest", ("rag.ingest",)),
    ("encoder", ("rag.encoder",)),
    ("index", ("rag.index",)),
    # rag.models holds the shipped reader's weights (data, no code)
    ("answer", ("rag.answer", "rag.models")),
    # ``rag`` itself (its __init__) is the public facade over the pipeline
    ("pipeline", ("rag.pipeline", "rag")),
    # run_eval builds and loads indexes through the pipeline (rag.IndexWriter, rag.load)
    ("evaluation", ("rag.evaluation",)),
    ("app", ("rag.cli", "rag.ui", "rag.__main__")),
)


@dataclass(frozen=True)
class Import:
    source: str  # importing module
    target: str  # imported module (the deepest one that exists)
    name: str | None  # the name taken from ``target`` by ``from target import name``, if not a module
    line: int


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


@cache
def modules() -> dict[str, Path]:
    """Every module of :data:`PACKAGES`, by dotted name."""
    out: dict[str, Path] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            out[module_name(path)] = path
    return out


@cache
def tree(module: str) -> ast.Module:
    path = modules()[module]
    return ast.parse(path.read_text(encoding="utf-8"), str(path))


def _existing(dotted: str) -> str | None:
    """``dotted`` or the deepest first-party module it starts with (``a.b.c`` -> ``a.b``)."""
    parts = dotted.split(".")
    while parts:
        if ".".join(parts) in modules():
            return ".".join(parts)
        parts.pop()
    return None


def _base(module: str, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    package = module.split(".")
    if modules()[module].name != "__init__.py":
        package.pop()
    package = package[: len(package) - (node.level - 1)]
    return ".".join(package + ([node.module] if node.module else []))


def imports(module: str) -> Iterator[Import]:
    """First-party imports of ``module``, at any depth (functions, classes, ``if`` blocks)."""
    for node in ast.walk(tree(module)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                target = _existing(alias.name)
                if target is not None:
                    yield Import(module, target, None, node.lineno)
        elif isinstance(node, ast.ImportFrom):
            base = _base(module, node)
            for alias in node.names:
                if f"{base}.{alias.name}" in modules():  # from package import submodule
                    yield Import(module, f"{base}.{alias.name}", None, node.lineno)
                elif (target := _existing(base)) is not None:
                    yield Import(module, target, alias.name if alias.name != "*" else None, node.lineno)


def graph(prefix: str = "rag") -> dict[str, set[str]]:
    """Module -> the modules it imports, among the modules of package ``prefix``."""
    inside = {m for m in modules() if m == prefix or m.startswith(prefix + ".")}
    return {m: {i.target for i in imports(m) if i.target in inside and i.target != m} for m in sorted(inside)}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for start in edges:
        if start in index:
            continue
        work = [(start, iter(sorted(edges[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return sorted(found)


def layer(module: str) -> int | None:
    """The index in :data:`LAYERS` of ``module``'s layer (the longest matching name wins)."""
    best: tuple[int, int] | None = None
    for i, (_, names) in enumerate(LAYERS):
        for name in names:
            if module == name or (name != "rag" and module.startswith(name + ".")):
                if best is None or len(name) > best[0]:
                    best = (len(name), i)
    return None if best is None else best[1]


def upward_imports() -> list[str]:
    out = []
    for m in graph():
        for i in imports(m):
            lm, lt = layer(m), layer(i.target)
            if lm is not None and lt is not None and lt > lm:
                out.append(f"{modules()[m].relative_to(ROOT)}:{i.line}: {m} ({LAYERS[lm][0]}) imports "
                           f"{i.target} ({LAYERS[lt][0]})")
    return out


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def private_imports() -> list[str]:
    """``from other import _name``, and ``other._name`` where ``other`` is an imported module."""
    out = []
    for m, path in modules().items():
        where = path.relative_to(ROOT)
        module_aliases: dict[str, str] = {}  # local name -> first-party module
        for node in ast.walk(tree(m)):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.asname and alias.name in modules():
                        module_aliases[alias.asname] = alias.name
            elif isinstance(node, ast.ImportFrom):
                base = _base(m, node)
                for alias in node.names:
                    if f"{base}.{alias.name}" in modules():
                        module_aliases[alias.asname or alias.name] = f"{base}.{alias.name}"
                    elif _private(alias.name) and (target := _existing(base)) is not None and target != m:
                        out.append(f"{where}:{node.lineno}: {m} imports {alias.name} from {target}")
        for node in ast.walk(tree(m)):
            if (isinstance(node, ast.Attribute) and _private(node.attr) and isinstance(node.value, ast.Name)
                    and module_aliases.get(node.value.id, m) != m):
                out.append(f"{where}:{node.lineno}: {m} uses {module_aliases[node.value.id]}.{node.attr}")
    return sorted(set(out))


def sys_path_edits() -> list[str]:
    """Calls and assignments that change ``sys.path``, in every Python file of the repository."""
    out = []
    skip = {".venv", ".git", "build", "dist", "node_modules"}
    for path in sorted(ROOT.rglob("*.py")):
        rel = path.relative_to(ROOT)
        if any(part in skip or part.startswith(".") or part.endswith(".egg-info") for part in rel.parts[:-1]):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            target = None
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                target = node.func.value  # sys.path.insert(...), .append, .extend, .remove
            elif isinstance(node, (ast.Assign, ast.AugAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                target = next((t for t in targets if isinstance(t, (ast.Attribute, ast.Subscript))), None)
                if isinstance(target, ast.Subscript):
                    target = target.value
            if (isinstance(target, ast.Attribute) and target.attr == "path" and isinstance(target.value, ast.Name)
                    and target.value.id == "sys"):
                out.append(f"{rel}:{node.lineno}")
    return out


def test_every_rag_module_has_a_layer() -> None:
    missing = [m for m in graph() if layer(m) is None]
    assert not missing, f"place these modules in a layer of tests/test_architecture.py LAYERS: {missing}"


def test_no_import_cycles_in_rag() -> None:
    found = cycles(graph())
    assert not found, "import cycles among rag modules:\n" + "\n".join(" <-> ".join(c) for c in found)


def test_no_module_imports_from_a_higher_layer() -> None:
    found = upward_imports()
    assert not found, "imports from a higher layer:\n" + "\n".join(found)


def test_no_private_names_imported_across_modules() -> None:
    found = private_imports()
    assert not found, "private names used outside their module (give them a public name):\n" + "\n".join(found)


def test_no_sys_path_edits() -> None:
    found = sys_path_edits()
    assert not found, "sys.path edited (run scripts with python -m instead):\n" + "\n".join(found)


def test_the_checks_see_a_cycle_and_the_layers() -> None:
    # the analysis itself: a 3-cycle and a self-contained pair are found, an acyclic chain is not
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"e"}, "e": set()}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []
    assert cycles({"a": {"b"}, "b": {"a"}, "c": {"d"}, "d": {"c"}}) == [["a", "b"], ["c", "d"]]
    assert layer("rag.types") == 0 and layer("rag.cli") == len(LAYERS) - 1
    assert layer("rag.index.store") is not None and layer("rag.index.store") < layer("rag.answer.reader")  # type: ignore[operator]
    assert layer("rag") == layer("rag.pipeline") and layer("rag.not_placed_yet") is None
    # relative and function-level imports are resolved
    assert any(i.target == "rag.pipeline" for i in imports("rag.cli"))


if __name__ == "__main__":
    found_cycles = cycles(graph())
    print(f"{len(modules())} modules; {len(found_cycles)} cycle(s) in rag")
    for c in found_cycles:
        print("  " + " <-> ".join(c))
    for title, lines in (("upward imports", upward_imports()), ("private imports", private_imports()),
                         ("sys.path edits", sys_path_edits())):
        print(f"{len(lines)} {title}")
        for line in lines:
            print("  " + line)
