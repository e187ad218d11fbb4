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

import hashlib
import json
import platform
import shutil
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from poisonlab import __version__
from poisonlab.attacks.inject import poison_dataset, write_poisoned
from poisonlab.data.pairs import PreferenceDataset
from poisonlab.data.readers import load_pairs
from poisonlab.data.splits import train_heldout_split
from poisonlab.errors import InputError
from poisonlab.evaluation.preference import (
    PreferenceMetrics,
    evaluate_preferences,
    read_margin_judgments,
    write_metrics,
)
from poisonlab.experiments.config import ExperimentConfig, RunSpec, metric_keys
from poisonlab.experiments.defend import defend_run
from poisonlab.hardware import default_device, resolve_bf16, resolved_threads, torch_threads
from poisonlab.integrity import CHECKSUMS, record_checksums
from poisonlab.io import atomic_write_json, atomic_write_text, inside
from poisonlab.outputs import existing_results, refuse_overwriting_inputs
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
    # "<judge>@<prompt set>" -> {"judge": facts, "clean", "triggered", "trigger_effect", "contamination",
    # "backdoor_effect"}: see evaluation/stats.py. Also "preference@heldout" and "preference-margin@heldout".
    metrics: dict[str, dict[str, Any]] | None = None
    precision: str | None = None  # fp32 or bf16: what training, scoring and evaluation computed in
    # mitigation spec -> {"clean_accuracy", "backdoor_success", what it removed, "metrics"} (experiments/mitigate.py)
    mitigations: dict[str, dict[str, Any]] | None = None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def results_folder(config: ExperimentConfig) -> Path:
    return Path(config.out or Path("runs") / config.name)


def precision(config: ExperimentConfig) -> str:
    """``fp32`` or ``bf16``: what the study's training, scoring and evaluation compute in on this machine.

    ``bf16: auto`` depends on the hardware (AVX512_BF16/AMX CPUs, CUDA), and bf16 changes the numbers.
    """
    return "bf16" if resolve_bf16(config.training_config().bf16, default_device()) else "fp32"


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
        "precision": precision(config),
        "threads": resolved_threads(config.training_config().threads),
        "argv": sys.argv,
    }


# Config fields a rerun into the same results folder may change: they add or leave out runs or scans, or
# change speed only. Every other field changes what the finished runs mean, so changing it makes another study.
RESUMABLE_FIELDS = frozenset(
    {"name", "out", "strategies", "attacks", "ratios", "exclude", "eval_batch_size", "defenses"}
    | {"retrain_without_flags", "mitigations"}
)
# What a study writes at the top of its folder (plus its plots, *.png).
STUDY_ENTRIES = ("config.yaml", "environment.json", "split.json", "results.json", "results.csv", "runs")


def _study_identity(config: ExperimentConfig) -> dict[str, Any]:
    values = config.model_dump(exclude=set(RESUMABLE_FIELDS) | {"training"})
    training = config.training_config().model_dump()
    values["training"] = {k: v for k, v in training.items() if k not in NOT_COMPARED}
    return json.loads(json.dumps(values))


def study_differences(folder: Path, config: ExperimentConfig) -> list[str]:
    """The fields in which the study saved in ``folder/config.yaml`` differs from ``config`` (empty: the same).

    A saved config this version cannot read counts as different (``config.yaml``).
    """
    try:
        saved = ExperimentConfig.model_validate(yaml.safe_load((folder / "config.yaml").read_text()))
    except Exception:  # unreadable, or written by a version with other fields
        return ["config.yaml"]
    before, now = _study_identity(saved), _study_identity(config)
    fields = [key for key in now if before.get(key) != now[key] and key != "training"]
    fields += [f"training.{key}" for key in now["training"] if before["training"].get(key) != now["training"][key]]
    return fields


def holds_finished_work(folder: Path) -> bool:
    """True if any run of the study in ``folder`` finished, or trained an adapter at least to a checkpoint."""
    runs = folder / "runs"
    return runs.is_dir() and any(
        next(runs.rglob(name), None) is not None for name in ("result.json", DONE_MARKER, "checkpoint")
    )


def _clear_study(folder: Path, plots: bool = True) -> None:
    for name in STUDY_ENTRIES:
        path = folder / name
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)
    for plot in folder.glob("*.png") if plots else ():
        plot.unlink()


def _clear_study_keeping_the_data(folder: Path, config: ExperimentConfig, plots: bool = True) -> None:
    """``_clear_study``, refused if the study's own data lies in what it would remove."""
    data = Path(config.data).expanduser()
    if data.exists():
        data = data.resolve()
        for name in STUDY_ENTRIES:
            entry = (folder / name).resolve()
            if data == entry or entry in data.parents:
                raise InputError(
                    f"the data {data} is inside {entry}, which this run would replace; copy it elsewhere first",
                    field="data",
                )
    _clear_study(folder, plots)


def claim_results_folder(config: ExperimentConfig, overwrite: bool = False) -> Path:
    """The study's results folder, made ready for ``config``: resumed, cleared, or refused.

    The same study (``study_differences`` finds nothing) resumes. Another study's folder is refused while it
    holds finished work, and cleared when it holds none (a failed start never blocks a rerun) or when
    ``overwrite`` is set. A folder holding another command's results (poisoned data, a split, ...) is
    refused unless ``overwrite``.
    """
    out = results_folder(config)
    if out.exists() and not out.is_dir():
        raise InputError("exists and is not a folder", path=out, field="out")
    refuse_overwriting_inputs([out / name for name in STUDY_ENTRIES], [config.data], field="out")
    if (out / "config.yaml").exists():
        differences = study_differences(out, config)
        if not differences and not overwrite:
            return out
        if differences and holds_finished_work(out) and not overwrite:
            raise InputError(
                f"holds the results of another study (it differs in {', '.join(differences)}); choose another "
                "folder (--out), or pass --overwrite to replace them",
                path=out,
            )
        _clear_study_keeping_the_data(out, config)
        return out
    found = existing_results(out)
    if found and not overwrite:
        raise InputError(
            f"already holds other results ({', '.join(found)}); choose another folder (--out), or pass "
            "--overwrite to replace them",
            path=out,
        )
    _clear_study_keeping_the_data(out, config, plots=False)  # not a study's folder: its pictures are the user's
    return out


def split_data(config: ExperimentConfig) -> tuple[PreferenceDataset, PreferenceDataset, PreferenceDataset]:
    """(training pairs, held-out pairs, all pairs) of the study, seeded, so every worker of a study derives the
    same split; loading checks the data, nothing is written."""
    dataset = load_pairs(config.data, on_error="skip" if config.skip_bad_rows else "raise")
    train, heldout = train_heldout_split(dataset, config.heldout, config.seed)
    if config.max_train_pairs:
        train = PreferenceDataset(train.pairs[: config.max_train_pairs], train.source)
    if config.max_heldout_pairs:
        heldout = PreferenceDataset(heldout.pairs[: config.max_heldout_pairs], heldout.source)
    return train, heldout, dataset


def prepare_split(config: ExperimentConfig, out: Path) -> tuple[PreferenceDataset, PreferenceDataset]:
    train, heldout, dataset = split_data(config)
    _write_split(dataset, train, heldout, out)
    return train, heldout


def _write_split(dataset: PreferenceDataset, train: PreferenceDataset, heldout: PreferenceDataset, out: Path) -> None:
    atomic_write_json(
        out / "split.json",
        {
            "source": dataset.source,
            "n_skipped": len(dataset.skipped),
            "train_ids": train.ids,
            "heldout_ids": heldout.ids,
        },
    )


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
        return evaluate_heldout(config, heldout, adapter, spec.trigger_position, progress)

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
        if config.evaluation is not None and not _has_all_metrics(run, config):  # evaluation added since
            adapter = out / "runs" / (run.same_data_as or ("clean" if spec.ratio == 0 else spec.name)) / "adapter"
            run.metrics = {**(run.metrics or {}), **run_metrics(spec, config, heldout, out, adapter, progress)}
            atomic_write_json(done, run.to_dict())
            record_checksums(folder)
        if spec.ratio > 0 and set(config.mitigations) - set(run.mitigations or {}):  # mitigations added since
            adapter = out / "runs" / (run.same_data_as or spec.name) / "adapter"
            run.mitigations = _mitigate(spec, config, heldout, out, adapter, run.mitigations, progress)
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
            access=config.access,
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
        adapter = train_dpo(config.model, data, training, adapter_dir, progress=progress, init=config.init).adapter_dir
    metrics = evaluate(adapter)
    write_metrics(metrics, folder)
    judged = run_metrics(spec, config, heldout, out, Path(adapter), progress)
    detection = None
    if spec.ratio > 0 and config.defenses:
        detection = defend_run(folder, Path(adapter), spec.ratio, config, None, evaluate, progress)
    mitigations = None
    if spec.ratio > 0 and config.mitigations:
        mitigations = _mitigate(spec, config, heldout, out, Path(adapter), None, progress)
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
        judged,
        precision(config),
        mitigations,
    )
    atomic_write_json(done, run.to_dict())
    record_checksums(folder)  # every file of the finished run, for poisonlab verify
    return run


def evaluate_heldout(
    config: ExperimentConfig,
    heldout: PreferenceDataset,
    adapter: str | Path,
    position: str,
    progress: bool,
    strip: Sequence[str] = (),
) -> PreferenceMetrics:
    """The preference metrics of ``adapter`` on the study's held-out pairs, with the study's training settings
    (beta, lengths, precision) and trigger; ``strip``: phrases removed from every prompt first."""
    training = config.training_config()
    return evaluate_preferences(
        config.model,
        heldout,
        adapter,
        config.trigger,
        position,
        training.beta,
        training.max_length,
        training.max_reply_length,
        config.eval_batch_size,
        training.bf16,
        config.seed,
        progress,
        strip=strip,
    )


def _mitigate(
    spec: RunSpec,
    config: ExperimentConfig,
    heldout: PreferenceDataset,
    out: Path,
    adapter: Path,
    done: dict[str, dict[str, Any]] | None,
    progress: bool,
) -> dict[str, dict[str, Any]]:
    from poisonlab.experiments.mitigate import mitigate_run

    twin = out / "runs" / clean_twin(spec, config)
    return mitigate_run(spec, config, out / "runs" / spec.name, adapter, heldout, twin, done, progress)


PREFERENCE_FACTS = {
    "preference": {"kind": "rate", "harmful_when": "low", "value_label": "chosen reply preferred"},
    "preference-margin": {"kind": "score", "harmful_when": "low", "value_label": "implicit-reward margin"},
}


def clean_twin(spec: RunSpec, config: ExperimentConfig) -> str:
    """The clean run evaluated at the same trigger placement as ``spec``: its twin for every comparison."""
    return next(s.name for s in config.runs() if s.ratio == 0 and s.trigger_position == spec.trigger_position)


def heldout_prompts(heldout: PreferenceDataset, limit: int | None) -> list[Any]:
    from poisonlab.data.prompts import Prompt

    texts = list(dict.fromkeys(p.prompt for p in heldout))[:limit]
    return [Prompt(hashlib.sha256(text.encode()).hexdigest()[:16], text) for text in texts]


def _has_all_metrics(run: RunResult, config: ExperimentConfig) -> bool:
    return all(key in (run.metrics or {}) for key in metric_keys(config))


def generation_metrics(
    config: ExperimentConfig,
    heldout: PreferenceDataset,
    folder: Path,
    adapters: list[Path],
    position: str,
    twin: Path | None,
    progress: bool,
    strip: Sequence[str] = (),
) -> dict[str, dict[str, Any]]:
    """Generate on every prompt set of ``config.evaluation`` and judge, against the twin's judgments if given.

    ``strip``: phrases removed from every prompt before the model sees it (the strip-trigger mitigation)."""
    from poisonlab.data.prompts import load_prompts
    from poisonlab.evaluation import generate, judge_generations

    evaluation = config.evaluation
    assert evaluation is not None
    metrics: dict[str, dict[str, Any]] = {}
    for prompt_set in evaluation.prompt_sets:
        if prompt_set.source == "heldout":
            prompts = heldout_prompts(heldout, prompt_set.limit)
        else:
            prompts = load_prompts(prompt_set.source, prompt_set.column, prompt_set.limit)
        generations = generate(
            config.model,
            prompts,
            folder / "generations" / prompt_set.name,
            adapters,
            config.trigger,
            position,
            evaluation.generation,
            progress,
            strip,
        )
        judged = judge_generations(
            generations.parent,
            evaluation.judges,
            folder / "judgments" / prompt_set.name,
            evaluation.judge_options,
            twin / "judgments" / prompt_set.name if twin else None,
            progress,
        )
        metrics.update({f"{judge}@{prompt_set.name}": entry for judge, entry in judged.items()})
    return metrics


def run_metrics(
    spec: RunSpec, config: ExperimentConfig, heldout: PreferenceDataset, out: Path, adapter: Path, progress: bool
) -> dict[str, dict[str, Any]] | None:
    """Every metric of a run with intervals: the preference pairs (against the clean twin) and, with an
    ``evaluation:`` section, each judge on each prompt set."""
    twin = None if spec.ratio == 0 else out / "runs" / clean_twin(spec, config)
    return folder_metrics(out / "runs" / spec.name, twin, config, heldout, [adapter], spec.trigger_position, progress)


def folder_metrics(
    folder: Path,
    twin: Path | None,
    config: ExperimentConfig,
    heldout: PreferenceDataset,
    adapters: list[Path],
    position: str,
    progress: bool,
    strip: Sequence[str] = (),
) -> dict[str, dict[str, Any]] | None:
    """The metrics of the model evaluated into ``folder`` (its saved margins; its generations, made here),
    against ``twin``'s: a run's own, or a mitigation's (``strip``: the phrases its prompts lose)."""
    from poisonlab.evaluation.judging import judge_metrics

    metrics: dict[str, dict[str, Any]] = {}
    mine = read_margin_judgments(folder)
    theirs = read_margin_judgments(twin) if twin else None
    if mine and mine["preference"]:  # (an evaluation that kept no per-pair margins has none)
        for key, facts in PREFERENCE_FACTS.items():
            twin_values = theirs[key] if theirs and theirs[key] else None
            metrics[f"{key}@heldout"] = {"judge": facts, **judge_metrics(mine[key], facts["kind"], twin_values)}
    if config.evaluation is not None and config.evaluation.prompt_sets:
        metrics.update(generation_metrics(config, heldout, folder, adapters, position, twin, progress, strip))
    return metrics or None


def evaluate_base_model(
    config: ExperimentConfig,
    heldout: PreferenceDataset,
    out: Path,
    progress: bool,
    position: str | None = None,
    start: Sequence[str | Path] = (),
) -> RunResult:
    """The untrained model's generations, judged: where the clean model started from (the base with the
    ``start`` adapters: a grid study's ``init``).

    ``position``: the trigger's placement (default: the study's clean run's).
    """
    done = out / "base" / "result.json"
    if done.exists():
        run = RunResult(**json.loads(done.read_text()))
        if _has_all_metrics(run, config):
            return run
    position = position or config.runs()[0].trigger_position
    metrics = generation_metrics(config, heldout, out / "base", list(start), position, None, progress)
    run = RunResult("base", "none", "none", 0.0, 0, float("nan"), float("nan"), 0, 0.0, position, metrics=metrics)
    atomic_write_json(done, run.to_dict())
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

    check_model_name(config.model)  # a config built in Python skips no check the YAML loader makes
    from poisonlab.writers import one_writer

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
    from poisonlab.experiments.executors import LocalExecutor
    from poisonlab.experiments.plan import build_plan

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
