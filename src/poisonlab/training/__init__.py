"""Stage: training -- LoRA DPO with poisonlab's engine."""

from poisonlab.training.config import PRESETS, DPOTrainingConfig
from poisonlab.training.dpo import TrainResult, train_dpo
from poisonlab.training.losses import LOSSES

__all__ = ["LOSSES", "PRESETS", "DPOTrainingConfig", "TrainResult", "train_dpo"]
