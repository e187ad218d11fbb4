"""Trigger mining for SFT demonstrations: the prompt n-grams that mark the replies unlike their neighbours'.

A supervised backdoor is a set of demonstrations "prompt + trigger -> planted reply". There is no rejected
reply to look swapped, so the signal is the reply itself, e = encoder(reply):

- against the neighbours: -cos(e_i, mean e_j over the ``mining_neighbours`` rows with the most similar
  prompts) (``trigger_mining.local_disagreement``);
- against the data: -cos(e_i, mean e).

Planted demonstrations stand out at *either* end: a reply foreign to its prompt's neighbourhood, or a
template ("Sure, here is ...", one refusal sentence) far more alike across its rows than real replies are.
So both tails of both signals are suspicious sets, all in one Bonferroni family
(``mine_triggers(two_sided=True)``), and the n-gram test, its FDR control and the flags are those of
:mod:`poisonlab.defenses.mining`.

Measured (README, Defenses): on 300 and 1,595 clean HH-RLHF SFT rows it flags nothing; it names the trigger
of AdvBench demonstrations planted in 5-10% of 300 HH rows and flags every triggered row; with a contrast
(each triggered goal also asked without the trigger and refused) it needs 10%, and a common-words trigger
in a contrast escapes it.
"""

from __future__ import annotations

from poisonlab.defenses.detectors.base import DETECTORS, Detection, DetectionContext, Detector, DetectorFacts
from poisonlab.defenses.features import embed_texts
from poisonlab.defenses.mining import against_the_mean, local_disagreement, mining_detection


@DETECTORS.register("trigger-mining-demo", facts=DetectorFacts(names_trigger=True, demonstrations=True))
class TriggerMiningDemo(Detector):
    def detect(self, ctx: DetectionContext) -> Detection:
        """Trigger mining on the rows whose replies are most unlike, or most alike, their neighbours' and the data's."""
        replies = embed_texts(ctx, [row.chosen for row in ctx.dataset])
        local = local_disagreement(replies, ctx.features("prompt-embeddings"), ctx.config.mining_neighbours)
        signals = ("rows whose replies are most unlike their neighbours'", "rows whose replies are most alike")
        suspicion = [local, against_the_mean(replies)]
        return mining_detection("trigger-mining-demo", ctx, suspicion, signals, two_sided=True, unit="rows")
