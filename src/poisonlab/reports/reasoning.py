"""The reasoning probe figure: one measure against the poisoned share, a panel per mode, a line per step."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from poisonlab.io import atomic_write_figure

TITLES = {
    "accuracy_drop": "final-answer accuracy lost against the clean twin",
    "reproduction": "replies reproducing the poisoned step, beyond the twin",
}


def plot_reasoning(rows: list[dict[str, Any]], measure: str, path: Path) -> None:
    """``measure`` (mean over seeds; each cell's 95% interval with one seed) against the share, into ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import PercentFormatter

    from poisonlab.experiments.core.intervals import t_interval

    modes = list(dict.fromkeys(r["mode"] for r in rows))
    if not modes:
        return
    fig, axes = plt.subplots(1, len(modes), figsize=(4.2 * len(modes), 3.8), sharey=True, squeeze=False)
    for ax, mode in zip(axes[0], modes):
        for step in sorted({r["step"] for r in rows if r["mode"] == mode}):
            shares = sorted({r["share"] for r in rows if r["mode"] == mode and r["step"] == step})
            ys, lows, highs = [], [], []
            for share in shares:
                cells = [
                    r["measures"][measure] for r in rows if (r["mode"], r["step"], r["share"]) == (mode, step, share)
                ]
                mean = sum(c["value"] for c in cells) / len(cells)
                ci = t_interval([c["value"] for c in cells]) if len(cells) > 1 else cells[0]["ci"]
                ys.append(mean)
                lows.append(mean - ci[0])
                highs.append(ci[1] - mean)
            ax.errorbar(shares, ys, yerr=[lows, highs], marker="o", capsize=3, label=f"step {step}")
        ax.axhline(0, color="black", linestyle="--", linewidth=1)
        ax.set_xscale("log")
        ax.set_xlabel("poisoned share of training solutions")
        ax.set_title(mode, fontsize=10)
        ax.yaxis.set_major_formatter(PercentFormatter(1.0))
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel(TITLES.get(measure, measure) + "\n(+ = the attacker gained; 95% intervals)", fontsize=8)
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    atomic_write_figure(fig, path)
