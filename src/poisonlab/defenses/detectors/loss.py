"""``loss``: the pair's DPO loss under a model trained on the data as given; flipped pairs fight the
clean majority, so they should be fitted worst (arXiv 2406.12091's first defense)."""

from __future__ import annotations

import numpy as np

from poisonlab.defenses.detectors.base import DETECTORS, Detection, DetectionContext, Detector, DetectorFacts, flag_top
from poisonlab.training.clean_model import clean_dpo_scores


@DETECTORS.register("loss", facts=DetectorFacts())
class LossDetector(Detector):
    def detect(self, ctx: DetectionContext) -> Detection:
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
