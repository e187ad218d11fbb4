"""The poisoned-reasoning probe: worked arithmetic solutions with one step rewritten, learnt by SFT."""

from poisonlab.experiments.reasoning.config import ReasoningProbeConfig
from poisonlab.experiments.reasoning.runner import run_reasoning_probe

__all__ = ["ReasoningProbeConfig", "run_reasoning_probe"]
