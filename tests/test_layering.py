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
