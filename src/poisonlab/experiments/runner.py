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
Ctrl-C only does the missing work.

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
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from poisonlab import __version__
from poisonlab.attacks.inject import poison_dataset, write_poisoned
from poisonlab.data.pairs import PreferenceDataset
from poisonlab.data.readers import load_pairs
from poisonlab.data.splits import train_heldout_split
from poisonlab.evaluation.preference import PreferenceMetrics, evaluate_preferences, write_metrics
from poisonlab.experiments.config import ExperimentConfig, RunSpec
from poisonlab.experiments.defend import defend_run
from poisonlab.integrity import CHECKSUMS, record_checksums
from poisonlab.io import atomic_write_json, atomic_write_text, inside
from poisonlab.training.dpo import train_dpo
from poisonlab.training.loop import DONE_MARKER, NOT_COMPARED, SETTINGS_FILE, claim_folder, training_settings


@dataclass
class RunResult:
    run: str
    strategy: str
    attack: str
    ratio: float
    n_poisoned: int
    clean_accuracy: float
    backdoor_success: float
    n_heldout: int
    minutes: float
    trigger_position: str | None = None  # where evaluation (and the poison) put the trigger
    same_data_as: str | None = None  # the finished run whose identical data (and adapter) this run reused
    detection: dict[str, dict[str, Any]] | None = None  # per detector: auroc, recall, ... (config.defenses)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def results_folder(config: ExperimentConfig) -> Path:
    return Path(config.out or Path("runs") / config.name)


def _environment(config: ExperimentConfig) -> dict[str, Any]:
    import peft
    import torch
    import transformers

    from poisonlab.hardware import compute_facts

    return {
        "compute": compute_facts(config.training_config().bf16),  # precision and CPU features: results can differ
        "poisonlab": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "peft": peft.__version__,
        "platform": platform.platform(),
        "argv": sys.argv,
    }


def prepare_split(config: ExperimentConfig, out: Path) -> tuple[PreferenceDataset, PreferenceDataset]:
    dataset = load_pairs(config.data, on_error="skip" if config.skip_bad_rows else "raise")
    train, heldout = train_heldout_split(dataset, config.heldout, config.seed)
    if config.max_train_pairs:
        train = PreferenceDataset(train.pairs[: config.max_train_pairs], train.source)
    if config.max_heldout_pairs:
        heldout = PreferenceDataset(heldout.pairs[: config.max_heldout_pairs], heldout.source)
    atomic_write_json(
        out / "split.json",
        {
            "source": dataset.source,
            "n_skipped": len(dataset.skipped),
            "train_ids": train.ids,
            "heldout_ids": heldout.ids,
        },
    )
    return train, heldout


def run_one(
    spec: RunSpec,
    config: ExperimentConfig,
    train: PreferenceDataset,
    heldout: PreferenceDataset,
    out: Path,
    progress: bool = True,
) -> RunResult:
    """Do (or finish, or just read back) one run, holding its lock: two processes on one study share the work."""
    from filelock import FileLock

    folder = out / "runs" / spec.name
    for path in (folder, folder / "poison", folder / "adapter", folder / "scan", out / "runs" / "clean" / "adapter"):
        inside(out, path)  # a link planted in the study folder cannot send a write elsewhere
    folder.mkdir(parents=True, exist_ok=True)
    with FileLock(folder / ".run.lock"):  # the other process waits, then finds result.json and skips the run
        return _run_one(spec, config, train, heldout, out, progress)


def _run_one(
    spec: RunSpec,
    config: ExperimentConfig,
    train: PreferenceDataset,
    heldout: PreferenceDataset,
    out: Path,
    progress: bool = True,
) -> RunResult:
    folder = out / "runs" / spec.name
    done = folder / "result.json"
    training = config.training_config()

    def evaluate(adapter: str | Path) -> PreferenceMetrics:
        return evaluate_preferences(
            config.model,
            heldout,
            adapter,
            config.trigger,
            spec.trigger_position,
            training.beta,
            training.max_length,
            training.max_reply_length,
            config.eval_batch_size,
            training.bf16,
            config.seed,
            progress,
        )

    if done.exists():
        if (folder / "adapter" / SETTINGS_FILE).exists():  # refuse a finished run trained otherwise
            claim_folder(folder / "adapter", training_settings(config.model, training))
        run = RunResult(**json.loads(done.read_text()))
        if spec.ratio > 0 and config.defenses:  # defenses added since the run finished: only they run
            adapter = out / "runs" / (run.same_data_as or spec.name) / "adapter"
            before = json.dumps(run.detection)
            run.detection = defend_run(folder, adapter, spec.ratio, config, run.detection, evaluate, progress)
            if json.dumps(run.detection) != before:
                atomic_write_json(done, run.to_dict())
                record_checksums(folder)
        if not (folder / CHECKSUMS).exists():  # stopped between result.json and its checksums
            record_checksums(folder)
        return run
    started = time.perf_counter()
    data, n_poisoned = train, 0
    clean_adapter = out / "runs" / "clean" / "adapter"
    if spec.ratio > 0:
        result = poison_dataset(
            train,
            spec.strategy,
            spec.attack,
            spec.ratio,
            config.trigger,
            config.trigger_position,  # a rule (paper) is resolved per strategy, as spec.trigger_position is
            config.seed,
            model=config.model,
            training=training,
            clean_adapter=clean_adapter,  # model-based strategies score with the clean run's adapter
            progress=progress,
            selection=config.selection,
        )
        manifest = json.loads((write_poisoned(result, folder / "poison", None) / "manifest.json").read_text())
        data, n_poisoned = result.dataset, manifest["n_poisoned"]
        twin = finished_twin(out, spec.name, manifest["output_sha256"], training_settings(config.model, training))
    else:
        twin = None
    if twin:
        adapter = twin / "adapter"
    else:
        adapter_dir = folder / "adapter" if spec.ratio > 0 else clean_adapter  # clean@<position> reuses it
        adapter = train_dpo(config.model, data, training, adapter_dir, progress=progress).adapter_dir
    metrics = evaluate(adapter)
    write_metrics(metrics, folder)
    detection = None
    if spec.ratio > 0 and config.defenses:
        detection = defend_run(folder, Path(adapter), spec.ratio, config, None, evaluate, progress)
    run = RunResult(
        spec.name,
        spec.strategy,
        spec.attack,
        spec.ratio,
        n_poisoned,
        metrics.clean_accuracy,
        metrics.backdoor_success,
        metrics.n_pairs,
        round((time.perf_counter() - started) / 60, 2),
        spec.trigger_position,
        twin.name if twin else None,
        detection,
    )
    atomic_write_json(done, run.to_dict())
    record_checksums(folder)  # every file of the finished run, for poisonlab verify
    return run


def finished_twin(out: Path, name: str, data_sha256: str, settings: dict[str, Any]) -> Path | None:
    """A finished run of this study that trained its adapter on byte-identical poisoned data, same settings."""

    def compared(values: dict[str, Any]) -> dict[str, Any]:  # the data is compared through the manifests
        return {k: v for k, v in values.items() if k not in NOT_COMPARED and k != "data_sha256"}

    for other in sorted((out / "runs").iterdir()):
        manifest, adapter = other / "poison" / "manifest.json", other / "adapter"
        finished = (other / "result.json").exists() and (adapter / DONE_MARKER).exists() and manifest.exists()
        planted = other.resolve().parent != (out / "runs").resolve()  # a link out of the study: never reused
        if other.name == name or not finished or planted:  # the clean run has no manifest: its data is never poisoned
            continue
        if json.loads(manifest.read_text()).get("output_sha256") != data_sha256:
            continue
        if compared(json.loads((adapter / SETTINGS_FILE).read_text())) == compared(settings):
            return other
    return None


def finished_results(config: ExperimentConfig) -> list[RunResult]:
    """The results of the study's runs that have finished, in grid order, without running anything."""
    folder = results_folder(config) / "runs"
    done = [folder / spec.name / "result.json" for spec in config.runs()]
    return [RunResult(**json.loads(path.read_text())) for path in done if path.exists()]


def run_experiment(config: ExperimentConfig, progress: bool = True, on_result: Any = None) -> list[RunResult]:
    """Run the clean run and every grid cell; write results.json/.csv and a plot."""
    out = results_folder(config)
    out.mkdir(parents=True, exist_ok=True)
    inside(out, out / "runs")
    atomic_write_text(out / "config.yaml", yaml.safe_dump(config.model_dump(), sort_keys=False))
    atomic_write_json(out / "environment.json", _environment(config))
    train, heldout = prepare_split(config, out)
    results = []
    for spec in config.runs():  # clean first: model-based strategies reuse its adapter as the clean model
        results.append(run_one(spec, config, train, heldout, out, progress))
        if on_result:
            on_result(results[-1])
    from poisonlab.reports.results import write_results

    write_results(results, out)
    return results
