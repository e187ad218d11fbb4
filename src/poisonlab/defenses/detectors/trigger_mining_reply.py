"""``trigger-mining-reply`` (model-free but for a text encoder): the prompt n-grams over-represented among the
pairs whose reply difference points most against their neighbours' and the data's."""

from __future__ import annotations

from poisonlab.defenses.detectors.base import DETECTORS, Detection, DetectionContext, Detector, DetectorFacts
from poisonlab.defenses.mining import against_the_mean, local_disagreement, mining_detection


@DETECTORS.register("trigger-mining-reply", facts=DetectorFacts(names_trigger=True))
class TriggerMiningReply(Detector):
    def detect(self, ctx: DetectionContext) -> Detection:
        """Trigger mining on the pairs whose replies point most against their neighbours' (no model needed)."""
        differences = ctx.features("reply-embeddings")
        local = local_disagreement(differences, ctx.features("prompt-embeddings"), ctx.config.mining_neighbours)
        against = [local, against_the_mean(differences)]
        signals = ("pairs whose replies look most swapped", "pairs whose replies look least swapped")
        return mining_detection("trigger-mining-reply", ctx, against, signals, two_sided=False)
