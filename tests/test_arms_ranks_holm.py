"""The rank test against scipy and its closed-form floor; Holm against hand-computed cases, the
step-down rule written out, and its family-wise error under the global null by simulation."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy import stats

from hpo.arms import holm, min_rank_p, rank_test

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("n_a, n_b, floor", [
    (3, 3, 0.1), (3, 4, 2 / 35), (4, 4, 2 / 70), (3, 5, 2 / 56), (2, 2, 1 / 3), (1, 1, 1.0),
    (1, 5, 1 / 3),  # 2 / C(6, 1): one value against five is at best rank 1 of 6
])
def test_min_rank_p_closed_form(n_a, n_b, floor) -> None:
    assert min_rank_p(n_a, n_b) == pytest.approx(floor)


@pytest.mark.parametrize("n_a, n_b", [(3, 3), (3, 4), (4, 4), (3, 5), (2, 3)])
def test_min_rank_p_is_what_scipy_gives_for_complete_separation(n_a, n_b) -> None:
    a, b = np.arange(n_a) * 0.1, 1.0 + np.arange(n_b) * 0.1
    exact = stats.mannwhitneyu(a, b, alternative="two-sided", method="exact").pvalue
    assert exact == pytest.approx(min_rank_p(n_a, n_b))
    assert rank_test(a, b).p_value == pytest.approx(min_rank_p(n_a, n_b))


def test_three_searches_per_arm_cannot_reach_five_percent() -> None:
    r = rank_test([0.5, 0.6, 0.55], [1.1, 1.3, 1.2])
    assert r.p_value == pytest.approx(0.1) and r.min_p == pytest.approx(0.1)
    assert not r.can_reach and r.prob_a_lower == 1.0 and r.method == "exact"
    assert r.caveat == ("a rank test cannot reach 0.05 with 3 and 3 searches per arm "
                        "(smallest attainable p = 0.1)")
    four = rank_test([0.5, 0.6, 0.55, 0.7], [1.1, 1.3, 1.2, 0.65])
    assert four.can_reach and four.caveat == ""


def test_rank_test_matches_scipy_and_counts_pairs() -> None:
    rng = np.random.default_rng(5)
    for n_a, n_b in [(3, 4), (5, 5), (4, 6)]:
        a, b = rng.normal(0.0, 1.0, n_a), rng.normal(0.5, 1.0, n_b)
        ref = stats.mannwhitneyu(a, b, alternative="two-sided", method="exact")
        r = rank_test(a, b)
        assert r.u == ref.statistic and r.p_value == pytest.approx(ref.pvalue, rel=1e-12)
        lower = sum(x < y for x, y in itertools.product(a, b)) / (n_a * n_b)
        assert r.prob_a_lower == pytest.approx(lower)


def test_ties_use_the_normal_approximation() -> None:
    a, b = [0.5, 0.6, 0.6, 0.7], [0.6, 0.9, 1.0, 1.1]
    r = rank_test(a, b)
    ref = stats.mannwhitneyu(a, b, alternative="two-sided", method="asymptotic")
    assert r.method == "asymptotic" and r.p_value == pytest.approx(ref.pvalue, rel=1e-12)
    with pytest.raises(ValueError):
        rank_test([], [1.0])
    with pytest.raises(ValueError):
        min_rank_p(0, 3)


@pytest.mark.parametrize("p, adjusted", [
    ([0.01, 0.04, 0.03], [0.03, 0.06, 0.06]),   # 3 x 0.01; max(0.06, 2 x 0.03); max(0.06, 0.04)
    ([0.5, 0.6], [1.0, 1.0]),                   # 2 x 0.5 = 1; capped, and kept monotone
    ([0.02], [0.02]),                           # one test: nothing to correct
    ([0.001, 0.2, 0.01], [0.003, 0.2, 0.02]),   # 3 x 0.001; 2 x 0.01; 1 x 0.2
    ([0.03, 0.03, 0.03], [0.09, 0.09, 0.09]),   # ties: 0.09, 0.06 -> 0.09, 0.03 -> 0.09
])
def test_holm_by_hand(p, adjusted) -> None:
    assert holm(p) == pytest.approx(adjusted)


def _step_down(p: np.ndarray, alpha: float) -> np.ndarray:
    """Holm (1979) as written: reject the sorted hypotheses while p_(j) <= alpha / (m - j + 1)."""
    rejected = np.zeros(p.size, dtype=bool)
    for j, i in enumerate(np.argsort(p, kind="stable")):
        if p[i] > alpha / (p.size - j):
            break
        rejected[i] = True
    return rejected


def test_holm_decides_as_the_step_down_rule_and_keeps_the_order() -> None:
    rng = np.random.default_rng(7)
    for _ in range(2000):
        m = int(rng.integers(1, 7))
        p = rng.uniform(0.0, 0.1, m) ** rng.uniform(0.5, 2.0)
        adj = holm(p)
        for alpha in (0.01, 0.05, 0.1):
            assert np.array_equal(adj <= alpha, _step_down(p, alpha))
        order = np.argsort(p, kind="stable")
        assert np.all(np.diff(adj[order]) >= 0.0) and np.all(adj >= p) and np.all(adj <= 1.0)


@pytest.mark.parametrize("bad", [[], [0.1, 1.2], [-0.1], [float("nan")]])
def test_holm_refuses_what_is_not_p_values(bad) -> None:
    with pytest.raises(ValueError):
        holm(bad)


def test_holm_family_wise_error_under_the_global_null() -> None:
    """Three resolutions, no difference at any. Independent uniform p-values: Holm rejects
    anything iff min p <= alpha / 3, so FWER = 1 - (1 - alpha/3)^3 = 0.0492 exactly. Correlated
    p-values (z-tests on equicorrelated data, rho = 0.8, as nearby resolutions are): FWER stays
    below alpha (Holm holds under any dependence; it is conservative here)."""
    rng = np.random.default_rng(11)
    reps, alpha = 20000, 0.05
    independent = rng.uniform(size=(reps, 3))
    fwer = np.mean([np.any(holm(p) <= alpha) for p in independent])
    exact = 1 - (1 - alpha / 3) ** 3
    sd = math.sqrt(exact * (1 - exact) / reps)  # 0.0015
    assert abs(fwer - exact) <= 4 * sd
    # Unadjusted, the same family is wrong 1 - 0.95^3 = 14% of the time.
    assert np.mean(np.any(independent <= alpha, axis=1)) == pytest.approx(0.1426, abs=0.01)
    cov = 0.8 + 0.2 * np.eye(3)
    z = rng.multivariate_normal(np.zeros(3), cov, size=4000)
    p = 2 * stats.norm.sf(np.abs(z))
    fwer_dependent = np.mean([np.any(holm(row) <= alpha) for row in p])
    assert fwer_dependent <= alpha + 4 * math.sqrt(alpha * (1 - alpha) / 4000)
