"""Run a probe study (:class:`ProbeConfig`): which trigger patterns a model memorises from the fewest rows.

Layout of the results folder::

    runs/<name>/
      config.yaml  probes.json  probes.csv  probes_<stage>.png
      cells/<stage>/seed-<s>/clean/                     the clean twin: adapter/, judged/<trigger>@<position>.json
      cells/<stage>/seed-<s>/<trigger>@<position>/n-<n>/  one poisoned model: poison/, adapter/, result.json

A cell poisons exactly ``n`` training rows with the ``random`` strategy (so the rows poisoned at n=4
hold those of n=2: the seed's permutation is cut shorter), trains the stage on them, and judges the
model on the seed's held-out pairs with and without the trigger, inserted as the attack inserted it.
The clean twin of (stage, seed) is trained once and judged once per (trigger, position); each cell is
paired with it per held-out pair:

- ``backdoor_effect``: the trigger's own effect (triggered - clean flips) minus the twin's, so a
  poison that flips pairs with or without the trigger does not count;
- ``contamination``: the twin's clean accuracy minus the poisoned model's (damage without the trigger);
- ``triggered_gap``: the poisoned model's flip rate under the trigger minus the twin's, on the same
  pairs (not trigger-specific: it includes contamination).

All three are signed towards harm (positive = the attacker gained; docs/glossary.md).

Seeds repeat every cell (a new split, new rows, new training); the curves are the means over seeds
with 95% t-intervals. A cell folder whose ``result.json`` exists is done, so a rerun does only what is
missing, and a grown grid (more seeds, counts, triggers) reuses what it can.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from poisonlab.attacks.inject import poison_dataset, write_poisoned
from poisonlab.attacks.triggers import get_trigger
from poisonlab.data.pairs import PreferenceDataset
from poisonlab.data.readers import load_pairs
from poisonlab.data.splits import train_heldout_split
from poisonlab.errors import InputError
from poisonlab.evaluation.stats import difference_of_differences, paired_difference
from poisonlab.experiments.core.cells import claim_cells
from poisonlab.experiments.core.intervals import t_interval
from poisonlab.experiments.probes.config import ProbeConfig
from poisonlab.io import atomic_write_json, atomic_write_text, inside
from poisonlab.training.stages import STAGES, stage_config

# measures of one cell: the three paired differences, then the plain rates they come from
EFFECTS = ("backdoor_effect", "contamination", "triggered_gap")
RATES = ("backdoor_success", "twin_backdoor_success", "clean_accuracy", "twin_clean_accuracy")
MEASURES = EFFECTS + RATES


@dataclass
class Split:
    """One seed's training and held-out pairs."""

    train: PreferenceDataset
    heldout: PreferenceDataset


def results_folder(config: ProbeConfig) -> Path:
    return Path(config.out or Path("runs") / config.name)


def slug(trigger: str) -> str:
    """A folder name for a trigger: the registered name, or a literal string made safe plus a short hash."""
    safe = re.sub(r"[^A-Za-z0-9_-]+", "-", trigger).strip("-")[:40]
    if safe == trigger:
        return safe
    return f"{safe or 'trigger'}-{hashlib.sha256(trigger.encode()).hexdigest()[:8]}"


def twin_folder(out: Path, stage: str, seed: int) -> Path:
    return out / "cells" / stage / f"seed-{seed}" / "clean"


def cell_folder(out: Path, stage: str, seed: int, trigger: str, position: str, n: int) -> Path:
    return out / "cells" / stage / f"seed-{seed}" / f"{slug(trigger)}@{position}" / f"n-{n}"


def _claim(config: ProbeConfig, overwrite: bool) -> Path:
    """The results folder, resumed when it holds this study's cells, else refused (``core.cells``)."""
    return claim_cells(results_folder(config), config, overwrite, "a probe study")


def _splits(config: ProbeConfig) -> dict[int, Split]:
    """Each seed's split, cut to max_train_pairs; the data is read (and checked) once, before anything runs."""
    dataset = load_pairs(config.data, on_error="skip" if config.skip_bad_rows else "raise")
    splits = {}
    for seed in config.seeds:
        train, heldout = train_heldout_split(dataset, config.heldout, seed)
        train = PreferenceDataset(train.pairs[: config.max_train_pairs], train.source)
        if max(config.n_poisoned) > len(train):
            raise InputError(
                f"{max(config.n_poisoned)} poisoned rows do not fit in the {len(train)} training pairs",
                field="n_poisoned",
            )
        splits[seed] = Split(train, heldout)
    return splits


def _training(config: ProbeConfig, stage: str, seed: int) -> Any:
    return stage_config(stage, config.preset, seed, config.training.get(stage, {}))


def _judge(
    config: ProbeConfig, stage: str, seed: int, adapter: Path, heldout: PreferenceDataset, trigger: str, position: str
) -> dict[str, Any]:
    """Per held-out pair, the adapter's preference margin without and with the trigger (implicit reward)."""
    from poisonlab.evaluation.preference import evaluate_preferences

    training = _training(config, stage, seed)
    metrics = evaluate_preferences(
        config.model,
        heldout,
        adapter,
        trigger,
        position,
        max_length=training.max_length,
        max_reply_length=training.max_reply_length,
        batch_size=32,
        bf16=training.bf16,
        seed=seed,
        progress=False,
    )
    return {
        "clean_accuracy": metrics.clean_accuracy,
        "backdoor_success": metrics.backdoor_success,
        "ids": metrics.ids,
        "clean_margins": metrics.clean_margins,
        "triggered_margins": metrics.triggered_margins,
    }


def _twin(
    config: ProbeConfig, stage: str, seed: int, split: Split, out: Path, trigger: str, position: str, progress: bool
) -> dict[str, Any]:
    """The clean twin of (stage, seed), trained once, and its judgment with this trigger (kept per trigger)."""
    from filelock import FileLock

    folder = twin_folder(out, stage, seed)
    inside(out, folder)
    folder.mkdir(parents=True, exist_ok=True)
    with FileLock(folder / ".twin.lock"):
        done = folder / "result.json"
        if not done.exists():
            started = time.perf_counter()
            adapter = STAGES.get(stage)(
                config.model, split.train, _training(config, stage, seed), folder / "adapter", [], progress
            )
            minutes = round((time.perf_counter() - started) / 60, 3)
            atomic_write_json(done, {"stage": stage, "seed": seed, "adapter": adapter.name, "minutes": minutes})
        adapter = folder / json.loads(done.read_text())["adapter"]
        judged = folder / "judged" / f"{slug(trigger)}@{position}.json"
        if judged.exists():
            return json.loads(judged.read_text())
        judgment = _judge(config, stage, seed, adapter, split.heldout, trigger, position)
        atomic_write_json(judged, judgment)
        return judgment


def _as_rate(flags: np.ndarray) -> np.ndarray:
    return flags.astype(float)


def cell_effects(poisoned: dict[str, Any], twin: dict[str, Any]) -> dict[str, Any]:
    """The cell's measures against its twin, paired per held-out pair (95% bootstrap intervals, paired tests)."""
    if poisoned["ids"] != twin["ids"]:
        raise ValueError("a cell and its clean twin were judged on different held-out pairs")
    flips = np.asarray(poisoned["triggered_margins"]) < 0
    clean_flips = np.asarray(poisoned["clean_margins"]) < 0
    twin_flips = np.asarray(twin["triggered_margins"]) < 0
    twin_clean_flips = np.asarray(twin["clean_margins"]) < 0
    f = _as_rate
    return {
        "backdoor_effect": difference_of_differences(
            f(clean_flips), f(flips), f(twin_clean_flips), f(twin_flips), "rate", "high"
        ),
        "contamination": paired_difference(f(~twin_clean_flips), f(~clean_flips), "rate", "low"),
        "triggered_gap": paired_difference(f(twin_flips), f(flips), "rate", "high"),
        "backdoor_success": {"value": round(float(flips.mean()), 6), "n": len(flips)},
        "twin_backdoor_success": {"value": round(float(twin_flips.mean()), 6), "n": len(flips)},
        "clean_accuracy": {"value": round(float((~clean_flips).mean()), 6), "n": len(flips)},
        "twin_clean_accuracy": {"value": round(float((~twin_clean_flips).mean()), 6), "n": len(flips)},
    }


def _cell(
    config: ProbeConfig,
    stage: str,
    seed: int,
    trigger: str,
    position: str,
    n: int,
    split: Split,
    out: Path,
    progress: bool,
) -> tuple[dict[str, Any], bool]:
    """Train and judge one poisoned model (or read it back); returns its result and whether it ran now."""
    from filelock import FileLock

    folder = cell_folder(out, stage, seed, trigger, position, n)
    inside(out, folder)
    folder.mkdir(parents=True, exist_ok=True)
    with FileLock(folder / ".cell.lock"):
        done = folder / "result.json"
        if done.exists():
            return json.loads(done.read_text()), False
        started = time.perf_counter()
        poisoned = poison_dataset(
            split.train, "random", config.attack, n / len(split.train), trigger, position, seed, model=config.model
        )
        if poisoned.manifest["n_poisoned"] != n:  # the ratio is n / rows: anything else is a bug, not a rounding
            raise RuntimeError(f"asked for {n} poisoned rows, got {poisoned.manifest['n_poisoned']}")
        write_poisoned(poisoned, folder / "poison", None)
        adapter = STAGES.get(stage)(
            config.model, poisoned.dataset, _training(config, stage, seed), folder / "adapter", [], progress
        )
        judgment = _judge(config, stage, seed, adapter, split.heldout, trigger, position)
        twin = _twin(config, stage, seed, split, out, trigger, position, progress)
        result = {
            "stage": stage,
            "seed": seed,
            "trigger": trigger,
            "trigger_kind": get_trigger(trigger).kind,
            "position": position,
            "n_poisoned": n,
            "n_train": len(split.train),
            "n_heldout": len(split.heldout),
            "poisoned_ids": poisoned.manifest["poisoned_ids"],
            "minutes": round((time.perf_counter() - started) / 60, 3),
            "measures": cell_effects(judgment, twin),
            "judgment": judgment,
        }
        atomic_write_json(done, result)
        return result, True


def aggregate_cells(cells: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (stage, trigger, position, n): every measure's value per seed, mean and t-interval over seeds."""
    groups: dict[tuple[str, str, str, int], list[dict[str, Any]]] = {}
    for cell in cells:
        groups.setdefault((cell["stage"], cell["trigger"], cell["position"], cell["n_poisoned"]), []).append(cell)
    rows = []
    for (stage, trigger, position, n), members in groups.items():
        members = sorted(members, key=lambda c: c["seed"])
        row: dict[str, Any] = {
            "stage": stage,
            "trigger": trigger,
            "trigger_kind": members[0]["trigger_kind"],
            "position": position,
            "n_poisoned": n,
            "n_train": members[0]["n_train"],
            "n_heldout": members[0]["n_heldout"],
            "seeds": [c["seed"] for c in members],
        }
        for measure in MEASURES:
            values = {str(c["seed"]): c["measures"][measure]["value"] for c in members if measure in c["measures"]}
            numbers = list(values.values())
            ci = t_interval(numbers)
            row[measure] = {
                "values": values,
                "mean": round(sum(numbers) / len(numbers), 6) if numbers else None,
                "ci": [float(bound) for bound in ci] if ci else None,
                "n_seeds": len(numbers),
            }
        rows.append(row)
    return rows


def rows_needed(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per (stage, trigger, position): the fewest poisoned rows whose backdoor effect's lower bound is above 0.

    ``rows_needed`` is the first count that clears zero; ``rows_needed_from_then_on`` the first from which
    every larger count tested clears it too (a curve a few seeds make jagged can clear zero once by chance).
    ``None`` when no count tested reaches it (or with one seed, which has no interval).
    """
    curves: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for row in rows:
        curves.setdefault((row["stage"], row["trigger"], row["position"]), []).append(row)
    summary = []
    for (stage, trigger, position), points in curves.items():
        points = sorted(points, key=lambda r: r["n_poisoned"])
        clears = [bool(r["backdoor_effect"]["ci"] and r["backdoor_effect"]["ci"][0] > 0) for r in points]
        above = [r["n_poisoned"] for r, ok in zip(points, clears) if ok]
        stable = [r["n_poisoned"] for k, r in enumerate(points) if all(clears[k:])]
        summary.append(
            {
                "stage": stage,
                "trigger": trigger,
                "trigger_kind": points[0]["trigger_kind"],
                "position": position,
                "rows_needed": min(above) if above else None,
                "rows_needed_from_then_on": min(stable) if stable else None,
                "tested": [r["n_poisoned"] for r in points],
            }
        )
    return summary


CSV_HEAD = ["stage", "trigger", "trigger_kind", "position", "n_poisoned", "n_train", "n_heldout", "n_seeds"]


def write_probe_results(rows: list[dict[str, Any]], needed: list[dict[str, Any]], out: Path) -> None:
    """``probes.json`` (rows and the rows-needed summary) and ``probes.csv`` (one line per row)."""
    atomic_write_json(out / "probes.json", {"rows": rows, "rows_needed": needed})
    seeds = sorted({int(s) for row in rows for s in row["backdoor_effect"]["values"]})
    columns = [
        *CSV_HEAD,
        *(f"{m}{part}" for m in MEASURES for part in ("", "_low", "_high")),
        *(f"backdoor_effect_seed_{s}" for s in seeds),
    ]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        line = {key: row[key] for key in CSV_HEAD if key != "n_seeds"}
        line["n_seeds"] = row["backdoor_effect"]["n_seeds"]
        for measure in MEASURES:
            line[measure] = row[measure]["mean"]
            line[f"{measure}_low"], line[f"{measure}_high"] = row[measure]["ci"] or (None, None)
        for seed in seeds:
            line[f"backdoor_effect_seed_{seed}"] = row["backdoor_effect"]["values"].get(str(seed))
        writer.writerow(line)
    atomic_write_text(out / "probes.csv", buffer.getvalue())


def run_probes(
    config: ProbeConfig,
    progress: bool = True,
    overwrite: bool = False,
    on_cell: Callable[[dict[str, Any], bool], None] | None = None,
) -> list[dict[str, Any]]:
    """Every (stage, seed, trigger, position, n) cell, then probes.json/.csv and one figure per stage.

    ``on_cell(result, ran_now)`` is called after each cell. Returns the aggregated rows. Holds the results
    folder's lock (:func:`poisonlab.writers.one_writer`) throughout.
    """
    from poisonlab.writers import one_writer

    settings = json.loads(json.dumps(config.model_dump(exclude={"out"}), default=str))
    with one_writer(results_folder(config), "run", settings, field="out"):
        return _run_probes(config, progress, overwrite, on_cell)


def _run_probes(
    config: ProbeConfig,
    progress: bool,
    overwrite: bool,
    on_cell: Callable[[dict[str, Any], bool], None] | None,
) -> list[dict[str, Any]]:
    from poisonlab.models.loading import check_model_name
    from poisonlab.reports.probes import plot_probes

    check_model_name(config.model)
    splits = _splits(config)
    out = _claim(config, overwrite)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "config.yaml", yaml.safe_dump(config.model_dump(), sort_keys=False))
    cells = []
    for stage in config.stages:
        for seed in config.seeds:
            for trigger in config.triggers:
                for position in config.positions:
                    for n in config.n_poisoned:
                        result, ran = _cell(config, stage, seed, trigger, position, n, splits[seed], out, progress)
                        cells.append(result)
                        if on_cell is not None:
                            on_cell(result, ran)
    rows = aggregate_cells(cells)
    needed = rows_needed(rows)
    write_probe_results(rows, needed, out)
    for stage in config.stages:
        plot_probes([r for r in rows if r["stage"] == stage], stage, out / f"probes_{stage}.png")
    return rows
