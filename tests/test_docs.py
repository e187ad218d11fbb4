"""The README stays a front door, and no relative link in it or in docs/ points at a missing file.

Runs without mkdocs: a regex over the Markdown, so a moved page or figure fails here before the site builds.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
PAGES = sorted((ROOT / "docs").rglob("*.md"))
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")  # [text](target) and ![alt](target)
FENCE = re.compile(r"^(```|~~~).*?^\1", re.S | re.M)


def relative_links(path: Path) -> list[str]:
    text = FENCE.sub("", path.read_text(encoding="utf-8"))  # no links inside code blocks
    targets = [m.group(1) for m in LINK.finditer(text)]
    return [t for t in targets if not re.match(r"^[a-z][a-z0-9+.-]*:", t) and not t.startswith("#")]


def test_readme_is_short() -> None:
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 300, f"README.md has {len(lines)} lines; move detail into docs/"


def test_docs_exist() -> None:
    assert (ROOT / "mkdocs.yml").is_file()
    assert PAGES, "no pages under docs/"


@pytest.mark.parametrize("page", [README, *PAGES], ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_point_to_files(page: Path) -> None:
    missing = []
    for target in relative_links(page):
        file = target.split("#", 1)[0]
        if not (page.parent / file).exists():
            missing.append(target)
    assert not missing, f"{page.relative_to(ROOT)}: links to missing files: {missing}"


def test_the_contributing_page_examples_register_their_plug_ins():
    """Each example on docs/contributing.md is one new file's worth of code, and it registers as it says."""
    import subprocess
    import sys

    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "docs" / "contributing.md").read_text(), re.S)
    check = (
        "from poisonlab.attacks.strategies import STRATEGIES\nfrom poisonlab.defenses.detectors import DETECTORS\n"
        "from poisonlab.training.losses import LOSSES\nfrom poisonlab.evaluation.judges import JUDGES\n"
        "assert 'longest-prompt' in STRATEGIES and 'reply-length' in DETECTORS\n"
        "assert 'hinge' in LOSSES and 'shouting' in JUDGES\n"
    )
    result = subprocess.run([sys.executable, "-c", "\n".join(blocks) + "\n" + check], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
