"""Stage: training -- LoRA DPO (poisonlab's engine or TRL's) and LoRA SFT."""

from poisonlab.training.config import PRESETS, DPOTrainingConfig, LoRATrainingConfig, SFTTrainingConfig
from poisonlab.training.dpo import TrainResult, train_dpo
from poisonlab.training.losses import LOSSES
from poisonlab.training.sft import SFTResult, train_sft

__all__ = [
    "LOSSES",
    "PRESETS",
    "DPOTrainingConfig",
    "LoRATrainingConfig",
    "SFTResult",
    "SFTTrainingConfig",
    "TrainResult",
    "train_dpo",
    "train_sft",
]
