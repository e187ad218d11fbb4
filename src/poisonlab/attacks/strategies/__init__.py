"""Selection strategies: which pairs an attacker poisons. One base (``base.py``: the registry, the context, and
the two simplest, random and dpo-score); one file per other strategy. Importing this package registers every
strategy module beside it, so a new strategy is one new file.
"""

from poisonlab.attacks.strategies.base import (
    DPO_SCORE,
    STRATEGIES,
    CandidatePool,
    Selection,
    SelectionContext,
    Strategy,
    StrategyFacts,
    candidate_pool,
    rank_by_score,
    select_dpo_score,
    select_random,
    strategy_facts,
)
from poisonlab.registry import register_package

register_package(__name__, __path__)

__all__ = [
    "DPO_SCORE",
    "STRATEGIES",
    "CandidatePool",
    "Selection",
    "SelectionContext",
    "Strategy",
    "StrategyFacts",
    "candidate_pool",
    "rank_by_score",
    "select_dpo_score",
    "select_random",
    "strategy_facts",
]
