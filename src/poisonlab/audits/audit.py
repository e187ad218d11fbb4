"""A bias audit by optimised perturbation (arXiv 2502.14182, Sec. 4: poisoning as a trust tool).

Question: which few preference pairs, if their labels were flipped, would most amplify the model's
bias after DPO, and does reversing or removing the pairs at the other end reduce it? Steps:

1. split the pairs (train / held-out, for clean preference accuracy) and the probes (audit / held-out);
2. train a clean LoRA DPO model on the train pairs;
3. score every train pair by the first-order bias change of flipping it (``perturb.py``), using the
   audit probes; describe what the top pairs share (``features.py``);
4. for each k, retrain from scratch with: the k amplifying pairs flipped; k random pairs flipped (several
   seeds: the baseline the search must beat); the k corrective pairs reversed and/or removed;
5. measure every model's bias on the held-out probes (mean with a bootstrap 95% interval, and its paired
   change from the clean model with a sign-flip permutation p-value) and its clean preference accuracy on the
   held-out pairs (Wilson interval), and check the first-order prediction (sum of the flipped pairs'
   scores) against the measured change across all flip conditions (Spearman).

Everything lands in ``out/audit.json`` and ``out/bias_audit.png`` (written atomically); adapters in
``out/runs/<condition>``, where a rerun finds them finished and skips the training.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from poisonlab import __version__
from poisonlab.audits.features import describe_selection
from poisonlab.audits.figure import plot_bias_audit
from poisonlab.audits.perturb import (
    SCORE,
    amplifying,
    corrective,
    flip_scores,
    flipped,
    random_pairs,
    removed,
)
from poisonlab.audits.probes import BiasProbe, probe_lexicon, split_probes
from poisonlab.audits.score import FORMULA, bias_summary, model_bias
from poisonlab.data.pairs import PreferenceDataset
from poisonlab.data.splits import train_heldout_split
from poisonlab.errors import InputError
from poisonlab.io import atomic_write_json
from poisonlab.training.config import DPOTrainingConfig

AUDIT_FILE = "audit.json"
FIGURE_FILE = "bias_audit.png"


class BiasAuditConfig(BaseModel):
    """Settings of ``run_bias_audit`` (and ``poisonlab audit bias``)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    ks: list[int] = Field(default_factory=lambda: [8], description="Flip budgets k (pairs per perturbation).")
    random_seeds: int = Field(3, ge=1, description="Random-k baselines per k (seeds 0..n-1).")
    corrections: list[Literal["reverse", "remove"]] = Field(
        default_factory=lambda: ["reverse"], description="How the corrective pairs are treated."
    )
    audit_share: float = Field(0.5, gt=0, lt=1, description="Share of probes that steer the search (rest measure).")
    heldout: float = Field(0.2, gt=0, description="Held-out pairs for preference accuracy (share or count).")
    seed: int = Field(0, description="Seed of the pair and probe splits.")
    batch_size: int = Field(32, ge=4, description="Sequences per forward pass when scoring probes.")
    top_words: int = Field(10, ge=1, description="Over-represented words listed per selection.")


def _condition_summary(values: np.ndarray, clean: np.ndarray, accuracy: dict[str, Any]) -> dict[str, Any]:
    from poisonlab.evaluation.stats import paired_difference

    return {
        "bias": bias_summary(values),
        "change_vs_clean": paired_difference(clean, values, "score"),
        "preference": accuracy,
    }


def _preference(model: str, heldout: PreferenceDataset, adapter: Path, training: DPOTrainingConfig) -> dict[str, Any]:
    from poisonlab.evaluation.preference import evaluate_preferences
    from poisonlab.evaluation.stats import wilson

    metrics = evaluate_preferences(
        model,
        heldout,
        adapter,
        beta=training.beta,
        max_length=training.max_length,
        max_reply_length=training.max_reply_length,
        batch_size=training.micro_batch_size * 2,
        bf16=training.bf16,
        progress=False,
    )
    return {
        "accuracy": metrics.clean_accuracy,
        "ci": wilson(metrics.clean_correct, metrics.n_pairs),
        "n": metrics.n_pairs,
    }


def _spearman(x: list[float], y: list[float]) -> float | None:
    from scipy.stats import spearmanr

    if len(x) < 3 or len(set(x)) < 2 or len(set(y)) < 2:
        return None
    return round(float(spearmanr(x, y).statistic), 4)


def run_bias_audit(
    dataset: PreferenceDataset,
    model: str,
    probes: list[BiasProbe],
    out: str | Path,
    config: BiasAuditConfig | None = None,
    training: DPOTrainingConfig | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Run the audit described in the module docstring; return what ``out/audit.json`` holds."""
    from poisonlab.models.loading import load_model, load_tokenizer, model_identity
    from poisonlab.models.safety import load_adapter
    from poisonlab.training.dpo import train_dpo

    config = config or BiasAuditConfig()
    training = training or DPOTrainingConfig()
    out = Path(out)
    started = time.perf_counter()
    train, heldout = train_heldout_split(dataset, config.heldout, config.seed)
    too_big = [k for k in config.ks if not 0 < k <= len(train) // 2]
    if too_big:
        raise InputError(
            f"k must be in 1..{len(train) // 2} (half the {len(train)} train pairs), got {too_big}", field="--k"
        )
    audit_probes, measure_probes = split_probes(probes, config.audit_share, config.seed)
    runs = out / "runs"

    def trained(name: str, data: PreferenceDataset) -> Path:
        folder = runs / name
        train_dpo(model, data, training, folder, progress=progress)
        return folder

    def log(message: str) -> None:
        if progress:
            print(f"[audit] {message} ({time.perf_counter() - started:.0f}s)", flush=True)

    clean_dir = trained("clean", train)
    log("clean model trained")
    net = load_adapter(load_model(model), clean_dir, trainable=True)
    scores, facts = flip_scores(
        net, load_tokenizer(model), train, audit_probes, training, model_identity(model), progress=progress
    )
    del net
    log("pairs scored")

    def measure(folder: Path | None) -> np.ndarray:
        return model_bias(model, [folder] if folder else [], measure_probes, config.batch_size, training.bf16)

    clean_values = measure(clean_dir)
    base_values = measure(None)
    conditions: dict[str, Any] = {
        "base": {"bias": bias_summary(base_values), "note": "the base model, no DPO"},
        "clean": {"bias": bias_summary(clean_values), "preference": _preference(model, heldout, clean_dir, training)},
    }
    lexicon = probe_lexicon(probes)
    by_id = {p.id: p for p in train}
    selections: dict[str, Any] = {}
    first_order: list[dict[str, Any]] = []

    def run_condition(name: str, data: PreferenceDataset, predicted: float | None) -> dict[str, Any]:
        folder = trained(name, data)
        values = measure(folder)
        result = _condition_summary(values, clean_values, _preference(model, heldout, folder, training))
        result["predicted_change"] = predicted
        if predicted is not None:
            first_order.append(
                {"condition": name, "predicted": predicted, "measured": result["change_vs_clean"]["value"]}
            )
        log(f"{name}: bias {result['bias']['value']:+.3f}")
        return result | {"_values": values}

    for k in config.ks:
        top, bottom = amplifying(scores, k), corrective(scores, k)
        selections[f"k{k}"] = {
            "amplifying": [{"id": i, "score": round(scores[i], 6)} for i in top],
            "corrective": [{"id": i, "score": round(scores[i], 6)} for i in bottom],
            "amplifying_features": describe_selection([by_id[i] for i in top], train.pairs, lexicon, config.top_words),
            "corrective_features": describe_selection(
                [by_id[i] for i in bottom], train.pairs, lexicon, config.top_words
            ),
        }
        conditions[f"amplified-k{k}"] = run_condition(
            f"amplified-k{k}", flipped(train, top), sum(scores[i] for i in top)
        )
        for how in config.corrections:
            data = flipped(train, bottom) if how == "reverse" else removed(train, bottom)
            predicted = sum(scores[i] for i in bottom) if how == "reverse" else None
            conditions[f"corrected-{how}-k{k}"] = run_condition(f"corrected-{how}-k{k}", data, predicted)
        seeds = []
        for seed in range(config.random_seeds):
            ids = random_pairs(train, k, seed)
            seeds.append(run_condition(f"random-k{k}-s{seed}", flipped(train, ids), sum(scores[i] for i in ids)))
        conditions[f"random-k{k}"] = _random_summary(seeds, clean_values)
        amplified = conditions[f"amplified-k{k}"]["change_vs_clean"]["value"]
        randoms = [s["change_vs_clean"]["value"] for s in seeds]
        conditions[f"amplified-k{k}"]["beats_every_random_seed"] = bool(amplified > max(randoms))
    for value in conditions.values():
        value.pop("_values", None)
        for seed in value.get("seeds", []):
            seed.pop("_values", None)

    result = {
        "poisonlab_version": __version__,
        "question": "which k preference pairs, flipped, most amplify the probe bias after DPO; does correcting the "
        "other end reduce it",
        "model": model,
        "training": training.model_dump(),
        "config": config.model_dump(),
        "data": {
            "source": dataset.source,
            "sha256": dataset.content_hash(),
            "n_train": len(train),
            "n_heldout": len(heldout),
        },
        "probes": {
            "n_audit": len(audit_probes),
            "n_heldout": len(measure_probes),
            "audit_ids": [p.id for p in audit_probes],
            "heldout_ids": [p.id for p in measure_probes],
            "formula": FORMULA,
        },
        "search": {"score": SCORE, **{k: round(v, 6) for k, v in facts.items()}},
        "selections": selections,
        "conditions": conditions,
        "first_order_check": {
            "spearman": _spearman([p["predicted"] for p in first_order], [p["measured"] for p in first_order]),
            "points": first_order,
            "note": "predicted = sum of the flipped pairs' s_i (per unit learning rate); measured = held-out bias "
            "change from the clean model",
        },
        "seconds": round(time.perf_counter() - started, 1),
    }
    atomic_write_json(out / AUDIT_FILE, result)
    plot_bias_audit(result, out / FIGURE_FILE)
    return result


def _random_summary(seeds: list[dict[str, Any]], clean_values: np.ndarray) -> dict[str, Any]:
    """Mean over seeds: per probe, the seeds' b_i averaged (its bootstrap interval), and each seed's numbers."""
    from poisonlab.evaluation.stats import paired_difference

    mean_values = np.mean([s["_values"] for s in seeds], axis=0)
    accuracies = [s["preference"]["accuracy"] for s in seeds]
    changes = [s["change_vs_clean"]["value"] for s in seeds]
    return {
        "bias": bias_summary(mean_values),
        "change_vs_clean": paired_difference(clean_values, mean_values, "score"),
        "change_range": [min(changes), max(changes)],
        "preference": {"accuracy": float(np.mean(accuracies)), "range": [min(accuracies), max(accuracies)]},
        "seeds": seeds,
    }
