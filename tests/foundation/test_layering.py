"""The house rules of the code base, read from the source with `ast` (every import, function-level included).

- no import loop between packages (each sub-package of m2rl, each top-level module of m2rl, components,
  pipelines is one unit);
- `kfp` only in components/, pipelines/ and m2rl.orchestration; `mlflow` only in m2rl.tracking;
- the study's model names (`single-<domain>`, `merge-<label>`) and the domain list spelled in m2rl.names only.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SOURCES = [*(ROOT / "src" / "m2rl").rglob("*.py"), *(ROOT / "components").rglob("*.py"),
           *(ROOT / "pipelines").rglob("*.py")]
DOMAIN_SET = {"math", "code", "science", "if", "agent"}
NAMES_MODULE = ROOT / "src" / "m2rl" / "names.py"


def module_of(path: Path) -> str:
    rel = path.relative_to(ROOT / "src") if path.is_relative_to(ROOT / "src") else path.relative_to(ROOT)
    parts = list(rel.with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def unit_of(module: str) -> str | None:
    """The layering unit of a module: `m2rl.<sub>` (a package or a top-level module), components, pipelines."""
    parts = module.split(".")
    if parts[0] in ("components", "pipelines"):
        return parts[0]
    if parts[0] == "m2rl":
        return "m2rl" if len(parts) == 1 else f"m2rl.{parts[1]}"
    return None


def imports(path: Path) -> list[tuple[str, int]]:
    """(imported module, line) of every import statement in the file, relative ones resolved."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    here = module_of(path).split(".")
    package = here if path.name == "__init__.py" else here[:-1]
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(a.name, node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package[: len(package) - node.level + 1] + ([base] if base else []))
            out.append((base, node.lineno))
            # `from m2rl import storage` imports the sub-package m2rl.storage
            out += [(f"{base}.{a.name}", node.lineno) for a in node.names if base in ("m2rl",)]
    return out


def _graph() -> dict[str, dict[str, list[str]]]:
    edges: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for path in SOURCES:
        src = unit_of(module_of(path))
        for mod, line in imports(path):
            dst = unit_of(mod)
            if dst and src and dst != src and dst != "m2rl":
                edges[src][dst].append(f"{path.relative_to(ROOT)}:{line}")
    return edges


def test_no_import_loop_between_packages():
    edges = _graph()
    state: dict[str, int] = {}
    stack: list[str] = []
    loops: list[list[str]] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges.get(node, {})):
            if state.get(nxt) == 1:
                loops.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node)
    described = []
    for loop in loops:
        hops = [f"{a} -> {b} ({edges[a][b][0]})" for a, b in zip(loop, loop[1:], strict=False)]
        described.append("; ".join(hops))
    assert not loops, "import loops:\n" + "\n".join(described)


def _importers_of(top: str) -> set[str]:
    found = set()
    for path in SOURCES:
        if any(mod == top or mod.startswith(f"{top}.") for mod, _ in imports(path)):
            found.add(module_of(path))
    return found


def test_kfp_only_in_components_pipelines_and_orchestration():
    bad = {m for m in _importers_of("kfp") if unit_of(m) not in ("components", "pipelines", "m2rl.orchestration")}
    assert not bad, f"kfp imported outside components/pipelines/m2rl.orchestration: {sorted(bad)}"


def test_mlflow_only_in_tracking():
    bad = {m for m in _importers_of("mlflow") if unit_of(m) != "m2rl.tracking"}
    assert not bad, f"mlflow imported outside m2rl.tracking: {sorted(bad)}"


def _string_prefix(node: ast.AST) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr) and node.values and isinstance(node.values[0], ast.Constant):
        return str(node.values[0].value)
    return None


def test_model_names_and_domains_are_spelled_in_names_only():
    found = []
    for path in SOURCES:
        if path == NAMES_MODULE:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            text = _string_prefix(node)
            if text is not None and text.startswith(("single-", "merge-")):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {text!r}")
            if isinstance(node, (ast.Tuple, ast.List, ast.Set)) and node.elts and all(
                    isinstance(e, ast.Constant) and isinstance(e.value, str) for e in node.elts):
                if {e.value for e in node.elts} == DOMAIN_SET:
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno}: the domain list")
    assert not found, "spell these through m2rl.names:\n" + "\n".join(found)


def test_the_checker_sees_what_it_should():
    """The rules above would catch a violation: a loop, a stray kfp import, a model name literal."""
    edges = _graph()
    assert "m2rl.spec" in edges.get("m2rl.data", {}) and "m2rl.names" in edges.get("m2rl.spec", {})
    tree = ast.parse('x = f"single-{d}"\ny = ("math", "code", "science", "if", "agent")')
    prefixes = [_string_prefix(n) for n in ast.walk(tree)]
    assert "single-" in prefixes
    assert any(isinstance(n, ast.Tuple) and {e.value for e in n.elts} == DOMAIN_SET for n in ast.walk(tree))
    assert imports(ROOT / "src" / "m2rl" / "spec" / "study.py")
