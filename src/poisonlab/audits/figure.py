"""The bias audit's figure: how far each perturbation moved the held-out probe bias, against random flips.

One panel per k. Each condition's change from the clean model is a point with its 95% interval; the
random-k baseline shows every seed (grey) and their mean, so a reader sees at once whether the searched
flips beat chance, which is the audit's question.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

LABELS = {"amplified": "amplified\n(top-k flipped)", "random": "random k\n(seeds, mean)"}


def plot_bias_audit(result: dict[str, Any], path: str | Path) -> Path:
    """Draw ``result`` (what :func:`run_bias_audit` returns) to ``path`` (PNG, written atomically)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from poisonlab.io import atomic_write_figure

    ks, conditions = result["config"]["ks"], result["conditions"]
    corrections = result["config"]["corrections"]
    names = ["amplified", "random", *(f"corrected-{how}" for how in corrections)]
    width = 3.2 + 1.2 * len(names) * len(ks)
    fig, axes = plt.subplots(1, len(ks), figsize=(width, 4.2), sharey=True, squeeze=False)
    for ax, k in zip(axes[0], ks):
        for x, name in enumerate(names):
            cell = conditions[f"{name}-k{k}"]
            change = cell["change_vs_clean"]
            low, high = change["ci"]
            colour = {"amplified": "tab:red", "random": "black"}.get(name, "tab:blue")
            for seed in cell.get("seeds", []):
                ax.plot(x, seed["change_vs_clean"]["value"], "o", color="0.7", markersize=4, zorder=1)
            ax.errorbar(
                x,
                change["value"],
                yerr=[[change["value"] - low], [high - change["value"]]],
                fmt="o",
                color=colour,
                capsize=4,
                markersize=7,
                zorder=2,
            )
        ax.axhline(0, color="0.3", linestyle="--", linewidth=1)
        ax.set_xticks(range(len(names)))
        ax.set_xticklabels(
            [LABELS.get(n, n.replace("corrected-", "corrected\n(bottom-k ") + ")") for n in names], fontsize=8
        )
        ax.set_xlim(-0.5, len(names) - 0.5)
        ax.set_title(f"k = {k} pairs")
        ax.grid(axis="y", alpha=0.3)
    axes[0][0].set_ylabel("change of held-out probe bias\nvs the clean model (95% CI)")
    clean = conditions["clean"]["bias"]
    source = result["data"]["source"].split(" (")[0]
    fig.suptitle(
        f"bias audit: {result['model']} on {source} ({result['data']['n_train']} pairs)\n"
        f"{result['probes']['n_heldout']} held-out probes; the clean model's bias {clean['value']:+.2f}",
        fontsize=9,
    )
    atomic_write_figure(fig, path)
    return Path(path)
