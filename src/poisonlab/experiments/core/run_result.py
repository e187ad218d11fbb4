"""One row of a study's results: a run (or the base model) with its preference metrics and judged metrics."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class RunResult:
    run: str
    strategy: str
    attack: str
    ratio: float
    n_poisoned: int
    clean_accuracy: float
    backdoor_success: float
    n_heldout: int
    minutes: float
    trigger_position: str | None = None  # where evaluation (and the poison) put the trigger
    same_data_as: str | None = None  # the finished run whose identical data (and adapter) this run reused
    detection: dict[str, dict[str, Any]] | None = None  # per detector: auroc, recall, ... (config.defenses)
    # "<judge>@<prompt set>" -> {"judge": facts, "clean", "triggered", "trigger_effect", "contamination",
    # "backdoor_effect"}: see evaluation/stats.py. Also "preference@heldout" and "preference-margin@heldout".
    metrics: dict[str, dict[str, Any]] | None = None
    precision: str | None = None  # fp32 or bf16: what training, scoring and evaluation computed in
    # mitigation spec -> {"clean_accuracy", "backdoor_success", what it removed, "metrics"} (experiments/mitigate.py)
    mitigations: dict[str, dict[str, Any]] | None = None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)
