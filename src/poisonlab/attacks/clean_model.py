"""The clean DPO model that model-based strategies score with, cached by content.

The key is the data's content hash, the model's identity and the training
config, so the same clean model is trained once per (data, model, config) and
reused by every strategy and every ratio of a sweep.
"""

from __future__ import annotations

import hashlib
import json
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

    if ctx.clean_adapter and (Path(ctx.clean_adapter) / "adapter_model.safetensors").exists():
        return Path(ctx.clean_adapter)
    adapter = Path(ctx.clean_adapter) if ctx.clean_adapter else clean_model_folder(ctx) / "adapter"
    train_dpo(ctx.model, ctx.dataset, ctx.training, adapter, progress=ctx.progress)
    return adapter


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
