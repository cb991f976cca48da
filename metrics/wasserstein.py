"""Wasserstein-2 distance between generator samples and fresh target samples (exact OT, POT)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ._validation import check_replicates, check_target
from .mixture import GaussianMixture

__all__ = ["DEFAULT_MAX_POINTS", "wasserstein2"]

#: At most this many generator points (and as many target points) enter the transport problem.
DEFAULT_MAX_POINTS = 2000

_W2_STREAM = 0x3D2B


def wasserstein2(
    target: GaussianMixture,
    samples: Any,
    *,
    seed: int = 0,
    n_target: int | None = None,
    max_points: int = DEFAULT_MAX_POINTS,
) -> float:
    """Empirical W2 distance (not squared), in the data's units, between samples and Q.

    Solves the exact optimal transport problem (``ot.emd2``, squared Euclidean cost, uniform
    weights) between the generator points and ``n_target`` points drawn from ``target`` with
    ``seed``. ``samples`` is an (m, 2) array or a list of them (pooled). If there are more than
    ``max_points`` generator points, a seeded subsample of ``max_points`` is used; ``n_target``
    defaults to the number of generator points used, and is capped at ``max_points`` too.

    This is the distance between two empirical measures: even at P = Q it is positive, and it
    shrinks slowly with sample size, so compare values computed at the same sizes.
    """
    check_target(target)
    if isinstance(max_points, bool) or not isinstance(max_points, int) or max_points < 2:
        raise ValueError(f"max_points must be an int >= 2, got {max_points!r}")
    y = np.concatenate(check_replicates(samples, min_points=2))
    rng = np.random.default_rng([_W2_STREAM, int(seed)])
    if y.shape[0] > max_points:
        y = y[rng.choice(y.shape[0], size=max_points, replace=False)]
    n = y.shape[0] if n_target is None else int(n_target)
    if n < 2:
        raise ValueError(f"n_target must be >= 2, got {n_target!r}")
    n = min(n, max_points)
    x = target.sample(n, rng)
    import ot  # here, not at the top: POT imports torch when it is installed (a 2 s start-up)

    cost = ot.dist(y, x, metric="sqeuclidean")
    a = np.full(y.shape[0], 1.0 / y.shape[0])
    b = np.full(n, 1.0 / n)
    w2_sq = float(ot.emd2(a, b, cost, numItermax=10_000_000))
    return math.sqrt(max(w2_sq, 0.0))
