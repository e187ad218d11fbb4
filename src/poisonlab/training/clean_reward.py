"""A clean reward model trained on given data, cached by content, and its per-pair reward margins.

The ``oracle`` selection strategy (Rando & Tramèr's oracle attack, arXiv 2311.14455) ranks pairs by how
much a clean reward model prefers the chosen reply; like the clean DPO model of ``clean_model.py`` it
lives here, below attacks and defenses, and is trained once per (data, model, settings) and reused by
every ratio and seed of a sweep. A tenth of the pairs (seeded, at least one) is held out to measure
it, so its folder is a finished reward model that the ``reward:DIR`` judge also reads.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from poisonlab.data.pairs import PreferenceDataset
from poisonlab.io import atomic_write_json, cache_dir
from poisonlab.training.clean_model import clean_model_key
from poisonlab.training.config import DPOTrainingConfig, RewardTrainingConfig

HELDOUT_SHARE = 0.1


def reward_config_for(training: DPOTrainingConfig) -> RewardTrainingConfig:
    """The clean reward model's settings: the run's seed, lengths, batch, precision and threads; RM defaults else."""
    shared = ("seed", "max_length", "max_reply_length", "batch_size", "micro_batch_size", "bf16", "threads")
    return RewardTrainingConfig(**{name: getattr(training, name) for name in shared})


def clean_reward_folder(dataset: PreferenceDataset, model: str, config: RewardTrainingConfig) -> Path:
    key = clean_model_key(dataset.content_hash(), model, "reward|" + config.model_dump_json(exclude={"threads"}))
    return cache_dir() / "clean-reward" / key


def clean_reward_model(
    dataset: PreferenceDataset, model: str, config: RewardTrainingConfig, progress: bool = True
) -> Path:
    """A clean reward model trained on ``dataset`` (minus a seeded tenth held out), cached; its folder."""
    from poisonlab.data.splits import train_heldout_split
    from poisonlab.training.loop import DONE_MARKER
    from poisonlab.training.reward import train_reward

    folder = clean_reward_folder(dataset, model, config) / "reward-model"
    if not (folder / DONE_MARKER).exists():
        if progress:
            print(f"training a clean reward model of {model} on the pairs first (cached: {folder})", file=sys.stderr)
        share = max(1, round(HELDOUT_SHARE * len(dataset))) if len(dataset) > 1 else 0
        train, heldout = train_heldout_split(dataset, share, config.seed) if share else (dataset, dataset)
        source = f"{len(heldout)} of the pairs held out (seed {config.seed})"
        train_reward(model, train, heldout, config, folder, progress=progress, heldout_source=source)
    return folder


def clean_reward_margins(
    dataset: PreferenceDataset, model: str, config: RewardTrainingConfig, progress: bool = True
) -> dict[str, float]:
    """r(prompt, chosen) - r(prompt, rejected) of every pair under the clean reward model, by pair id; cached."""
    from poisonlab.models.encoding import encode_pairs
    from poisonlab.training.reward import load_reward_model, rewards

    folder = clean_reward_model(dataset, model, config, progress)
    cached = folder.parent / "margins.json"
    if cached.exists():
        return json.loads(cached.read_text())
    tokenizer, reward_model, settings = load_reward_model(folder)
    encoded = encode_pairs(tokenizer, dataset.pairs, settings.max_length, settings.max_reply_length)
    sequences = [(p.prompt_ids, p.chosen_ids) for p in encoded] + [(p.prompt_ids, p.rejected_ids) for p in encoded]
    scores = rewards(reward_model, sequences, tokenizer.pad_token_id, settings.micro_batch_size)
    n = len(encoded)
    margins = {pair.id: float(scores[i] - scores[n + i]) for i, pair in enumerate(dataset.pairs)}
    atomic_write_json(cached, margins)
    return margins
