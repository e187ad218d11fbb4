"""Selection strategies: which pairs an attacker poisons. One base (``base.py``: the registry, the context, and
the two simplest, random and dpo-score); one file per other strategy. Importing this package registers every
strategy module beside it, so a new strategy is one new file.
"""

import importlib
import pkgutil

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

for _module in pkgutil.iter_modules(__path__):
    if _module.name != "base":
        importlib.import_module(f"{__name__}.{_module.name}")

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
