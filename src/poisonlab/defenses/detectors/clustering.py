"""``clustering`` (activation clustering, Chen et al. 2018; on gradients, gradient clustering): reduce the
L2-normalised features, split them in two with k-means, and flag the smaller cluster if it holds less than
``size_threshold`` of the pairs (ART's relative-size rule)."""

from __future__ import annotations

import numpy as np

from poisonlab.defenses.config import DefenseConfig
from poisonlab.defenses.detectors.base import DETECTORS, Detection, DetectionContext, Detector, DetectorFacts


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
class Clustering(Detector):
    def detect(self, ctx: DetectionContext) -> Detection:
        ids = ctx.dataset.ids
        labels, scores, small = two_clusters(ctx.features(), ctx.config, ctx.seed)
        share = float(np.mean(labels == small))
        flagged = (
            [pid for pid, label in zip(ids, labels) if label == small] if share < ctx.config.size_threshold else []
        )
        reasons = {pid: f"in the smaller k-means cluster ({share:.0%} of the pairs)" for pid in flagged}
        details = {
            "features": ctx.config.features,
            "reduce": ctx.config.reduce,
            "smaller_cluster_share": share,
            "score": "distance to the larger k-means centre minus distance to the smaller one",
        }
        return Detection("clustering", dict(zip(ids, scores.tolist())), flagged, details, reasons)
