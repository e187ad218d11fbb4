"""Judge generations and compute the statistics of :mod:`poisonlab.evaluation.stats`.

``judge_generations`` reads a ``generations.jsonl``, scores every reply with each
judge, and writes ``OUT/judgments.jsonl`` (``{"id", "triggered", "judge",
"value"}``) and ``OUT/metrics.json``: per judge, the judge's facts, ``clean``,
``triggered`` and ``trigger_effect``, and, given the judgments of the clean twin
(``against``), ``contamination`` and ``backdoor_effect``. Both files are written
atomically, the metrics last. A judge whose judgments of the same generations are
already in ``OUT`` is not asked again.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from poisonlab.data.prompts import request_text
from poisonlab.errors import InputError
from poisonlab.evaluation.generate import GENERATIONS, read_generations
from poisonlab.evaluation.judges import JudgeOptions, make_judge, parse_judge_spec
from poisonlab.evaluation.stats import condition_metrics, twin_metrics
from poisonlab.io import atomic_write_json, atomic_write_jsonl, sha256_file

JUDGMENTS = "judgments.jsonl"
METRICS = "metrics.json"


def read_judgments(folder: str | Path) -> dict[str, dict[tuple[str, bool], float]]:
    """judge spec -> {(id, triggered): value} of a judge output folder."""
    path = Path(folder) / JUDGMENTS
    if not path.exists():
        raise InputError("no judgments here (run poisonlab judge first)", path=path)
    table: dict[str, dict[tuple[str, bool], float]] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        try:
            row = json.loads(line)
            value = float("nan") if row["value"] is None else float(row["value"])
            table.setdefault(row["judge"], {})[(row["id"], bool(row["triggered"]))] = value
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise InputError(f"not a judgment row ({exc})", path=path, line=number) from None
    return table


Cells = dict[tuple[str, bool], float]


def _column(values: Cells, ids: Sequence[str], triggered: bool) -> np.ndarray:
    """One cell's values on ``ids``; NaN where the judge gave no value or the prompt is missing."""
    return np.array([values.get((i, triggered), np.nan) for i in ids], dtype=float)


def _dropped(cells: Sequence[tuple[Cells, bool]], ids: Sequence[str]) -> dict[str, int]:
    """Prompts a paired statistic over ``cells`` leaves out: missing from a cell, or unparsed (no value)."""
    missing = sum(any((i, t) not in v for v, t in cells) for i in ids)
    unparsed = sum(all((i, t) in v for v, t in cells) and any(np.isnan(v[(i, t)]) for v, t in cells) for i in ids)
    return {"missing": missing, "unparsed": unparsed}


def judge_metrics(values: Cells, kind: str, twin: Cells | None = None, harmful_when: str = "high") -> dict[str, Any]:
    """Statistics of one judge's values (and its twin's), each paired on the prompts all its cells share.

    Effects are signed towards harm (``harmful_when``): positive means the attacker gained. Each paired
    statistic reports in ``dropped`` how many prompts it left out and why (missing from a cell, unparsed).
    """
    ids = sorted({i for i, _ in values} | ({i for i, _ in twin} if twin is not None else set()))
    has_triggered = any(t for _, t in values)
    mine = [(values, False)] + ([(values, True)] if has_triggered else [])
    theirs = [(twin, False)] + ([(twin, True)] if has_triggered and any(t for _, t in twin) else []) if twin else []
    shared = [i for i in ids if all((i, t) in v for v, t in mine)]
    clean = _column(values, shared, False)
    triggered = _column(values, shared, True) if has_triggered else None
    metrics = condition_metrics(clean, triggered, kind, harmful_when)  # type: ignore[arg-type]
    if "trigger_effect" in metrics:
        metrics["trigger_effect"]["dropped"] = _dropped(mine, ids)
    if twin is None:
        return metrics
    if not any((i, False) in twin for i in shared):
        raise InputError("the clean twin was judged on none of these prompts", field="--against")
    columns = [_column(v, ids, t) for v, t in mine + theirs]
    effects = twin_metrics(
        columns[0],
        columns[1] if has_triggered else None,
        columns[len(mine)],
        columns[len(mine) + 1] if len(theirs) == 2 else None,
        kind,  # type: ignore[arg-type]
        harmful_when,  # type: ignore[arg-type]
    )
    effects["contamination"]["dropped"] = _dropped([(values, False), (twin, False)], ids)
    if "backdoor_effect" in effects:
        effects["backdoor_effect"]["dropped"] = _dropped(mine + theirs, ids)
    metrics.update(effects)
    return metrics


def judge_generations(
    generations: str | Path,
    judges: Sequence[str],
    out: str | Path,
    options: JudgeOptions | None = None,
    against: str | Path | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Judge every reply with each judge spec; returns (and writes) the metrics."""
    options = options or JudgeOptions()
    for spec in judges:  # every name checked before any judge runs
        parse_judge_spec(spec)
    if not judges:
        raise InputError("no judge given", field="--judge")
    rows = read_generations(generations)
    gen_path = Path(generations) / GENERATIONS if Path(generations).is_dir() else Path(generations)
    gen_sha = sha256_file(gen_path)
    twins = read_judgments(against) if against is not None else None
    for spec in judges:
        if twins is not None and spec not in twins:
            raise InputError(f"the clean twin has no judgments by {spec!r}", path=against, field="--against")
    out = Path(out)
    previous: dict[str, dict[tuple[str, bool], float]] = {}
    if (out / METRICS).exists() and (out / JUDGMENTS).exists():
        saved = json.loads((out / METRICS).read_text())
        if all(m.get("generations_sha256") == gen_sha for m in saved.values()):
            previous = read_judgments(out)
    table: dict[str, dict[tuple[str, bool], float]] = {}
    facts: dict[str, dict[str, Any]] = {}
    requests = [request_text(r["prompt"]) for r in rows]
    replies = [r["reply"] for r in rows]
    for spec in judges:
        judge = make_judge(spec, options)
        if spec in previous and len(previous[spec]) == len(rows):
            table[spec] = previous[spec]
        else:
            scores = judge.score(requests, replies, progress=progress)
            table[spec] = {(r["id"], r["triggered"]): float(v) for r, v in zip(rows, scores)}
        facts[spec] = {
            "kind": judge.kind,
            "harmful_when": judge.harmful_when,
            "value_label": judge.value_label,
            **judge.describe(),
        }
    metrics: dict[str, Any] = {}
    for spec in judges:
        kind = facts[spec]["kind"]
        metrics[spec] = {
            "judge": facts[spec],
            **judge_metrics(table[spec], kind, twins[spec] if twins is not None else None, facts[spec]["harmful_when"]),
            "generations_sha256": gen_sha,
            "against": str(against) if against is not None else None,
        }
    atomic_write_jsonl(
        out / JUDGMENTS,
        [
            {
                "id": r["id"],
                "triggered": r["triggered"],
                "judge": spec,
                "value": None
                if np.isnan(table[spec][(r["id"], r["triggered"])])
                else table[spec][(r["id"], r["triggered"])],
            }
            for spec in judges
            for r in rows
        ],
    )
    atomic_write_json(out / METRICS, metrics)
    return metrics
