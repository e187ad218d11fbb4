"""Repeat a study over seeds and aggregate: each seed's value and the mean with its interval.

One seed of a small-model study is one draw of a noisy process, and a single clean twin can mislead
(docs/results/smollm2-hh.md). ``seeds: [0, 1, 2]`` runs the whole study once per seed (the seed draws
the split, the selection, the trigger placement, training and sampling) into ``<out>/seed-<s>/``, each
with its own clean twin, and then aggregates every metric of every run: the per-seed values, their
mean and a t-interval over seeds (95%; none with one seed).
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Any

from poisonlab.experiments.core.intervals import t_interval
from poisonlab.experiments.grid.config import ExperimentConfig
from poisonlab.io import atomic_write_json, atomic_write_text

PARTS = ("clean", "triggered", "trigger_effect", "contamination", "backdoor_effect")


def seed_config(config: ExperimentConfig, seed: int) -> ExperimentConfig:
    """The one-seed study of ``config`` for ``seed``, in its own folder under the study's."""
    from poisonlab.experiments.grid.folder import results_folder

    return config.model_copy(update={"seed": seed, "seeds": None, "out": str(results_folder(config) / f"seed-{seed}")})


def aggregate(by_seed: dict[int, list[Any]]) -> list[dict[str, Any]]:
    """One row per (run, metric, part): ``values`` by seed, ``mean``, ``ci`` (t over seeds), ``n_seeds``."""
    cells: dict[tuple[str, str, str], dict[int, float]] = {}
    facts: dict[str, dict[str, Any]] = {}
    for seed, results in by_seed.items():
        for result in results:
            for key, metric in (result.metrics or {}).items():
                facts[key] = metric["judge"]
                for part in PARTS:
                    if part in metric and metric[part].get("value") is not None:
                        cells.setdefault((result.run, key, part), {})[seed] = metric[part]["value"]
    rows = []
    for (run, key, part), values in cells.items():
        numbers = [v for v in values.values() if not math.isnan(v)]
        rows.append(
            {
                "run": run,
                "metric": key,
                "part": part,
                "kind": facts[key]["kind"],
                "values": {str(s): v for s, v in sorted(values.items())},
                "mean": round(sum(numbers) / len(numbers), 6) if numbers else None,
                "ci": t_interval(numbers),
                "n_seeds": len(numbers),
            }
        )
    return rows


def write_aggregate(rows: list[dict[str, Any]], out: Path) -> None:
    """seeds.json (as :func:`aggregate` returns it) and seeds.csv (one column per seed)."""
    atomic_write_json(out / "seeds.json", rows)
    seeds = sorted({s for row in rows for s in row["values"]}, key=int)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["run", "metric", "part", *(f"seed {s}" for s in seeds), "mean", "ci_low", "ci_high", "n_seeds"])
    for row in rows:
        low, high = row["ci"] or (None, None)
        writer.writerow(
            [
                row["run"],
                row["metric"],
                row["part"],
                *(row["values"].get(s) for s in seeds),
                row["mean"],
                low,
                high,
                row["n_seeds"],
            ]
        )
    atomic_write_text(out / "seeds.csv", buffer.getvalue())


def run_seeds(config: ExperimentConfig, progress: bool = True, **run_options: Any) -> dict[int, list[Any]]:
    """Run the study once per seed of ``config.seeds`` (resumably), then write seeds.json and seeds.csv."""
    from poisonlab.experiments.grid.folder import results_folder
    from poisonlab.experiments.grid.runner import run_experiment

    assert config.seeds, "run_seeds needs config.seeds"
    by_seed = {seed: run_experiment(seed_config(config, seed), progress, **run_options) for seed in config.seeds}
    write_aggregate(aggregate(by_seed), results_folder(config))
    return by_seed


def seeds_tables(rows: list[dict[str, Any]]) -> list[Any]:
    """One rich Table per metric: each run's trigger effect, contamination and backdoor effect over seeds."""
    from rich.table import Table

    tables = []
    for key in dict.fromkeys(row["metric"] for row in rows):
        mine = [r for r in rows if r["metric"] == key]
        table = Table(title=f"{key} over seeds: mean [95% t-interval] (each seed)", title_justify="left")
        for column in ("run", *PARTS):
            table.add_column(column.replace("_", " "), justify="left" if column == "run" else "right")
        for run in dict.fromkeys(r["run"] for r in mine):
            cells = []
            for part in PARTS:
                row = next((r for r in mine if r["run"] == run and r["part"] == part), None)
                cells.append(_cell(row) if row else "")
            table.add_row(run, *cells)
        tables.append(table)
    return tables


def _cell(row: dict[str, Any]) -> str:
    scale, unit = (100, "%") if row["kind"] == "rate" else (1, "")
    each = " ".join(f"{v * scale:.3g}" for v in row["values"].values())
    if row["mean"] is None:
        return "-"
    ci = f" [{row['ci'][0] * scale:.3g}, {row['ci'][1] * scale:.3g}]" if row["ci"] else ""
    return f"{row['mean'] * scale:.3g}{unit}{ci} ({each})"
