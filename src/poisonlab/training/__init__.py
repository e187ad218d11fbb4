"""Stage: training -- LoRA DPO (poisonlab's engine or TRL's), LoRA SFT, Bradley-Terry reward models and RLHF
against one (TRL's RLOO)."""

from poisonlab.training.config import (
    PRESETS,
    DPOTrainingConfig,
    LoRATrainingConfig,
    RewardTrainingConfig,
    RLTrainingConfig,
    SFTTrainingConfig,
)
from poisonlab.training.dpo import TrainResult, train_dpo
from poisonlab.training.losses import LOSSES
from poisonlab.training.reward import RewardResult, train_reward
from poisonlab.training.rl import RLResult, train_rl
from poisonlab.training.sft import SFTResult, train_sft

__all__ = [
    "LOSSES",
    "PRESETS",
    "DPOTrainingConfig",
    "LoRATrainingConfig",
    "RLResult",
    "RLTrainingConfig",
    "RewardResult",
    "RewardTrainingConfig",
    "SFTResult",
    "SFTTrainingConfig",
    "TrainResult",
    "train_dpo",
    "train_reward",
    "train_rl",
    "train_sft",
]
