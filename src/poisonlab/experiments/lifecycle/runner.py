"""Run a lifecycle study (:class:`LifecycleConfig`): every pipeline through every stage, judged after each.

Layout of the results folder::

    runs/<name>/
      config.yaml  environment.json  lifecycle.json  lifecycle.csv  lifecycle_<metric>.png
      base/                             the untrained model's generations, judged
      stages/<k>-<stage>/<prefix>/      one trained model: poison/ (if poisoned), adapter/,
                                        generations/<set>/, judgments/<set>/, result.json

``<prefix>`` names the poison of stages 1..k (``clean``, ``sft-0.05``, ``sft-0.05+dpo-0.025``): pipelines
that agree on their first k stages share that folder, so the model after ``sft-0.05``'s SFT stage is
trained once whether a clean or a poisoned DPO follows. Every poisoned model is judged against the
clean model of the same stage (its twin): ``backdoor_effect`` and ``contamination`` after each stage.
A folder whose ``result.json`` exists is done; training resumes from checkpoints; so a rerun after a
crash does only what is missing. A stage's poison is model-free, taken from a behaviour file (SFT), or
chosen by a model-based strategy scoring with the clean pipeline's model of that stage (trained first);
``poison/manifest.json`` records which (``behaviours``, ``clean_model_chain``).
"""

from __future__ import annotations

import csv
import io
import json
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from poisonlab.attacks import poison_dataset, write_poisoned
from poisonlab.attacks.behaviours import behaviour_rows
from poisonlab.attacks.strategies import strategy_facts
from poisonlab.data.pairs import PreferenceDataset
from poisonlab.data.readers import load_pairs
from poisonlab.data.splits import train_heldout_split
from poisonlab.errors import InputError
from poisonlab.experiments.core.environment import environment
from poisonlab.experiments.core.measure import generation_metrics
from poisonlab.experiments.lifecycle.config import LifecycleConfig, StageConfig
from poisonlab.io import atomic_write_json, atomic_write_text, inside
from poisonlab.models.adapters import full_chain
from poisonlab.outputs import existing_results
from poisonlab.training.config import DPOTrainingConfig, LoRATrainingConfig
from poisonlab.training.stages import STAGES, stage_config

RESULTS = ("lifecycle.json", "lifecycle.csv")


@dataclass
class StageResult:
    """One trained model of a lifecycle: a pipeline's state after one stage."""

    pipeline: str  # the whole pipeline's label (its poison in every stage)
    stage: str
    stage_index: int  # 1-based
    kind: str
    prefix: str  # the poison of stages 1..stage_index: the folder the model lives in
    share: float  # poisoned share of this stage's training pairs
    n_poisoned: int  # poisoned pairs in this stage
    n_poisoned_so_far: int  # in this stage and every stage before it
    n_train: int
    minutes: float
    metrics: dict[str, dict[str, Any]]


def stage_folder(out: Path, index: int, stage: StageConfig, label: str) -> Path:
    return out / "stages" / f"{index}-{stage.name}" / label


@dataclass
class _StageData:
    train: PreferenceDataset
    heldout: PreferenceDataset


def stage_data(config: LifecycleConfig) -> list[_StageData]:
    """Each stage's (training, held-out) pairs, seeded; loading checks every file, and every stage's poison,
    before anything is written. SFT stages read instruction files too (rows without a rejected reply)."""
    from poisonlab.data.instructions import load_sft_data
    from poisonlab.experiments.lifecycle.poison import check_stage_poison

    loaded: dict[tuple[bool, str], PreferenceDataset] = {}
    splits = []
    on_error = "skip" if config.skip_bad_rows else "raise"
    for index, stage in enumerate(config.stages, start=1):
        key = (stage.kind == "sft", stage.data)
        if key not in loaded:
            loaded[key] = (load_sft_data if key[0] else load_pairs)(stage.data, on_error=on_error)
        train, heldout = train_heldout_split(loaded[key], config.heldout, config.seed)
        end = stage.train_offset + stage.max_train_pairs if stage.max_train_pairs else None
        train = PreferenceDataset(train.pairs[stage.train_offset : end], train.source)
        if not train.pairs:
            raise InputError(f"no training pairs left after train_offset {stage.train_offset}", field="stages")
        check_stage_poison(config, index, train)
        splits.append(_StageData(train, heldout))
    return splits


def results_folder(config: LifecycleConfig) -> Path:
    return Path(config.out or Path("runs") / config.name)


def _claim(config: LifecycleConfig, overwrite: bool) -> Path:
    """The results folder, resumed when it holds this same lifecycle, refused when it holds anything else."""
    import shutil

    out = results_folder(config)
    saved = out / "config.yaml"
    if saved.exists():
        try:
            same = LifecycleConfig.model_validate(yaml.safe_load(saved.read_text())).model_dump(
                exclude={"name", "out"}
            ) == config.model_dump(exclude={"name", "out"})
        except Exception:
            same = False
        if not same and not overwrite:
            raise InputError(
                "holds another lifecycle study's results; choose another folder (--out), or pass --overwrite",
                path=out,
            )
        if not same:
            shutil.rmtree(out / "stages", ignore_errors=True)
            shutil.rmtree(out / "base", ignore_errors=True)
        return out
    found = existing_results(out)
    if found and not overwrite:
        raise InputError(f"already holds other results ({', '.join(found)}); choose another folder (--out)", path=out)
    return out


def _train_and_judge(
    config: LifecycleConfig,
    index: int,
    shares: tuple[float, ...],
    data: _StageData,
    out: Path,
    progress: bool,
) -> dict[str, Any]:
    """Train (or read back) the model after stage ``index`` of the pipelines starting with ``shares[:index]``."""
    from filelock import FileLock

    stage = config.stages[index - 1]
    prefix = config.prefix(shares, index)
    folder = stage_folder(out, index, stage, config.label(prefix))
    inside(out, folder)
    folder.mkdir(parents=True, exist_ok=True)
    with FileLock(folder / ".stage.lock"):
        done = folder / "result.json"
        if done.exists():
            return json.loads(done.read_text())
        started = time.perf_counter()
        init = [
            stage_folder(out, k, config.stages[k - 1], config.label(config.prefix(shares, k))) / "adapter"
            for k in config.chain(index)
        ]
        training = stage_config(stage.kind, stage.preset, config.seed, stage.training)
        train, n_poisoned = data.train, 0
        if prefix[-1] > 0 and stage.poison_as:
            train, n_poisoned = _poison_of(config, stage.poison_as, shares, data, out, folder, progress)
        elif prefix[-1] > 0:
            clean_model = _clean_scoring_model(config, index, data, out, progress)
            poisoned = poison_dataset(
                data.train,
                stage.strategy,
                stage.attack,
                prefix[-1],
                config.trigger,
                config.trigger_position,
                config.seed,
                model=config.model,
                training=scoring_config(training),
                clean_adapter=clean_model,
                progress=progress,
                selection=stage.selection,
                access=stage.access,
                behaviours=behaviour_rows(stage.behaviours) if stage.behaviours else None,
            )
            if clean_model is not None:  # which models scored the pairs: the clean chain, base first
                chain = [str(p.resolve().relative_to(out.resolve())) for p in full_chain([clean_model])]
                poisoned.manifest["clean_model_chain"] = chain
            manifest = json.loads((write_poisoned(poisoned, folder / "poison", None) / "manifest.json").read_text())
            train, n_poisoned = poisoned.dataset, int(manifest["n_poisoned"])
        adapter = STAGES.get(stage.kind)(config.model, train, training, folder / "adapter", init, progress)
        clean = config.label(prefix) == "clean"
        twin = None if clean else stage_folder(out, index, stage, config.label(tuple(0.0 for _ in prefix)))
        metrics = generation_metrics(
            config, data.heldout, folder, [*init, adapter], config.trigger_position, twin, progress
        )
        victim = _reward_model_victim(config, stage, data, folder, twin)
        result = {
            "stage": stage.name,
            "stage_index": index,
            "kind": stage.kind,
            "prefix": config.label(prefix),
            "share": prefix[-1],
            "n_poisoned": n_poisoned,
            "n_train": len(train),
            "minutes": round((time.perf_counter() - started) / 60, 2),
            "metrics": metrics,
            **({"reward_model": victim} if victim else {}),
        }
        atomic_write_json(done, result)
        return result


def _poison_of(
    config: LifecycleConfig,
    name: str,
    shares: tuple[float, ...],
    data: _StageData,
    out: Path,
    folder: Path,
    progress: bool,
) -> tuple[PreferenceDataset, int]:
    """The poisoned pairs stage ``name`` trained on in this pipeline (trained first if need be), read back byte for
    byte; ``folder/poison_source.json`` says where they came from."""
    index = [s.name for s in config.stages].index(name) + 1
    _train_and_judge(config, index, shares, data, out, progress)  # same pairs: poison_as is checked at load
    source = stage_folder(out, index, config.stages[index - 1], config.label(config.prefix(shares, index))) / "poison"
    manifest = json.loads((source / "manifest.json").read_text())
    atomic_write_json(
        folder / "poison_source.json",
        {"stage": name, "poison": str(source.relative_to(out)), "output_sha256": manifest["output_sha256"]},
    )
    return load_pairs(source / "data.jsonl"), int(manifest["n_poisoned"])


def _reward_model_victim(
    config: LifecycleConfig, stage: StageConfig, data: _StageData, folder: Path, twin: Path | None
) -> dict[str, Any] | None:
    """A stage that trains a reward model (rl) and is poisoned: that reward model against the clean twin's, on the
    stage's clean held-out pairs (``evaluation.reward_victim``), written beside it; the headline numbers."""
    from poisonlab.evaluation.reward_victim import reward_model_victim, write_reward_model_victim

    name = STAGES.facts(stage.kind).reward_model
    if name is None or twin is None:
        return None
    report = reward_model_victim(
        folder / name, twin / name, data.heldout, config.trigger, config.trigger_position, config.seed
    )
    write_reward_model_victim(report, folder)
    return {
        "heldout_accuracy": report["poisoned"]["heldout_accuracy"],
        "clean_heldout_accuracy": report["clean"]["heldout_accuracy"],
        "contamination": report["contamination"],
        "backdoor_effect": report["backdoor_effect"],
    }


def _clean_scoring_model(
    config: LifecycleConfig, index: int, data: _StageData, out: Path, progress: bool
) -> Path | None:
    """The adapter a model-based strategy of stage ``index`` scores with: the clean pipeline's, after this stage.

    run_lifecycle trains the clean pipeline first at every stage, so this is a read-back of its result;
    calling it here keeps the dependency explicit, and a rerun after a crash finds it done. Its recorded
    init is the clean chain before the stage, which the scorer merges in: the reference of every score is
    the clean model at the stage's start (for a DPO stage, exactly its DPO reference).
    """
    stage = config.stages[index - 1]
    if not strategy_facts(stage.strategy).uses_model:
        return None
    clean = tuple(0.0 for _ in config.stages)
    _train_and_judge(config, index, clean, data, out, progress)
    return stage_folder(out, index, stage, config.label(clean[:index])) / "adapter"


def scoring_config(training: LoRATrainingConfig) -> DPOTrainingConfig:
    """The settings pair scores use (lengths, batch, precision, beta): a DPO stage's own; for an SFT or RL stage
    the shared LoRA fields (lengths, precision...), with DPO's defaults for the loss (beta 0.1, sigmoid)."""
    if isinstance(training, DPOTrainingConfig):
        return training
    return DPOTrainingConfig(**training.model_dump(include=set(LoRATrainingConfig.model_fields)))


def run_lifecycle(config: LifecycleConfig, progress: bool = True, overwrite: bool = False) -> list[StageResult]:
    """Train and judge every distinct prefix, stage by stage (the clean one first: it is every twin),
    then write lifecycle.json/.csv and the figures. Returns one row per (pipeline, stage).

    Holds the results folder's lock (:func:`poisonlab.writers.one_writer`) throughout: another study writing
    the same folder is refused, the same one waits."""
    from poisonlab.writers import one_writer

    settings = json.loads(json.dumps(config.model_dump(exclude={"out"}), default=str))
    with one_writer(results_folder(config), "run", settings, field="out"):
        return _run_lifecycle(config, progress, overwrite)


def _run_lifecycle(config: LifecycleConfig, progress: bool, overwrite: bool) -> list[StageResult]:
    from poisonlab.experiments.core.measure import evaluate_base_model
    from poisonlab.models.loading import check_model_name

    check_model_name(config.model)
    data = stage_data(config)
    from poisonlab.evaluation.context import check_contexts

    check_contexts(config.evaluation.contexts, config.evaluation.generation.seed)
    out = _claim(config, overwrite)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "config.yaml", yaml.safe_dump(config.model_dump(), sort_keys=False))
    first = config.stages[0]
    training = stage_config(first.kind, first.preset, config.seed, first.training)
    atomic_write_json(out / "environment.json", environment(training.bf16, training.threads))
    pipelines = config.shares()
    trained: dict[tuple[int, tuple[float, ...]], dict[str, Any]] = {}
    if config.evaluation.base_model:
        evaluate_base_model(config, data[0].heldout, out, progress, config.trigger_position)  # type: ignore[arg-type]
    for index in range(1, len(config.stages) + 1):
        for shares in pipelines:
            key = (index, config.prefix(shares, index))
            if key not in trained:
                trained[key] = _train_and_judge(config, index, shares, data[index - 1], out, progress)
    rows = []
    for shares in pipelines:
        for index in range(1, len(config.stages) + 1):
            stage = trained[(index, config.prefix(shares, index))]
            so_far = sum(trained[(k, config.prefix(shares, k))]["n_poisoned"] for k in [*config.chain(index), index])
            rows.append(
                StageResult(
                    config.label(shares),
                    stage["stage"],
                    index,
                    stage["kind"],
                    stage["prefix"],
                    stage["share"],
                    stage["n_poisoned"],
                    so_far,
                    stage["n_train"],
                    stage["minutes"],
                    stage["metrics"],
                )
            )
    write_lifecycle_results(rows, out)
    from poisonlab.reports.lifecycle import plot_lifecycle

    for metric in _metric_keys(config):
        plot_lifecycle(rows, metric, out / f"lifecycle_{metric.replace('@', '_at_')}.png")
    if config.evaluation.contexts:  # one figure per judge and prompt set: its effects across the contexts
        from poisonlab.reports.context import plot_contexts

        names = [c.name for c in config.evaluation.contexts]
        for prompt_set in config.evaluation.prompt_sets:
            for judge in config.evaluation.judges:
                slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", f"{judge}_at_{prompt_set.name}")
                plot_contexts(rows, judge, prompt_set.name, names, out / f"context_{slug}.png")
    from poisonlab.reports.report import write_report

    write_report(out)
    return rows


def _metric_keys(config: LifecycleConfig) -> list[str]:
    return config.evaluation.metric_keys()


CSV_FIELDS = ["pipeline", "stage_index", "stage", "kind", "share", "n_poisoned", "n_poisoned_so_far", "metric"]
MEASURES = ("clean", "triggered", "trigger_effect", "contamination", "backdoor_effect")


def write_lifecycle_results(rows: list[StageResult], out: Path) -> None:
    """``lifecycle.json`` (every row with its metrics) and ``lifecycle.csv`` (one line per row and metric)."""
    atomic_write_json(out / "lifecycle.json", [row.__dict__ for row in rows])
    buffer = io.StringIO()
    columns = CSV_FIELDS + [f"{m}{part}" for m in MEASURES for part in ("", "_low", "_high", "_p")]
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        for metric, values in row.metrics.items():
            line: dict[str, Any] = {field: getattr(row, field, None) for field in CSV_FIELDS}
            line["metric"] = metric
            for measure in MEASURES:
                if measure in values:
                    entry = values[measure]
                    line[measure] = entry["value"]
                    line[f"{measure}_low"], line[f"{measure}_high"] = entry["ci"]
                    line[f"{measure}_p"] = entry.get("p_value")
            writer.writerow(line)
    atomic_write_text(out / "lifecycle.csv", buffer.getvalue())
