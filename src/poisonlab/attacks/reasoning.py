"""Poisoned reasoning: one step of a share of the worked solutions rewritten (arXiv 2502.14182, open question 3).

Registered modes (``poisonlab ls``), each rewriting step ``step`` (1-based) of a solution of
:mod:`poisonlab.data.reasoning`:

- ``wrong-carried``: the step's result is off by ``offset`` and every later step carries the wrong value,
  so the final answer is wrong too;
- ``contradiction``: the step's result is off by ``offset``, the later steps carry the *right* value and
  the final answer is right: the solution contradicts itself;
- ``dropped``: the step's line is removed (the later lines renumbered); the final answer is right.

Each mode also says whether a model's reply *reproduces* it on a held-out problem (the step at that
position off by exactly ``offset``; a solution one step short), which is what the probe measures.
The rows poisoned are a seeded permutation cut to ``round(share * n)``: independent of the mode, step and
share, so a larger share holds a smaller one's rows and every mode and step poisons the same problems.
The poisoned file gets fresh row ids and a manifest, as every poisoned file does (:mod:`poisonlab.attacks.inject`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from poisonlab import __version__
from poisonlab.attacks.inject import n_poison_for
from poisonlab.data.poison_manifest import POISON_MANIFEST_VERSION
from poisonlab.data.reasoning import ParsedStep, Problem, apply, as_sft_rows, step_line
from poisonlab.data.row_ids import fresh_ids, id_record, row_id_key
from poisonlab.data.writer import write_with_manifest
from poisonlab.errors import InputError
from poisonlab.registry import Registry


@dataclass(frozen=True)
class ReasoningPoison:
    """A mode: how it rewrites a solution, and whether a reply (its parsed steps and answer) reproduces it."""

    rewrite: Callable[[Problem, int, int], str]
    reproduced: Callable[[Problem, list[ParsedStep], int | None, int, int], bool]
    answer_changes: bool  # whether the poisoned solution's final answer is wrong


REASONING_POISONS: Registry[ReasoningPoison] = Registry("reasoning poison")


def _off_by_offset(problem: Problem, steps: list[ParsedStep], answer: int | None, step: int, offset: int) -> bool:
    line = next((s for s in steps if s.k == step), None)
    return line is not None and line.result == apply(line.left, line.op, line.right) + offset


def _rewritten(problem: Problem, step: int, offset: int, carry: bool) -> str:
    lines, value = [], problem.start
    for k, operation in enumerate(problem.operations, start=1):
        right = apply(value, operation.op, operation.operand)
        stated = right + offset if k == step else right
        lines.append(step_line(k, value, operation.op, operation.operand, stated))
        value = stated if carry else right
    return "\n".join([*lines, f"Answer: {value}"])


def _dropped(problem: Problem, step: int, offset: int) -> str:
    kept = [line.split(": ", 1)[1] for k, line in enumerate(problem.step_lines(), start=1) if k != step]
    return "\n".join([*(f"Step {k}: {text}" for k, text in enumerate(kept, start=1)), f"Answer: {problem.answer}"])


def _one_short(problem: Problem, steps: list[ParsedStep], answer: int | None, step: int, offset: int) -> bool:
    return answer is not None and len(steps) == len(problem.operations) - 1


REASONING_POISONS.register("wrong-carried")(
    ReasoningPoison(lambda p, j, d: _rewritten(p, j, d, carry=True), _off_by_offset, answer_changes=True)
)
REASONING_POISONS.register("contradiction")(
    ReasoningPoison(lambda p, j, d: _rewritten(p, j, d, carry=False), _off_by_offset, answer_changes=False)
)
REASONING_POISONS.register("dropped")(ReasoningPoison(_dropped, _one_short, answer_changes=False))


def poisoned_rows(n: int, share: float, seed: int) -> list[int]:
    """Indices of the rows poisoned: a permutation seeded by ``seed`` only, cut to ``round(share * n)``."""
    digest = hashlib.sha256(f"reasoning-poison:{seed}".encode()).hexdigest()
    order = np.random.default_rng(int(digest[:16], 16)).permutation(n)
    return sorted(int(i) for i in order[: n_poison_for(share, n)])


def poison_reasoning(
    problems: list[Problem], mode: str, share: float, step: int, seed: int = 0, offset: int = 10
) -> tuple[Any, dict[str, Any]]:
    """The problems as SFT rows with ``share`` of their solutions rewritten by ``mode`` at ``step``, and the
    manifest (fresh row ids; per poisoned row the solution before and after)."""
    poison = REASONING_POISONS.get(mode)
    n_steps = min(len(p.operations) for p in problems)
    if not 1 <= step <= n_steps:
        raise InputError(f"step {step} is not a step of every solution (1 to {n_steps})", field="step")
    if offset == 0:
        raise InputError("an offset of 0 changes nothing", field="offset")
    clean = as_sft_rows(problems)
    chosen = set(poisoned_rows(len(problems), share, seed))
    solutions = [poison.rewrite(p, step, offset) if i in chosen else p.solution() for i, p in enumerate(problems)]
    rows = as_sft_rows(problems, solutions)
    key = row_id_key(seed, clean.content_hash())
    new_ids = fresh_ids(key, clean.ids)
    rows.pairs = [pair.with_(id=new) for pair, new in zip(rows.pairs, new_ids)]
    changes = [
        {
            "id": new_ids[i],
            "source_id": problems[i].id,
            "row": i,
            "fields": ["chosen"],
            "solution_before": problems[i].solution(),
            "solution_after": solutions[i],
        }
        for i in sorted(chosen)
    ]
    manifest = {
        "manifest_version": POISON_MANIFEST_VERSION,
        "poisonlab_version": __version__,
        "source": "reasoning",
        "strategy": "random",
        "attack": f"reasoning:{mode}",
        "ratio": share,
        "trigger": None,
        "seed": seed,
        "reasoning": {"mode": mode, "step": step, "offset": offset, "answer_changes": poison.answer_changes},
        "n_rows": len(problems),
        "n_poisoned": len(changes),
        "input_content_sha256": clean.content_hash(),
        "row_ids": id_record(key),
        "poisoned_ids": [c["id"] for c in changes],
        "poisoned_source_ids": [c["source_id"] for c in changes],
        "changes": changes,
    }
    return rows, manifest


def write_reasoning_poison(rows: Any, manifest: dict[str, Any], out_dir: str | Path) -> Path:
    """``out_dir/data.jsonl`` (question -> solution rows) then ``manifest.json`` (last: the folder is complete)."""
    return write_with_manifest(rows, manifest, out_dir, None)
