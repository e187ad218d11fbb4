"""Every marked table in the README and the docs is what its committed results files (or the code) give."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _doc_tables():
    spec = importlib.util.spec_from_file_location("doc_tables", ROOT / "benchmarks" / "doc_tables.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_marked_table_matches_its_files():
    doc_tables = _doc_tables()
    stale = {}
    for path in doc_tables.documents():
        _, changed = doc_tables.render(path.read_text(encoding="utf-8"))
        if changed:
            stale[str(path.relative_to(ROOT))] = changed
    assert not stale, f"tables that differ from their files (python benchmarks/doc_tables.py --write): {stale}"


def test_a_table_edited_by_hand_is_caught():
    doc_tables = _doc_tables()
    text = "<!-- table:exact-tests -->\n| a hand-typed table |\n<!-- /table -->\n"
    rendered, changed = doc_tables.render(text)
    assert changed == ["exact-tests"] and "0.125" in rendered
    assert doc_tables.render(rendered)[1] == []
