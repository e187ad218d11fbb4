"""The measuring every study kind calls: held-out preferences, generations judged per prompt set, the base model.

A study config here is anything with ``model``, ``trigger``, ``seed``, ``evaluation``, ``eval_batch_size`` and
``training_config()`` (a grid or a lifecycle study's).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from poisonlab.data.pairs import PreferenceDataset
from poisonlab.evaluation.preference import (
    PreferenceMetrics,
    evaluate_preferences,
    read_margin_judgments,
)
from poisonlab.experiments.core.run_result import RunResult
from poisonlab.io import atomic_write_json

if TYPE_CHECKING:
    from poisonlab.experiments.grid.config import ExperimentConfig


def metric_keys(config: ExperimentConfig) -> list[str]:
    """The generation metrics every run of ``config`` reports: ``<judge>@<prompt set>``."""
    if config.evaluation is None:
        return []
    return config.evaluation.metric_keys()


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


PREFERENCE_FACTS = {
    "preference": {"kind": "rate", "harmful_when": "low", "value_label": "chosen reply preferred"},
    "preference-margin": {"kind": "score", "harmful_when": "low", "value_label": "implicit-reward margin"},
}


def heldout_prompts(heldout: PreferenceDataset, limit: int | None) -> list[Any]:
    from poisonlab.data.prompts import Prompt

    texts = list(dict.fromkeys(p.prompt for p in heldout))[:limit]
    return [Prompt(hashlib.sha256(text.encode()).hexdigest()[:16], text) for text in texts]


def has_all_metrics(run: RunResult, config: ExperimentConfig) -> bool:
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
    loaded: dict[str, list[Any]] = {}
    for key, prompt_set, context in evaluation.conditions():
        if prompt_set.name not in loaded:
            if prompt_set.source == "heldout":
                loaded[prompt_set.name] = heldout_prompts(heldout, prompt_set.limit)
            else:
                loaded[prompt_set.name] = load_prompts(prompt_set.source, prompt_set.column, prompt_set.limit)
        generations = generate(
            config.model,
            loaded[prompt_set.name],
            folder / "generations" / key,
            adapters,
            config.trigger,
            position,
            evaluation.generation,
            progress,
            strip,
            context,
        )
        judged = judge_generations(
            generations.parent,
            evaluation.judges,
            folder / "judgments" / key,
            evaluation.judge_options,
            twin / "judgments" / key if twin else None,
            progress,
        )
        metrics.update({f"{judge}@{key}": entry for judge, entry in judged.items()})
    return metrics


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
            metrics[f"{key}@heldout"] = {
                "judge": facts,
                **judge_metrics(mine[key], facts["kind"], twin_values, facts["harmful_when"]),
            }
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
        if has_all_metrics(run, config):
            return run
    position = position or config.runs()[0].trigger_position
    metrics = generation_metrics(config, heldout, out / "base", list(start), position, None, progress)
    run = RunResult("base", "none", "none", 0.0, 0, float("nan"), float("nan"), 0, 0.0, position, metrics=metrics)
    atomic_write_json(done, run.to_dict())
    return run
