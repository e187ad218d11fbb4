"""Run a reasoning probe (:class:`ReasoningProbeConfig`): what does a model learn from poisoned worked steps?

Layout of the results folder::

    runs/<name>/
      config.yaml  reasoning.json  reasoning.csv  reasoning_pooled.csv  reasoning_<measure>.png
      cells/seed-<s>/clean/                               the clean twin: data.jsonl (the seed's training
                                                          problems), heldout.jsonl (questions, solutions,
                                                          answers), adapter/ (init: scratch: model/),
                                                          generations/, replies.json
      cells/seed-<s>/<mode>/step-<j>/share-<x>/           one poisoned model: poison/ (data.jsonl, manifest.json),
                                                          adapter/ or model/, generations/, result.json

Each seed generates ``n_train + n_heldout`` problems (:mod:`poisonlab.data.reasoning`); a cell rewrites
``share`` of the training solutions with ``mode`` at ``step`` (:mod:`poisonlab.attacks.reasoning`), trains
SFT on them and writes greedy solutions to the held-out problems (``generate``: resumable). Per held-out
problem, paired with the clean twin of the seed (exact McNemar tests and intervals, evaluation/stats):

- ``accuracy_drop``: the twin's final-answer accuracy minus the cell's (+ = the attacker gained);
- ``reproduction``: the share of replies that reproduce the poisoned step (the step at position ``step``
  off by exactly ``offset``; for ``dropped`` a solution one step short), minus the twin's.

With several seeds, ``reasoning.json`` gives per (mode, step, share) the mean over seeds with a t-interval, and
``pooled``: every seed's held-out problems as one paired sample (exact McNemar tests and intervals), also in
``reasoning_pooled.csv`` and the figures.

A cell folder whose ``result.json`` exists is done, so a rerun does only what is missing.
"""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from poisonlab.attacks.reasoning import REASONING_POISONS, poison_reasoning, write_reasoning_poison
from poisonlab.data.pairs import PreferenceDataset
from poisonlab.data.prompts import Prompt, as_dialogue
from poisonlab.data.reasoning import Problem, as_sft_rows, parse_solution, reasoning_problems
from poisonlab.evaluation.stats import paired_difference, summary
from poisonlab.experiments.core.cells import claim_cells
from poisonlab.experiments.core.intervals import t_interval
from poisonlab.experiments.reasoning.config import ReasoningProbeConfig
from poisonlab.io import atomic_write_json, atomic_write_text
from poisonlab.training.stages import STAGES, stage_config

MEASURES = ("accuracy_drop", "reproduction")
RESULTS = ("reasoning.json", "reasoning.csv")


def results_folder(config: ReasoningProbeConfig) -> Path:
    return Path(config.out or Path("runs") / config.name)


def cell_folder(out: Path, seed: int, mode: str | None, step: int = 0, share: float = 0.0) -> Path:
    base = out / "cells" / f"seed-{seed}"
    return base / "clean" if mode is None else base / mode / f"step-{step}" / f"share-{share:g}"


def _claim(config: ReasoningProbeConfig, overwrite: bool) -> Path:
    """The results folder, resumed when it holds this study's cells, else refused (``core.cells``)."""
    return claim_cells(results_folder(config), config, overwrite, "a reasoning probe")


def split(config: ReasoningProbeConfig, seed: int) -> tuple[list[Problem], list[Problem]]:
    """The seed's training and held-out problems (one draw, cut in two: never the same question)."""
    problems = reasoning_problems(
        config.n_train + config.n_heldout, seed, config.n_steps, config.max_value, config.question_style
    )
    return problems[: config.n_train], problems[config.n_train :]


def _train_and_generate(
    config: ReasoningProbeConfig, seed: int, rows: PreferenceDataset, folder: Path, heldout: list[Problem]
) -> dict[str, str]:
    """Train SFT on ``rows`` into ``folder/adapter`` (init: scratch: a whole model into ``folder/model``) and
    generate to the held-out problems: id -> reply."""
    from poisonlab.evaluation import generate
    from poisonlab.evaluation.generate import read_generations

    training = stage_config("sft", "cpu", seed, config.training)
    if config.init == "scratch":
        from poisonlab.experiments.reasoning.scratch import train_scratch

        model, adapters = str(train_scratch(config.model, rows, config.scratch, training, folder / "model")), []
    else:
        model, adapters = config.model, [STAGES.get("sft")(config.model, rows, training, folder / "adapter", [], False)]
    prompts = [Prompt(p.id, as_dialogue(p.question)) for p in heldout]
    generate(model, prompts, folder / "generations", adapters, None, config=config.generation, progress=False)
    return {row["id"]: row["reply"] for row in read_generations(folder / "generations")}


def _twin_replies(
    config: ReasoningProbeConfig, out: Path, seed: int, train: list[Problem], heldout: list[Problem]
) -> dict[str, str]:
    from poisonlab.data.writer import write_pairs
    from poisonlab.io import atomic_write_jsonl

    folder = cell_folder(out, seed, None)
    done = folder / "replies.json"
    if done.exists():
        return json.loads(done.read_text())
    folder.mkdir(parents=True, exist_ok=True)
    write_pairs(as_sft_rows(train), folder / "data.jsonl")  # what every cell of the seed poisons, as plain rows
    atomic_write_jsonl(
        folder / "heldout.jsonl",
        ({"id": p.id, "question": p.question, "solution": p.solution(), "answer": p.answer} for p in heldout),
    )
    replies = _train_and_generate(config, seed, as_sft_rows(train), folder, heldout)
    atomic_write_json(done, replies)
    return replies


def measure(
    heldout: list[Problem], replies: dict[str, str], twin: dict[str, str], mode: str, step: int, offset: int
) -> dict[str, Any]:
    """The cell's accuracy and reproduction of the poisoned step, each against the twin's, paired by problem."""
    cols = problem_outcomes(heldout, replies, twin, mode, step, offset)
    return measures_of(cols["right"], cols["twin_right"], cols["copied"], cols["twin_copied"])


def problem_outcomes(
    heldout: list[Problem], replies: dict[str, str], twin: dict[str, str], mode: str, step: int, offset: int
) -> dict[str, list[int]]:
    """Per held-out problem (in order), 0/1: right answer and poisoned step reproduced, the cell's and the twin's;
    kept in ``result.json`` so seeds can be pooled (:func:`pooled_measures`)."""
    reproduced = REASONING_POISONS.get(mode).reproduced
    columns: dict[str, list[int]] = {}
    for prefix, texts in (("", replies), ("twin_", twin)):
        parsed = [parse_solution(texts[p.id]) for p in heldout]
        columns[f"{prefix}right"] = [int(a == p.answer) for p, (_, a) in zip(heldout, parsed)]
        columns[f"{prefix}copied"] = [int(reproduced(p, st, a, step, offset)) for p, (st, a) in zip(heldout, parsed)]
    return columns


def measures_of(
    right: list[float], twin_right: list[float], copied: list[float], twin_copied: list[float]
) -> dict[str, Any]:
    """Accuracy and reproduction, each against the twin's, paired by problem (exact McNemar, evaluation/stats)."""
    return {
        "accuracy": summary(right, "rate"),
        "twin_accuracy": summary(twin_right, "rate"),
        "accuracy_drop": paired_difference(twin_right, right, "rate", "low"),
        "reproduction_rate": summary(copied, "rate"),
        "twin_reproduction_rate": summary(twin_copied, "rate"),
        "reproduction": paired_difference(twin_copied, copied, "rate", "high"),
    }


def run_reasoning_probe(
    config: ReasoningProbeConfig, overwrite: bool = False, on_cell: Callable[[dict[str, Any], bool], None] | None = None
) -> list[dict[str, Any]]:
    """Every cell of every seed (the clean twin first), then reasoning.json/.csv and the figures."""
    from poisonlab.models.loading import check_model_name
    from poisonlab.writers import one_writer

    check_model_name(config.model)
    settings = json.loads(json.dumps(config.model_dump(exclude={"out"}), default=str))
    with one_writer(results_folder(config), "reasoning", settings, field="out"):
        out = _claim(config, overwrite)
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out / "config.yaml", yaml.safe_dump(config.model_dump(), sort_keys=False))
        rows = []
        for seed in config.seeds:
            train, heldout = split(config, seed)
            twin = _twin_replies(config, out, seed, train, heldout)
            for mode in config.modes:
                for step in config.steps:
                    for share in config.shares:
                        rows.append(_cell(config, out, seed, mode, step, share, train, heldout, twin, on_cell))
        means = write_results(rows, out)
        from poisonlab.reports.reasoning import plot_reasoning

        shown = [{**m, **m["pooled"]} if "pooled" in m else m for m in means]  # seeds pooled where they can be
        for measure_name in MEASURES:
            plot_reasoning(shown, measure_name, out / f"reasoning_{measure_name}.png")
        return rows


def _cell(
    config: ReasoningProbeConfig,
    out: Path,
    seed: int,
    mode: str,
    step: int,
    share: float,
    train: list[Problem],
    heldout: list[Problem],
    twin: dict[str, str],
    on_cell: Callable[[dict[str, Any], bool], None] | None,
) -> dict[str, Any]:
    folder = cell_folder(out, seed, mode, step, share)
    done = folder / "result.json"
    if done.exists():
        row = json.loads(done.read_text())
        if on_cell:
            on_cell(row, False)
        return row
    started = time.perf_counter()
    rows, manifest = poison_reasoning(train, mode, share, step, seed, config.offset)
    write_reasoning_poison(rows, manifest, folder / "poison")
    replies = _train_and_generate(config, seed, rows, folder, heldout)
    outcomes = problem_outcomes(heldout, replies, twin, mode, step, config.offset)
    row = {
        "seed": seed,
        "mode": mode,
        "step": step,
        "share": share,
        "n_poisoned": manifest["n_poisoned"],
        "n_train": len(train),
        "minutes": round((time.perf_counter() - started) / 60, 2),
        "measures": measures_of(outcomes["right"], outcomes["twin_right"], outcomes["copied"], outcomes["twin_copied"]),
        "outcomes": outcomes,
    }
    atomic_write_json(done, row)
    if on_cell:
        on_cell(row, True)
    return row


CSV_FIELDS = ["seed", "mode", "step", "share", "n_poisoned", "n_train"]


def pooled_measures(cells: list[dict[str, Any]]) -> dict[str, Any]:
    """The seeds' held-out problems as one paired sample (each seed draws its own problems and its own twin):
    exact McNemar tests and intervals over every (seed, problem) pair."""
    joined = {k: [v for c in cells for v in c["outcomes"][k]] for k in ("right", "twin_right", "copied", "twin_copied")}
    return measures_of(joined["right"], joined["twin_right"], joined["copied"], joined["twin_copied"])


def write_results(rows: list[dict[str, Any]], out: Path) -> list[dict[str, Any]]:
    """``reasoning.json`` (every cell, and per mode, step and share the mean over seeds) and ``reasoning.csv``;
    returns the means."""
    means = []
    keys = list(dict.fromkeys((r["mode"], r["step"], r["share"]) for r in rows))  # in the config's order
    for mode, step, share in keys:
        cells = [r for r in rows if (r["mode"], r["step"], r["share"]) == (mode, step, share)]
        entry: dict[str, Any] = {"mode": mode, "step": step, "share": share, "n_seeds": len(cells)}
        for name in MEASURES:  # one seed: the cell's own paired interval; several: the t-interval over seeds
            values = [c["measures"][name]["value"] for c in cells]
            ci = t_interval(values) if len(cells) > 1 else cells[0]["measures"][name]["ci"]
            entry[name] = {"value": sum(values) / len(values), "ci": ci}
        if len(cells) > 1 and all("outcomes" in c for c in cells):
            entry["pooled"] = pooled_measures(cells)
        means.append(entry)
    atomic_write_json(out / "reasoning.json", {"cells": rows, "over_seeds": means})
    buffer = io.StringIO()
    parts = [
        f"{m}{p}"
        for m in ("accuracy", "twin_accuracy", "reproduction_rate", "twin_reproduction_rate", *MEASURES)
        for p in ("", "_low", "_high")
    ] + [f"{m}_p" for m in MEASURES]
    writer = csv.DictWriter(buffer, fieldnames=CSV_FIELDS + parts, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        line: dict[str, Any] = {field: row[field] for field in CSV_FIELDS}
        for name, entry in row["measures"].items():
            line[name] = entry["value"]
            line[f"{name}_low"], line[f"{name}_high"] = entry["ci"]
            if name in MEASURES:
                line[f"{name}_p"] = entry.get("p_value")
        writer.writerow(line)
    atomic_write_text(out / "reasoning.csv", buffer.getvalue())
    pooled = [m for m in means if "pooled" in m]
    if pooled:
        atomic_write_text(out / "reasoning_pooled.csv", _pooled_csv(pooled))
    return means


def _pooled_csv(means: list[dict[str, Any]]) -> str:
    """One line per (mode, step, share): the seeds pooled (:func:`pooled_measures`), values, intervals, p."""
    buffer = io.StringIO()
    names = ("accuracy", "twin_accuracy", "reproduction_rate", "twin_reproduction_rate", *MEASURES)
    fields = ["mode", "step", "share", "n_seeds", "n_pairs"]
    fields += [f"{n}{p}" for n in names for p in ("", "_low", "_high")] + [f"{m}_p" for m in MEASURES]
    writer = csv.DictWriter(buffer, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    for mean in means:
        pooled = mean["pooled"]
        line: dict[str, Any] = {k: mean[k] for k in ("mode", "step", "share", "n_seeds")}
        line["n_pairs"] = pooled["accuracy"]["n"]
        for name in names:
            line[name] = pooled[name]["value"]
            line[f"{name}_low"], line[f"{name}_high"] = pooled[name]["ci"]
        for name in MEASURES:
            line[f"{name}_p"] = pooled[name].get("p_value")
        writer.writerow(line)
    return buffer.getvalue()
