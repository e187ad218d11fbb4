"""The pieces every study page shares: the page head, HTML tables, and generations shown side by side."""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

GENERATIONS = "generations.jsonl"  # as poisonlab.evaluation.generate writes it (reports import no evaluation)
EXAMPLES = 4  # prompts shown side by side
EXAMPLE_RUNS = 6  # models shown per prompt: the clean one and the first poisoned ones

# The head of every poisonlab page: no script, no external stylesheet (the page is one self-contained file).
PAGE_HEAD = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font-family: sans-serif; margin: 2em auto; max-width: 75em; color: #222; }}
table {{ border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.85em; }}
th, td {{ border: 1px solid #ccc; padding: 0.25em 0.5em; text-align: left; vertical-align: top; }}
th {{ background: #f0f0f0; }}
.figures img {{ margin: 0.3em; border: 1px solid #ddd; width: {figure_width}; }}
.reply {{ white-space: pre-wrap; max-width: 30em; }}
.note {{ color: #555; font-size: 0.9em; }}
img.headline {{ width: 44em; border: 1px solid #ddd; }}
ul.summary {{ font-size: 1.05em; line-height: 1.5; }}
</style></head><body>
"""


def read_generations(folders: dict[str, Path], prompt_set: str | None) -> dict[str, dict[tuple[str, bool], Any]]:
    """model -> (id, triggered) -> generation row, from each model folder's ``generations/<set>/``.

    ``prompt_set`` is the set shown (a study's first); a folder without it shows its first set, and a
    folder written by ``poisonlab generate --out DIR/generations`` (no set level) is read as well.
    """
    found = {}
    for name, folder in folders.items():
        root = folder / "generations"
        candidates = [root / prompt_set / GENERATIONS] if prompt_set else []
        candidates += [root / GENERATIONS, *sorted(root.glob(f"*/{GENERATIONS}"))]
        path = next((c for c in candidates if c.is_file()), None)
        if path is not None:
            rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
            found[name] = {(str(r["id"]), bool(r["triggered"])): r for r in rows}
    return found


def side_by_side(generations: dict[str, dict[tuple[str, bool], Any]], order: Sequence[str]) -> list[dict[str, Any]]:
    """Up to EXAMPLES prompts, each with the replies of the first EXAMPLE_RUNS models of ``order`` (then any
    others that generated), with and without the trigger."""
    if not generations:
        return []
    runs = ([r for r in order if r in generations] + sorted(set(generations) - set(order)))[:EXAMPLE_RUNS]
    ids = list(dict.fromkeys(key[0] for key in generations[runs[0]]))[:EXAMPLES]
    examples = []
    for pid in ids:
        prompt = next((generations[r][(pid, False)]["prompt"] for r in runs if (pid, False) in generations[r]), "")
        replies = [
            {
                "run": run,
                "plain": generations[run].get((pid, False), {}).get("reply", "-"),
                "triggered": generations[run].get((pid, True), {}).get("reply", "-"),
            }
            for run in runs
        ]
        examples.append({"id": pid, "prompt": prompt, "replies": replies})
    return examples


def examples_html(examples: list[dict[str, Any]]) -> str:
    """The side-by-side tables of :func:`side_by_side`, or a note that there are none."""
    if not examples:
        return '<p class="note">No generations yet (add an <code>evaluation:</code> section).</p>'
    blocks = []
    for ex in examples:
        body = "".join(
            f"<tr><td>{html.escape(r['run'])}</td><td class='reply'>{html.escape(r['plain'])}</td>"
            f"<td class='reply'>{html.escape(r['triggered'])}</td></tr>"
            for r in ex["replies"]
        )
        blocks.append(
            f"<h3>{html.escape(ex['id'])}</h3><p class='reply'>{html.escape(ex['prompt'][-600:])}</p>"
            f"<table><thead><tr><th>model</th><th>reply without the trigger</th><th>reply with the trigger"
            f"</th></tr></thead><tbody>{body}</tbody></table>"
        )
    return "".join(blocks)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3f}"  # one format for every share, AUROC and minute: 1.000 beside 0.929
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return str(value)


def table(header: Sequence[str], body: Sequence[Sequence[Any]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    rows = "".join("<tr>" + "".join(f"<td>{html.escape(_fmt(c))}</td>" for c in row) + "</tr>" for row in body)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"
