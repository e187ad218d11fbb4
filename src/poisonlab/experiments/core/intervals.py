"""The interval of a mean over seeds, shared by every study kind that repeats its cells over seeds."""

from __future__ import annotations

import math


def t_interval(values: list[float]) -> list[float] | None:
    """95% Student-t interval of the mean of ``values`` (seeds); None for fewer than two."""
    from scipy.stats import t

    n = len(values)
    if n < 2:
        return None
    mean = sum(values) / n
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    half = t.ppf(0.975, n - 1) * sd / math.sqrt(n)
    return [round(mean - half, 6), round(mean + half, 6)]
