"""Defenses inside a study: each poisoned run's training data, scanned with the adapter trained on it.

That is the defender's position (the data as received, a model trained on it), and the study knows
the truth (the run's manifest), so every detector is judged on every cell of the grid. The defender
is given the run's true ratio as ``expected_share``: the best case for the detectors. With
``retrain_without_flags`` the study then trains on what each detector keeps and evaluates that model
the same way: the paper's end-to-end test of a defense (does removing the flags remove the backdoor?).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from poisonlab.data.readers import load_pairs
from poisonlab.defenses import poisoned_ids_from_manifest, scan, write_scan
from poisonlab.defenses.scan import kept_file_name
from poisonlab.experiments.grid.config import ExperimentConfig
from poisonlab.training.dpo import train_dpo

SUMMARY = ("auroc", "recall", "precision", "n_flagged")  # what result.json keeps per detector


def scan_run(
    folder: Path, adapter: Path, ratio: float | None, config: ExperimentConfig, progress: bool = True
) -> dict[str, dict[str, Any]]:
    """Scan ``folder``'s poisoned data with ``adapter`` using ``config.defenses``; write ``folder/scan/``.

    ``ratio`` is the defender's expected share (the run's true ratio: the detectors' best case); None
    scans at the adaptive budget, as a data team without that knowledge would. Returns each detector's
    summary for ``result.json``.
    """
    data = folder / "poison" / "data.jsonl"
    manifest = folder / "poison" / "manifest.json"
    poisoned = poisoned_ids_from_manifest(manifest, data)
    defense = config.defense.model_copy(update={"expected_share": ratio})
    training = config.training_config()  # the adapter's own: train_dpo refuses an adapter trained otherwise
    dataset = load_pairs(str(data))
    result = scan(dataset, config.defenses, config.model, training, defense, config.seed, adapter, poisoned, progress)
    write_scan(result, folder / "scan", manifest=manifest)  # the judgement to scan/detection.json
    return {spec: {k: getattr(m, k) for k in SUMMARY} for spec, m in (result.metrics or {}).items()}


def defend_run(
    folder: Path,
    adapter: Path,
    ratio: float,
    config: ExperimentConfig,
    detection: dict[str, dict[str, Any]] | None,
    evaluate: Callable[[Path], Any],  # adapter -> PreferenceMetrics, on the study's held-out pairs
    progress: bool = True,
) -> dict[str, dict[str, Any]]:
    """What ``config`` asks of a poisoned run's defenses and ``detection`` (its summary so far) lacks.

    Scans if a configured detector has no summary yet; with ``retrain_without_flags``, trains on the
    pairs each detector keeps (into ``folder/scan/adapter-<detector>``) and adds the clean accuracy and
    backdoor success of that model. A detector that flags nothing keeps the run's own data and model.
    """
    if detection is None or set(config.defenses) - set(detection):
        detection = scan_run(folder, adapter, ratio, config, progress)
    if not config.retrain_without_flags:
        return detection
    for spec, summary in detection.items():
        if "backdoor_success_after" in summary:
            continue
        kept_adapter = adapter
        if summary["n_flagged"]:
            kept = load_pairs(str(folder / "scan" / kept_file_name(spec)))
            name = f"adapter-{kept_file_name(spec).removeprefix('kept-').removesuffix('.jsonl')}"
            training = config.training_config()
            trained = train_dpo(config.model, kept, training, folder / "scan" / name, progress, init=config.init)
            kept_adapter = Path(trained.adapter_dir)
        metrics = evaluate(kept_adapter)
        summary["clean_accuracy_after"] = metrics.clean_accuracy
        summary["backdoor_success_after"] = metrics.backdoor_success
    return detection
