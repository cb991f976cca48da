"""Wasserstein-2 against its closed form for Gaussians; mode coverage on dropped modes."""

from __future__ import annotations

import numpy as np
import pytest

from metrics import GaussianMixture, mode_coverage, wasserstein2

pytestmark = pytest.mark.unit

I2 = np.eye(2)


def test_w2_matches_closed_form_for_shifted_gaussians():
    q = GaussianMixture([1.0], [[0, 0]], [I2])
    p = GaussianMixture([1.0], [[3, 4]], [I2])  # W2 = |shift| = 5 for equal covariances
    w = wasserstein2(q, p.sample(1500, 1), seed=0)
    assert w == pytest.approx(5.0, abs=0.1)
    same = wasserstein2(q, q.sample(1500, 1), seed=0)  # empirical measures: small, not zero
    assert 0 < same < 0.5


def test_w2_scale_mismatch_and_subsampling():
    q = GaussianMixture([1.0], [[0, 0]], [I2])
    p = GaussianMixture([1.0], [[0, 0]], [4 * I2])  # W2 = sqrt(2) * (2 - 1) for isotropic scales
    w = wasserstein2(q, [p.sample(1000, 1), p.sample(1000, 2)], max_points=1200)
    assert w == pytest.approx(np.sqrt(2.0), abs=0.15)


def test_w2_rejects_bad_samples():
    q = GaussianMixture.preset("gaussgan")
    with pytest.raises(ValueError, match="NaN or inf"):
        wasserstein2(q, np.full((10, 2), np.inf))


@pytest.mark.parametrize("dropped", [0, 1, 2, 3])
def test_mode_coverage_counts_dropped_ring8_modes(dropped):
    r = GaussianMixture.preset("ring8")
    y = r.subset(range(8 - dropped)).sample(2000, dropped)
    assert mode_coverage(r, y) == pytest.approx((8 - dropped) / 8)


def test_mode_coverage_collapse_and_far_samples():
    g = GaussianMixture.preset("gaussgan")
    collapsed = GaussianMixture([1.0], [g.means[1]], [I2]).sample(1000, 0)
    assert mode_coverage(g, collapsed) == 0.5
    assert mode_coverage(g, g.sample(1000, 0)) == 1.0
    assert mode_coverage(g, np.full((100, 2), 50.0)) == 0.0
    with pytest.raises(ValueError, match=r"shape \(m, 2\)"):
        mode_coverage(g, np.zeros((10, 3)))
