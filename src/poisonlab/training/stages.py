"""Training stages a lifecycle chains (SFT, then DPO, then a downstream SFT...), registered by name.

A stage trains one LoRA adapter on preference pairs, starting from the adapters of the stages
before it (``init``), and returns the adapter's folder. Its facts say what it learns from a pair,
so a reader of a lifecycle config knows what a poisoned row teaches at that stage: a backdoor row
(trigger in the prompt, chosen and rejected swapped) is a trigger -> harmful-reply demonstration for
SFT and a flipped preference for DPO.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from poisonlab.data.pairs import PreferenceDataset
from poisonlab.registry import Registry
from poisonlab.training.config import DPOTrainingConfig, LoRATrainingConfig, Preset, SFTTrainingConfig


@dataclass(frozen=True)
class StageFacts:
    config: type[LoRATrainingConfig]  # its typed training settings
    learns: str  # what one pair teaches it, for tables and docs


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
