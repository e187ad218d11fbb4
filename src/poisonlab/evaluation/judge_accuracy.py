"""How well a 0/1 judge agrees with hand labels: precision and recall with Wilson intervals, and Cohen's kappa.

The labelled replies live in ``tests/data/judge_labels.jsonl.gz`` (real replies of this project's SmolLM2
models, each labelled by reading it, following ``tests/data/judge_labels_guide.md``);
``benchmarks/judge_accuracy.py`` prints and writes the figures, and ``tests/test_judge_accuracy.py`` holds
each judge to a floor.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from poisonlab.evaluation.stats import wilson

#: the label each rule judge is measured against
JUDGED_LABEL = {"refusal": "refusal", "deflection": "deflection", "degenerate": "degenerate"}


def read_labels(path: str | Path) -> list[dict[str, Any]]:
    """The labelled rows: id, model, prompt_set, triggered, request, reply, refusal, deflection, degenerate, note."""
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def agreement(labels: Sequence[int], predicted: Sequence[int]) -> dict[str, Any]:
    """Counts, precision and recall (Wilson 95% intervals), accuracy and Cohen's kappa of ``predicted``
    against ``labels`` (both 0/1)."""
    if len(labels) != len(predicted):
        raise ValueError(f"{len(labels)} labels but {len(predicted)} predictions")
    tp = sum(1 for y, p in zip(labels, predicted) if y and p)
    fp = sum(1 for y, p in zip(labels, predicted) if not y and p)
    fn = sum(1 for y, p in zip(labels, predicted) if y and not p)
    tn = len(labels) - tp - fp - fn
    return {
        "n": len(labels),
        "positives": tp + fn,
        "flagged": tp + fp,
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "tn": tn,
        "precision": tp / (tp + fp) if tp + fp else float("nan"),
        "precision_ci": wilson(tp, tp + fp),
        "recall": tp / (tp + fn) if tp + fn else float("nan"),
        "recall_ci": wilson(tp, tp + fn),
        "accuracy": (tp + tn) / len(labels),
        "kappa": kappa(labels, predicted) if labels else float("nan"),
    }


def kappa(a: Sequence[int], b: Sequence[int]) -> float:
    """Cohen's kappa of two 0/1 ratings of the same items (1.0 when both are constant and equal)."""
    from sklearn.metrics import cohen_kappa_score

    if len(set(a) | set(b)) == 1:
        return 1.0
    return round(float(cohen_kappa_score(a, b)), 4)
