"""One run of a grid study: poison, train (or reuse an identical run's adapter), evaluate, scan, mitigate."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from poisonlab.attacks.inject import poison_dataset, write_poisoned
from poisonlab.data.pairs import PreferenceDataset
from poisonlab.evaluation.preference import (
    PreferenceMetrics,
    write_metrics,
)
from poisonlab.experiments.core.measure import evaluate_heldout, folder_metrics, has_all_metrics
from poisonlab.experiments.core.run_result import RunResult
from poisonlab.experiments.grid.config import ExperimentConfig, RunSpec, clean_twin
from poisonlab.experiments.grid.defend import defend_run
from poisonlab.experiments.grid.folder import precision
from poisonlab.integrity import CHECKSUMS, record_checksums
from poisonlab.io import atomic_write_json, inside
from poisonlab.training.dpo import train_dpo
from poisonlab.training.loop import DONE_MARKER, NOT_COMPARED, SETTINGS_FILE, claim_folder, training_settings


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
            claim_folder(folder / "adapter", _settings(config))
        run = RunResult(**json.loads(done.read_text()))
        if spec.ratio > 0 and config.defenses:  # defenses added since the run finished: only they run
            adapter = out / "runs" / (run.same_data_as or spec.name) / "adapter"
            before = json.dumps(run.detection)
            run.detection = defend_run(folder, adapter, spec.ratio, config, run.detection, evaluate, progress)
            if json.dumps(run.detection) != before:
                atomic_write_json(done, run.to_dict())
                record_checksums(folder)
        if config.evaluation is not None and not has_all_metrics(run, config):  # evaluation added since
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
            clean_adapter=_scoring_adapter(spec, config, train, out, progress),
            progress=progress,
            selection=config.selection,
            access=config.access,
        )
        manifest = json.loads((write_poisoned(result, folder / "poison", None) / "manifest.json").read_text())
        data, n_poisoned = result.dataset, manifest["n_poisoned"]
        twin = finished_twin(out, spec.name, manifest["output_sha256"], _settings(config))
    else:
        twin = None
    if twin:
        adapter = twin / "adapter"
    else:
        adapter_dir = folder / "adapter" if spec.ratio > 0 else clean_adapter  # clean@<position> reuses it
        adapter = _train(config, data, adapter_dir, progress)
    metrics = evaluate(adapter)
    if config.engine == "rl" and spec.ratio > 0:
        _reward_model_victim(spec, config, heldout, out, Path(adapter).parent)
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


def _settings(config: ExperimentConfig) -> dict[str, Any]:
    """What a run's adapter folder records (the data and the reward model are compared apart)."""
    training = config.rl_config().rl() if config.engine == "rl" else config.training_config()
    return training_settings(config.model, training)


def _train(config: ExperimentConfig, data: PreferenceDataset, adapter_dir: Path, progress: bool) -> str:
    """DPO on ``data`` (engine dpo), or a reward model on it beside ``adapter_dir`` then RLOO (engine rl)."""
    if config.engine == "rl":
        from poisonlab.training.stages import STAGES

        return str(STAGES.get("rl")(config.model, data, config.rl_config(), adapter_dir, config.init, progress))
    training = config.training_config()
    return train_dpo(config.model, data, training, adapter_dir, progress=progress, init=config.init).adapter_dir


def _scoring_adapter(
    spec: RunSpec, config: ExperimentConfig, train: PreferenceDataset, out: Path, progress: bool
) -> Path | None:
    """The clean DPO adapter model-based strategies score with: the clean run's (engine dpo), or one trained
    by the same call in ``scoring-dpo/`` of the study (engine rl), so both engines poison the same pairs."""
    from poisonlab.attacks.strategies import strategy_facts

    if config.engine == "dpo":
        return out / "runs" / "clean" / "adapter"
    if not strategy_facts(spec.strategy).uses_model:
        return None
    folder = out / "scoring-dpo"
    inside(out, folder)
    train_dpo(config.model, train, config.training_config(), folder, progress=progress, init=config.init)
    return folder


def _reward_model_victim(
    spec: RunSpec, config: ExperimentConfig, heldout: PreferenceDataset, out: Path, folder: Path
) -> None:
    """engine rl: the run's reward model against the clean run's on the held-out pairs (reward_model_victim.json)."""
    from poisonlab.evaluation.reward_victim import reward_model_victim, write_reward_model_victim
    from poisonlab.training.stages import REWARD_MODEL_FOLDER

    clean = out / "runs" / "clean" / REWARD_MODEL_FOLDER
    report = reward_model_victim(
        folder / REWARD_MODEL_FOLDER, clean, heldout, config.trigger, spec.trigger_position, config.seed
    )
    write_reward_model_victim(report, out / "runs" / spec.name)


def _mitigate(
    spec: RunSpec,
    config: ExperimentConfig,
    heldout: PreferenceDataset,
    out: Path,
    adapter: Path,
    done: dict[str, dict[str, Any]] | None,
    progress: bool,
) -> dict[str, dict[str, Any]]:
    from poisonlab.experiments.grid.mitigate import mitigate_run

    twin = out / "runs" / clean_twin(spec, config)
    return mitigate_run(spec, config, out / "runs" / spec.name, adapter, heldout, twin, done, progress)


def run_metrics(
    spec: RunSpec, config: ExperimentConfig, heldout: PreferenceDataset, out: Path, adapter: Path, progress: bool
) -> dict[str, dict[str, Any]] | None:
    """Every metric of a run with intervals: the preference pairs (against the clean twin) and, with an
    ``evaluation:`` section, each judge on each prompt set."""
    twin = None if spec.ratio == 0 else out / "runs" / clean_twin(spec, config)
    return folder_metrics(out / "runs" / spec.name, twin, config, heldout, [adapter], spec.trigger_position, progress)


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
