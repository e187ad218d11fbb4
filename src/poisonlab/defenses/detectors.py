"""Poison detectors, registered by name: each scores every pair (higher = more suspicious) and flags some.

The three defenses arXiv 2406.12091 tried against DPO poisoning, as the
papers that introduced them define them:

- ``loss``: the pair's DPO loss, -log sigmoid(DPO score), under a model trained
  on the data as given. Flipped pairs fight the clean majority, so they should
  be fitted worst. Flags the top ``budget`` pairs.
- ``spectral-signature`` (Tran, Li & Madry 2018): the squared projection of
  each centred feature vector on the top singular vector of all of them,
  ((R_i - mean R) . v)^2. Flags the top ``budget`` pairs.
- ``clustering`` (activation clustering, Chen et al. 2018; on gradients it is
  gradient clustering): reduce the L2-normalised features to ``n_dims``
  dimensions, split them in two with k-means, and flag the smaller cluster if
  it holds less than ``size_threshold`` of the pairs (ART's relative-size
  rule). A pair's score is how much nearer it lies to the smaller cluster's
  centre than to the larger one's, so the ranking can be judged too.

``budget`` is ``eps_multiplier x expected_share`` of the pairs when the defender
states an expected share (see DefenseConfig). Without one the budget is adaptive:
loss flags the pairs the model trained on the data gets wrong (loss > log 2, i.e.
it prefers the rejected reply), spectral-signature only robust outliers, scores
above median + ``outlier_mads`` x MAD (scaled to a normal's standard deviation).
Trigger mining (``trigger_mining.py``) flags by its own test either way.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from poisonlab.data.pairs import PreferenceDataset
from poisonlab.defenses.config import DefenseConfig
from poisonlab.defenses.features import FEATURES
from poisonlab.registry import Registry
from poisonlab.training.clean_model import TrainedOn, clean_dpo_scores
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


Detector = Callable[[DetectionContext], Detection]
DETECTORS: Registry[Detector] = Registry("detector")


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


@DETECTORS.register("loss", facts=DetectorFacts())
def loss_detector(ctx: DetectionContext) -> Detection:
    dpo_scores = clean_dpo_scores(ctx.scoring())  # beta * margin, under the model trained on this data
    loss = np.logaddexp(0.0, -np.array([dpo_scores[i] for i in ctx.dataset.ids]))  # -log sigmoid, overflow-safe
    details = {"score": "DPO loss -log sigmoid(DPO score), model trained on the data"}
    if ctx.config.expected_share is not None:
        return flag_top("loss", ctx, loss, details)
    # adaptive: the pairs the model trained on the data still gets wrong (prefers the rejected reply)
    ids = ctx.dataset.ids
    flagged = [ids[i] for i in np.argsort(-loss, kind="stable") if loss[i] > np.log(2)]
    reasons = {pid: "the model trained on the data prefers the rejected reply" for pid in flagged}
    return Detection("loss", dict(zip(ids, loss.tolist())), flagged, details, reasons)


def spectral_signature_scores(features: np.ndarray) -> np.ndarray:
    """((R_i - mean R) . v)^2 with v the top right singular vector of the centred matrix."""
    centred = features - features.mean(axis=0, keepdims=True)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    return (centred @ vt[0]) ** 2


@DETECTORS.register("spectral-signature", facts=DetectorFacts(features=True))
def spectral_signature(ctx: DetectionContext) -> Detection:
    scores = spectral_signature_scores(ctx.features())
    details = {"features": ctx.config.features, "score": "((R_i - mean R) . v)^2, v: top singular vector"}
    return flag_top("spectral-signature", ctx, scores, details)


def two_clusters(features: np.ndarray, config: DefenseConfig, seed: int) -> tuple[np.ndarray, np.ndarray, int]:
    """(k-means labels, score = distance to the larger centre - distance to the smaller, smaller label)."""
    from sklearn.cluster import KMeans
    from sklearn.decomposition import PCA, FastICA

    norms = np.linalg.norm(features, axis=1, keepdims=True)
    unit = features / np.where(norms == 0, 1, norms)
    dims = min(config.n_dims, *unit.shape)
    if config.reduce == "pca":
        reduced = PCA(n_components=dims, random_state=seed).fit_transform(unit)
    else:
        reduced = FastICA(n_components=dims, max_iter=1000, tol=0.005, random_state=seed).fit_transform(unit)
    kmeans = KMeans(n_clusters=2, n_init=10, random_state=seed).fit(reduced)
    labels = kmeans.labels_
    small = int(np.argmin(np.bincount(labels, minlength=2)))
    distances = kmeans.transform(reduced)
    return labels, distances[:, 1 - small] - distances[:, small], small


@DETECTORS.register("clustering", facts=DetectorFacts(features=True))
def clustering(ctx: DetectionContext) -> Detection:
    ids = ctx.dataset.ids
    labels, scores, small = two_clusters(ctx.features(), ctx.config, ctx.seed)
    share = float(np.mean(labels == small))
    flagged = [pid for pid, label in zip(ids, labels) if label == small] if share < ctx.config.size_threshold else []
    reasons = {pid: f"in the smaller k-means cluster ({share:.0%} of the pairs)" for pid in flagged}
    details = {
        "features": ctx.config.features,
        "reduce": ctx.config.reduce,
        "smaller_cluster_share": share,
        "score": "distance to the larger k-means centre minus distance to the smaller one",
    }
    return Detection("clustering", dict(zip(ids, scores.tolist())), flagged, details, reasons)
