"""EM refit of a mixture to samples, held to the parameters that generated the samples."""

from __future__ import annotations

import numpy as np
import pytest

from metrics import GaussianMixture
from metrics.refit import VARIANCE_FLOOR, refit_mixture, split_components, stand_in_mixture

pytestmark = pytest.mark.unit

GG = GaussianMixture.preset("gaussgan")
R8 = GaussianMixture.preset("ring8")


def _sorted(g: GaussianMixture) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    order = np.lexsort(np.round(g.means, 1).T[::-1])  # rounded: ties stay ties under noise
    return g.weights[order], g.means[order], g.covariances[order]


@pytest.mark.parametrize(
    "start,truth",
    [
        (GG, GaussianMixture([0.7, 0.3], GG.means + [0.5, -0.3], 0.64 * GG.covariances)),
        (GG, GaussianMixture([0.5, 0.5], GG.means, [[[2.0, 0.6], [0.6, 0.5]], np.eye(2)])),
        (R8, GaussianMixture(np.r_[[0.2] * 4, [0.05] * 4], 1.1 * R8.means, R8.covariances)),
    ],
    ids=["moved-narrow-unbalanced", "sheared", "ring8-reweighted"],
)
def test_recovers_the_generating_mixture(start, truth):
    fit = refit_mixture(start, truth.sample(20_000, 3))
    assert fit.n_components == truth.n_components
    for got, want, tol in zip(_sorted(fit), _sorted(truth), (0.01, 0.03, 0.05), strict=True):
        np.testing.assert_allclose(got, want, atol=tol)


def test_drops_components_the_samples_do_not_show():
    p = R8.subset(range(6))
    fit = refit_mixture(R8, p.sample(10_000, 4))
    assert fit.n_components == 6
    np.testing.assert_allclose(_sorted(fit)[1], _sorted(p)[1], atol=0.02)


def test_at_p_equals_q_the_refit_is_q_up_to_sampling_noise():
    fit = refit_mixture(GG, GG.sample(10_000, 5))
    x = GG.sample(200_000, 6)
    kl = float(np.mean(GG.log_prob(x) - fit.log_prob(x)))
    assert 0.0 <= kl + 1e-3 and kl < 5e-3  # about (parameters / 2) / samples = 11 / 20000


def test_collapsed_samples_give_a_narrow_not_singular_fit():
    fit = refit_mixture(GG, np.tile([[1.0, 2.0]], (500, 1)))
    assert fit.n_components == 1
    np.testing.assert_allclose(fit.covariances[0], VARIANCE_FLOOR * np.eye(2), rtol=1e-9)


def _moments(g: GaussianMixture) -> tuple[np.ndarray, np.ndarray]:
    mean = g.weights @ g.means
    second = np.einsum("k,kij->ij", g.weights, g.covariances + np.einsum("ki,kj->kij", g.means,
                                                                           g.means))
    return mean, second - np.outer(mean, mean)


def test_split_keeps_the_mixture_mean_and_covariance():
    g = GaussianMixture([0.6, 0.4], [[0.0, 0.0], [3.0, 1.0]], [[[2.0, 0.5], [0.5, 1.0]], np.eye(2)])
    split = split_components(g, 2)
    assert split.n_components == 4
    for a, b in zip(_moments(split), _moments(g), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-12)
    assert np.all(np.linalg.eigvalsh(split.covariances) > 0)


@pytest.mark.parametrize("q,p", [(GG, GG), (R8, R8.subset(range(7)))], ids=["gaussgan", "ring8-7"])
def test_stand_in_keeps_the_start_family_for_mixture_samples(q, p):
    assert stand_in_mixture(q, p.sample(10_000, 8)).n_components == p.n_components


def test_stand_in_grows_for_a_curved_generator():
    z = np.random.default_rng(9).standard_normal((10_000, 2))
    z[:, 1] += 0.6 * (z[:, 0] ** 2 - 1)  # a banana: one Gaussian fits it badly
    start = GaussianMixture([1.0], [[0.0, 0.0]], [np.eye(2)])
    fit = stand_in_mixture(start, z)
    assert fit.n_components >= 3
    held_out = np.random.default_rng(10).standard_normal((10_000, 2))
    held_out[:, 1] += 0.6 * (held_out[:, 0] ** 2 - 1)
    assert fit.log_prob(held_out).mean() > refit_mixture(start, z).log_prob(held_out).mean() + 0.05
