"""The verdict's statistics against hand-computed values, scipy's own tests, and Monte Carlo
coverage with known true means."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from hpo.verdict import compare_kinds, profile_conclusion, seed_summary

pytestmark = pytest.mark.unit

# Student t quantiles from a printed table (two-sided 95%): df 4 -> 2.776, df 2 -> 4.303.
T_975_DF4 = 2.776445
T_975_DF2 = 4.302653


def test_seed_summary_by_hand() -> None:
    s = seed_summary([1.0, 2.0, 3.0, 4.0, 5.0])
    half = T_975_DF4 * math.sqrt(2.5) / math.sqrt(5)  # sd = sqrt(2.5)
    assert s.n == 5 and s.mean == pytest.approx(3.0)
    assert s.sd == pytest.approx(math.sqrt(2.5))
    assert (s.ci_low, s.ci_high) == pytest.approx((3.0 - half, 3.0 + half), abs=1e-5)


def test_seed_summary_matches_scipy_one_sample_interval() -> None:
    x = np.random.default_rng(3).normal(0.7, 0.2, size=7)
    ci = stats.ttest_1samp(x, 0.0).confidence_interval(0.95)
    s = seed_summary(x)
    assert (s.ci_low, s.ci_high) == pytest.approx((ci.low, ci.high), rel=1e-12)


def test_a_divergence_interval_never_reaches_below_zero() -> None:
    x = [0.1, 0.12, 3.0]  # one diverging seed: the t-interval of the mean reaches below 0
    ci = stats.ttest_1samp(x, 0.0).confidence_interval(0.95)
    assert ci.low < 0
    plain, floored = seed_summary(x), seed_summary(x, floor=0.0)
    assert (plain.ci_low, plain.ci_high) == pytest.approx((ci.low, ci.high), rel=1e-12)
    assert floored.ci_low == 0.0 and floored.ci_high == pytest.approx(ci.high, rel=1e-12)
    assert seed_summary([0.5, 0.6, 0.7], floor=0.0) == seed_summary([0.5, 0.6, 0.7])


def test_one_seed_has_a_mean_and_no_interval() -> None:
    s = seed_summary([0.4])
    assert s.mean == 0.4 and s.n == 1
    assert math.isnan(s.sd) and math.isnan(s.ci_low) and math.isnan(s.ci_high)


@pytest.mark.parametrize("bad", [[], [1.0, float("nan")], [[1.0, 2.0]]])
def test_bad_seed_values_are_refused(bad) -> None:
    with pytest.raises(ValueError):
        seed_summary(bad)


def test_welch_by_hand() -> None:
    # a: mean 2, var 1 (n 3); b: mean 6, var 2.5 (n 5). va = 1/3, vb = 1/2.
    d = compare_kinds([1, 2, 3], [4, 5, 6, 7, 8], "classical", "quantum")
    se = math.sqrt(1 / 3 + 1 / 2)
    df = (1 / 3 + 1 / 2) ** 2 / ((1 / 3) ** 2 / 2 + (1 / 2) ** 2 / 4)
    assert d.difference == pytest.approx(-4.0)
    assert d.df == pytest.approx(df) and d.df == pytest.approx(5.882353, abs=1e-6)
    assert d.t == pytest.approx(-4.0 / se)
    assert d.established and d.winner == "classical"
    assert d.sentence.startswith("classical is better than quantum: its D_s is lower by 4.000")


def test_welch_matches_scipy() -> None:
    rng = np.random.default_rng(11)
    a, b = rng.normal(1.0, 0.3, 5), rng.normal(1.2, 0.6, 6)
    ref = stats.ttest_ind(a, b, equal_var=False)
    ci = ref.confidence_interval(0.95)
    d = compare_kinds(a, b)
    assert d.t == pytest.approx(ref.statistic, rel=1e-12)
    assert d.p_value == pytest.approx(ref.pvalue, rel=1e-10)
    assert (d.ci_low, d.ci_high) == pytest.approx((ci.low, ci.high), rel=1e-10)
    assert d.established == (ref.pvalue < 0.05)


def test_interval_across_zero_says_not_established() -> None:
    d = compare_kinds([0.46, 0.70, 0.55, 0.80, 0.62], [1.01, 0.50, 1.60, 1.20, 0.90],
                      "classical", "quantum", at="s = 0.5")
    assert d.ci_low < 0 < d.ci_high and not d.established and d.winner is None
    assert d.p_value > 0.05
    assert d.sentence.startswith("At s = 0.5, a difference between classical and quantum is "
                                 "not established")


def test_too_few_seeds_is_not_established() -> None:
    d = compare_kinds([0.1], [0.9, 1.0, 1.1])
    assert not d.established and math.isnan(d.ci_low)
    assert "not established (fewer than 2 seeds" in d.sentence


def test_constant_sides_give_a_certain_sign() -> None:
    d = compare_kinds([1.0, 1.0], [2.0, 2.0], "q", "c")
    assert d.established and d.winner == "q" and d.ci_low == d.ci_high == -1.0


def test_welch_interval_covers_the_true_difference_95_percent() -> None:
    """Monte Carlo with known means: 4000 experiments of 5 vs 5 seeds, unequal sds."""
    rng = np.random.default_rng(2026)
    reps, covered, rejected_under_null = 4000, 0, 0
    for _ in range(reps):
        a, b = rng.normal(0.6, 0.18, 5), rng.normal(1.2, 0.56, 5)
        d = compare_kinds(a, b)
        covered += d.ci_low <= -0.6 <= d.ci_high
        n = compare_kinds(rng.normal(0.6, 0.18, 5), rng.normal(0.6, 0.56, 5))
        rejected_under_null += n.established
    # Binomial sd at p = 0.95 and 4000 draws: 0.0034; Welch is slightly conservative here.
    assert 0.935 <= covered / reps <= 0.975
    assert 0.025 <= rejected_under_null / reps <= 0.065


def test_profile_holds_only_when_every_factor_agrees() -> None:
    better = compare_kinds([0.1, 0.12, 0.11], [0.5, 0.52, 0.49], "classical", "quantum")
    unclear = compare_kinds([0.1, 0.5, 0.3], [0.2, 0.6, 0.1], "classical", "quantum")
    worse = compare_kinds([0.5, 0.52, 0.49], [0.1, 0.12, 0.11], "classical", "quantum")
    same = profile_conclusion({0.5: better, 1.0: better, 2.0: better})
    assert same.holds and same.conclusions == {"0.5": "classical", "1": "classical",
                                               "2": "classical"}
    assert "holds" in same.sentence and "classical is better" in same.sentence
    flips = profile_conclusion({0.5: worse, 1.0: better, 2.0: unclear})
    assert not flips.holds
    assert flips.conclusions == {"0.5": "quantum", "1": "classical", "2": "not established"}
    assert "depends on the resolution" in flips.sentence
    none = profile_conclusion({0.5: unclear, 1.0: unclear})
    assert none.holds and "no difference is established" in none.sentence
    with pytest.raises(ValueError):
        profile_conclusion({})


def test_t_table_value_for_three_seeds() -> None:
    s = seed_summary([0.0, 1.0, 2.0])  # sd 1
    assert s.ci_high - s.mean == pytest.approx(T_975_DF2 / math.sqrt(3), abs=1e-5)
