"""The k-NN (and KDE) estimates of the unsmoothed KL(Q||P), held to ground truth: closed form for
Gaussians, else Monte Carlo with 10^6 points and exact densities. Never the estimator against
itself. The default, smoothed estimator has its own file (test_metrics_smoothed.py)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy import stats

from metrics import GaussianMixture, KLEstimate
from metrics import kl_divergence as _kl_divergence
from tests._truth import kl_gaussians, kl_monte_carlo, scaled, shifted
from tests._truth import kl_truth as truth

pytestmark = pytest.mark.unit

M, N = 2000, 20_000


def kl_divergence(q, samples, **options) -> KLEstimate:
    """The k-NN estimate unless a test names another method."""
    return _kl_divergence(q, samples, **{"method": "knn", **options})

I2 = np.eye(2)
GG = GaussianMixture.preset("gaussgan")
R8 = GaussianMixture.preset("ring8")


def gaussian(mean=(0.0, 0.0), scale=1.0) -> GaussianMixture:
    return GaussianMixture([1.0], [mean], [scale**2 * I2])


# (name, Q, P): P = Q, shifted, too wide, too narrow, unbalanced weights; Gaussians and mixtures.
CASES = [
    ("gauss-shift", gaussian(), gaussian((0.5, 0.0))),
    ("gauss-wide", gaussian(), gaussian(scale=1.5)),
    ("gauss-narrow", gaussian(), gaussian(scale=0.8)),
    ("gaussgan-shift", GG, shifted(GG, (0.5, 0.0))),
    ("gaussgan-wide", GG, scaled(GG, 1.3)),
    ("gaussgan-narrow", GG, scaled(GG, 0.8)),
    ("gaussgan-unbalanced", GG, GaussianMixture([0.7, 0.3], GG.means, GG.covariances)),
    ("ring8-unbalanced", R8, GaussianMixture([0.16] * 4 + [0.09] * 4, R8.means, R8.covariances)),
    ("ring8-wide", R8, scaled(R8, 1.2)),
]


def repeated(q, p, reps: int, start: int) -> np.ndarray:
    return np.array([kl_divergence(q, p.sample(M, start + i)).value for i in range(reps)])


def test_monte_carlo_truth_agrees_with_closed_form():
    q, p = gaussian(), gaussian((0.5, 0.2), 1.3)
    assert kl_monte_carlo(q, p) == pytest.approx(kl_gaussians(q, p), abs=3e-3)


@pytest.mark.slow  # a simulation against truth: make test, not the quick loop
@pytest.mark.parametrize("name,q,p", CASES, ids=[c[0] for c in CASES])
def test_bias_and_spread_against_truth(name, q, p):
    values = repeated(q, p, reps=24, start=1000)
    t = truth(q, p)
    assert t > 0.03
    assert abs(values.mean() - t) <= 0.02, (name, values.mean(), t)
    assert values.std(ddof=1) <= 0.03, (name, values.std(ddof=1))


@pytest.mark.slow  # a simulation against truth: make test, not the quick loop
@pytest.mark.parametrize("q", [gaussian(), GG, R8], ids=["gauss", "gaussgan", "ring8"])
def test_mean_is_zero_when_p_equals_q(q):
    values = repeated(q, q, reps=40, start=5000)
    assert abs(values.mean()) <= 0.01, values.mean()


COVERAGE_CASES = [(GG, shifted(GG, (0.5, 0.0))), (R8, R8), (gaussian(), gaussian(scale=1.5))]


@pytest.mark.slow
@pytest.mark.timeout(2400)  # 150 final scores: about 2 min quiet, 10+ at a load average of 5
def test_95_interval_from_5_replicates_covers_truth():
    """50 draws of 5 replicates per case, each with its own evaluation points (seed), so the
    interval must cover the evaluation points' noise and the correction's Monte Carlo noise too.
    Pooled over the three cases at a true 95%: Binomial(150, 0.95), below 90% is a 2.8-sd event."""
    covered = 0
    for j, (q, p) in enumerate(COVERAGE_CASES):
        t = truth(q, p) if q is not p else 0.0
        for i in range(50):
            seed = 10_000 + 100 * j + i
            est = kl_divergence(q, [p.sample(M, 10 * seed + r) for r in range(5)], seed=seed)
            assert est.replicates == 5 and est.ci_low < est.value < est.ci_high
            assert est.stderr_correction > 0 and est.stderr_points > 0
            covered += est.ci_low <= t <= est.ci_high
    assert covered / 150 >= 0.90, f"{covered}/150"


@pytest.mark.slow  # a simulation against truth: make test, not the quick loop
def test_mode_dropping_is_finite_and_increasing():
    values, null_values, truths = [], [], []
    for dropped in (0, 1, 2, 3):
        p = R8.subset(range(8 - dropped))
        draws = [p.sample(M, 77 + r) for r in range(3)]
        est = kl_divergence(R8, draws)
        assert math.isfinite(est.value)
        values.append(est.value)
        null_values.append(kl_divergence(R8, draws, k=1, correction="null").value)
        truths.append(kl_monte_carlo(R8, p) if dropped else 0.0)
    for series in (values, null_values, truths):
        assert all(b > a for a, b in zip(series, series[1:], strict=False)), series
    # The refit prices the missing modes with Gaussian tails, which these P have: near the truth.
    assert all(abs(v - t) <= 0.2 * t for v, t in zip(values[1:], truths[1:], strict=True))
    # The P = Q correction only extrapolates kNN distances: finite, growing, far below the truth.
    assert all(v < 0.5 * t for v, t in zip(null_values[1:], truths[1:], strict=True))


@pytest.mark.slow  # a simulation against truth: make test, not the quick loop
@pytest.mark.parametrize("df", [5, 3])
def test_generator_outside_the_mixture_family_against_truth(df):
    # Student-t P: heavier tails than any Gaussian mixture, so the refit stand-in is only close.
    # Truth by Monte Carlo over 10^6 target draws with scipy's exact t density.
    p = stats.multivariate_t(np.zeros(2), I2 * (df - 2) / df, df=df)  # unit covariance
    q = gaussian()
    x = q.sample(10**6, 11)
    t = float(np.mean(q.log_prob(x) - p.logpdf(x)))
    values = np.array(
        [kl_divergence(q, p.rvs(M, random_state=500 + i)).value for i in range(16)]
    )
    assert t > 0.05
    assert abs(values.mean() - t) <= 0.02, (df, values.mean(), t)
    assert values.std(ddof=1) <= 0.03


def test_collapsed_generator_gives_a_large_finite_estimate():
    q = gaussian()
    for y in (np.zeros((M, 2)), np.c_[np.linspace(-1, 1, M), np.zeros(M)]):  # point, segment
        est = kl_divergence(q, [y, y + 1e-9])
        assert math.isfinite(est.value) and est.value > 5.0


def test_bounded_support_generator_is_finite_and_grows_with_missing_mass():
    q = gaussian()
    pool = q.sample(40 * M, 3)
    values = []
    for radius in (3.0, 2.0, 1.5):  # Q truncated to a disc: KL(Q||P) is infinite, formally
        y = pool[np.hypot(pool[:, 0], pool[:, 1]) <= radius][:M]
        values.append(kl_divergence(q, y).value)
    assert all(np.isfinite(values))
    assert values[0] < values[1] < values[2]


def test_single_replicate_interval_leaves_out_generator_draws_and_json_dict():
    est = kl_divergence(GG, GG.sample(M, 1))
    assert isinstance(est, KLEstimate)
    assert math.isfinite(est.value)
    assert math.isnan(est.stderr_replicates)
    assert est.ci_low < est.value < est.ci_high and est.stderr > 0
    assert est.interval_sources == ("evaluation points", "correction Monte Carlo")
    assert not est.covers_generator_draws
    assert (est.method, est.n_target, est.m, est.replicates, est.k) == ("knn", N, M, 1, 4)
    assert est.correction_method == "refit" and est.sigma is None
    d = est.as_dict()
    assert d["stderr_replicates"] is None and d["value"] == est.value
    json.dumps(d, allow_nan=False)


@pytest.mark.slow  # a simulation against truth: make test, not the quick loop
def test_same_seed_same_points_and_deterministic_correction():
    y = GG.sample(M, 2)
    a, b = kl_divergence(GG, y, seed=0), kl_divergence(GG, y, seed=0)
    assert a.value == b.value and a.correction == b.correction
    c = kl_divergence(GG, y, seed=1)
    assert c.value != a.value
    raw = kl_divergence(GG, y, correction="none")
    assert raw.correction == 0.0 and raw.correction_method == "none"
    assert raw.value - a.correction == pytest.approx(a.value)
    null = kl_divergence(GG, y, correction="null")
    assert null.correction != a.correction
    assert raw.value - null.correction == pytest.approx(null.value)


def test_correction_is_measured_on_all_replicates_together():
    draws = [GG.sample(M, 40 + r) for r in range(3)]
    pooled = kl_divergence(GG, draws)
    alone = [kl_divergence(GG, y) for y in draws]
    # One stand-in for all replicates: every replicate has the same offset subtracted.
    raw = [kl_divergence(GG, y, correction="none").value for y in draws]
    assert pooled.values == pytest.approx([r - pooled.correction for r in raw])
    assert len({e.correction for e in alone}) == 3


def test_kde_option_against_truth():
    q, p = gaussian(), gaussian((0.5, 0.0))
    values = [
        kl_divergence(q, p.sample(M, 300 + i), method="kde", n_target=4000).value
        for i in range(4)
    ]
    assert abs(np.mean(values) - kl_gaussians(q, p)) <= 0.05
    est = kl_divergence(
        q, p.sample(M, 1), method="kde", bandwidth=0.3, n_target=1000, correction="none"
    )
    assert est.k is None and est.bandwidth == 0.3


@pytest.mark.parametrize(
    "samples,match",
    [
        (np.full((M, 2), np.nan), "NaN or inf"),
        (np.r_[np.zeros((M - 1, 2)), [[np.inf, 0.0]]], "NaN or inf"),
        (np.zeros((M, 3)), r"shape \(m, 2\)"),
        (np.zeros(M), r"shape \(m, 2\)"),
        (np.zeros((1, 2)), "at least 5"),  # k = 4 needs 5
        ([], "empty"),
        ([np.zeros((10, 2)), np.zeros((11, 2))], "same number of points"),
        ("abc", "numeric"),
    ],
)
def test_bad_samples_raise(samples, match):
    with pytest.raises(ValueError, match=match):
        kl_divergence(GG, samples)


def test_bad_arguments_raise():
    y = GG.sample(100, 0)
    with pytest.raises(ValueError, match="method"):
        kl_divergence(GG, y, method="gmm")
    with pytest.raises(ValueError, match="k must be"):
        kl_divergence(GG, y, k=0)
    with pytest.raises(ValueError, match="at least 6"):
        kl_divergence(GG, y[:5], k=5)
    with pytest.raises(ValueError, match="target"):
        kl_divergence(y, y)
    with pytest.raises(ValueError, match="bandwidth"):
        kl_divergence(GG, y, method="kde", bandwidth=-1.0)
    with pytest.raises(ValueError, match="correction must be one of"):
        kl_divergence(GG, y, correction="bootstrap")
