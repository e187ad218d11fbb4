"""The statistics of ``verify``: an exact rank test of secret triggers against matched controls.

For secret trigger i the model scores its response after the trigger and after M matched random
triggers (same generator, same shape, same response). Under the null -- the model never saw the key --
the secret trigger is one more draw from the generator, so its rank among the M + 1 scores is uniform
on {0..M}, and the K ranks are independent (the triggers are independent draws; the model is fixed).
The statistic is the sum of the K ranks r_i = #{controls scoring at least as high as the secret}; its
null distribution is the K-fold convolution of the uniform on {0..M}, computed exactly. Counting ties
against the secret trigger makes the test conservative, never anti-conservative.

This is the per-stratum rank test that the "rank of the secret among its controls" statistic of
Double-I (arXiv 2402.14883) and instructional fingerprinting (arXiv 2401.12255) calls for; it needs no
assumption about how log-likelihoods are distributed, only that controls are drawn like the secrets.
The smallest p-value it can give is (M + 1)^-K.

The optional second test (``fisher_generation``) counts exact greedy reproductions of the secret
response after secret and after control triggers, tested with Fisher's exact test as Double-I does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

RANK_TEST = "exact rank-sum test: secret trigger vs matched random triggers, same response (one-sided)"
FISHER_TEST = "Fisher's exact test (one-sided): exact greedy reproductions after secret vs control triggers"


@dataclass(frozen=True)
class RankTest:
    p_value: float
    rank_sum: int  # sum over triggers of the controls scoring at least as high as the secret
    null_mean: float  # expected rank sum under the null: K * M / 2
    ranks: list[int]
    auc: float  # P(secret scores above a control), ties half: 0.5 under the null, 1 when every secret wins
    min_p_value: float  # (M + 1)^-K: the test cannot go below this


def rank_sum_pmf(k: int, m: int) -> np.ndarray:
    """Exact distribution of the sum of ``k`` independent uniforms on {0..m}."""
    single = np.full(m + 1, 1.0 / (m + 1))
    pmf = np.array([1.0])
    for _ in range(k):
        pmf = np.convolve(pmf, single)
    return pmf


def rank_test(secret: Sequence[float], controls: Sequence[Sequence[float]]) -> RankTest:
    """One-sided: small rank sums (secret triggers beating their controls) are evidence of the watermark."""
    secret_arr = np.asarray(secret, dtype=np.float64)
    control_arr = np.asarray(controls, dtype=np.float64)
    if control_arr.ndim != 2 or control_arr.shape[0] != secret_arr.shape[0] or control_arr.shape[1] < 1:
        raise ValueError("controls must be a K x M array with M >= 1, K = len(secret)")
    k, m = control_arr.shape
    ranks = (control_arr >= secret_arr[:, None]).sum(axis=1).astype(int)
    below = (control_arr < secret_arr[:, None]).sum(axis=1)
    ties = (control_arr == secret_arr[:, None]).sum(axis=1)
    total = int(ranks.sum())
    p_value = float(min(1.0, rank_sum_pmf(k, m)[: total + 1].sum()))
    return RankTest(
        p_value=p_value,
        rank_sum=total,
        null_mean=k * m / 2,
        ranks=ranks.tolist(),
        auc=float(np.mean((below + 0.5 * ties) / m)),
        min_p_value=float((m + 1.0) ** -k),
    )


def fisher_generation(secret_hits: int, secret_n: int, control_hits: int, control_n: int) -> float:
    """One-sided Fisher's exact p-value that secret triggers reproduce the response more often than controls."""
    from scipy.stats import fisher_exact

    table = [[secret_hits, secret_n - secret_hits], [control_hits, control_n - control_hits]]
    return float(fisher_exact(table, alternative="greater").pvalue)
