"""Stage: experiments -- a whole study from one typed config."""

from poisonlab.experiments.config import ExperimentConfig, RunSpec
from poisonlab.experiments.runner import RunResult, finished_results, results_folder, run_experiment, saved_study

__all__ = [
    "ExperimentConfig",
    "RunResult",
    "RunSpec",
    "finished_results",
    "results_folder",
    "run_experiment",
    "saved_study",
]
