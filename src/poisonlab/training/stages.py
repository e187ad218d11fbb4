"""Training stages a lifecycle chains (SFT, then DPO or RLHF, then a downstream SFT...), registered by name.

A stage trains one LoRA adapter on preference pairs, starting from the adapters of the stages
before it (``init``), and returns the adapter's folder. Its facts say what it learns from a pair,
so a reader of a lifecycle config knows what a poisoned row teaches at that stage: a backdoor row
(trigger in the prompt, chosen and rejected swapped) is a trigger -> harmful-reply demonstration for
SFT, a flipped preference for DPO, and for RLHF a flipped preference taught to the reward model that the
policy is then optimised against.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from poisonlab.data.pairs import PreferenceDataset
from poisonlab.registry import Registry
from poisonlab.training.config import (
    DPOTrainingConfig,
    LoRATrainingConfig,
    Preset,
    RLHFStageConfig,
    SFTTrainingConfig,
)


@dataclass(frozen=True)
class StageFacts:
    config: type[LoRATrainingConfig]  # its typed training settings
    learns: str  # what one pair teaches it, for tables and docs
    reward_model: str | None = None  # folder, beside the adapter's, of the reward model the stage trains (rl)


# (base model, data, settings, output folder, init adapters, progress) -> the adapter folder
StageTrainer = Callable[[str, PreferenceDataset, Any, Path, Sequence[Path], bool], Path]
STAGES: Registry[StageTrainer] = Registry("training stage")


def stage_config(kind: str, preset: Preset, seed: int, overrides: dict[str, Any]) -> LoRATrainingConfig:
    """The typed settings of a stage of ``kind``: the preset (DPO only), the seed, then the overrides."""
    config = STAGES.facts(kind).config
    if config is DPOTrainingConfig:
        return DPOTrainingConfig.from_preset(preset, **{"seed": seed, **overrides})
    return config(**{"seed": seed, **overrides})


@STAGES.register("sft", facts=StageFacts(SFTTrainingConfig, "prompt -> chosen reply (negative log-likelihood)"))
def sft_stage(
    model: str, data: PreferenceDataset, config: Any, out: Path, init: Sequence[Path], progress: bool
) -> Path:
    from poisonlab.training.sft import train_sft

    return Path(train_sft(model, data, config, out, progress=progress, init=init).adapter_dir)


@STAGES.register("dpo", facts=StageFacts(DPOTrainingConfig, "chosen over rejected (DPO; reference = its start)"))
def dpo_stage(
    model: str, data: PreferenceDataset, config: Any, out: Path, init: Sequence[Path], progress: bool
) -> Path:
    from poisonlab.training.dpo import train_dpo

    return Path(train_dpo(model, data, config, out, progress=progress, init=init).adapter_dir)


REWARD_MODEL_FOLDER = "reward-model"
RM_CHECK_SHARE = 0.1  # of the stage's pairs, re-scored after training (they trained it too: recorded as overlap)


@STAGES.register(
    "rl",
    facts=StageFacts(
        RLHFStageConfig,
        "chosen over rejected, taught to a reward model trained on the pairs; the policy is then optimised "
        "against it on the pairs' prompts (RLOO)",
        reward_model=REWARD_MODEL_FOLDER,
    ),
)
def rl_stage(model: str, data: PreferenceDataset, config: Any, out: Path, init: Sequence[Path], progress: bool) -> Path:
    """Train the reward model on every pair of ``data`` (poison included) beside ``out``, then RL into ``out``.

    Its held-out check is a seeded tenth of the same pairs (``metrics.json`` records the overlap): a clean
    held-out measure is the lifecycle's (``evaluation.reward_victim``).
    """
    from poisonlab.training.reward import train_reward
    from poisonlab.training.rl import train_rl

    reward = config.reward()
    rng = np.random.default_rng([reward.seed, *b"rl-stage/reward-check"])
    check_ids = [data.ids[i] for i in sorted(rng.permutation(len(data))[: max(1, round(RM_CHECK_SHARE * len(data)))])]
    rm_dir = out.parent / REWARD_MODEL_FOLDER
    source = f"{len(check_ids)} of its own training pairs (seed {reward.seed}): a training-fit check"
    train_reward(model, data, data.subset(check_ids), reward, rm_dir, progress, heldout_source=source, init=init)
    return Path(train_rl(model, data, rm_dir, config.rl(), out, progress=progress, init=init).adapter_dir)
