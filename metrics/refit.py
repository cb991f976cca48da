"""Refit a Gaussian mixture to samples by EM, starting from the mixture itself.

The KL estimator's finite-sample correction needs a smooth stand-in for the generator P whose
density it knows exactly. The target Q, with its components moved, reshaped and reweighted to fit
P's samples, is that stand-in: a generator that is learning Q is close to it in this family, and
at P = Q the refit is Q up to sampling noise.
"""

from __future__ import annotations

import numpy as np
from scipy.special import logsumexp

from .mixture import GaussianMixture

__all__ = ["refit_mixture"]

#: Components whose responsibilities sum to fewer points than this are dropped: a mode the
#: samples do not show cannot be fitted, and a component fitted to one point is a spike.
MIN_POINTS_PER_COMPONENT = 2.0
#: Every refitted covariance gets this fraction (squared, as a standard deviation) of the start's
#: smallest component variance added, so collapsed samples give a narrow, not a singular, fit.
VARIANCE_FLOOR = 0.05**2


def refit_mixture(
    start: GaussianMixture, samples: np.ndarray, *, max_iter: int = 100, tol: float = 1e-6
) -> GaussianMixture:
    """Maximum-likelihood mixture near ``start`` for ``samples`` (shape (m, 2), validated).

    EM from ``start``'s weights, means and covariances, until the mean log-likelihood gains less
    than ``tol`` nats per point or after ``max_iter`` iterations. The result has at most
    ``start.n_components`` components (see ``MIN_POINTS_PER_COMPONENT``) and every covariance
    at least ``VARIANCE_FLOOR`` times the start's smallest eigenvalue on its diagonal.
    """
    floor = VARIANCE_FLOOR * float(np.linalg.eigvalsh(start.covariances).min()) * np.eye(2)
    mixture, previous = start, -np.inf
    for _ in range(max_iter):
        joint = mixture.component_log_prob(samples) + np.log(mixture.weights)
        log_lik = logsumexp(joint, axis=1)
        resp = np.exp(joint - log_lik[:, None])  # (m, K)
        counts = resp.sum(axis=0)
        keep = counts >= MIN_POINTS_PER_COMPONENT
        resp, counts = resp[:, keep], counts[keep]
        means = resp.T @ samples / counts[:, None]
        diff = samples[None, :, :] - means[:, None, :]  # (K, m, 2)
        covs = np.einsum("mk,kmi,kmj->kij", resp, diff, diff) / counts[:, None, None] + floor
        mixture = GaussianMixture(counts / counts.sum(), means, covs)
        gain, previous = log_lik.mean() - previous, log_lik.mean()
        if gain < tol and keep.all():
            break
    return mixture
