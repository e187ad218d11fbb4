"""Stage: experiments -- a whole study from one typed config."""

from poisonlab.experiments.core.run_result import RunResult
from poisonlab.experiments.grid.config import ExperimentConfig, RunSpec
from poisonlab.experiments.grid.folder import results_folder
from poisonlab.experiments.grid.runner import finished_results, run_experiment, saved_study

__all__ = [
    "ExperimentConfig",
    "RunResult",
    "RunSpec",
    "finished_results",
    "results_folder",
    "run_experiment",
    "saved_study",
]
