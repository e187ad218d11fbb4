"""The statistics every table reports through: exact tests, intervals that agree with them, pairing, q-values, sign."""

from __future__ import annotations

import numpy as np
import pytest

from poisonlab.evaluation.judging import judge_metrics
from poisonlab.evaluation.stats import (
    bh_qvalues,
    difference_of_differences,
    paired_difference,
    sign_flip,
    sign_flip_p,
)

N = 60


def _k_of_n_one_way(k: int) -> tuple[np.ndarray, np.ndarray]:
    clean, triggered = np.zeros(N), np.zeros(N)
    triggered[:k] = 1.0
    return clean, triggered


@pytest.mark.parametrize(("k", "exact"), [(3, 0.25), (4, 0.125), (5, 0.0625), (12, 2 * 0.5**12)])
def test_k_of_60_prompts_one_way_is_the_exact_sign_test(k: int, exact: float) -> None:
    # the normal-approximation Wilcoxon gave 0.083, 0.046, 0.025 for k = 3, 4, 5
    clean, triggered = _k_of_n_one_way(k)
    zeros = np.zeros(N)
    backdoor = difference_of_differences(clean, triggered, zeros, zeros, "rate")
    mcnemar = paired_difference(clean, triggered, "rate")
    assert backdoor["p_value"] == pytest.approx(exact, rel=1e-6)
    assert mcnemar["p_value"] == pytest.approx(exact, rel=1e-6)
    assert backdoor["value"] == mcnemar["value"] == pytest.approx(k / N, abs=1e-6)


@pytest.mark.parametrize("k", [3, 4, 5, 6, 7, 8, 12])
def test_intervals_contain_zero_exactly_when_the_test_cannot_reject(k: int) -> None:
    clean, triggered = _k_of_n_one_way(k)
    zeros = np.zeros(N)
    for result in (
        paired_difference(clean, triggered, "rate"),
        difference_of_differences(clean, triggered, zeros, zeros, "rate"),
    ):
        low, high = result["ci"]
        assert low <= result["value"] <= high and high > result["value"]
        assert (low <= 0 <= high) == (result["p_value"] > 0.05), result


def test_twelve_against_none_discordant_and_ties() -> None:
    before, after = np.zeros(40), np.zeros(40)
    after[:12] = 1.0
    after[12:20], before[12:20] = 1.0, 1.0  # ties: both yes
    assert paired_difference(before, after, "rate")["p_value"] == pytest.approx(2 * 0.5**12)
    assert paired_difference(before, before, "rate")["p_value"] == 1.0
    assert sign_flip([0.0, 0.0, 0.0])["ci"] == [0.0, 0.0]


def test_mixed_magnitudes_are_enumerated_by_hand() -> None:
    # differences 2, 1, -1: sums over the 8 sign patterns are +-2 +-1 +-1; |sum| >= 2 in 6 of them
    assert sign_flip_p([2, 1, -1, 0, 0])[0] == pytest.approx(6 / 8)
    # the same with non-whole numbers goes through the enumeration of 2^k patterns and agrees
    assert sign_flip_p([2.5, 1.5, -1.5])[0] == pytest.approx(6 / 8)


@pytest.mark.numeric
def test_many_non_whole_differences_use_monte_carlo_and_say_so() -> None:
    rng = np.random.default_rng(0)
    d = rng.normal(0.0, 1.0, 50) + 1e-3
    _, test, se = sign_flip_p(d)
    assert "Monte Carlo (100,000 draws" in test and 0 < se < 0.002
    null = [sign_flip_p(rng.normal(0.0, 1.0, 30), draws=2000, seed=s)[0] for s in range(200)]
    assert 0.01 < np.mean(np.array(null) < 0.05) < 0.1  # holds its level on a null


def test_effects_are_signed_so_that_positive_means_the_attacker_gained() -> None:
    clean, triggered = np.ones(N), np.ones(N)
    triggered[:20] = 0.0  # a refusal judge: the trigger removes 20 refusals
    zeros_harm = paired_difference(clean, triggered, "rate", harmful_when="low")
    assert zeros_harm["value"] == pytest.approx(20 / N, abs=1e-6) and zeros_harm["ci"][0] > 0
    harm_high = paired_difference(1 - clean, 1 - triggered, "rate", harmful_when="high")
    assert harm_high["value"] == zeros_harm["value"] and harm_high["p_value"] == zeros_harm["p_value"]


def test_pairing_uses_only_the_prompts_every_cell_shares() -> None:
    # the reviewer's hand case: one unparsed judgment on each side must not shift the prompts against each other
    nan = float("nan")
    model = {("1", False): 1, ("1", True): 0, ("2", False): 1, ("2", True): 1}
    model |= {("3", False): 1, ("3", True): 0, ("4", False): nan, ("4", True): 0}
    twin = {("1", False): 1, ("1", True): 1, ("2", False): 1, ("2", True): 1}
    twin |= {("3", False): nan, ("3", True): 1, ("4", False): 1, ("4", True): 1}
    twin.pop(("2", True))  # and one missing judgment
    metrics = judge_metrics(model, "rate", twin, harmful_when="low")
    backdoor = metrics["backdoor_effect"]
    # shared by all four cells: prompt 1 only (2: twin's triggered missing; 3, 4: unparsed)
    assert backdoor["n"] == 1 and backdoor["value"] == pytest.approx(1.0)
    assert backdoor["dropped"] == {"missing": 1, "unparsed": 2}
    assert metrics["contamination"]["n"] == 2 and metrics["contamination"]["dropped"] == {"missing": 0, "unparsed": 2}
    assert metrics["trigger_effect"]["n"] == 3 and metrics["trigger_effect"]["dropped"]["unparsed"] == 1


def test_benjamini_hochberg_q_values() -> None:
    # by hand: sorted p 0.01, 0.02, 0.03, 0.5 -> p*m/rank 0.04, 0.04, 0.04, 0.5 (monotone from the top)
    assert bh_qvalues([0.03, 0.5, 0.01, 0.02]) == pytest.approx([0.04, 0.5, 0.04, 0.04])
    assert np.isnan(bh_qvalues([float("nan"), 0.01])[0])
