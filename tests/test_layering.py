"""The package's stages import only stages below them (README, Architecture).

Every ``import``/``from ... import`` of a ``poisonlab`` module, at module level or inside a
function (lazy imports count: they are still dependencies), is checked against the order below.
Attackers and defenders share a level and never import each other: detectors must not borrow
from the attacks they are meant to catch (IBM ART's detectors never import its attacks).
"""

from __future__ import annotations

import ast
from pathlib import Path

import poisonlab

PACKAGE = Path(poisonlab.__file__).parent

# lower number = lower stage; modules at the package root (errors, io, registry, ...) are level 0
LEVELS = {
    "data": 1,
    "models": 2,
    "scoring": 3,
    "training": 4,
    "attacks": 5,
    "defenses": 5,
    "evaluation": 6,
    "reports": 7,
    "watermarks": 7,
    "audits": 7,
    "experiments": 8,
    "cli": 9,
}


def stage_of(module: str) -> str:
    """``poisonlab.attacks.inject`` -> ``attacks``; ``poisonlab.io`` -> ``io``; ``poisonlab`` -> ``poisonlab``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def level(stage: str) -> int:
    return LEVELS.get(stage, 0)


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every poisonlab import in the file; ``from poisonlab import x`` gives ``poisonlab.x``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == "poisonlab":
                found += [(node.lineno, f"poisonlab.{alias.name}") for alias in node.names]
            elif node.module.startswith("poisonlab."):
                found.append((node.lineno, node.module))
        elif isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.startswith("poisonlab.")]
    return found


def violations(package: Path) -> list[str]:
    found = []
    for path in sorted(package.rglob("*.py")):
        relative = path.relative_to(package)
        own = relative.parts[0].removesuffix(".py")
        for line, module in imported_modules(path):
            target = stage_of(module)
            if target == own or level(target) == 0:
                continue
            if level(target) >= level(own):
                found.append(f"{relative}:{line}: {own} (level {level(own)}) imports {module} (level {level(target)})")
    return found


def test_every_stage_imports_only_stages_below_it():
    assert violations(PACKAGE) == []


def test_the_check_sees_lazy_and_upward_imports(tmp_path):
    """The checker itself: an upward import inside a function and a peer import are both caught."""
    (tmp_path / "scoring").mkdir()
    (tmp_path / "scoring" / "bad.py").write_text("def f():\n    from poisonlab.training.dpo import train_dpo\n")
    (tmp_path / "defenses").mkdir()
    (tmp_path / "defenses" / "peek.py").write_text("from poisonlab.attacks import inject\nfrom poisonlab.io import x\n")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "ok.py").write_text("from poisonlab.errors import InputError\nimport poisonlab.data.pairs\n")
    found = violations(tmp_path)
    assert len(found) == 2
    assert any("scoring/bad.py:2" in v and "poisonlab.training.dpo" in v for v in found)
    assert any("defenses/peek.py:1" in v and "poisonlab.attacks" in v for v in found)


def test_every_stage_folder_has_a_level():
    stages = {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert stages <= set(LEVELS), f"add {sorted(stages - set(LEVELS))} to LEVELS (and the README's order)"


# --- no import circles, inside a stage either -------------------------------------------------------------------


def module_name(path: Path, package: Path) -> str:
    parts = list(path.relative_to(package.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def runtime_imports(path: Path, package: Path, modules: set[str]) -> set[str]:
    """The poisonlab modules ``path`` imports when it runs (lazy imports too; ``if TYPE_CHECKING:`` blocks not)."""
    tree = ast.parse(path.read_text(), str(path))
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped |= {id(n) for child in node.body for n in ast.walk(child)}
    found = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module and node.module.startswith("poisonlab"):
            found |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
    return found & modules


def import_cycles(package: Path) -> list[list[str]]:
    """Every set of modules that import each other, directly or round a longer circle (Tarjan's components)."""
    files = {module_name(p, package): p for p in package.rglob("*.py")}
    graph = {m: runtime_imports(p, package, set(files)) - {m} for m, p in files.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while (w := stack.pop()) != v:
                component.append(w)
            if component:
                cycles.append(sorted([v, *component]))

    for module in sorted(graph):
        if module not in index:
            visit(module)
    return cycles


def test_no_module_imports_itself_round_a_circle():
    assert import_cycles(PACKAGE) == []


def test_the_circle_check_sees_a_lazy_circle_and_not_a_typing_one(tmp_path):
    root = tmp_path / "poisonlab"
    (root / "x").mkdir(parents=True)
    (root / "__init__.py").write_text("")
    (root / "x" / "__init__.py").write_text("")
    (root / "x" / "a.py").write_text("from poisonlab.x.b import f\n")
    (root / "x" / "b.py").write_text("def f():\n    from poisonlab.x.a import g\n")
    (root / "x" / "c.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from poisonlab.x.a import g\n"
    )
    assert import_cycles(root) == [["poisonlab.x.a", "poisonlab.x.b"]]
