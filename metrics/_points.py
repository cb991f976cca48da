"""Randomized quasi-Monte Carlo evaluation points from a Gaussian mixture.

D_s averages a smooth function of x over Q_s. Independent draws (``points="iid"``) leave a
standard error of sd/sqrt(n); a scrambled Sobol sequence, mapped through the normal quantile and
each component's Cholesky factor, covers the plane evenly and averages the same function with far
less error for the same n (docs/kl-estimators.md measures it). Each component gets a fixed number
of points, n_k ~ n w_k, and every point carries the weight w_k n / n_k, so the weighted mean is
unbiased for E_Q[f] whatever the rounding. One scrambled set says nothing about its own error:
the estimator draws an independent set per generator replicate, and the replicates' spread
carries both noises (``metrics.kl``).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from scipy.special import ndtri
from scipy.stats import qmc

from .mixture import GaussianMixture

__all__ = ["component_counts", "rqmc_points"]

_RQMC_STREAM = 0x50B0
# A scrambled Sobol coordinate of exactly 0 (probability about 2^-30 per point) would map to
# -inf: clip to the grid's half step.
_EDGE = 2.0**-31


def component_counts(weights: np.ndarray, n: int) -> np.ndarray:
    """Points per component: n w_k rounded by largest remainders, at least one per component of
    positive weight (its weight then makes up the rest), summing to ``n``."""
    w = np.asarray(weights, dtype=float)
    if n < int((w > 0).sum()):
        raise ValueError(f"points='rqmc' needs a point per component: n_target {n} is below the "
                         f"target's {int((w > 0).sum())} components of positive weight")
    exact = n * w
    counts = np.floor(exact).astype(np.int64)
    counts[(w > 0) & (counts == 0)] = 1
    short = n - int(counts.sum())
    if short > 0:
        counts[np.argsort(counts - exact, kind="stable")[:short]] += 1
    while short < 0:  # the ones given to tiny components came from the largest
        counts[int(np.argmax(counts))] -= 1
        short += 1
    return counts


# 16: the 5 replicates at 3 resolutions of a final score and the reports' set (up to 32 MB each
# at the largest n_target).
@lru_cache(maxsize=16)
def rqmc_points(source: GaussianMixture, n: int, seed: int, replicate: int
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(x, log_q, weight)``: ``n`` points for ``replicate``, their exact log density under
    ``source`` and the weights (mean 1) that make ``(weight * f(x)).mean()`` unbiased for
    E_source[f]. Every (seed, replicate) gives the same points (cached, read-only)."""
    counts = component_counts(source.weights, n)
    parts, weights = [], []
    for k, count in enumerate(counts):
        if count == 0:
            continue
        # k + 1: SeedSequence drops trailing zeros, which would let [.., 0] meet other streams
        rng = np.random.default_rng([_RQMC_STREAM, seed, replicate, k + 1])
        sobol = qmc.Sobol(d=2, scramble=True, seed=rng)
        u = sobol.random_base2(int(np.ceil(np.log2(count))))[:count]  # a prefix: still unbiased
        z = ndtri(np.clip(u, _EDGE, 1.0 - _EDGE))
        parts.append(source.means[k] + z @ np.linalg.cholesky(source.covariances[k]).T)
        weights.append(np.full(count, source.weights[k] * n / count))
    x = np.concatenate(parts)
    log_q = source.log_prob(x)
    weight = np.concatenate(weights)
    for a in (x, log_q, weight):
        a.setflags(write=False)
    return x, log_q, weight
