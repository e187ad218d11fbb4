"""Gradient-projection selection (arXiv 2406.12091, the "dimensionality-reduced" variant of its code).

Among the candidate pairs (top 5% by clean DPO score), take each pair's
gradient of the DPO loss with respect to the clean model's LoRA weights,
project it to 4,096 dimensions with a seeded Rademacher matrix, and score it
by the length of its projection onto the unit mean projected gradient,
|p_i . u| with u = mean(p) / |mean(p)|. The pairs whose gradients most align
with the common update direction are poisoned. The paper's "full gradient"
script meant to do the same without projection but used only the last
sample's gradient as the mean (a bug); the mean here is the true mean.

Scores are cached next to the clean model, keyed by the candidate pool and the
projection settings, so a sweep over ratios computes the gradients once.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import TYPE_CHECKING

from poisonlab.attacks.strategies.base import (
    STRATEGIES,
    Selection,
    SelectionContext,
    StrategyFacts,
    candidate_pool,
    rank_by_score,
)
from poisonlab.io import atomic_write_json

if TYPE_CHECKING:
    import torch

SCORE = "|p_i . u|: projected DPO-loss gradient (clean LoRA model) onto the unit mean projected gradient"


def mean_projection_scores(projected: torch.Tensor) -> torch.Tensor:
    """|p_i . u| for u the unit mean of the rows: how far each gradient goes along the common direction."""
    import torch

    mean = projected.mean(dim=0)
    norm = mean.norm()
    if norm == 0:
        return torch.zeros(projected.shape[0])
    return (projected @ (mean / norm)).abs()


def projected_gradients(ctx: SelectionContext, ids: Sequence[str]) -> torch.Tensor:
    """(len(ids), projection_dim) projected per-pair DPO gradients at the clean model, rows in ``ids`` order."""
    from poisonlab.training.clean_model import clean_projected_gradients

    options = ctx.selection
    return clean_projected_gradients(
        ctx,
        ids,
        options.projection_dim,
        ctx.seed,
        options.projection,
        options.projection_block_rows,
        options.grad_batch_size,
    )


def _cache_key(ctx: SelectionContext, ids: Sequence[str]) -> str:
    from poisonlab.scoring.projection import RECIPE

    options = ctx.selection
    payload = [RECIPE, list(ids), options.projection, options.projection_dim, options.projection_block_rows, ctx.seed]
    return hashlib.sha256(json.dumps(payload).encode()).hexdigest()[:20]


def gradient_projection_scores(ctx: SelectionContext, ids: Sequence[str]) -> dict[str, float]:
    """Score of every id in ``ids`` (cached next to the clean model)."""
    from poisonlab.training.clean_model import clean_model_folder

    path = clean_model_folder(ctx) / "gradient-projection" / f"{_cache_key(ctx, ids)}.json"
    if path.exists():
        return json.loads(path.read_text())
    scores = mean_projection_scores(projected_gradients(ctx, ids))
    result = dict(zip(ids, scores.tolist()))
    atomic_write_json(path, result)
    return result


@STRATEGIES.register("gradient-projection", facts=StrategyFacts(uses_model=True, uses_selection_config=True))
def select_gradient_projection(ctx: SelectionContext) -> Selection:
    """Candidates whose projected DPO gradient lies furthest along the mean gradient -- arXiv 2406.12091."""
    pool = candidate_pool(ctx)
    scores = gradient_projection_scores(ctx, pool.ids)
    chosen = rank_by_score(scores)[: ctx.n_poison]
    shared = len(set(chosen) & set(pool.ranked[: ctx.n_poison]))
    details = {
        "score": SCORE,
        **pool.details(ctx),
        "projection": ctx.selection.projection,
        "projection_dim": ctx.selection.projection_dim,
        "projection_seed": ctx.seed,
        "overlap_with_dpo_score": {"shared": shared, "share": shared / len(chosen) if chosen else 0.0},
    }
    return Selection(chosen, scores, details)
