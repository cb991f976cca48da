"""Mode coverage: the fraction of target components that receive their share of samples."""

from __future__ import annotations

from typing import Any

import numpy as np

from ._validation import check_replicates, check_target
from .mixture import GaussianMixture

__all__ = ["mode_coverage"]


def mode_coverage(
    target: GaussianMixture,
    samples: Any,
    *,
    radius: float = 3.0,
    min_share: float = 0.5,
) -> float:
    """Fraction of the target's components that are covered, a number in [0, 1].

    A generator point *lands* on component j when j is the component with the smallest Mahalanobis
    distance to it and that distance is at most ``radius`` (default 3 standard deviations).
    Component j is *covered* when the number of points landing on it is at least ``min_share``
    (default 0.5) times what exact sampling from the target would put there on average,
    ``m * w_j * P(chi2_2 <= radius**2)`` (the overlap with other components is ignored).
    The result is (covered components) / K, unweighted: dropping a small mode costs as much as
    dropping a large one. ``samples`` is an (m, 2) array or a list of them (pooled).

    Components with zero weight are skipped (they are neither counted nor required).
    """
    check_target(target)
    if not (radius > 0):
        raise ValueError(f"radius must be > 0, got {radius!r}")
    if not (0 < min_share <= 1):
        raise ValueError(f"min_share must be in (0, 1], got {min_share!r}")
    y = np.concatenate(check_replicates(samples, min_points=1))
    m = y.shape[0]
    d2 = target.mahalanobis_sq(y)  # (m, K)
    active = target.weights > 0
    d2[:, ~active] = np.inf
    nearest = np.argmin(d2, axis=1)
    landed = d2[np.arange(m), nearest] <= radius**2
    counts = np.bincount(nearest[landed], minlength=target.n_components)
    # P(|z|^2 <= radius^2) for a 2-D standard normal: the chi-square(2) CDF, 1 - exp(-r^2 / 2)
    # (scipy.stats.chi2.cdf to 2e-16, without scipy.stats's import at every worker's start).
    expected = m * target.weights * -np.expm1(-radius**2 / 2)
    covered = (counts >= min_share * expected) & active
    return float(covered.sum() / active.sum())
