"""Defenses inside a study: each poisoned run's training data, scanned with the adapter trained on it.

That is the defender's position (the data as received, a model trained on it), and the study knows
the truth (the run's manifest), so every detector is judged on every cell of the grid. The defender
is given the run's true ratio as ``expected_share``: the best case for the detectors.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from poisonlab.data.readers import load_pairs
from poisonlab.defenses import poisoned_ids_from_manifest, scan, write_scan
from poisonlab.experiments.config import ExperimentConfig

SUMMARY = ("auroc", "recall", "precision", "n_flagged")  # what result.json keeps per detector


def scan_run(
    folder: Path, adapter: Path, ratio: float, config: ExperimentConfig, progress: bool = True
) -> dict[str, dict[str, Any]]:
    """Scan ``folder``'s poisoned data with ``adapter`` using ``config.defenses``; write ``folder/scan/``.

    Returns each detector's summary for ``result.json``.
    """
    data = folder / "poison" / "data.jsonl"
    poisoned = poisoned_ids_from_manifest(folder / "poison" / "manifest.json", data)
    defense = config.defense.model_copy(update={"expected_share": ratio})
    training = config.training_config()  # the adapter's own: train_dpo refuses an adapter trained otherwise
    dataset = load_pairs(str(data))
    result = scan(dataset, config.defenses, config.model, training, defense, config.seed, adapter, poisoned, progress)
    write_scan(result, folder / "scan", poisoned)
    return {spec: {k: getattr(m, k) for k in SUMMARY} for spec, m in (result.metrics or {}).items()}
