"""A DPO model trained on given data, cached by content, and what is scored with it.

Attackers and defenders both need it: model-based selection strategies score
pairs with a *clean* model (trained on the unpoisoned data), detectors with a
model trained on the data they vet. It lives in the training stage, below both,
so neither imports the other. The key is the data's content hash, the model's
identity and the training config, so the same model is trained once per
(data, model, config) and reused by every strategy, ratio and detector.
"""

from __future__ import annotations

import hashlib
import json
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from poisonlab.data.pairs import PreferenceDataset
from poisonlab.io import atomic_write_json, cache_dir, sha256_file
from poisonlab.models.adapters import chain_identity, recorded_init
from poisonlab.models.loading import model_identity
from poisonlab.training.config import DPOTrainingConfig

if TYPE_CHECKING:
    import torch


class ModelSource(Protocol):
    """What names the model: data, base model, training config, and optionally an adapter already trained."""

    dataset: PreferenceDataset
    model: str
    training: DPOTrainingConfig
    clean_adapter: Path | None
    progress: bool


@dataclass
class TrainedOn:
    """A :class:`ModelSource` for callers without a selection context (detectors, benchmarks)."""

    dataset: PreferenceDataset
    model: str = "tiny"
    training: DPOTrainingConfig = field(default_factory=DPOTrainingConfig)
    clean_adapter: Path | None = None  # used as it is when it holds an adapter
    progress: bool = True


def clean_model_key(dataset_hash: str, model: str, training_json: str) -> str:
    payload = json.dumps([dataset_hash, model_identity(model), training_json])
    return hashlib.sha256(payload.encode()).hexdigest()[:20]


def clean_model_folder(ctx: ModelSource) -> Path:
    """The cache folder of the clean model for ``ctx``'s data, model and training config.

    A clean adapter the caller gives is used as it is, whatever it was trained on (a cheap one, or one
    trained on other data), so its weights' hash is part of the key: scores cached for one adapter are
    never handed out for another.
    """
    training_json = ctx.training.model_dump_json()
    if ctx.clean_adapter:
        adapter = clean_adapter_dir(ctx)
        training_json += f"|adapter:{sha256_file(adapter / 'adapter_model.safetensors')}"
        if start := recorded_init(adapter):  # trained on top of others (a lifecycle stage): they are the model too
            training_json += f"|init:{chain_identity(ctx.model, start)}"
    key = clean_model_key(ctx.dataset.content_hash(), ctx.model, training_json)
    return cache_dir() / "clean-dpo" / key


def clean_adapter_dir(ctx: ModelSource) -> Path:
    """A clean LoRA DPO adapter: ``ctx.clean_adapter`` if given, else one trained on ``ctx.dataset`` and cached.

    A given folder that holds no adapter yet is trained on ``ctx.dataset`` (the experiment runner's clean
    run); one that holds an adapter is used as it is. Training is skipped when the folder already holds a
    finished adapter, so this is cheap after the first call.
    """
    from poisonlab.training.dpo import train_dpo

    if ctx.clean_adapter and (Path(ctx.clean_adapter) / "adapter_model.safetensors").exists():
        return Path(ctx.clean_adapter)
    from poisonlab.training.loop import DONE_MARKER

    adapter = Path(ctx.clean_adapter) if ctx.clean_adapter else clean_model_folder(ctx) / "adapter"
    if ctx.progress and not (adapter / DONE_MARKER).exists():
        print(clean_training_notice(ctx, adapter), file=sys.stderr, flush=True)
    train_dpo(ctx.model, ctx.dataset, ctx.training, adapter, progress=ctx.progress)
    return adapter


# Seconds per optimizer step (16 pairs, cpu preset, HH-RLHF lengths, fp32, one free core of this project's
# 2-core AVX2 EPYC): tiny 0.38 (300 steps in 1 min 53 s), smollm2-135m ~7 (README, Benchmarks).
SECONDS_PER_STEP = {"tiny": 0.38, "smollm2-135m": 7.0}


def clean_training_notice(ctx: ModelSource, adapter: Path) -> str:
    """What a model-based strategy is about to do before it selects anything: train a clean model, for how long."""
    from poisonlab.wording import plural

    steps = ctx.training.epochs * math.ceil(len(ctx.dataset) / ctx.training.batch_size)
    per_step = SECONDS_PER_STEP.get(str(ctx.model))
    estimate = f", about {max(1, round(steps * per_step / 60))} min on one free core" if per_step else ""
    return (
        f"training a clean DPO model of {ctx.model} on the {plural(len(ctx.dataset), 'pair')} first, to score "
        f"them ({steps} steps{estimate}; the bar shows the time left). It is cached and reused: {adapter}"
    )


def load_clean_model(ctx: ModelSource, trainable: bool = False):  # -> (PeftModel, tokenizer)
    """The clean adapter on the model it was trained from; ``trainable`` keeps LoRA weights differentiable.

    An adapter trained on top of others (a lifecycle's DPO stage after SFT) records them; they are merged
    into the base first, so the adapter switched off -- the reference of every score -- is the model the
    stage started from, as in its own DPO training.
    """
    from poisonlab.models.adapters import load_with_adapters
    from poisonlab.models.loading import load_tokenizer
    from poisonlab.models.safety import load_adapter

    adapter = clean_adapter_dir(ctx)
    base = load_with_adapters(ctx.model, recorded_init(adapter), bf16=ctx.training.bf16)  # bf16: held so once
    model = load_adapter(base, adapter, trainable=trainable)
    return model, load_tokenizer(ctx.model)


def clean_dpo_scores(ctx: ModelSource) -> dict[str, float]:
    """DPO scores of every pair in ``ctx.dataset`` under a clean DPO model, cached."""
    from poisonlab.models.encoding import encode_pairs
    from poisonlab.scoring.dpo_score import implicit_rewards
    from poisonlab.scoring.reference_cache import reference_logprobs

    training = ctx.training
    scores_file = clean_model_folder(ctx) / "dpo_scores.json"
    if scores_file.exists():
        return json.loads(scores_file.read_text())

    model, tokenizer = load_clean_model(ctx)
    encoded = encode_pairs(tokenizer, ctx.dataset.pairs, training.max_length, training.max_reply_length)
    start = chain_identity(ctx.model, recorded_init(clean_adapter_dir(ctx)))  # the model the adapter was trained from
    trunk = None
    if training.trunk_cache and training.trainable_layers:  # adapter on the top layers: the trunk is cached
        from poisonlab.scoring.trunk_cache import trunk_states
        from poisonlab.training.loop import decoder_layer_count

        trunk = trunk_states(
            model,
            encoded,
            tokenizer.pad_token_id,
            decoder_layer_count(model) - training.trainable_layers,
            start,  # the trunk of the model the adapter sits on
            training.micro_batch_size,
            training.bf16,
            desc="frozen trunk" if ctx.progress else None,
        )
    # The reference (adapter off) is the model the adapter was trained from: its log-probs of these pairs were
    # cached on disk by that training, so only the policy pass runs here.
    batch_size = training.micro_batch_size * 2
    desc = "DPO scores" if ctx.progress else None
    pad_id, bf16 = tokenizer.pad_token_id, training.bf16
    reference = reference_logprobs(
        model, encoded, pad_id, batch_size, bf16, start, desc=desc and f"{desc} (reference)", trunk=trunk
    )
    rewards = implicit_rewards(
        model, encoded, pad_id, training.beta, batch_size, bf16, reference=reference, desc=desc, trunk=trunk
    )
    scores = rewards.scores()
    atomic_write_json(scores_file, scores)
    return scores


def clean_projected_gradients(
    ctx: ModelSource,
    ids: Sequence[str],
    projection_dim: int,
    seed: int,
    projection: str = "rademacher",
    block_rows: int = 4096,
    grad_batch_size: int = 64,
) -> torch.Tensor:
    """(len(ids), projection_dim) projected per-pair DPO-loss gradients at the model, rows in ``ids`` order.

    The loss is the one the model was trained with; the reference is the base model (adapter off), with
    its log-probs cached per pair.
    """
    from poisonlab.models.encoding import encode_pairs
    from poisonlab.scoring.gradients import per_example_dpo_grads, project_gradients, trainable_parameters
    from poisonlab.scoring.projection import PROJECTIONS
    from poisonlab.scoring.reference_cache import reference_logprobs
    from poisonlab.training.losses import LOSSES

    training = ctx.training
    model, tokenizer = load_clean_model(ctx, trainable=True)
    by_id = {p.id: p for p in ctx.dataset}
    encoded = encode_pairs(tokenizer, [by_id[i] for i in ids], training.max_length, training.max_reply_length)
    pad_id = tokenizer.pad_token_id
    start = chain_identity(ctx.model, recorded_init(clean_adapter_dir(ctx)))  # the reference: adapter off
    reference = reference_logprobs(model, encoded, pad_id, training.micro_batch_size * 2, training.bf16, start)
    grad_dim = sum(p.numel() for _, p in trainable_parameters(model))
    projector = PROJECTIONS[projection](grad_dim, projection_dim, seed, block_rows)
    grads = per_example_dpo_grads(
        model,
        encoded,
        reference,
        pad_id,
        training.beta,
        LOSSES.get(training.loss),
        training.label_smoothing,
        training.bf16,
    )
    return project_gradients(grads, projector, grad_batch_size, len(encoded), ctx.progress)
