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


def _arrays(values: dict[tuple[str, bool], float], ids: Sequence[str], triggered: bool) -> list[float] | None:
    if not all((i, triggered) in values for i in ids):
        return None
    return [values[(i, triggered)] for i in ids]


def judge_metrics(
    values: dict[tuple[str, bool], float], kind: str, twin: dict[tuple[str, bool], float] | None = None
) -> dict[str, Any]:
    """Statistics of one judge's values (and its twin's, on the prompts both were judged on)."""
    ids = sorted({i for i, t in values if not t})
    if twin is not None:
        ids = [i for i in ids if (i, False) in twin]
    clean = _arrays(values, ids, False)
    triggered = _arrays(values, ids, True)
    metrics = condition_metrics(clean, triggered, kind)  # type: ignore[arg-type]
    if twin is not None:
        if not ids:
            raise InputError("the clean twin was judged on none of these prompts", field="--against")
        metrics.update(twin_metrics(clean, triggered, _arrays(twin, ids, False), _arrays(twin, ids, True), kind))
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
            **judge_metrics(table[spec], kind, twins[spec] if twins is not None else None),
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
