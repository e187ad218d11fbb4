"""``trigger-mining``: the prompt n-grams over-represented among the pairs the model trained on the data fits
worst (the mining test: :mod:`poisonlab.defenses.mining`)."""

from __future__ import annotations

import numpy as np

from poisonlab.defenses.detectors.base import DETECTORS, Detection, DetectionContext, Detector, DetectorFacts
from poisonlab.defenses.mining import mining_detection
from poisonlab.training.clean_model import clean_dpo_scores


@DETECTORS.register("trigger-mining", facts=DetectorFacts(names_trigger=True))
class TriggerMining(Detector):
    def detect(self, ctx: DetectionContext) -> Detection:
        """Trigger mining on the pairs the model trained on the data fits worst (highest DPO loss)."""
        dpo_scores = clean_dpo_scores(ctx.scoring())
        loss = np.logaddexp(0.0, -np.array([dpo_scores[i] for i in ctx.dataset.ids]))
        signals = ("pairs the model fits worst", "pairs the model fits best")
        return mining_detection("trigger-mining", ctx, loss, signals, two_sided=False)
