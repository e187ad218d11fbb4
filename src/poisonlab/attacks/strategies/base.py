"""Poison-selection strategies: which pairs an attacker flips.

A strategy is a function registered by name that takes a
:class:`SelectionContext` and returns a :class:`Selection` (the chosen ids,
best first, plus whatever scores it computed, for the manifest).

The four strategies of arXiv 2406.12091: ``random`` and ``dpo-score`` here,
``gradient-projection`` (``gradient_projection.py``) and ``semantic-diversity``
(``semantic.py``), which both choose among the top DPO-scored pairs.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from poisonlab.attacks.selection_config import SelectionConfig
from poisonlab.data.pairs import PreferenceDataset
from poisonlab.registry import Registry
from poisonlab.training.config import DPOTrainingConfig


@dataclass
class SelectionContext:
    """What a strategy may use. ``model`` and ``training`` matter to model-based strategies only."""

    dataset: PreferenceDataset  # the pairs the attacker may poison: all, or those an access constraint leaves
    n_poison: int
    seed: int
    model: str = "tiny"
    training: DPOTrainingConfig = field(default_factory=DPOTrainingConfig)
    selection: SelectionConfig = field(default_factory=SelectionConfig)
    clean_adapter: Path | None = None  # a clean DPO adapter trained on `dataset`, if the caller has one
    progress: bool = True

    def rng(self, stage: str) -> np.random.Generator:
        """A generator derived from the run's seed and the stage's name, never the global one."""
        return np.random.default_rng([self.seed, *stage.encode()])


@dataclass
class Selection:
    ids: list[str]
    scores: dict[str, float] | None = None
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class StrategyFacts:
    """What the rest of the package needs to know about a strategy, given where it is registered."""

    uses_model: bool  # scores pairs with a clean model (the manifest records the model)
    uses_selection_config: bool = False  # reads SelectionConfig (the manifest records its values)
    ranks_the_pool: bool = False  # others pick inside its top-scored pool, so their data can equal its data


Strategy = Callable[[SelectionContext], Selection]
STRATEGIES: Registry[Strategy] = Registry("selection strategy")


def strategy_facts(name: str) -> StrategyFacts:
    return STRATEGIES.facts(name)


DPO_SCORE = "beta*log(pi/pi_ref)(chosen) - beta*log(pi/pi_ref)(rejected), clean LoRA DPO model vs base"


def rank_by_score(scores: dict[str, float]) -> list[str]:
    """Ids, highest score first; ties broken by id so the order is deterministic."""
    return sorted(scores, key=lambda pid: (-scores[pid], pid))


@STRATEGIES.register("random", facts=StrategyFacts(uses_model=False))
def select_random(ctx: SelectionContext) -> Selection:
    """A seeded uniform sample of ``n_poison`` pairs (the paper's baseline)."""
    order = ctx.rng("select/random").permutation(len(ctx.dataset))[: ctx.n_poison]
    return Selection([ctx.dataset[int(i)].id for i in order])


@STRATEGIES.register("dpo-score", facts=StrategyFacts(uses_model=True, ranks_the_pool=True))
def select_dpo_score(ctx: SelectionContext) -> Selection:
    """The pairs a clean DPO model prefers most confidently (highest DPO score) -- arXiv 2406.12091.

    Flipping the pairs the clean model is surest about maximises the error the
    poisoned gradient has to fight, which is why so few of them suffice.
    """
    from poisonlab.training.clean_model import clean_dpo_scores

    scores = clean_dpo_scores(ctx)
    return Selection(rank_by_score(scores)[: ctx.n_poison], scores, {"score": DPO_SCORE})


@dataclass
class CandidatePool:
    """The top pairs by DPO score that gradient-projection and semantic-diversity choose from."""

    ids: list[str]  # highest DPO score first
    dpo_scores: dict[str, float]  # every pair's
    ranked: list[str]  # every pair, highest DPO score first

    def details(self, ctx: SelectionContext) -> dict[str, Any]:
        return {
            "candidates": len(self.ids),
            "candidate_share": ctx.selection.candidate_share,
            "candidates_enlarged_to_budget": len(self.ids) == ctx.n_poison > self.target(ctx),
        }

    @staticmethod
    def target(ctx: SelectionContext) -> int:
        return math.ceil(ctx.selection.candidate_share * len(ctx.dataset))


def candidate_pool(ctx: SelectionContext) -> CandidatePool:
    """Top ``candidate_share`` of the pairs by clean DPO score (paper: 5%), at least ``n_poison`` of them."""
    from poisonlab.training.clean_model import clean_dpo_scores

    scores = clean_dpo_scores(ctx)
    ranked = rank_by_score(scores)
    size = min(len(ranked), max(ctx.n_poison, CandidatePool.target(ctx)))
    return CandidatePool(ranked[:size], scores, ranked)
