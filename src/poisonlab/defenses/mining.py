"""Trigger mining: name the prompt n-grams that mark the pairs a preference set's labels disagree with.

A backdoor's poison is the same few words in many prompts whose labels are
flipped. So: rank pairs by a suspicion signal; for each share s in
``mining_shares`` take the top s of the pairs as a suspicious set S_s, and test
every prompt n-gram (1-3 words, within one turn, in at least
``mining_min_count`` prompts) for over-representation in S_s with the one-sided
hypergeometric (Fisher exact) test

    p_g,s = P[X >= k_g,s],  X ~ Hypergeom(N, K_g, |S_s|),   p_g = min_s p_g,s x #shares

(N pairs, K_g of them contain g, k_g,s of those in S_s; the minimum over shares
is Bonferroni-corrected, so a trigger in 5 pairs is found by the 1% set and one
in 10% of the pairs by the 10-20% sets), then control the false discovery rate
over all n-grams with Benjamini-Hochberg (q_g). The significant
n-grams (q_g < ``mining_fdr``) are explained away greedily, most significant
first (the longest n-gram among equals, so the whole phrase is named): an
n-gram is kept as a *suspected trigger* only if it is still
significant (p < fdr / #significant) on the pairs no kept n-gram covers, so
"please" does not ride along with "please answer honestly". Pairs containing a
suspected trigger are flagged; a pair's score is the strength -log10(q) of the
strongest n-gram it contains (plus its suspicion percentile / 100 to break
ties), so the ranking can be judged where nothing is flagged.

Signals (the two registered detectors):
- ``trigger-mining``: the DPO loss -log sigmoid(DPO score) under the model
  trained on the data, as the ``loss`` detector: the pairs the model
  disagrees with most. Once a backdoor is learned the model fits its rows
  well and this signal fades (``mine_triggers(two_sided=True)`` also tests the
  best-fitted tail; measured on the synthetic set it found nothing more and
  doubled the false positives on clean data, so it is off).
- ``trigger-mining-reply`` (model-free but for a text encoder): how far a pair's
  reply difference d_i = e(chosen) - e(rejected) points against those of the
  ``mining_neighbours`` pairs with the most similar prompts, -cos(d_i, mean d_j),
  and, as a second signal in the same Bonferroni family, against the data's
  mean difference. A flipped pair's difference points the other way whether or
  not a model has learned it, which the loss cannot say once the backdoor is
  learned. (Measured: the neighbour signal alone kept the synthetic set's benign
  topics from looking swapped but lost HH-RLHF's triggers; the mean alone the
  reverse.)

Relation to prior work: the enrichment test is the keyword-scan idea of
BKI / "backdoor keyword identification" (Chen & Dai, 2021) and of BAIT/BEAT-style
trigger naming for LLMs, made a proper test with FDR control (Benjamini &
Hochberg, 1995; scipy.stats.false_discovery_control). It does nothing against
label flips without a trigger; that is what ``loss`` is for.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from poisonlab.data.dialogue import ASSISTANT, HUMAN, SYSTEM
from poisonlab.defenses.detectors.base import Detection, DetectionContext

_TURN = re.compile("|".join(re.escape(tag) for tag in (HUMAN, ASSISTANT, SYSTEM)))
_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")


def prompt_ngrams(prompt: str, max_n: int = 3) -> Iterator[str]:
    """Lower-cased word n-grams (1..max_n) of each turn of an HH prompt; none spans two turns."""
    for turn in _TURN.split(prompt):
        words = _WORD.findall(turn.lower())
        for n in range(1, max_n + 1):
            for i in range(len(words) - n + 1):
                yield " ".join(words[i : i + n])


@dataclass
class SuspectedTrigger:
    ngram: str
    pairs: int  # pairs whose prompt contains it
    suspicious_share: float  # the suspicious set it is most over-represented in: this share of the pairs
    tail: str  # "high" (most suspicious) or "low" (least: a learned backdoor's rows, fitted best)
    in_suspicious: int  # of its pairs, in that set
    expected: float  # in that set by chance
    p_value: float
    q_value: float  # Benjamini-Hochberg

    def reason(self, signals: tuple[str, str], unit: str = "pairs") -> str:
        signal = signals[0] if self.tail == "high" else signals[1]
        return (
            f"prompt contains '{self.ngram}': {self.in_suspicious} of its {self.pairs} {unit} are among the "
            f"{self.suspicious_share:.0%} {signal} (expected {self.expected:.1f}; BH q={self.q_value:.1e})"
        )


@dataclass
class MiningResult:
    ngrams: list[str]
    q_values: np.ndarray  # per n-gram
    triggers: list[SuspectedTrigger]
    matrix: Any  # scipy.sparse (pairs x n-grams), binary
    suspicion_rank: np.ndarray  # per pair, 0 = most suspicious


def mine_triggers(
    prompts: list[str],
    suspicion: np.ndarray | list[np.ndarray],
    shares: list[float],
    fdr: float,
    min_count: int,
    max_n: int = 3,
    two_sided: bool = False,
) -> MiningResult:
    """Test every n-gram for over-representation among the most suspicious pairs (see module doc).

    ``suspicion`` may be several signals: each gives its own suspicious sets, all in one Bonferroni family.
    """
    from scipy.stats import false_discovery_control, hypergeom
    from sklearn.feature_extraction.text import CountVectorizer

    n = len(prompts)
    signals = suspicion if isinstance(suspicion, list) else [suspicion]
    ranks = []
    for values in signals:  # 0 = most suspicious; ties by position
        rank = np.empty(n, dtype=np.int64)
        rank[np.lexsort((np.arange(n), -values))] = np.arange(n)
        ranks.append(rank)
    rank = ranks[0]
    sizes = sorted({max(1, math.ceil(share * n)) for share in shares})
    # (size, tail, mask): per signal the top `size` pairs, and with two_sided also the bottom `size`
    sets = [(size, "high", r < size) for r in ranks for size in sizes]
    if two_sided:
        sets += [(size, "low", r >= n - size) for r in ranks for size in sizes]
    vectorizer = CountVectorizer(
        analyzer=lambda text: list(dict.fromkeys(prompt_ngrams(text, max_n))),
        binary=True,
        min_df=min(min_count, n),
        max_df=0.5,
        dtype=np.int32,
    )
    try:
        matrix = vectorizer.fit_transform(prompts).tocsc()
    except ValueError:  # no n-gram in enough prompts: nothing to test
        return MiningResult([], np.ones(0), [], None, rank)
    ngrams = vectorizer.get_feature_names_out().tolist()
    length = np.array([g.count(" ") + 1 for g in ngrams])
    in_all = np.asarray(matrix.sum(axis=0)).ravel()
    per_set = []
    for size, _, mask in sets:
        k = np.asarray(matrix[mask].sum(axis=0)).ravel()
        per_set.append((k, hypergeom.sf(k - 1, n, in_all, size)))
    all_p = np.stack([p for _, p in per_set])
    best = all_p.argmin(axis=0)
    p_values = np.clip(all_p.min(axis=0) * len(sets), 0, 1)  # Bonferroni over the sets tried
    q_values = false_discovery_control(p_values, method="bh")

    significant = np.flatnonzero(q_values < fdr)
    # strongest first; among equals the longer n-gram (the whole phrase), then the more frequent
    significant = significant[np.lexsort((-in_all[significant], -length[significant], p_values[significant]))]
    covered = np.zeros(n, dtype=bool)
    triggers = []
    for column in significant:
        size, tail, suspicious = sets[best[column]]
        rows = matrix[:, column].nonzero()[0]
        fresh = rows[~covered[rows]]
        k = int(suspicious[fresh].sum())
        uncovered, uncovered_suspicious = int((~covered).sum()), int((suspicious & ~covered).sum())
        p_left = hypergeom.sf(k - 1, uncovered, len(fresh), uncovered_suspicious) * len(sets) if k else 1.0
        if k < 2 or p_left >= fdr / len(significant):
            continue
        covered[rows] = True
        triggers.append(
            SuspectedTrigger(
                ngrams[column],
                int(in_all[column]),
                size / n,
                tail,
                int(per_set[best[column]][0][column]),
                float(in_all[column] * size / n),
                float(p_values[column]),
                float(q_values[column]),
            )
        )
    return MiningResult(ngrams, q_values, triggers, matrix, rank)


def mining_detection(
    name: str,
    ctx: DetectionContext,
    suspicion: np.ndarray | list[np.ndarray],
    signals: tuple[str, str],
    two_sided: bool,
    unit: str = "pairs",
) -> Detection:
    """Mine, flag the pairs that contain a suspected trigger, score every pair, and say why for each flag.

    ``signals`` names the high and the low tail of ``suspicion`` for the reasons; ``unit`` what a row is.
    """
    config, ids = ctx.config, ctx.dataset.ids
    prompts = [pair.prompt for pair in ctx.dataset]
    mined = mine_triggers(
        prompts, suspicion, config.mining_shares, config.mining_fdr, config.mining_min_count, two_sided=two_sided
    )
    suspicion = suspicion[0] if isinstance(suspicion, list) else suspicion
    percentile = 1 - mined.suspicion_rank / max(1, len(ids))
    strength = np.zeros(len(ids))
    if mined.matrix is not None:
        weights = -np.log10(np.clip(mined.q_values, 1e-300, 1.0))
        # strongest n-gram per pair: max over the nonzero columns of each row
        rows = mined.matrix.tocsr()
        for i in range(len(ids)):
            columns = rows.indices[rows.indptr[i] : rows.indptr[i + 1]]
            if len(columns):
                strength[i] = weights[columns].max()
    scores = strength + percentile / 100

    column_of = {g: c for c, g in enumerate(mined.ngrams)}
    flagged_by: dict[str, SuspectedTrigger] = {}
    for trigger in mined.triggers:  # strongest first: a pair's reason is its strongest trigger
        for row in mined.matrix[:, column_of[trigger.ngram]].nonzero()[0]:
            flagged_by.setdefault(ids[row], trigger)
    flagged = sorted(flagged_by, key=lambda pid: -scores[ids.index(pid)])
    details = {
        "score": "max over the prompt's n-grams of -log10(BH q) of its over-representation among the "
        f"{' or '.join(signals if two_sided else signals[:1])} (hypergeometric test at shares "
        f"{config.mining_shares}), + suspicion percentile / 100",
        "signal": signals[0],
        "two_sided": two_sided,
        "ngrams_tested": len(mined.ngrams),
        "suspected_triggers": [t.__dict__ for t in mined.triggers],
    }
    reasons = {pid: trigger.reason(signals, unit) for pid, trigger in flagged_by.items()}
    return Detection(name, dict(zip(ids, scores.tolist())), flagged, details, reasons)


def local_disagreement(differences: np.ndarray, prompts: np.ndarray, k: int) -> np.ndarray:
    """-cos(d_i, mean of d_j over the k pairs with the most similar prompts): label (in)consistency with neighbours.

    Comparing with neighbours rather than the data's mean keeps a kind of request whose replies differ in
    another way (benign requests: help vs brush-off, among unsafe ones: refuse vs comply) from looking
    swapped as a whole; a flipped pair still points against its neighbours. An inserted trigger barely
    moves a sentence embedding, so a poisoned prompt's neighbours are clean prompts on its topic.
    """
    unit = prompts / np.maximum(np.linalg.norm(prompts, axis=1, keepdims=True), 1e-12)
    similarity = unit @ unit.T
    np.fill_diagonal(similarity, -np.inf)
    k = max(1, min(k, len(unit) - 1))
    neighbours = np.argpartition(-similarity, k - 1, axis=1)[:, :k]
    local = differences[neighbours].mean(axis=1)
    norms = np.linalg.norm(differences, axis=1) * np.linalg.norm(local, axis=1)
    return -(differences * local).sum(axis=1) / np.where(norms == 0, 1, norms)


def against_the_mean(vectors: np.ndarray) -> np.ndarray:
    """-cos(v_i, mean v): how far each row points against the data's mean direction."""
    mean = vectors.mean(axis=0)
    norms = np.linalg.norm(vectors, axis=1) * max(float(np.linalg.norm(mean)), 1e-12)
    return -(vectors @ mean) / np.where(norms == 0, 1, norms)
