"""The layering of ARCHITECTURE.md, read from the source with ``ast``: imports run one way, no file-level
import cycle, the library uses no private torch API, no ctypes and no ``param.data`` reassignment, and its
public functions have docstrings and type hints."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "mulsupcon"

# Rank of each module (dotted name below ``mulsupcon``, by longest matching prefix); a module may import
# only modules of its own rank or lower.
LAYERS = {
    "data": 0,
    "ops": 1, "io": 1, "config": 1, "metrics": 1, "tables": 1,
    "models": 2, "losses": 2, "moco": 2, "memory": 2,
    "train": 3,
    "cli": 4, "__main__": 4, "demo": 4, "reproduce": 4, "benchmark": 4, "boomer_worker": 4, "embed": 4, "estimator": 4, "evaluate": 4, "plots": 4, "predict": 4,
}
LAYER_NAMES = {0: "data", 1: "building blocks (basic)", 2: "building blocks", 3: "training", 4: "applications"}


def _modules() -> dict[str, tuple[Path, bool]]:
    out = {}
    for f in SRC.rglob("*.py"):
        parts = list(f.relative_to(SRC.parent).with_suffix("").parts)
        is_pkg = parts[-1] == "__init__"
        out[".".join(parts[:-1] if is_pkg else parts)] = (f, is_pkg)
    return out


def _imports(name: str, path: Path, is_pkg: bool, known: set[str]) -> set[str]:
    """Modules of the package that ``name`` imports anywhere in its file (also inside functions)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "mulsupcon")
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_pkg else name.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "mulsupcon":
                continue
            for alias in node.names:
                full = f"{target}.{alias.name}"
                found.add(full if full in known else target)
    return {m for m in found if m in known and m != name}


def _rank(module: str) -> int:
    rest = module.split(".")[1:]
    if not rest:
        return 4  # the package's __init__ (version only)
    for n in range(len(rest), 0, -1):
        key = ".".join(rest[:n])
        if key in LAYERS:
            return LAYERS[key]
    raise AssertionError(f"module {module} has no layer in LAYERS: add it")


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    mods = _modules()
    return {m: _imports(m, f, is_pkg, set(mods)) for m, (f, is_pkg) in mods.items()}


def test_every_module_has_a_layer(graph):
    for m in graph:
        _rank(m)


def test_imports_run_one_way(graph):
    upward = sorted(f"{m} ({LAYER_NAMES[_rank(m)]}) imports {t} ({LAYER_NAMES[_rank(t)]})"
                    for m, targets in graph.items() for t in targets if _rank(t) > _rank(m))
    assert not upward, "\n".join(upward)


def test_no_import_cycles(graph):
    cycles, state = [], {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                cycles.append(" -> ".join(stack[stack.index(nxt):] + [nxt]))
            elif nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = "done"

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])
    assert not cycles, "\n".join(cycles)


def test_the_checker_sees_upward_imports_and_cycles(tmp_path):
    """Negative control: the same reading of a tiny fake package finds a planted cycle."""
    pkg = tmp_path / "mulsupcon"
    (pkg / "train").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "train" / "__init__.py").write_text("")
    (pkg / "moco.py").write_text("def f():\n    from mulsupcon.train.common import x\n")
    (pkg / "train" / "common.py").write_text("from ..moco import f\nx = 1\n")
    known = {"mulsupcon", "mulsupcon.moco", "mulsupcon.train", "mulsupcon.train.common"}
    assert _imports("mulsupcon.moco", pkg / "moco.py", False, known) == {"mulsupcon.train.common"}
    assert _imports("mulsupcon.train.common", pkg / "train" / "common.py", False, known) == {"mulsupcon.moco"}
    assert _rank("mulsupcon.train.common") > _rank("mulsupcon.moco")


def _calls_and_assignments():
    for f in sorted(SRC.rglob("*.py")):
        tree = ast.parse(f.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            yield f.relative_to(SRC.parent), node


def test_no_private_torch_api_no_ctypes_no_data_reassignment():
    bad = []
    for rel, node in _calls_and_assignments():
        if isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__"):
            root = node.value
            while isinstance(root, ast.Attribute):
                root = root.value
            if isinstance(root, ast.Name) and root.id == "torch" and not node.attr.startswith("_foreach_"):
                bad.append(f"{rel}:{node.lineno}: torch private API {node.attr}")
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [a.name for a in node.names] + ([node.module] if isinstance(node, ast.ImportFrom) and node.module else [])
            if any(n.split(".")[0] == "ctypes" for n in names):
                bad.append(f"{rel}:{node.lineno}: ctypes")
        if isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Attribute) and target.attr == "data":
                    bad.append(f"{rel}:{node.lineno}: assignment to .data")
    assert not bad, "\n".join(bad)


# Overrides of torch's own API, documented by their class's docstring ("Call: ...", "Shapes: ...").
OVERRIDES = {"forward", "backward", "extra_repr", "train"}


def _undocumented(tree: ast.Module) -> list[tuple[int, str, str]]:
    """(line, name, what is missing) for each public function of a module and each public method of its
    public classes that lacks a docstring or a type hint on an argument or the return."""
    found = []
    items = [(n, n.name) for n in tree.body if isinstance(n, ast.FunctionDef)]
    for cls in (n for n in tree.body if isinstance(n, ast.ClassDef) and not n.name.startswith("_")):
        items += [(m, f"{cls.name}.{m.name}") for m in cls.body
                  if isinstance(m, ast.FunctionDef) and m.name not in OVERRIDES]
    for fn, name in items:
        if fn.name.startswith("_"):
            continue
        args = [a for a in (*fn.args.posonlyargs, *fn.args.args, *fn.args.kwonlyargs) if a.arg not in ("self", "cls")]
        missing = [a.arg for a in args if a.annotation is None] + (["return"] if fn.returns is None else [])
        if not ast.get_docstring(fn):
            found.append((fn.lineno, name, "docstring"))
        if missing:
            found.append((fn.lineno, name, "type hints of " + ", ".join(missing)))
    return found


def test_every_public_function_has_a_docstring_and_type_hints():
    bad = [f"{f.relative_to(SRC.parent)}:{line}: {name}: no {what}"
           for f in sorted(SRC.rglob("*.py"))
           for line, name, what in _undocumented(ast.parse(f.read_text(encoding="utf-8")))]
    assert not bad, "\n".join(bad)


def test_the_docstring_check_sees_what_is_missing():
    """Negative control: a bare public function and method are reported; private ones and torch overrides are not."""
    tree = ast.parse("def f(x, y: int):\n    return x\n"
                     "def _g(x):\n    pass\n"
                     "class A:\n    def m(self) -> None:\n        pass\n    def forward(self, x):\n        pass\n"
                     "class _B:\n    def m(self):\n        pass\n"
                     "def h(x: int) -> int:\n    \"\"\"Doc.\"\"\"\n    return x\n")
    assert _undocumented(tree) == [(1, "f", "docstring"), (1, "f", "type hints of x, return"), (6, "A.m", "docstring")]


def test_the_declared_minimum_versions_have_the_apis_the_code_uses():
    """The estimator's `validate_data` and `__sklearn_tags__` arrived in scikit-learn 1.6: with 1.5, which the
    package once declared it supported, `import mulsupcon.estimator` failed (checked in a venv with
    scikit-learn 1.5.2)."""
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "pyproject.toml").read_text()
    major, minor = map(int, re.search(r'"scikit-learn>=(\d+)\.(\d+)', text).groups())
    assert (major, minor) >= (1, 6)
    # likewise torch: torch.amp.GradScaler (2.3) runs in every pretraining, torch.onnx.export(dynamo=) is 2.5
    major, minor = map(int, re.search(r'"torch>=(\d+)\.(\d+)', text).groups())
    assert (major, minor) >= (2, 5)


def test_the_readme_layout_names_every_module():
    """The README's 'Layout' block is the map a reader starts from: a module missing from it is a module
    nobody finds."""
    readme = (SRC.parents[1] / "README.md").read_text(encoding="utf-8")
    layout = readme[readme.index("## Layout"):]
    layout = layout[layout.index("```"):layout.index("```", layout.index("```") + 3)]
    missing = sorted(str(f.relative_to(SRC)) for f in SRC.rglob("*.py")
                     if f.name not in ("__init__.py", "__main__.py") and not re.search(rf"\b{re.escape(f.name)}", layout))
    assert not missing, f"add to README.md's Layout: {missing}"
