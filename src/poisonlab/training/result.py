"""What a DPO training run returns, whichever engine ran it (poisonlab's own loop or TRL's)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class TrainResult:
    adapter_dir: str
    steps: int
    final_loss: float
    train_reward_accuracy: float
    seconds: float
    resumed_from_step: int
