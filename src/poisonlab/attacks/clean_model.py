"""The clean DPO model that model-based strategies score with, cached by content.

The key is the data's content hash, the model's identity and the training
config, so the same clean model is trained once per (data, model, config) and
reused by every strategy and every ratio of a sweep.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from poisonlab.io import atomic_write_json, cache_dir
from poisonlab.models.loading import model_identity


def clean_model_key(dataset_hash: str, model: str, training_json: str) -> str:
    payload = json.dumps([dataset_hash, model_identity(model), training_json])
    return hashlib.sha256(payload.encode()).hexdigest()[:20]


def clean_dpo_scores(ctx) -> dict[str, float]:  # ctx: SelectionContext (import cycle avoided)
    """DPO scores of every pair in ``ctx.dataset`` under a clean DPO model, cached."""
    from poisonlab.models.encoding import encode_pairs
    from poisonlab.models.loading import load_model, load_tokenizer
    from poisonlab.scoring.dpo_score import implicit_rewards
    from poisonlab.training.dpo import train_dpo

    training = ctx.training
    key = clean_model_key(ctx.dataset.content_hash(), ctx.model, training.model_dump_json())
    folder = cache_dir() / "clean-dpo" / key
    scores_file = folder / "dpo_scores.json"
    if scores_file.exists():
        return json.loads(scores_file.read_text())

    adapter = Path(ctx.clean_adapter) if ctx.clean_adapter else folder / "adapter"
    train_dpo(ctx.model, ctx.dataset, training, adapter, progress=ctx.progress)

    from peft import PeftModel

    tokenizer = load_tokenizer(ctx.model)
    model = PeftModel.from_pretrained(load_model(ctx.model), adapter)
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
