"""``oracle``: the pairs a clean reward model prefers most (Rando & Tramèr's oracle attack, arXiv 2311.14455).

Rando & Tramèr poison RLHF by flipping the pairs where a clean reward model's preference for the chosen
(safe) reply is largest: a backdoor on those pairs contradicts the reward model the most, so it is the
strongest signal per poisoned pair for a reward model to learn. Score of a pair:
``r(prompt, chosen) - r(prompt, rejected)`` under a Bradley-Terry reward model trained on the clean pairs
(``training.clean_reward``; cached and reused by every ratio and seed). The DPO analogue is ``dpo-score``,
which ranks by a clean DPO model's implicit reward margin instead.
"""

from __future__ import annotations

from poisonlab.attacks.strategies.base import STRATEGIES, Selection, SelectionContext, StrategyFacts, rank_by_score

ORACLE_SCORE = "r(chosen) - r(rejected) under a clean Bradley-Terry reward model trained on the pairs"


@STRATEGIES.register("oracle", facts=StrategyFacts(uses_model=True))
def select_oracle(ctx: SelectionContext) -> Selection:
    """The pairs a clean reward model ranks right by the widest margin (Rando & Tramèr's oracle attack)."""
    from poisonlab.training.clean_reward import clean_reward_margins, clean_reward_model, reward_config_for

    config = reward_config_for(ctx.training)
    margins = clean_reward_margins(ctx.dataset, ctx.model, config, ctx.progress)
    from poisonlab.models.adapters import adapter_sha256

    folder = clean_reward_model(ctx.dataset, ctx.model, config, progress=False)  # cached: a read-back
    details = {"score": ORACLE_SCORE, "reward_model_sha256": adapter_sha256(folder)}
    return Selection(rank_by_score(margins)[: ctx.n_poison], margins, details)
