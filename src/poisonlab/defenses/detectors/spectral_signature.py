"""``spectral-signature`` (Tran, Li & Madry, 2018): the squared projection of each centred feature vector on
the top singular vector of all of them, ((R_i - mean R) . v)^2; flags the top ``budget`` pairs."""

from __future__ import annotations

import numpy as np

from poisonlab.defenses.detectors.base import DETECTORS, Detection, DetectionContext, Detector, DetectorFacts, flag_top


def spectral_signature_scores(features: np.ndarray) -> np.ndarray:
    """((R_i - mean R) . v)^2 with v the top right singular vector of the centred matrix."""
    centred = features - features.mean(axis=0, keepdims=True)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    return (centred @ vt[0]) ** 2


@DETECTORS.register("spectral-signature", facts=DetectorFacts(features=True))
class SpectralSignature(Detector):
    def detect(self, ctx: DetectionContext) -> Detection:
        scores = spectral_signature_scores(ctx.features())
        details = {"features": ctx.config.features, "score": "((R_i - mean R) . v)^2, v: top singular vector"}
        return flag_top("spectral-signature", ctx, scores, details)
