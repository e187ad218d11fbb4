"""What a detector is: a class on one base (as IBM ART's poison filters are), registered by name with its facts.

Each scores every pair (higher = more suspicious) and flags some; one file per detector in this package.

``budget`` is ``eps_multiplier x expected_share`` of the pairs when the defender
states an expected share (see DefenseConfig). Without one the budget is adaptive:
loss flags the pairs the model trained on the data gets wrong (loss > log 2, i.e.
it prefers the rejected reply), spectral-signature only robust outliers, scores
above median + ``outlier_mads`` x MAD (scaled to a normal's standard deviation).
Trigger mining (``poisonlab.defenses.mining``) flags by its own test either way.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from poisonlab.data.pairs import PreferenceDataset
from poisonlab.defenses.config import DefenseConfig
from poisonlab.defenses.features import FEATURES
from poisonlab.registry import Registry
from poisonlab.training.clean_model import TrainedOn
from poisonlab.training.config import DPOTrainingConfig


@dataclass
class DetectionContext:
    """What a detector may use: the data to vet and, for model-based features, the model trained on it.

    ``adapter`` is the LoRA DPO adapter to score with, normally trained on ``dataset`` (a run's
    ``adapter/``), used as it is; without one, one is trained on ``dataset`` with ``training`` and cached.
    """

    dataset: PreferenceDataset
    model: str = "tiny"
    training: DPOTrainingConfig = field(default_factory=DPOTrainingConfig)
    config: DefenseConfig = field(default_factory=DefenseConfig)
    seed: int = 0
    adapter: Path | None = None
    progress: bool = True

    def scoring(self) -> TrainedOn:
        """The model to score with: ``adapter`` on ``model``, or one trained on ``dataset`` (training stage)."""
        return TrainedOn(self.dataset, self.model, self.training, self.adapter, self.progress)

    def features(self, name: str | None = None) -> np.ndarray:
        return FEATURES.get(name or self.config.features)(self)


@dataclass
class Detection:
    """One detector's verdict: a score per pair id and the ids it flags."""

    detector: str
    scores: dict[str, float]
    flagged: list[str]
    details: dict[str, Any] = field(default_factory=dict)
    reasons: dict[str, str] = field(default_factory=dict)  # why a flagged pair is flagged, where a detector can say


@dataclass(frozen=True)
class DetectorFacts:
    """What the rest of the package needs to know about a detector, given where it is registered."""

    names_trigger: bool = False  # its details name suspected triggers and its reasons cite them
    demonstrations: bool = False  # reads SFT rows (prompt -> reply): needs no rejected reply and no DPO model
    features: bool = False  # looks at DefenseConfig.features (then prompt-embeddings also read SFT rows)


class Detector(ABC):
    """A poison detector: ``detect`` scores every row of the context and flags some, with its reasons."""

    @abstractmethod
    def detect(self, ctx: DetectionContext) -> Detection:
        """The verdict on ``ctx.dataset``: a score per row id (higher = more suspicious) and the flagged ids."""


DETECTORS: Registry[type[Detector]] = Registry("detector")


def outliers(scores: np.ndarray, mads: float) -> np.ndarray:
    """Bool mask of scores above median + ``mads`` x MAD (x 1.4826: a normal's sigma): the adaptive budget."""
    from scipy.stats import median_abs_deviation

    spread = median_abs_deviation(scores, scale="normal")
    return scores > np.median(scores) + mads * max(spread, 1e-12)


def flag_top(name: str, ctx: DetectionContext, scores: np.ndarray, details: dict[str, Any]) -> Detection:
    """Flag the ``budget`` highest-scoring pairs, or without an expected share the robust outliers.

    Ties are broken by id, so the flags are deterministic.
    """
    ids = ctx.dataset.ids
    order = sorted(range(len(ids)), key=lambda i: (-scores[i], ids[i]))
    if ctx.config.expected_share is None:
        mask = outliers(scores, ctx.config.outlier_mads)
        flagged = [ids[i] for i in order if mask[i]]
        rule = f"score > median + {ctx.config.outlier_mads:g} MAD"
        reasons = {pid: f"{name} score is an outlier ({rule})" for pid in flagged}
    else:
        flagged = [ids[i] for i in order[: ctx.config.budget(len(ids))]]
        reasons = {pid: f"{name} score in the top {len(flagged)}" for pid in flagged}
    return Detection(name, dict(zip(ids, scores.tolist())), flagged, details, reasons)
