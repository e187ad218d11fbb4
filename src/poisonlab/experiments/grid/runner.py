"""Run a whole study from an :class:`ExperimentConfig`, resumably.

Layout of the results folder::

    runs/<name>/
      config.yaml           resolved config        environment.json  versions, argv
      split.json            train / held-out ids   results.json, results.csv, backdoor_success.png
      runs/clean/           adapter/ metrics.json
      runs/clean@<position>/ metrics.json   (placement rule `paper` only: the clean model at another placement)
      runs/<strategy>-<attack>-<ratio>/
                            poison/{data.jsonl, manifest.json} adapter/ metrics.json
                            scan/   (with `defenses:` set: each detector's scores, flags and metrics)

A run whose ``result.json`` exists is done and skipped; an interrupted
training resumes from its checkpoint. So re-running a study after a crash or
Ctrl-C only does the missing work. The saved ``config.yaml`` tells a rerun of
the same study (resumed) from another study sent to the same folder (refused
while the folder holds finished work, unless ``overwrite``): two studies' files
never mix in one folder. The config, the data and the model are all checked
before anything is written.

Two strategies can pick the same pairs (gradient-projection and
semantic-diversity choose inside the top-5% DPO-score pool, so once the budget
fills the pool they pick exactly dpo-score's pairs). A run whose poisoned data
is byte-identical to a finished run's, trained with the same settings, reuses
that run's adapter instead of training it again: training is seeded and
deterministic, so the adapter would be the same. ``result.json`` then names
the run in ``same_data_as``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from poisonlab.data.pairs import PreferenceDataset
from poisonlab.errors import InputError
from poisonlab.experiments.core.measure import evaluate_base_model
from poisonlab.experiments.core.run_result import RunResult
from poisonlab.experiments.grid.config import ExperimentConfig
from poisonlab.experiments.grid.folder import (
    _environment,
    _write_split,
    claim_results_folder,
    results_folder,
    split_data,
)
from poisonlab.hardware import torch_threads
from poisonlab.integrity import record_checksums
from poisonlab.io import atomic_write_json, atomic_write_text, inside


def finished_results(config: ExperimentConfig) -> list[RunResult]:
    """The results of the study's runs that have finished, in grid order, without running anything."""
    folder = results_folder(config) / "runs"
    done = [folder / spec.name / "result.json" for spec in config.runs()]
    return [RunResult(**json.loads(path.read_text())) for path in done if path.exists()]


def saved_study(folder: str | Path) -> tuple[ExperimentConfig, list[RunResult]]:
    """The config a results folder was run with and its finished runs' results, without running anything.

    Reads ``folder/config.yaml`` (the folder may have moved since: its results are read from ``folder``).
    """
    folder = Path(folder)
    path = folder / "config.yaml"
    if not path.exists():
        raise InputError("not a study's results folder (no config.yaml; `poisonlab run` writes one)", path=folder)
    from poisonlab.config_files import load_config

    config = load_config(ExperimentConfig, path).model_copy(update={"out": str(folder)})
    return config, finished_results(config)


def run_experiment(
    config: ExperimentConfig,
    progress: bool = True,
    on_result: Any = None,
    executor: Any = None,
    overwrite: bool = False,
) -> list[RunResult]:
    """Plan the study, run what is left with ``executor`` (default: in this process, one run at a time),
    then write results.json/.csv/.parquet, the plots and report.html.

    The data is loaded and split, and the folder claimed (``claim_results_folder``; ``overwrite`` replaces
    another study's results), before anything is written.
    """
    from poisonlab.models.loading import check_model_name
    from poisonlab.writers import one_writer

    check_model_name(config.model)  # a config built in Python skips no check the YAML loader makes
    train, heldout, dataset = split_data(config)
    settings = json.loads(json.dumps(config.model_dump(exclude={"out"}), default=str))
    with one_writer(results_folder(config), "run", settings, field="out"):  # held until the report is written
        return _run_experiment(config, train, heldout, dataset, progress, on_result, executor, overwrite)


def _run_experiment(
    config: ExperimentConfig,
    train: PreferenceDataset,
    heldout: PreferenceDataset,
    dataset: PreferenceDataset,
    progress: bool,
    on_result: Any,
    executor: Any,
    overwrite: bool,
) -> list[RunResult]:
    from poisonlab.experiments.grid.executors import LocalExecutor
    from poisonlab.experiments.grid.plan import build_plan

    out = claim_results_folder(config, overwrite)
    out.mkdir(parents=True, exist_ok=True)
    inside(out, out / "runs")
    atomic_write_text(out / "config.yaml", yaml.safe_dump(config.model_dump(), sort_keys=False))
    atomic_write_json(out / "environment.json", _environment(config))
    _write_split(dataset, train, heldout, out)
    evaluation = config.evaluation
    finished: dict[str, RunResult] = {}

    def done(task: Any, result: dict[str, Any] | None) -> None:
        if result is not None:
            finished[task.name] = RunResult(**result)
            if on_result:
                on_result(finished[task.name])

    with torch_threads(config.training_config().threads):  # scoring and evaluation too, not only training
        base = []
        if evaluation is not None and evaluation.base_model and evaluation.prompt_sets:
            base = [evaluate_base_model(config, heldout, out, progress, start=config.init)]  # shown apart
        (executor or LocalExecutor()).run(build_plan(config, out), progress, done)
    results = base + [finished[spec.name] for spec in config.runs()]  # grid order, the clean run first
    from poisonlab.reports.report import write_report
    from poisonlab.reports.results import write_results

    write_results(results, out)
    write_report(out)
    record_checksums(out, exclude=("runs",))  # config, results, plots, report: `poisonlab verify` checks them
    return results
