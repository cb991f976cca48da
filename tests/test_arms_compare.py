"""Arms over searches against scipy, hand-computed values, and Monte Carlo coverage of a known
difference under a model with search-level and seed-level noise."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from hpo.arms import Arm, arm_summary, compare_arms
from hpo.verdict import compare_kinds

pytestmark = pytest.mark.unit

CLASSICAL = [[0.50, 0.60, 0.55, 0.52, 0.58], [0.70, 0.65, 0.80, 0.75, 0.72],
             [0.45, 0.50, 0.60, 0.48, 0.52]]
QUANTUM = [[1.10, 1.30, 0.90, 1.00, 1.20], [1.60, 1.20, 1.40, 1.50, 1.30],
           [0.90, 1.00, 1.20, 0.95, 1.05], [1.30, 1.10, 1.00, 1.25, 1.15]]


@pytest.mark.parametrize("kind, searches", [
    ("classical", [[0.5, 0.6]]),                 # one search
    ("classical", [[0.5], []]),                  # a search without seeds
    ("classical", [[0.5], [float("nan")]]),      # a non-finite value
    ("classical", [[0.5], [[0.4, 0.6]]]),        # not flat
    ("", [[0.5], [0.6]]),                        # no kind
    ("classical", "ab"),                         # a string is not searches
])
def test_bad_arms_are_refused(kind, searches) -> None:
    with pytest.raises(ValueError):
        Arm(kind, searches)


def test_log_scale_refuses_values_at_or_below_zero() -> None:
    a = Arm("classical", [[0.5, -0.01], [0.6, 0.7]])
    with pytest.raises(ValueError, match="scale='nats'"):
        a.search_values("log")
    with pytest.raises(ValueError, match="scale"):
        a.search_values("linear")
    b = Arm("quantum", [[1.0, 1.1], [1.2, 1.3]])
    with pytest.raises(ValueError, match="scale='nats'"):
        compare_arms(a, b)
    assert compare_arms(a, b, scale="nats").difference < 0.0
    assert math.isnan(arm_summary(a).geometric_mean)


def test_arm_interval_over_searches_is_floored_at_zero() -> None:
    # Search means 0.05, 0.06 and 0.9: scipy's t-interval reaches below 0; the expected winner's
    # divergence cannot, so the summary's lower end is 0 and its upper end scipy's.
    arm = Arm("quantum", [[0.04, 0.06], [0.05, 0.07], [0.8, 1.0]])
    ref = stats.ttest_1samp(arm.search_values("nats"), 0.0).confidence_interval(0.95)
    assert ref.low < 0.0
    s = arm_summary(arm)
    assert s.over_searches.ci_low == 0.0
    assert s.over_searches.ci_high == pytest.approx(ref.high, rel=1e-12)


def test_arm_summary_by_hand_and_against_scipy() -> None:
    arm = Arm("classical", CLASSICAL)
    s = arm_summary(arm)
    means = [np.mean(x) for x in CLASSICAL]
    assert s.search_means == pytest.approx(means) and s.seeds == (5, 5, 5)
    ref = stats.ttest_1samp(means, 0.0).confidence_interval(0.95)
    assert (s.over_searches.ci_low, s.over_searches.ci_high) == pytest.approx((ref.low, ref.high))
    logs = [np.mean(np.log(x)) for x in CLASSICAL]
    ref_log = stats.ttest_1samp(logs, 0.0).confidence_interval(0.95)
    assert s.geometric_mean == pytest.approx(math.exp(np.mean(logs)))
    assert (s.geo_ci_low, s.geo_ci_high) == pytest.approx((math.exp(ref_log.low),
                                                           math.exp(ref_log.high)))
    # Pooled seed sd: equal seed counts, so the root of the mean within-search variance.
    assert s.seed_sd == pytest.approx(math.sqrt(np.mean([np.var(x, ddof=1) for x in CLASSICAL])))
    assert arm.best_search() == 2 and arm.n_searches == 3


def test_compare_arms_matches_scipy_welch_over_searches() -> None:
    a, b = Arm("classical", CLASSICAL), Arm("quantum", QUANTUM)
    c = compare_arms(a, b)
    ma, mb = [np.mean(x) for x in CLASSICAL], [np.mean(x) for x in QUANTUM]
    ref = stats.ttest_ind(ma, mb, equal_var=False)
    ci = ref.confidence_interval(0.95)
    assert c.difference == pytest.approx(np.mean(ma) - np.mean(mb))
    assert (c.ci_low, c.ci_high) == pytest.approx((ci.low, ci.high), rel=1e-10)
    assert c.p_difference == pytest.approx(ref.pvalue, rel=1e-10)
    la, lb = [np.mean(np.log(x)) for x in CLASSICAL], [np.mean(np.log(x)) for x in QUANTUM]
    ref_log = stats.ttest_ind(la, lb, equal_var=False)
    ci_log = ref_log.confidence_interval(0.95)
    assert c.ratio == pytest.approx(math.exp(np.mean(la) - np.mean(lb)))
    assert (c.ratio_ci_low, c.ratio_ci_high) == pytest.approx(
        (math.exp(ci_log.low), math.exp(ci_log.high)), rel=1e-10)
    assert c.p_value == c.p_ratio == pytest.approx(ref_log.pvalue, rel=1e-10)
    assert c.established and c.winner == "classical" and c.n_searches == (3, 4)
    rank = stats.mannwhitneyu(la, lb, alternative="two-sided", method="exact")
    assert c.rank.p_value == pytest.approx(rank.pvalue) and c.rank.u == rank.statistic
    # The best configuration of each arm (lowest seed mean) compared over its seeds.
    best = compare_kinds(CLASSICAL[2], QUANTUM[2], "classical", "quantum")
    assert c.best == best
    assert c.as_dict()["ratio"]["ci"] == [c.ratio_ci_low, c.ratio_ci_high]


def test_nats_scale_has_no_ratio_and_tests_the_difference() -> None:
    c = compare_arms(Arm("classical", CLASSICAL), Arm("quantum", QUANTUM), scale="nats")
    assert math.isnan(c.ratio) and math.isnan(c.p_ratio)
    assert c.p_value == c.p_difference and c.scale == "nats"
    with pytest.raises(ValueError, match="different kinds"):
        compare_arms(Arm("q", CLASSICAL), Arm("q", QUANTUM))


def _arm(rng: np.random.Generator, kind: str, mu: float, tau: float, sigma: float, searches: int,
         seeds: int, log: bool) -> Arm:
    """z_rs = mu + u_r + e_rs with u_r ~ N(0, tau^2), e_rs ~ N(0, sigma^2); D_s = exp(z) on log."""
    z = mu + rng.normal(0.0, tau, searches)[:, None] + rng.normal(0.0, sigma, (searches, seeds))
    return Arm(kind, np.exp(z) if log else z)


# 400 simulated experiments, R_a and R_b cycling through 3, 4, 5 searches, 5 seeds each.
# Binomial sd of a coverage of 0.95 over 400: 0.011, so 0.90 is 4.6 sd below the nominal level.
REPS = 400


def _experiments(seed: int, mu: tuple[float, float], log: bool):
    """REPS pairs of arms: search sd 0.35 and 0.5, seed sd 0.3 and 0.45 on the log scale; search
    sd 0.3 and 0.5, seed sd 0.18 and 0.56 nats on the nats scale; means ``mu``."""
    rng = np.random.default_rng(seed)
    tau, sigma = ((0.35, 0.50), (0.30, 0.45)) if log else ((0.30, 0.50), (0.18, 0.56))
    for i in range(REPS):
        sizes = (3 + i % 3, 3 + (i // 3) % 3)
        yield tuple(_arm(rng, kind, m, t, s, r, 5, log) for kind, m, t, s, r in
                    zip(("classical", "quantum"), mu, tau, sigma, sizes, strict=True))


def test_log_ratio_interval_covers_the_true_ratio() -> None:
    """True ratio of geometric means 0.6 / 1.2 = 0.5; coverage 96.25% with these seeds."""
    covered = 0
    for a, b in _experiments(21, (math.log(0.6), math.log(1.2)), log=True):
        c = compare_arms(a, b)
        covered += c.ratio_ci_low <= 0.5 <= c.ratio_ci_high
        assert c.ratio_ci_low > 0.0  # the interval respects D_s >= 0 by construction
    assert 0.90 <= covered / REPS <= 0.99


def test_nats_interval_covers_the_true_difference_where_pooling_seeds_does_not() -> None:
    """True difference -0.6 nats; coverage 94.75% with these seeds.

    Pooling every seed as independent ignores the search level: its Welch interval covers the
    truth far less often (74% with these seeds), which is why searches are the units."""
    covered = pooled = 0
    for a, b in _experiments(22, (0.6, 1.2), log=False):
        c = compare_arms(a, b, scale="nats")
        covered += c.ci_low <= -0.6 <= c.ci_high
        naive = compare_kinds(np.concatenate(a.searches), np.concatenate(b.searches))
        pooled += naive.ci_low <= -0.6 <= naive.ci_high
    assert 0.90 <= covered / REPS <= 0.99
    assert pooled / REPS < 0.82  # 0.95 - 0.82 = 12 binomial sds


def test_false_claims_under_no_difference_stay_near_the_level() -> None:
    """Same mean on the log scale, different search and seed sds: 5.0% claims with these seeds."""
    claims = sum(compare_arms(a, b).established
                 for a, b in _experiments(23, (math.log(0.8), math.log(0.8)), log=True))
    # Binomial sd at 0.05 over 400: 0.011.
    assert claims / REPS <= 0.085
