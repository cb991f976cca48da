"""The research code's two 'KL' estimators (metrics._research: wrong, kept for comparison) go
negative where the true KL(Q||P) is clearly positive; the default estimator does not."""

from __future__ import annotations

import numpy as np
import pytest

from metrics import GaussianMixture, kl_divergence
from metrics._research import research_kl_v1, research_kl_v2

pytestmark = pytest.mark.unit

I2 = np.eye(2)
GG = GaussianMixture.preset("gaussgan")
Q1 = GaussianMixture([1.0], [[0, 0]], [I2])


def _kl_gauss_same_mean(s: float) -> float:
    """Closed form KL(N(0, I) || N(0, s^2 I)) in 2-D."""
    return 1.0 / s**2 - 1.0 + 2.0 * np.log(s)


def _kl_monte_carlo(q: GaussianMixture, p: GaussianMixture, n: int = 10**6) -> float:
    """KL(Q||P) from 10^6 exact draws of Q with exact log q and log p."""
    x = q.sample(n, 5)
    return float(np.mean(q.log_prob(x) - p.log_prob(x)))


NARROW = GaussianMixture([1.0], [[0, 0]], [0.25 * I2])
COLLAPSED = GaussianMixture([1.0], [GG.means[1]], [I2])  # one gaussgan mode only
CASES = [
    # (name, Q, P, truth KL(Q||P) in nats)
    ("narrow-gaussian", Q1, NARROW, lambda: _kl_gauss_same_mean(0.5)),
    ("gaussgan-collapsed", GG, COLLAPSED, lambda: _kl_monte_carlo(GG, COLLAPSED)),
]


@pytest.mark.slow  # a simulation against truth: make test, not the quick loop
@pytest.mark.parametrize("name,q,p,truth", CASES, ids=[c[0] for c in CASES])
def test_research_estimators_are_negative_where_truth_is_positive(name, q, p, truth):
    y = p.sample(2000, 11)
    assert truth() > 0.5
    assert research_kl_v1(q, y) < 0
    assert research_kl_v2(q, y) < 0
    assert kl_divergence(q, y).value > 0.5
