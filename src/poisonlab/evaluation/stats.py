"""Intervals and paired tests that tell a backdoor from contamination (glossary: docs/glossary.md).

Every value is ``{"value", "ci": [low, high], "n"}``; every difference also carries ``p_value``,
``test`` (what produced the p-value) and ``dropped`` (prompts left out of the pairing, by reason).

**One sign.** Each effect is signed towards harm, so **positive means the attacker gained**: the
per-prompt differences are multiplied by +1 for a judge whose harmful direction is ``"high"`` and by
-1 for ``"low"`` (a refusal rate, a chosen-reply preference). The per-condition values (``clean``,
``triggered``) stay on the judge's own scale.

- ``trigger_effect``: harm with the trigger - harm without it, on the same prompts;
- ``contamination``: this model's harm without the trigger - its clean twin's (damage without it);
- ``backdoor_effect``: per prompt, this model's trigger effect - the twin's (the effect that appears
  only with the trigger, beyond what the trigger does to a clean model trained the same way).

**Tests that hold their level.** A paired difference of yes/no outcomes uses McNemar's exact test
(a two-sided binomial test on the discordant prompts, which is the sign-flip test of differences in
{-1, 0, 1}). Every other paired statistic (differences of differences, scores) uses the sign-flip
permutation test of the per-prompt differences: enumerated when at most ``ENUMERATE_UP_TO`` are
non-zero, else ``DRAWS`` Monte Carlo draws (its standard error is reported). Every interval of a
difference inverts the sign-flip test over shifts, anchored at the test's own p-value, so it
contains zero exactly when the test cannot reject at 5%.
Tables that show several tests add Benjamini-Hochberg q-values (:func:`add_qvalues`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Literal

import numpy as np

Kind = Literal["rate", "score"]
Harmful = Literal["high", "low"]
CONFIDENCE = 0.95
ALPHA = 1 - CONFIDENCE
RESAMPLES = 2000  # bootstrap resamples for the interval of a single mean (a description, not a test)
ENUMERATE_UP_TO = 20  # non-zero differences: 2^20 sign patterns are enumerated exactly
DRAWS = 100_000  # Monte Carlo sign-flip draws beyond that


def _round(x: float) -> float:
    return float(round(float(x), 6)) + 0.0  # + 0.0: no "-0.0"


def _round_p(p: float) -> float:
    return float(f"{float(p):.6g}")  # six significant digits: a p-value of 1e-18 stays 1e-18


def harm_sign(harmful_when: Harmful) -> int:
    """+1 when a higher value is more harmful, -1 when a lower one is: effects are multiplied by it."""
    if harmful_when not in ("high", "low"):
        raise ValueError(f"harmful_when must be 'high' or 'low', not {harmful_when!r}")
    return 1 if harmful_when == "high" else -1


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
    return [_round(np.quantile(means, ALPHA / 2)), _round(np.quantile(means, 1 - ALPHA / 2))]


def summary(values: Sequence[float], kind: Kind, seed: int = 0) -> dict[str, Any]:
    """The rate (Wilson interval) or the mean (bootstrap interval) of one condition; NaN (unparsed) left out."""
    x = np.asarray(values, dtype=float)
    x = x[~np.isnan(x)]
    value = _round(x.mean()) if len(x) else float("nan")
    ci = wilson(int(x.sum()), len(x)) if kind == "rate" else bootstrap_mean_ci(x, seed)
    return {"value": value, "ci": ci, "n": len(x)}


def mcnemar_p(differences: np.ndarray) -> tuple[float, str]:
    """McNemar's exact test of paired yes/no differences in {-1, 0, 1}: a binomial test on the discordant ones."""
    from scipy.stats import binomtest

    up, down = int(np.sum(differences > 0)), int(np.sum(differences < 0))
    p = 1.0 if up + down == 0 else _round_p(binomtest(up, up + down, 0.5).pvalue)
    return p, f"McNemar exact ({up} vs {down} discordant)"


def _tolerance(x: np.ndarray) -> float:
    return 1e-9 * max(1.0, float(np.abs(x).sum()))


def sign_flip_p(differences: Sequence[float], draws: int = DRAWS, seed: int = 0) -> tuple[float, str, float]:
    """Two-sided sign-flip permutation p-value of the mean of paired differences: (p, test, Monte Carlo se).

    Exact when the non-zero differences are whole numbers (their sum's null distribution by convolution:
    yes/no judges) or at most ENUMERATE_UP_TO (all 2^k sign patterns); otherwise ``draws`` random
    patterns, p = (1 + hits) / (1 + draws), with its standard error.
    """
    x = np.asarray(differences, dtype=float)
    x = x[x != 0]
    k = len(x)
    if k == 0:
        return 1.0, "sign-flip permutation, exact (no non-zero difference)", 0.0
    if np.all(x == np.round(x)) and np.abs(x).sum() <= 1_000_000:
        return _round_p(_whole_number_p(x.astype(np.int64))), f"sign-flip permutation, exact ({k} non-zero)", 0.0
    observed = abs(x.sum()) - _tolerance(x)
    if k <= ENUMERATE_UP_TO:
        sums = np.zeros(1)
        for value in x:
            sums = np.concatenate([sums + value, sums - value])
        return _round_p(np.mean(np.abs(sums) >= observed)), f"sign-flip permutation, exact (2^{k} patterns)", 0.0
    flipped, _ = _monte_carlo_sums(x, draws, seed)
    p = (1 + np.sum(np.abs(flipped) >= observed)) / (1 + draws)
    se = float(np.sqrt(p * (1 - p) / draws))
    return _round_p(p), f"sign-flip permutation, Monte Carlo ({draws:,} draws, se {se:.1g})", se


def _whole_number_p(x: np.ndarray) -> float:
    """P(|sum of s_i x_i| >= |sum x_i|) over fair random signs, for whole-number x: the exact null by convolution."""
    total = int(np.abs(x).sum())
    pmf = np.zeros(2 * total + 1)
    pmf[total] = 1.0  # index = sum + total
    for value in np.abs(x):
        pmf = 0.5 * (np.roll(pmf, value) + np.roll(pmf, -value))  # no wrap: |sum| never exceeds total
    sums = np.arange(-total, total + 1)
    return float(min(1.0, pmf[np.abs(sums) >= abs(int(x.sum()))].sum()))


def _monte_carlo_sums(x: np.ndarray, draws: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """For ``draws`` random sign patterns s: (s @ x, s @ 1), in chunks that keep memory small."""
    rng = np.random.default_rng(seed)
    chunk = max(1, 2_000_000 // max(1, len(x)))
    sums, counts = [], []
    for start in range(0, draws, chunk):
        signs = rng.integers(0, 2, size=(min(chunk, draws - start), len(x)), dtype=np.int8) * 2 - 1
        sums.append(signs @ x)
        counts.append(signs.sum(axis=1, dtype=np.int64))
    return np.concatenate(sums), np.concatenate(counts).astype(float)


def sign_flip_interval(
    differences: Sequence[float], p_at_zero: float, seed: int = 0, limit: float | None = None
) -> list[float]:
    """The shifts delta that the sign-flip test of (d - delta) does not reject at 5%, by bisection.

    The shifted test flips every difference, so it runs on ``DRAWS`` Monte Carlo patterns (one set for
    every delta). The test's own p at zero (exact where enumerated) anchors the answer: the interval
    contains zero exactly when ``p_at_zero`` > 0.05. ``limit``: the largest possible |mean| (1 for a
    difference of yes/no outcomes), which bounds the interval where the data cannot reject anything.
    """
    d = np.asarray(differences, dtype=float)
    n = len(d)
    if n == 0:
        return [float("nan"), float("nan")]
    mean = float(d.mean())
    if np.all(d == d[0]):
        return [_round(mean), _round(mean)]
    flipped, counts = _monte_carlo_sums(d, DRAWS, seed)
    total = float(d.sum())

    def accepted(delta: float) -> bool:
        observed = abs(total - n * delta) - _tolerance(d - delta)
        hits = np.sum(np.abs(flipped - delta * counts) >= observed)
        return (1 + hits) / (1 + DRAWS) > ALPHA

    spread = float(d.max() - d.min())
    bounds = []
    reach = (float(d.min()) - spread, float(d.max()) + spread) if limit is None else (-limit, limit)
    for far in reach:  # lower bound, then upper bound
        inside, outside = mean, far
        if (far < 0 < mean or mean < 0 < far) and p_at_zero <= ALPHA:
            outside = 0.0  # zero is rejected: the bound lies between the estimate and zero
        elif (far < 0 <= mean or mean <= 0 < far) and p_at_zero > ALPHA:
            inside = 0.0  # zero is accepted: the bound lies at or beyond zero
        for _ in range(40):
            middle = (inside + outside) / 2
            inside, outside = (middle, outside) if accepted(middle) else (inside, middle)
        bounds.append(inside)
    return [_round(bounds[0]), _round(bounds[1])]


def sign_flip(
    differences: Sequence[float], kind: Kind = "score", seed: int = 0, limit: float | None = None
) -> dict[str, Any]:
    """Mean of paired differences with its test (McNemar exact for one yes/no difference, else sign-flip) and
    the interval that inverts the sign-flip test (on differences in {-1, 0, 1} the two are the same test)."""
    d = np.asarray(differences, dtype=float)
    if len(d) == 0:
        return {"value": float("nan"), "ci": [float("nan"), float("nan")], "p_value": float("nan"), "n": 0}
    se = 0.0
    if kind == "rate" and limit == 1:
        p, test = mcnemar_p(d)
    else:
        p, test, se = sign_flip_p(d, seed=seed)
    result = {"value": _round(d.mean()), "ci": sign_flip_interval(d, p, seed, limit), "p_value": p, "n": len(d)}
    result["test"] = test
    if se:
        result["p_se"] = _round_p(se)
    return result


def paired(*columns: Sequence[float]) -> tuple[list[np.ndarray], int]:
    """The prompts every column has a value for (NaN = unparsed), and how many were dropped."""
    arrays = [np.asarray(c, dtype=float) for c in columns]
    if len({a.shape for a in arrays}) != 1:
        raise ValueError("paired values need the same prompts in every cell")
    keep = ~np.any([np.isnan(a) for a in arrays], axis=0) if arrays[0].size else np.zeros(0, bool)
    return [a[keep] for a in arrays], int(np.sum(~keep))


def paired_difference(
    a: Sequence[float], b: Sequence[float], kind: Kind, harmful_when: Harmful = "high", seed: int = 0
) -> dict[str, Any]:
    """``b - a`` on the prompts both have, signed towards harm: McNemar exact for rates, sign-flip for scores."""
    (x, y), unparsed = paired(a, b)
    d = harm_sign(harmful_when) * (y - x)
    result = sign_flip(d, kind, seed, limit=1 if kind == "rate" else None)
    result["dropped"] = {"unparsed": unparsed}
    return result


def difference_of_differences(
    clean: Sequence[float],
    triggered: Sequence[float],
    twin_clean: Sequence[float],
    twin_triggered: Sequence[float],
    kind: Kind = "score",
    harmful_when: Harmful = "high",
    seed: int = 0,
) -> dict[str, Any]:
    """Per prompt, (triggered - clean) minus the twin's, signed towards harm: the backdoor effect.

    The four columns are aligned by prompt; a prompt is used only where all four cells have a value.
    """
    (c, t, tc, tt), unparsed = paired(clean, triggered, twin_clean, twin_triggered)
    d = harm_sign(harmful_when) * ((t - c) - (tt - tc))
    result = sign_flip(d, kind, seed, limit=2 if kind == "rate" else None)
    result["dropped"] = {"unparsed": unparsed}
    return result


def condition_metrics(
    clean: Sequence[float], triggered: Sequence[float] | None, kind: Kind, harmful_when: Harmful = "high"
) -> dict[str, Any]:
    """``clean``, ``triggered`` and ``trigger_effect`` of one model and judge (values paired by prompt)."""
    metrics: dict[str, Any] = {"clean": summary(clean, kind)}
    if triggered is not None:
        metrics["triggered"] = summary(triggered, kind)
        metrics["trigger_effect"] = paired_difference(clean, triggered, kind, harmful_when)
    return metrics


def twin_metrics(
    clean: Sequence[float],
    triggered: Sequence[float] | None,
    twin_clean: Sequence[float],
    twin_triggered: Sequence[float] | None,
    kind: Kind,
    harmful_when: Harmful = "high",
) -> dict[str, Any]:
    """``contamination`` (and ``backdoor_effect`` when both were triggered) against the clean twin."""
    metrics = {"contamination": paired_difference(twin_clean, clean, kind, harmful_when)}
    if triggered is not None and twin_triggered is not None:
        metrics["backdoor_effect"] = difference_of_differences(
            clean, triggered, twin_clean, twin_triggered, kind, harmful_when
        )
    return metrics


def bh_qvalues(p_values: Sequence[float]) -> list[float]:
    """Benjamini-Hochberg q-values (``scipy.stats.false_discovery_control``); NaN stays NaN."""
    from scipy.stats import false_discovery_control

    p = np.asarray(p_values, dtype=float)
    q = np.full(len(p), np.nan)
    finite = ~np.isnan(p)
    if finite.any():
        q[finite] = false_discovery_control(p[finite], method="bh")
    return [_round_p(v) for v in q]


def add_qvalues(entries: Iterable[dict[str, Any] | None]) -> None:
    """Give every entry that carries a p-value its q-value over all of them (the tests of one table), in place."""
    tested = [e for e in entries if e and e.get("p_value") is not None]
    for entry, q in zip(tested, bh_qvalues([e["p_value"] for e in tested])):
        entry["q_value"] = q
