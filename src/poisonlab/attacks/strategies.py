"""Poison-selection strategies: which pairs an attacker flips.

A strategy is a function registered by name that takes a
:class:`SelectionContext` and returns a :class:`Selection` (the chosen ids,
best first, plus whatever scores it computed, for the manifest).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from poisonlab.data.pairs import PreferenceDataset
from poisonlab.registry import Registry
from poisonlab.training.config import DPOTrainingConfig


@dataclass
class SelectionContext:
    """What a strategy may use. ``model`` and ``training`` matter to model-based strategies only."""

    dataset: PreferenceDataset
    n_poison: int
    seed: int
    model: str = "tiny"
    training: DPOTrainingConfig = field(default_factory=DPOTrainingConfig)
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


Strategy = Callable[[SelectionContext], Selection]
STRATEGIES: Registry[Strategy] = Registry("selection strategy")


@STRATEGIES.register("random")
def select_random(ctx: SelectionContext) -> Selection:
    """A seeded uniform sample of ``n_poison`` pairs (the paper's baseline)."""
    order = ctx.rng("select/random").permutation(len(ctx.dataset))[: ctx.n_poison]
    return Selection([ctx.dataset[int(i)].id for i in order])


@STRATEGIES.register("dpo-score")
def select_dpo_score(ctx: SelectionContext) -> Selection:
    """The pairs a clean DPO model prefers most confidently (highest DPO score) -- arXiv 2406.12091.

    Flipping the pairs the clean model is surest about maximises the error the
    poisoned gradient has to fight, which is why so few of them suffice.
    """
    from poisonlab.attacks.clean_model import clean_dpo_scores

    scores = clean_dpo_scores(ctx)
    ranked = sorted(scores, key=lambda pid: (-scores[pid], pid))  # ties broken by id: deterministic
    chosen = ranked[: ctx.n_poison]
    return Selection(
        chosen,
        scores,
        {"score": "beta*log(pi/pi_ref)(chosen) - beta*log(pi/pi_ref)(rejected), clean LoRA DPO model vs base"},
    )
