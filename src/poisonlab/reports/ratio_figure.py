"""One quantity against the poisoned share, as an embedded PNG: the figure every study page draws."""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from typing import Any


def wilson(successes: int, n: int) -> tuple[float, float]:
    """95% Wilson interval of a proportion (sensible at 0 and 1, unlike the normal approximation)."""
    from scipy.stats import binomtest

    if n <= 0:
        return (float("nan"), float("nan"))
    ci = binomtest(successes, n).proportion_ci(0.95, method="wilson")
    return (float(ci.low), float(ci.high))


def _png(fig: Any) -> str:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def ratio_figure(
    title: str, points: dict[str, dict[str, Any]], rows: Sequence[dict[str, Any]], ylabel: str | None = None
) -> str:
    """One quantity against the poison ratio: a line per strategy and attack with 95% intervals; the clean
    model as a dashed line with its interval as a band. Returns a PNG data URI."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    lines: dict[str, list[tuple[float, float, float, float]]] = {}
    for row in rows:
        point = points.get(row["run"])
        if point is None:
            continue
        value = float(point["value"])
        low, high = point.get("ci") or (value, value)
        if row["ratio"] == 0:
            if row["run"] == "clean":
                ax.axhline(value, color="grey", linestyle="--", label="clean model")
                ax.axhspan(low, high, color="grey", alpha=0.15)
            continue
        lines.setdefault(f"{row['strategy']} / {row['attack']}", []).append((row["ratio"] * 100, value, low, high))
    ratios = sorted({p[0] for line in lines.values() for p in line})
    gap = max(ratios, default=1.0)
    for i, (label, line) in enumerate(sorted(lines.items())):
        line.sort()
        shift = (i - (len(lines) - 1) / 2) * gap * 0.015  # dodge, so equal points and intervals stay visible
        x, y = [p[0] + shift for p in line], [p[1] for p in line]
        errors = [[max(0.0, p[1] - p[2]) for p in line], [max(0.0, p[3] - p[1]) for p in line]]
        ax.errorbar(x, y, yerr=errors, marker="o", capsize=3, label=label)
    values = [v for line in lines.values() for p in line for v in p[1:]]
    if values and min(values) >= 0 and max(values) <= 1:
        ax.set_ylim(-0.02, 1.02)  # shares: the whole scale, so small effects look small
    if ratios:
        ax.set_xticks(ratios, [f"{r:g}" for r in ratios])
        ax.set_xlim(0, gap * 1.1)
    ax.set_xlabel("poisoned share of training pairs (%)")
    ax.set_ylabel(ylabel or title)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)
    fig.tight_layout()
    return _png(fig)
