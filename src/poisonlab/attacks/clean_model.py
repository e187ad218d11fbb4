"""The clean DPO model that model-based strategies score with, cached by content.

The key is the data's content hash, the model's identity and the training
config, so the same clean model is trained once per (data, model, config) and
reused by every strategy and every ratio of a sweep.
"""

from __future__ import annotations

import hashlib
import json
import math
import sys
from pathlib import Path

from poisonlab.io import atomic_write_json, cache_dir, sha256_file
from poisonlab.models.loading import model_identity


def clean_model_key(dataset_hash: str, model: str, training_json: str) -> str:
    payload = json.dumps([dataset_hash, model_identity(model), training_json])
    return hashlib.sha256(payload.encode()).hexdigest()[:20]


def clean_model_folder(ctx) -> Path:  # ctx: SelectionContext (import cycle avoided)
    """The cache folder of the clean model for ``ctx``'s data, model and training config.

    A clean adapter the caller gives is used as it is, whatever it was trained on (a cheap one, or one
    trained on other data), so its weights' hash is part of the key: scores cached for one adapter are
    never handed out for another.
    """
    training_json = ctx.training.model_dump_json()
    if ctx.clean_adapter:
        weights = clean_adapter_dir(ctx) / "adapter_model.safetensors"
        training_json += f"|adapter:{sha256_file(weights)}"
    key = clean_model_key(ctx.dataset.content_hash(), ctx.model, training_json)
    return cache_dir() / "clean-dpo" / key


def clean_adapter_dir(ctx) -> Path:
    """A clean LoRA DPO adapter: ``ctx.clean_adapter`` if given, else one trained on ``ctx.dataset`` and cached.

    A given folder that holds no adapter yet is trained on ``ctx.dataset`` (the experiment runner's clean
    run); one that holds an adapter is used as it is. Training is skipped when the folder already holds a
    finished adapter, so this is cheap after the first call.
    """
    from poisonlab.training.dpo import train_dpo
    from poisonlab.training.loop import DONE_MARKER

    if ctx.clean_adapter and (Path(ctx.clean_adapter) / "adapter_model.safetensors").exists():
        return Path(ctx.clean_adapter)
    adapter = Path(ctx.clean_adapter) if ctx.clean_adapter else clean_model_folder(ctx) / "adapter"
    if ctx.progress and not (adapter / DONE_MARKER).exists():
        print(clean_training_notice(ctx, adapter), file=sys.stderr, flush=True)
    train_dpo(ctx.model, ctx.dataset, ctx.training, adapter, progress=ctx.progress)
    return adapter


# Seconds per optimizer step (16 pairs, cpu preset, HH-RLHF lengths, fp32, one free core of this project's
# 2-core AVX2 EPYC): tiny 0.38 (300 steps in 1 min 53 s), smollm2-135m ~7 (README, Benchmarks).
SECONDS_PER_STEP = {"tiny": 0.38, "smollm2-135m": 7.0}


def clean_training_notice(ctx, adapter: Path) -> str:
    """What a model-based strategy is about to do before it selects anything: train a clean model, for how long."""
    from poisonlab.wording import plural

    steps = ctx.training.epochs * math.ceil(len(ctx.dataset) / ctx.training.batch_size)
    per_step = SECONDS_PER_STEP.get(str(ctx.model))
    estimate = f", about {max(1, round(steps * per_step / 60))} min on one free core" if per_step else ""
    return (
        f"training a clean DPO model of {ctx.model} on the {plural(len(ctx.dataset), 'pair')} first, to score "
        f"them ({steps} steps{estimate}; the bar shows the time left). It is cached and reused: {adapter}"
    )


def load_clean_model(ctx, trainable: bool = False):  # -> (PeftModel, tokenizer)
    """The base model with the clean adapter on; ``trainable`` keeps LoRA weights differentiable (gradients)."""
    from poisonlab.models.loading import load_model, load_tokenizer
    from poisonlab.models.safety import load_adapter

    adapter = clean_adapter_dir(ctx)
    model = load_adapter(load_model(ctx.model), adapter, trainable=trainable)
    return model, load_tokenizer(ctx.model)


def clean_dpo_scores(ctx) -> dict[str, float]:  # ctx: SelectionContext (import cycle avoided)
    """DPO scores of every pair in ``ctx.dataset`` under a clean DPO model, cached."""
    from poisonlab.models.encoding import encode_pairs
    from poisonlab.scoring.dpo_score import implicit_rewards

    training = ctx.training
    scores_file = clean_model_folder(ctx) / "dpo_scores.json"
    if scores_file.exists():
        return json.loads(scores_file.read_text())

    model, tokenizer = load_clean_model(ctx)
    encoded = encode_pairs(tokenizer, ctx.dataset.pairs, training.max_length, training.max_reply_length)
    rewards = implicit_rewards(
        model,
        encoded,
        tokenizer.pad_token_id,
        training.beta,
        training.micro_batch_size * 2,
        training.bf16,
        desc="DPO scores" if ctx.progress else None,
    )
    scores = rewards.scores()
    atomic_write_json(scores_file, scores)
    return scores
