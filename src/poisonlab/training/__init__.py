"""Stage: training -- LoRA DPO (poisonlab's engine or TRL's), LoRA SFT and Bradley-Terry reward models."""

from poisonlab.training.config import (
    PRESETS,
    DPOTrainingConfig,
    LoRATrainingConfig,
    RewardTrainingConfig,
    SFTTrainingConfig,
)
from poisonlab.training.dpo import TrainResult, train_dpo
from poisonlab.training.losses import LOSSES
from poisonlab.training.reward import RewardResult, train_reward
from poisonlab.training.sft import SFTResult, train_sft

__all__ = [
    "LOSSES",
    "PRESETS",
    "DPOTrainingConfig",
    "LoRATrainingConfig",
    "RewardResult",
    "RewardTrainingConfig",
    "SFTResult",
    "SFTTrainingConfig",
    "TrainResult",
    "train_dpo",
    "train_reward",
    "train_sft",
]
