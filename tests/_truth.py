"""Ground truth for the KL tests: exact densities, closed forms and Monte Carlo over exact draws.

Never the estimator under test: every number here comes from densities known in closed form (or
as one-dimensional integrals) and from exact samples.
"""

from __future__ import annotations

import functools
import math

import numpy as np
from scipy.special import i0e, log_ndtr, logsumexp

from metrics import GaussianMixture, smoothed_target

TRUTH_N = 10**6
TRUTH_SEED = 20240601
BOUNDED_TRUTH_N = 2 * 10**5


def kl_gaussians(p0: GaussianMixture, p1: GaussianMixture) -> float:
    """Closed-form KL(N0||N1) for single Gaussians, nats."""
    m0, c0, m1, c1 = p0.means[0], p0.covariances[0], p1.means[0], p1.covariances[0]
    inv1 = np.linalg.inv(c1)
    d = m1 - m0
    return 0.5 * float(
        np.trace(inv1 @ c0) + d @ inv1 @ d - 2 + math.log(np.linalg.det(c1) / np.linalg.det(c0))
    )


@functools.cache
def kl_monte_carlo(q: GaussianMixture, p, n: int = TRUTH_N) -> float:
    """KL(Q||P) by Monte Carlo over ``n`` exact draws from Q with exact log q and log p."""
    x = q.sample(n, TRUTH_SEED)
    return float(np.mean(q.log_prob(x) - p.log_prob(x)))


def kl_truth(q: GaussianMixture, p: GaussianMixture) -> float:
    if q.n_components == 1 and p.n_components == 1:
        return kl_gaussians(q, p)
    return kl_monte_carlo(q, p)


def smoothed_truth(q: GaussianMixture, p, sigma: float) -> float:
    """D_s = KL(Q_s||P_s): P_s exact (a mixture, or a bounded generator's ``smoothed(sigma)``).

    Bounded generators' densities cost a quadrature per point: 2 x 10^5 draws there (Monte Carlo
    standard error below 2e-3 nats for the cases of the tests).
    """
    qs = smoothed_target(q, sigma)
    ps = p.smoothed(sigma) if hasattr(p, "smoothed") else smoothed_target(p, sigma)
    if isinstance(ps, GaussianMixture):
        return kl_truth(qs, ps)
    return kl_monte_carlo(qs, ps, BOUNDED_TRUTH_N)


def shifted(g: GaussianMixture, delta) -> GaussianMixture:
    return GaussianMixture(g.weights, g.means + np.asarray(delta), g.covariances)


def scaled(g: GaussianMixture, s: float) -> GaussianMixture:
    return GaussianMixture(g.weights, g.means, s**2 * g.covariances)


def rotated(g: GaussianMixture, angle: float) -> GaussianMixture:
    """Every component's covariance turned by ``angle`` (radians) about its own mean."""
    c, s = math.cos(angle), math.sin(angle)
    r = np.array([[c, -s], [s, c]])
    return GaussianMixture(g.weights, g.means, r @ g.covariances @ r.T)


# ------------------------------------------------------------------ bounded generators


def _log_diff_ndtr(hi: np.ndarray, lo: np.ndarray) -> np.ndarray:
    """log(Phi(hi) - Phi(lo)) for hi > lo, without cancellation in either tail."""
    flip = lo > 0  # both in the upper tail: Phi(hi) - Phi(lo) = Phi(-lo) - Phi(-hi)
    a = np.where(flip, -lo, hi)
    b = np.where(flip, -hi, lo)
    la, lb = log_ndtr(a), log_ndtr(b)
    return la + np.log1p(-np.exp(lb - la))


class UniformBoxes:
    """Equal-weight mixture of uniform boxes [lo, hi] (each a (2,) corner pair)."""

    def __init__(self, boxes: list[tuple[tuple[float, float], tuple[float, float]]],
                 sigma: float | None = None) -> None:
        self.lo = np.array([b[0] for b in boxes], dtype=float)
        self.hi = np.array([b[1] for b in boxes], dtype=float)
        self.sigma = sigma

    def smoothed(self, sigma: float) -> UniformBoxes:
        return UniformBoxes(list(zip(self.lo.tolist(), self.hi.tolist(), strict=True)), sigma)

    def sample(self, n: int, rng) -> np.ndarray:
        rng = np.random.default_rng(rng)
        k = rng.integers(len(self.lo), size=n)
        y = self.lo[k] + rng.random((n, 2)) * (self.hi[k] - self.lo[k])
        if self.sigma:
            y = y + self.sigma * rng.standard_normal((n, 2))
        return y

    def log_prob(self, x: np.ndarray) -> np.ndarray:
        """Exact log p_s: per axis (Phi((hi - x)/s) - Phi((lo - x)/s)) / (hi - lo)."""
        assert self.sigma, "the unsmoothed boxes have no density off their support"
        s = self.sigma
        parts = []
        for lo, hi in zip(self.lo, self.hi, strict=True):
            per_axis = _log_diff_ndtr((hi - x) / s, (lo - x) / s) - np.log(hi - lo)
            parts.append(per_axis.sum(axis=1))
        return logsumexp(np.stack(parts, axis=1), axis=1) - math.log(len(self.lo))


class UniformDiscs:
    """Equal-weight mixture of uniform discs of radius ``radius`` around ``centres``."""

    _NODES = 96

    def __init__(self, centres, radius: float, sigma: float | None = None) -> None:
        self.centres = np.asarray(centres, dtype=float)
        self.radius = float(radius)
        self.sigma = sigma

    def smoothed(self, sigma: float) -> UniformDiscs:
        return UniformDiscs(self.centres, self.radius, sigma)

    def sample(self, n: int, rng) -> np.ndarray:
        rng = np.random.default_rng(rng)
        k = rng.integers(len(self.centres), size=n)
        r = self.radius * np.sqrt(rng.random(n))
        t = 2 * math.pi * rng.random(n)
        y = self.centres[k] + np.c_[r * np.cos(t), r * np.sin(t)]
        if self.sigma:
            y = y + self.sigma * rng.standard_normal((n, 2))
        return y

    def log_prob(self, x: np.ndarray) -> np.ndarray:
        """Exact log p_s by a one-dimensional integral over the disc's radius (Gauss-Legendre).

        P(|c - x + s Z| <= rho) = int_0^rho (r / s^2) exp(-(r - d)^2 / (2 s^2)) i0e(r d / s^2) dr,
        d = |x - c|; divided by the disc's area.
        """
        assert self.sigma, "the unsmoothed discs have no density off their support"
        s, rho = self.sigma, self.radius
        nodes, weights = np.polynomial.legendre.leggauss(self._NODES)
        r = 0.5 * rho * (nodes + 1.0)
        wr = 0.5 * rho * weights
        parts = []
        for c in self.centres:
            d = np.hypot(*(x - c).T)
            out = np.empty(len(d))
            for a in range(0, len(d), 20_000):
                dd = d[a:a + 20_000, None]
                log_f = (np.log(r / s**2) - (r - dd) ** 2 / (2 * s**2)
                         + np.log(i0e(r * dd / s**2)))
                out[a:a + 20_000] = logsumexp(log_f + np.log(wr), axis=1)
            parts.append(out - math.log(math.pi * rho**2))
        return logsumexp(np.stack(parts, axis=1), axis=1) - math.log(len(self.centres))
