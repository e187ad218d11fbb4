"""Semantic-diversity selection (arXiv 2406.12091): spread the poison over prompt topics.

Embed the prompts of the candidate pairs (top 5% by clean DPO score), cluster
them with seeded k-means (paper: k = 3 and 10), and take an equal share of the
poison budget from every cluster, highest DPO score first. The paper's code
normalised each embedding *column* across samples (``normalize(dim=0)``),
most likely a slip; here each embedding is L2-normalised, so k-means works on
cosine geometry. The remainder of the budget goes one pair each to the
clusters whose best pair scores highest; a cluster too small for its share
leaves the rest to the top-scored candidates not yet taken.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from poisonlab.attacks.strategies.base import (
    DPO_SCORE,
    STRATEGIES,
    Selection,
    SelectionContext,
    StrategyFacts,
    candidate_pool,
)


def cluster_prompts(embeddings: np.ndarray, n_clusters: int, seed: int) -> np.ndarray:
    """k-means labels of row-normalised embeddings (k capped at the number of rows)."""
    from sklearn.cluster import KMeans

    norms = np.linalg.norm(embeddings, axis=1, keepdims=True)
    unit = embeddings / np.where(norms == 0, 1, norms)
    k = min(n_clusters, len(unit))
    kmeans = KMeans(n_clusters=k, init="k-means++", n_init=10, random_state=seed)
    return kmeans.fit_predict(unit)


def stratified_pick(ranked: Sequence[str], labels: Sequence[int], budget: int) -> tuple[list[str], list[dict]]:
    """``budget`` ids from ``ranked`` (best first) with an equal share per cluster label.

    Returns the picks (in ``ranked`` order) and, per cluster, its size, share and how many it gave.
    """
    members: dict[int, list[str]] = {}  # label -> ids, best first
    for pid, label in zip(ranked, labels):
        members.setdefault(int(label), []).append(pid)
    rank = {pid: i for i, pid in enumerate(ranked)}
    # clusters in the order of their best pair's rank: the remainder goes to the strongest clusters
    order = sorted(members, key=lambda label: rank[members[label][0]])
    base, extra = divmod(budget, len(order))
    quota = {label: base + (1 if i < extra else 0) for i, label in enumerate(order)}
    picked = {pid for label in order for pid in members[label][: quota[label]]}
    for pid in ranked:  # clusters that ran short: fill with the best remaining candidates
        if len(picked) >= budget:
            break
        picked.add(pid)
    chosen = [pid for pid in ranked if pid in picked]
    report = [
        {"cluster": i, "size": len(ids), "share": quota[label], "picked": sum(p in picked for p in ids)}
        for i, (label, ids) in enumerate((label, members[label]) for label in order)
    ]
    return chosen, report


@STRATEGIES.register("semantic-diversity", facts=StrategyFacts(uses_model=True, uses_selection_config=True))
def select_semantic_diversity(ctx: SelectionContext) -> Selection:
    """Equal shares of the budget from k-means clusters of the top DPO-scored prompts -- arXiv 2406.12091."""
    from poisonlab.scoring.encoders import embed_prompts, get_encoder

    options = ctx.selection
    pool = candidate_pool(ctx)
    prompts = {p.id: p.prompt for p in ctx.dataset}
    encoder = get_encoder(options.encoder, ctx.model)
    embeddings = embed_prompts(encoder, [prompts[i] for i in pool.ids], options.embed_batch_size, ctx.progress)
    labels = cluster_prompts(embeddings, options.n_clusters, ctx.seed)
    chosen, clusters = stratified_pick(pool.ids, labels, ctx.n_poison)
    details: dict[str, Any] = {
        "score": DPO_SCORE,
        **pool.details(ctx),
        "encoder": options.encoder,
        "encoder_centred": encoder.centre,
        "n_clusters": len(clusters),
        "clusters": clusters,
    }
    return Selection(chosen, {pid: pool.dpo_scores[pid] for pid in pool.ids}, details)
