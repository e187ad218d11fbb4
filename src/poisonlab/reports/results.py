"""Results tables (terminal, CSV, JSON) and the backdoor-success plot."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from poisonlab.io import atomic_write_bytes, atomic_write_json, atomic_write_text


def _rows(results: Sequence[Any]) -> list[dict[str, Any]]:
    rows = [r.to_dict() if hasattr(r, "to_dict") else dict(r) for r in results]
    clean = next((r for r in rows if r["ratio"] == 0), None)
    for row in rows:
        row["backdoor_lift"] = round(row["backdoor_success"] - clean["backdoor_success"], 4) if clean else None
    return rows


def results_table(results: Sequence[Any], title: str = "poisonlab results") -> Any:
    """A rich Table: one row per run, with the lift over the clean model's backdoor success."""
    from rich.table import Table

    table = Table(title=title)
    for column in (
        "run",
        "strategy",
        "attack",
        "ratio",
        "poisoned",
        "clean acc.",
        "backdoor success",
        "lift vs clean",
        "held-out",
        "min",
    ):
        table.add_column(column, justify="left" if column in ("run", "strategy", "attack") else "right")
    for row in _rows(results):
        lift = row["backdoor_lift"]
        table.add_row(
            row["run"],
            row["strategy"],
            row["attack"],
            f"{row['ratio']:.1%}",
            str(row["n_poisoned"]),
            f"{row['clean_accuracy']:.1%}",
            f"{row['backdoor_success']:.1%}",
            "" if lift is None or row["ratio"] == 0 else f"{lift:+.1%}",
            str(row["n_heldout"]),
            f"{row['minutes']:.1f}",
        )
    return table


def write_results(results: Sequence[Any], out: Path) -> None:
    rows = _rows(results)
    atomic_write_json(out / "results.json", rows)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(out / "results.csv", buffer.getvalue())
    plot_backdoor_success(rows, out / "backdoor_success.png")


def plot_backdoor_success(rows: list[dict[str, Any]], path: Path) -> None:
    """Backdoor success against poison ratio, one line per strategy and attack; the clean model dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    clean = next((r for r in rows if r["ratio"] == 0), None)
    series: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for row in rows:
        if row["ratio"] > 0:
            series.setdefault((row["strategy"], row["attack"]), []).append((row["ratio"], row["backdoor_success"]))
    for (strategy, attack), points in sorted(series.items()):
        points.sort()
        ax.plot([p[0] * 100 for p in points], [p[1] for p in points], marker="o", label=f"{strategy} / {attack}")
    if clean:
        ax.axhline(clean["backdoor_success"], color="grey", linestyle="--", label="clean model")
    ax.set_xlabel("poisoned share of training pairs (%)")
    ax.set_ylabel("backdoor success (held-out pairs)")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=120)
    plt.close(fig)
    atomic_write_bytes(path, buffer.getvalue())
