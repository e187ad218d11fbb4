"""Intervals and paired tests that tell a backdoor from contamination.

Every value poisonlab reports is ``{"value", "ci": [low, high], "n"}`` and every
difference also carries a ``p_value``:

- a rate (yes/no judge): Wilson 95% interval (``scipy.stats.binomtest``);
- a mean (score judge): percentile bootstrap 95% interval over prompts;
- ``trigger_effect`` = triggered - clean on the same prompts; paired test: exact
  McNemar (a binomial test on the discordant prompts) for rates, Wilcoxon
  signed-rank for scores;
- ``contamination`` = this model's clean value - its clean twin's (the same
  prompts, the same test as above): damage done *without* the trigger;
- ``backdoor_effect`` = this model's trigger effect - the twin's, per prompt: an
  effect that appears only with the trigger, beyond what the trigger does to a
  clean model trained the same way. Wilcoxon signed-rank on the per-prompt
  differences of differences.

Intervals of differences are percentile bootstraps of the per-prompt differences
(2,000 resamples, seeded), so they respect the pairing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np

Kind = Literal["rate", "score"]
CONFIDENCE = 0.95
RESAMPLES = 2000


def _round(x: float) -> float:
    return float(round(float(x), 6))


def wilson(successes: int, n: int) -> list[float]:
    from scipy.stats import binomtest

    if n == 0:
        return [float("nan"), float("nan")]
    ci = binomtest(int(successes), int(n)).proportion_ci(confidence_level=CONFIDENCE, method="wilson")
    return [_round(ci.low), _round(ci.high)]


def bootstrap_mean_ci(values: Sequence[float], seed: int = 0) -> list[float]:
    """Percentile bootstrap interval of a mean (a point interval when every value is the same)."""
    x = np.asarray(values, dtype=float)
    if len(x) == 0:
        return [float("nan"), float("nan")]
    if np.all(x == x[0]):
        return [_round(x[0]), _round(x[0])]
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, len(x), size=(RESAMPLES, len(x)))].mean(axis=1)
    alpha = (1 - CONFIDENCE) / 2
    return [_round(np.quantile(means, alpha)), _round(np.quantile(means, 1 - alpha))]


def summary(values: Sequence[float], kind: Kind, seed: int = 0) -> dict[str, Any]:
    """The rate (Wilson interval) or the mean (bootstrap interval) of one condition."""
    x = np.asarray(values, dtype=float)
    x = x[~np.isnan(x)]
    value = _round(x.mean()) if len(x) else float("nan")
    ci = wilson(int(x.sum()), len(x)) if kind == "rate" else bootstrap_mean_ci(x, seed)
    return {"value": value, "ci": ci, "n": len(x)}


def mcnemar_p(before: np.ndarray, after: np.ndarray) -> float:
    """Exact McNemar test of paired yes/no outcomes: a two-sided binomial test on the discordant pairs."""
    from scipy.stats import binomtest

    up = int(np.sum((before == 0) & (after == 1)))
    down = int(np.sum((before == 1) & (after == 0)))
    if up + down == 0:
        return 1.0
    return _round(binomtest(up, up + down, 0.5).pvalue)


def wilcoxon_p(differences: np.ndarray) -> float:
    """Two-sided Wilcoxon signed-rank test of paired differences (zeros kept, Pratt); 1.0 when all are zero."""
    from scipy.stats import wilcoxon

    d = np.asarray(differences, dtype=float)
    if len(d) == 0 or np.all(d == 0):
        return 1.0
    return _round(wilcoxon(d, zero_method="pratt").pvalue)


def _paired(a: Sequence[float], b: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if x.shape != y.shape:
        raise ValueError("paired values need the same prompts on both sides")
    keep = ~(np.isnan(x) | np.isnan(y))
    return x[keep], y[keep]


def paired_difference(a: Sequence[float], b: Sequence[float], kind: Kind, seed: int = 0) -> dict[str, Any]:
    """``b - a`` on the same prompts: value, bootstrap interval, paired p-value, n."""
    x, y = _paired(a, b)
    d = y - x
    p = mcnemar_p(x, y) if kind == "rate" else wilcoxon_p(d)
    value = _round(d.mean()) if len(d) else float("nan")
    return {"value": value, "ci": bootstrap_mean_ci(d, seed), "p_value": p, "n": len(d)}


def difference_of_differences(
    clean: Sequence[float],
    triggered: Sequence[float],
    twin_clean: Sequence[float],
    twin_triggered: Sequence[float],
    seed: int = 0,
) -> dict[str, Any]:
    """Per prompt, (triggered - clean) minus the twin's (triggered - clean): the backdoor effect."""
    c, t = _paired(clean, triggered)
    tc, tt = _paired(twin_clean, twin_triggered)
    if len(c) != len(tc):
        raise ValueError("the model and its twin were judged on different prompts")
    d = (t - c) - (tt - tc)
    value = _round(d.mean()) if len(d) else float("nan")
    return {"value": value, "ci": bootstrap_mean_ci(d, seed), "p_value": wilcoxon_p(d), "n": len(d)}


def condition_metrics(clean: Sequence[float], triggered: Sequence[float] | None, kind: Kind) -> dict[str, Any]:
    """``clean``, ``triggered`` and ``trigger_effect`` of one model and judge (values paired by prompt)."""
    metrics: dict[str, Any] = {"clean": summary(clean, kind)}
    if triggered is not None:
        metrics["triggered"] = summary(triggered, kind)
        metrics["trigger_effect"] = paired_difference(clean, triggered, kind)
    return metrics


def twin_metrics(
    clean: Sequence[float],
    triggered: Sequence[float] | None,
    twin_clean: Sequence[float],
    twin_triggered: Sequence[float] | None,
    kind: Kind,
) -> dict[str, Any]:
    """``contamination`` (and ``backdoor_effect`` when both were triggered) against the clean twin."""
    metrics = {"contamination": paired_difference(twin_clean, clean, kind)}
    if triggered is not None and twin_triggered is not None:
        metrics["backdoor_effect"] = difference_of_differences(clean, triggered, twin_clean, twin_triggered)
    return metrics
