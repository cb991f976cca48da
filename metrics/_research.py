"""RESEARCH CODE, WRONG, FOR COMPARISON ONLY. Not part of the public ``metrics`` API.

The two "KL" estimators of the research code this project replaces, reproduced as they were so the
benchmark and the tests can show what they got wrong. Both average over the *generator's* samples
y_j and fit a Gaussian KDE (scipy, Scott's rule) on those same points, then evaluate it there
(resubstitution). Neither estimates KL(Q||P); use :func:`metrics.kl_divergence`.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import gaussian_kde

from .mixture import GaussianMixture

__all__ = ["research_kl_v1", "research_kl_v2"]


def _kde_on_itself(y: np.ndarray) -> np.ndarray:
    return gaussian_kde(y.T).logpdf(y.T)


def research_kl_v1(target: GaussianMixture, y: np.ndarray) -> float:
    """WRONG. First version: ``q = exp(-log q(y))`` (that is 1/q), then mean(log p_kde - log q).

    Equals mean_j[log p_kde(y_j) + log q(y_j)]: a sum of two log densities, not a divergence.
    """
    y = np.asarray(y, dtype=np.float64)
    q_values = np.exp(-target.log_prob(y))
    return float(np.mean(_kde_on_itself(y) - np.log(q_values)))


def research_kl_v2(target: GaussianMixture, y: np.ndarray) -> float:
    """WRONG. Second version: mean over generator samples of log q(y) - log p_kde(y).

    Estimates -KL(P||Q) (never positive in expectation), plus the KDE's resubstitution bias.
    """
    y = np.asarray(y, dtype=np.float64)
    return float(np.mean(target.log_prob(y) - _kde_on_itself(y)))
