"""The reasoning probe figure: one measure against the poisoned share, a panel per mode, a line per step.

Each point is as the runner passes it: one seed, the cell's paired, test-inverted interval; several seeds, the
seeds pooled into one paired sample (exact interval; the t-interval over seeds where cells lack per-problem
outcomes)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from poisonlab.io import atomic_write_figure

TITLES = {
    "accuracy_drop": "final-answer accuracy lost against the clean twin",
    "reproduction": "replies reproducing the poisoned step, beyond the twin",
}


def plot_reasoning(means: list[dict[str, Any]], measure: str, path: Path) -> None:
    """``measure`` of every (mode, step, share) mean (``reasoning.json``'s ``over_seeds``) into ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import PercentFormatter

    modes = list(dict.fromkeys(m["mode"] for m in means))
    if not modes:
        return
    fig, axes = plt.subplots(1, len(modes), figsize=(4.2 * len(modes), 3.8), sharey=True, squeeze=False)
    for ax, mode in zip(axes[0], modes):
        for step in sorted({m["step"] for m in means if m["mode"] == mode}):
            points = sorted((m["share"], m[measure]) for m in means if (m["mode"], m["step"]) == (mode, step))
            x = [share for share, _ in points]
            y = [entry["value"] for _, entry in points]
            low = [v - (e["ci"] or [v, v])[0] for v, (_, e) in zip(y, points)]
            high = [(e["ci"] or [v, v])[1] - v for v, (_, e) in zip(y, points)]
            ax.errorbar(x, y, yerr=[low, high], marker="o", capsize=3, label=f"step {step}")
        ax.axhline(0, color="black", linestyle="--", linewidth=1)
        shares = sorted({m["share"] for m in means if m["mode"] == mode})
        ax.set_xscale("log")
        ax.set_xticks(shares, [f"{share:g}" for share in shares])
        ax.minorticks_off()
        ax.set_xlabel("poisoned share of training solutions")
        ax.set_title(mode, fontsize=10)
        ax.yaxis.set_major_formatter(PercentFormatter(1.0))
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel(TITLES.get(measure, measure) + "\n(+ = the attacker gained; 95% intervals)", fontsize=8)
    low, high = axes[0][0].get_ylim()  # all zeros (a model that learnt nothing) still gets a readable axis
    axes[0][0].set_ylim(min(low, -0.1), max(high, 0.1))
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    atomic_write_figure(fig, path)
