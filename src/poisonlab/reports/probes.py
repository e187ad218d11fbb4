"""The probe figure and tables: which trigger does a model memorise from the fewest poisoned rows?

For one training stage, two panels with the poisoned rows on a log2 x-axis: the backdoor effect (the
trigger's effect on the poisoned model's flips beyond its effect on the clean twin, on the same held-out
pairs) and the contamination (clean accuracy lost against the twin), both signed so that + means the
attacker gained (docs/glossary.md), one line per trigger x position, mean over seeds with a 95% t-interval.
The curve that leaves zero furthest to the left belongs to the trigger the model
memorises from the fewest rows; where the intervals of two curves overlap, the seeds do not tell
them apart.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from poisonlab.io import atomic_write_figure


def _label(row: dict[str, Any]) -> str:
    return f"{row['trigger']} ({row['trigger_kind']}) @ {row['position']}"


def plot_probes(rows: list[dict[str, Any]], stage: str, path: Path) -> None:
    """Draw the backdoor effect and contamination of one stage's rows against the poisoned rows into ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import PercentFormatter

    if not rows:
        return
    curves = list(dict.fromkeys(_label(r) for r in rows))
    counts = sorted({r["n_poisoned"] for r in rows})
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    for ax, measure, title in (
        (axes[0], "backdoor_effect", "backdoor effect (the trigger's flips beyond the clean twin's)"),
        (axes[1], "contamination", "contamination (clean accuracy lost against the clean twin)"),
    ):
        for offset, curve in enumerate(curves):
            points = sorted((r for r in rows if _label(r) == curve), key=lambda r: r["n_poisoned"])
            points = [r for r in points if r[measure]["mean"] is not None]
            if not points:
                continue
            shift = 2 ** ((offset - (len(curves) - 1) / 2) * 0.04)  # side by side on the log axis
            x = [r["n_poisoned"] * shift for r in points]
            y = [r[measure]["mean"] for r in points]
            low = [v - (r[measure]["ci"] or [v, v])[0] for v, r in zip(y, points)]
            high = [(r[measure]["ci"] or [v, v])[1] - v for v, r in zip(y, points)]
            ax.errorbar(x, y, yerr=[low, high], marker="o", capsize=3, label=curve)
        ax.axhline(0, color="black", linestyle="--", linewidth=1)
        ax.set_xscale("log", base=2)
        ax.set_xticks(counts, [str(n) for n in counts])
        ax.set_xlabel(f"poisoned training rows (of {rows[0]['n_train']})")
        ax.set_title(title, fontsize=9)
        ax.grid(alpha=0.3)
        ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    n_seeds = max(r["backdoor_effect"]["n_seeds"] for r in rows)
    axes[0].set_ylabel(f"effect against the clean twin (+ = attacker gained), {rows[0]['n_heldout']} held-out pairs")
    axes[0].legend(fontsize=8, title="trigger (kind) @ position", title_fontsize=8)
    fig.suptitle(
        f"{stage}: triggers as memorisation probes; mean over {n_seeds} seeds with 95% t-intervals "
        "(a curve above zero from fewer rows: memorised sooner)",
        fontsize=9,
    )
    atomic_write_figure(fig, path)


def _mean_ci(entry: dict[str, Any]) -> str:
    if entry["mean"] is None:
        return "-"
    ci = f" [{entry['ci'][0] * 100:+.0f}, {entry['ci'][1] * 100:+.0f}]" if entry["ci"] else ""
    return f"{entry['mean'] * 100:+.1f}%{ci}"


def probes_table(rows: list[dict[str, Any]], stage: str) -> Any:
    """A rich table of one stage: per trigger x position, the backdoor effect at every row count."""
    from rich.table import Table

    mine = [r for r in rows if r["stage"] == stage]
    counts = sorted({r["n_poisoned"] for r in mine})
    table = Table(
        title=f"{stage}: backdoor effect by poisoned rows, mean over seeds [95% t-interval]",
        caption="the trigger's effect on flips beyond its effect on the clean twin, paired per held-out pair",
        title_justify="left",
    )
    table.add_column("trigger (kind) @ position")
    for n in counts:
        table.add_column(f"n={n}", justify="right")
    for curve in dict.fromkeys(_label(r) for r in mine):
        by_n = {r["n_poisoned"]: r for r in mine if _label(r) == curve}
        table.add_row(curve, *(_mean_ci(by_n[n]["backdoor_effect"]) if n in by_n else "" for n in counts))
    return table


def rows_needed_table(needed: list[dict[str, Any]]) -> Any:
    """A rich table: for each curve, the fewest poisoned rows whose effect's lower bound is above zero."""
    from rich.table import Table

    table = Table(
        title="rows needed: fewest poisoned rows with the backdoor effect's 95% lower bound above 0",
        title_justify="left",
    )
    for column in ("stage", "trigger (kind)", "position", "rows needed", "and every larger count"):
        table.add_column(column)
    for item in needed:
        tested = max(item["tested"])
        first, steady = (
            str(item[key]) if item[key] is not None else f"none up to {tested}"
            for key in ("rows_needed", "rows_needed_from_then_on")
        )
        table.add_row(item["stage"], f"{item['trigger']} ({item['trigger_kind']})", item["position"], first, steady)
    return table
