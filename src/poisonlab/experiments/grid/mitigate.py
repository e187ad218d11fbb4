"""Mitigations of a poisoned run, measured the way the run itself is measured (issue 13).

A detector's AUROC says how well it ranks the poison; a data team needs to know what is left of the
backdoor once they act on it. Each mitigation here ends in a model (retrained, or the poisoned one
behind a prompt filter) evaluated on the study's held-out pairs and prompt sets against the clean twin,
so its ``backdoor_effect`` and ``contamination`` sit next to the unmitigated run's:

- ``oracle``: retrain without exactly the poisoned pairs (the manifest's): the best any removal can do.
- ``remove:DETECTOR``: retrain without the pairs DETECTOR flags (it must be in the study's ``defenses``).
- ``loss:NAME``: retrain on the poisoned data with a robust DPO loss (cdpo, rdpo: label smoothing
  ``mitigation_label_smoothing``; ipo).
- ``strip-trigger:DETECTOR``: keep the poisoned model, delete the n-grams DETECTOR names as suspected
  triggers (a trigger-mining detector) from every prompt at inference.

Each mitigation of a run lives in ``runs/<run>/mitigations/<name>/`` (adapter, margins, generations,
judgments, ``result.json``); a finished one is read back, so adding mitigations to a finished study runs
only them.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from poisonlab.data.pairs import PreferenceDataset
from poisonlab.data.readers import load_pairs
from poisonlab.defenses import poisoned_ids_from_manifest
from poisonlab.defenses.scan import kept_file_name, parse_spec
from poisonlab.errors import InputError
from poisonlab.evaluation.preference import write_metrics
from poisonlab.io import atomic_write_json
from poisonlab.registry import Registry
from poisonlab.training.dpo import train_dpo

if TYPE_CHECKING:  # the config validates mitigation names through this module: no import back at run time
    from poisonlab.experiments.grid.config import ExperimentConfig, RunSpec


@dataclass(frozen=True)
class MitigationFacts:
    retrains: bool  # trains a new model (else: the poisoned one, used differently)
    needs_detector: bool  # the argument names one of the study's detectors
    needs_loss: bool = False  # the argument names a DPO loss


@dataclass
class MitigationContext:
    spec: RunSpec
    config: ExperimentConfig
    folder: Path  # the poisoned run's folder
    data: PreferenceDataset  # what the poisoned run trained on
    poisoned_ids: list[str]
    adapter: Path  # the poisoned run's model


@dataclass
class Mitigated:
    """A mitigation's outcome before evaluation: the model to evaluate, a prompt filter, what it removed."""

    adapter: Path
    strip: list[str]
    details: dict[str, Any]


Mitigation = Callable[[MitigationContext, str, Path], Mitigated]  # (context, argument, its folder)
MITIGATIONS: Registry[Mitigation] = Registry("mitigation")


def parse_mitigation(spec: str) -> tuple[str, str]:
    """``remove:loss`` -> (``remove``, ``loss``); ``oracle`` -> (``oracle``, ``""``). Unknown names fail."""
    name, _, argument = spec.partition(":")
    facts: MitigationFacts = MITIGATIONS.facts(name)
    if (facts.needs_detector or facts.needs_loss) and not argument:
        raise InputError(f"{name} needs an argument: {name}:{'DETECTOR' if facts.needs_detector else 'LOSS'}")
    if facts.needs_loss:
        from poisonlab.training.losses import LOSSES

        LOSSES.get(argument)
    if facts.needs_detector:
        parse_spec(argument)
    return name, argument


def folder_name(spec: str) -> str:
    return spec.replace(":", "-").replace("/", "-")


def _retrain(ctx: MitigationContext, kept: PreferenceDataset, out: Path, **training: Any) -> Path:
    """Train on ``kept``, or reuse an adapter trained on byte-identical data with the same settings: the run's
    own (a detector that flags nothing keeps the poisoned data) or a sibling mitigation's (one that flags
    exactly the poison keeps the oracle's data). Training is seeded and deterministic."""
    from poisonlab.training.loop import DONE_MARKER, NOT_COMPARED, SETTINGS_FILE, training_settings

    config = ctx.config.training_config().model_copy(update=training)
    wanted = training_settings(ctx.config.model, config, kept)
    for sibling in [ctx.adapter, *sorted((ctx.folder / "mitigations").glob("*/adapter"))]:
        if sibling.parent == out or not (sibling / DONE_MARKER).exists():
            continue
        saved = json.loads((sibling / SETTINGS_FILE).read_text())
        if all(saved.get(k) == v for k, v in wanted.items() if k not in NOT_COMPARED):
            return sibling
    trained = train_dpo(ctx.config.model, kept, config, out / "adapter", progress=False, init=ctx.config.init)
    return Path(trained.adapter_dir)


def _removal(ctx: MitigationContext, kept: PreferenceDataset, out: Path) -> Mitigated:
    removed = {p.id for p in ctx.data} - {p.id for p in kept}
    details: dict[str, Any] = {"n_removed": len(removed), "n_poison_removed": len(removed & set(ctx.poisoned_ids))}
    adapter = _retrain(ctx, kept, out)
    if adapter == ctx.adapter:
        details["same_data_as"] = "none"  # nothing removed: the poisoned run's own adapter
    elif adapter.parent != out:
        details["same_data_as"] = adapter.parent.name  # the mitigation whose adapter this one reuses
    return Mitigated(adapter, [], details)


@MITIGATIONS.register("oracle", facts=MitigationFacts(retrains=True, needs_detector=False))
def oracle(ctx: MitigationContext, argument: str, out: Path) -> Mitigated:
    """Retrain without exactly the poisoned pairs: the floor every removal defense is compared with."""
    poisoned = set(ctx.poisoned_ids)
    return _removal(ctx, PreferenceDataset([p for p in ctx.data if p.id not in poisoned], ctx.data.source), out)


@MITIGATIONS.register("remove", facts=MitigationFacts(retrains=True, needs_detector=True))
def remove_flagged(ctx: MitigationContext, detector: str, out: Path) -> Mitigated:
    """Retrain on the pairs the detector keeps (its scan of this run: ``scan/kept-<detector>.jsonl``)."""
    kept = ctx.folder / "scan" / kept_file_name(detector)
    if not kept.exists():
        raise InputError(f"no scan by {detector} in this run: add it to defenses", path=kept, field="mitigations")
    return _removal(ctx, load_pairs(str(kept)), out)


@MITIGATIONS.register("loss", facts=MitigationFacts(retrains=True, needs_detector=False, needs_loss=True))
def robust_loss(ctx: MitigationContext, loss: str, out: Path) -> Mitigated:
    """Retrain on the poisoned data with a loss built to tolerate flipped labels (no pair removed)."""
    from poisonlab.training.losses import loss_facts

    smoothing = ctx.config.mitigation_label_smoothing if loss_facts(loss).uses_label_smoothing else 0.0
    adapter = _retrain(ctx, ctx.data, out, loss=loss, label_smoothing=smoothing)
    return Mitigated(adapter, [], {"loss": loss, "label_smoothing": smoothing})


@MITIGATIONS.register("strip-trigger", facts=MitigationFacts(retrains=False, needs_detector=True))
def strip_trigger(ctx: MitigationContext, detector: str, out: Path) -> Mitigated:
    """Keep the poisoned model; delete the detector's suspected triggers from every prompt before it sees it."""
    report = ctx.folder / "scan" / "scan.json"
    if not report.exists():
        raise InputError(f"no scan in this run: add {detector} to defenses", path=report, field="mitigations")
    named = json.loads(report.read_text()).get("suspected_triggers", [])
    phrases = [t["ngram"] for t in named if t.get("detector") == detector]
    return Mitigated(ctx.adapter, phrases, {"stripped": phrases})


def mitigate_run(
    spec: RunSpec,
    config: ExperimentConfig,
    folder: Path,
    adapter: Path,
    heldout: PreferenceDataset,
    twin: Path,
    done: dict[str, dict[str, Any]] | None,
    progress: bool = True,
) -> dict[str, dict[str, Any]]:
    """Every mitigation of ``config.mitigations`` that ``done`` lacks, evaluated against ``twin``; all of them."""
    from poisonlab.experiments.core.measure import evaluate_heldout, folder_metrics

    results = dict(done or {})
    manifest = folder / "poison" / "manifest.json"
    data_file = folder / "poison" / "data.jsonl"
    ctx = MitigationContext(
        spec, config, folder, load_pairs(str(data_file)), poisoned_ids_from_manifest(manifest, data_file), adapter
    )
    for mitigation in config.mitigations:
        if mitigation in results:
            continue
        out = folder / "mitigations" / folder_name(mitigation)
        saved = out / "result.json"
        if saved.exists():
            results[mitigation] = json.loads(saved.read_text())
            continue
        out.mkdir(parents=True, exist_ok=True)
        name, argument = parse_mitigation(mitigation)
        outcome = MITIGATIONS.get(name)(ctx, argument, out)
        evaluation = evaluate_heldout(config, heldout, outcome.adapter, spec.trigger_position, progress, outcome.strip)
        write_metrics(evaluation, out)
        metrics = folder_metrics(
            out, twin, config, heldout, [outcome.adapter], spec.trigger_position, progress, outcome.strip
        )
        results[mitigation] = {
            "clean_accuracy": evaluation.clean_accuracy,
            "backdoor_success": evaluation.backdoor_success,
            **outcome.details,
            "metrics": metrics,
        }
        atomic_write_json(saved, results[mitigation])
    return results
