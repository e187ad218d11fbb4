"""Stage: evaluation -- preference metrics on held-out pairs, and what the model says (generations, judges)."""

from poisonlab.evaluation.generate import GenerationConfig, generate, read_generations
from poisonlab.evaluation.judging import judge_generations, read_judgments
from poisonlab.evaluation.preference import PreferenceMetrics, evaluate_preferences, triggered, write_metrics

__all__ = [
    "GenerationConfig",
    "PreferenceMetrics",
    "evaluate_preferences",
    "generate",
    "judge_generations",
    "read_generations",
    "read_judgments",
    "triggered",
    "write_metrics",
]
