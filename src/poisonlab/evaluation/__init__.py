"""Stage: evaluation -- clean accuracy and backdoor success on held-out pairs."""

from poisonlab.evaluation.preference import PreferenceMetrics, evaluate_preferences, triggered, write_metrics

__all__ = ["PreferenceMetrics", "evaluate_preferences", "triggered", "write_metrics"]
