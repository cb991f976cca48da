"""GaussianMixture: validation, presets, serialisation, exact sampling and exact log density."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.stats import multivariate_normal

import metrics
from metrics import GaussianMixture

pytestmark = pytest.mark.unit

I2 = np.eye(2)


def test_gaussgan_preset_is_the_research_target():
    g = GaussianMixture.preset("gaussgan")
    np.testing.assert_array_equal(g.weights, [0.5, 0.5])
    np.testing.assert_array_equal(g.means, [[-5, 5], [5, 5]])
    np.testing.assert_array_equal(g.covariances, [I2, I2])
    assert g.n_components == 2
    assert g.weights.dtype == g.means.dtype == g.covariances.dtype == np.float64


def test_ring8_preset_and_names():
    r = GaussianMixture.preset("ring8")
    assert r.n_components == 8
    np.testing.assert_allclose(np.hypot(r.means[:, 0], r.means[:, 1]), 2.0)
    assert set(metrics.PRESETS) >= {"gaussgan", "ring8"}
    assert GaussianMixture.PRESETS == metrics.PRESETS
    with pytest.raises(ValueError, match="gaussgan, ring8"):
        GaussianMixture.preset("ring9")


@pytest.mark.parametrize(
    "weights,means,covs,match",
    [
        ([0.5, 0.6], [[0, 0], [1, 1]], [I2, I2], "sum to 1"),
        ([1.5, -0.5], [[0, 0], [1, 1]], [I2, I2], ">= 0"),
        ([1.0], [[0, 0, 0]], [I2], r"means must have shape \(K, 2\)"),
        ([1.0], [[0, 0]], [np.eye(3)], "covariances must have shape"),
        ([[1.0]], [[0, 0]], [I2], "weights must have shape"),
        ([1.0], [[0, 0]], [[[1, 0], [0, -1]]], r"covariances\[0\] must be positive definite"),
        ([1.0], [[0, 0]], [[[1, 0.5], [0, 1]]], r"covariances\[0\] must be symmetric"),
        ([1.0], [[0, np.nan]], [I2], "means must be finite"),
    ],
)
def test_invalid_parameters_name_the_problem(weights, means, covs, match):
    with pytest.raises(ValueError, match=match):
        GaussianMixture(weights, means, covs)


def test_dict_round_trip_is_plain_json():
    g = GaussianMixture.preset("ring8")
    d = g.to_dict()
    again = GaussianMixture.from_dict(json.loads(json.dumps(d)))
    assert again == g and hash(again) == hash(g)
    with pytest.raises(ValueError, match="exactly the keys"):
        GaussianMixture.from_dict({"weights": [1.0], "means": [[0, 0]]})


def test_log_prob_matches_scipy_and_integrates_to_one():
    g = GaussianMixture([0.3, 0.7], [[0, 0], [2, -1]], [[[1, 0.4], [0.4, 0.5]], 0.3 * I2])
    x = np.random.default_rng(0).normal(size=(50, 2)) * 2
    expect = np.log(
        0.3 * multivariate_normal([0, 0], [[1, 0.4], [0.4, 0.5]]).pdf(x)
        + 0.7 * multivariate_normal([2, -1], 0.3 * I2).pdf(x)
    )
    np.testing.assert_allclose(g.log_prob(x), expect, rtol=1e-12)
    xs = np.linspace(-8, 10, 601)
    grid = np.stack(np.meshgrid(xs, xs), axis=-1).reshape(-1, 2)
    assert np.exp(g.log_prob(grid)).sum() * (xs[1] - xs[0]) ** 2 == pytest.approx(1.0, abs=1e-6)


def test_sampling_is_exact_in_its_moments_and_reproducible():
    g = GaussianMixture([0.25, 0.75], [[-2, 0], [3, 1]], [[[1, 0.5], [0.5, 2]], 0.5 * I2])
    n = 200_000
    x = g.sample(n, 7)
    assert x.shape == (n, 2) and x.dtype == np.float64
    mean = g.weights @ g.means
    second = sum(w * (c + np.outer(mu, mu)) for w, mu, c in zip(g.weights, g.means, g.covariances,
                                                                strict=True))
    cov = second - np.outer(mean, mean)
    np.testing.assert_allclose(x.mean(axis=0), mean, atol=5 * np.sqrt(np.diag(cov) / n).max())
    np.testing.assert_allclose(np.cov(x, rowvar=False), cov, atol=0.05)
    np.testing.assert_array_equal(g.sample(10, 3), g.sample(10, np.random.default_rng(3)))
    with pytest.raises(ValueError, match="n must be"):
        g.sample(-1, 0)


def test_subset_renormalises():
    r = GaussianMixture.preset("ring8").subset(range(5))
    assert r.n_components == 5 and r.weights.sum() == pytest.approx(1.0)
