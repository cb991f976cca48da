"""Nonparametric log-density estimates of the generator P, evaluated at target points.

Both functions return log p_hat at each row of ``x`` (nats), from generator samples ``y``; ``x`` and
``y`` are float64 arrays of shape (n, 2) and (m, 2) that the caller has already validated.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.spatial import cKDTree
from scipy.special import digamma, logsumexp

__all__ = ["kde_log_density", "knn_log_density", "scott_bandwidth"]

# Distances are floored here so that a target point lying exactly on k generator points (possible
# only when a generator copies its input) gives a huge but finite log density, not inf.
_MIN_DISTANCE = 1e-150


def knn_log_density(x: np.ndarray, y: np.ndarray, k: int, *, workers: int = 1) -> np.ndarray:
    """k-nearest-neighbour estimate in 2-D, with the digamma term that makes it unbiased as m grows.

    ``log p_hat(x) = digamma(k) - log m - log(pi) - 2 log nu_k(x)``, with ``nu_k(x)`` the Euclidean
    distance from ``x`` to its k-th nearest point of ``y`` (a KD-tree query).
    """
    m = y.shape[0]
    nu = cKDTree(y).query(x, k=[k], workers=workers)[0][:, 0]
    np.maximum(nu, _MIN_DISTANCE, out=nu)
    return digamma(k) - math.log(m) - math.log(math.pi) - 2.0 * np.log(nu)


def scott_bandwidth(y: np.ndarray) -> np.ndarray:
    """Scott's rule in 2-D: kernel covariance = m^(-1/3) * sample covariance (as scipy's KDE)."""
    m = y.shape[0]
    cov = np.atleast_2d(np.cov(y, rowvar=False))
    return cov * m ** (-2.0 / 6.0)


def kde_log_density(
    x: np.ndarray, y: np.ndarray, bandwidth: float | None = None, *, chunk: int = 2048
) -> np.ndarray:
    """Fixed-bandwidth Gaussian KDE fitted on ``y``, evaluated at ``x`` (never at ``y`` itself).

    ``bandwidth`` is the kernel's standard deviation in the units of the data (isotropic kernel);
    ``None`` uses Scott's rule on ``y`` (full kernel covariance m^(-1/3) * cov(y)).
    """
    m = y.shape[0]
    if bandwidth is None:
        h_cov = scott_bandwidth(y)
    else:
        h_cov = float(bandwidth) ** 2 * np.eye(2)
    chol = np.linalg.cholesky(h_cov)
    inv = np.linalg.inv(chol)
    xw, yw = x @ inv.T, y @ inv.T
    log_norm = -math.log(2.0 * math.pi) - float(np.log(np.diag(chol)).sum()) - math.log(m)
    yy = np.einsum("ij,ij->i", yw, yw)
    out = np.empty(x.shape[0])
    for start in range(0, x.shape[0], chunk):
        xc = xw[start : start + chunk]
        d2 = np.einsum("ij,ij->i", xc, xc)[:, None] + yy[None, :] - 2.0 * xc @ yw.T
        np.maximum(d2, 0.0, out=d2)
        with np.errstate(divide="ignore"):
            row = np.log(np.exp(-0.5 * d2).sum(axis=1))
        far = ~np.isfinite(row)  # every kernel underflows: redo those rows stably
        if far.any():
            row[far] = logsumexp(-0.5 * d2[far], axis=1)
        out[start : start + chunk] = row + log_norm
    return out
