"""Two-dimensional Gaussian mixtures: the target distributions Q that generators learn.

A :class:`GaussianMixture` is immutable and hashable, so estimators can cache work that depends
only on the target (evaluation points, exact log densities, finite-sample corrections).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from scipy.special import logsumexp

__all__ = ["GaussianMixture", "PRESETS", "as_generator"]

#: Names accepted by :meth:`GaussianMixture.preset`.
PRESETS: tuple[str, ...] = ("gaussgan", "ring8")

_RING8_RADIUS = 2.0
_RING8_STD = 0.2
_WEIGHT_TOL = 1e-8


def as_generator(rng: np.random.Generator | int | None) -> np.random.Generator:
    """Return ``rng`` if it is a ``numpy.random.Generator``, else ``default_rng(rng)``."""
    if isinstance(rng, np.random.Generator):
        return rng
    if rng is None or isinstance(rng, (int, np.integer)):
        return np.random.default_rng(rng)
    raise ValueError(f"rng must be a numpy.random.Generator or an int seed, got {type(rng)!r}")


def _frozen(a: np.ndarray) -> np.ndarray:
    a = np.array(a, dtype=np.float64, copy=True)
    a.setflags(write=False)
    return a


class GaussianMixture:
    """A mixture of ``K`` Gaussians in two dimensions, with exact sampling and exact log density.

    Parameters
    ----------
    weights : array-like of shape (K,)
        Mixing weights; each >= 0, summing to 1 (within 1e-8; they are then renormalised).
    means : array-like of shape (K, 2)
        Component means.
    covariances : array-like of shape (K, 2, 2)
        Component covariances; each symmetric positive definite.

    Raises
    ------
    ValueError
        On any wrong shape, non-finite value, negative or non-normalised weight, or a covariance
        that is not symmetric positive definite; the message names the argument and component.

    Attributes
    ----------
    weights, means, covariances : numpy.ndarray (float64, read-only)
    n_components : int
    """

    PRESETS: tuple[str, ...] = PRESETS

    def __init__(self, weights: Any, means: Any, covariances: Any) -> None:
        w = np.asarray(weights, dtype=np.float64)
        mu = np.asarray(means, dtype=np.float64)
        cov = np.asarray(covariances, dtype=np.float64)
        if w.ndim != 1 or w.shape[0] < 1:
            raise ValueError(f"weights must have shape (K,) with K >= 1, got shape {w.shape}")
        k = w.shape[0]
        if mu.shape != (k, 2):
            raise ValueError(f"means must have shape (K, 2) = ({k}, 2), got shape {mu.shape}")
        if cov.shape != (k, 2, 2):
            raise ValueError(
                f"covariances must have shape (K, 2, 2) = ({k}, 2, 2), got shape {cov.shape}"
            )
        for name, a in (("weights", w), ("means", mu), ("covariances", cov)):
            if not np.all(np.isfinite(a)):
                raise ValueError(f"{name} must be finite, got {a.tolist()}")
        if np.any(w < 0):
            raise ValueError(f"weights must be >= 0, got {w.tolist()}")
        if abs(w.sum() - 1.0) > _WEIGHT_TOL:
            raise ValueError(f"weights must sum to 1, got sum {w.sum()!r} for {w.tolist()}")
        for j in range(k):
            c = cov[j]
            if not np.allclose(c, c.T, rtol=1e-10, atol=1e-12):
                raise ValueError(f"covariances[{j}] must be symmetric, got {c.tolist()}")
            if np.linalg.eigvalsh(c).min() <= 0:
                raise ValueError(f"covariances[{j}] must be positive definite, got {c.tolist()}")
        self.weights = _frozen(w / w.sum())
        self.means = _frozen(mu)
        self.covariances = _frozen(0.5 * (cov + cov.transpose(0, 2, 1)))
        self._chol = _frozen(np.linalg.cholesky(self.covariances))
        self._key = (self.weights.tobytes(), self.means.tobytes(), self.covariances.tobytes())

    # ------------------------------------------------------------------ construction helpers
    @classmethod
    def preset(cls, name: str) -> GaussianMixture:
        """A named target.

        ``"gaussgan"``: weights (1/2, 1/2), means (-5, 5) and (5, 5), identity covariances (the
        research code's target). ``"ring8"``: 8 equal-weight components with means on a circle of
        radius 2 centred at the origin (angles 2*pi*j/8) and isotropic standard deviation 0.2.
        An unknown name raises ``ValueError`` listing the known ones.
        """
        if name == "gaussgan":
            return cls([0.5, 0.5], [[-5.0, 5.0], [5.0, 5.0]], [np.eye(2), np.eye(2)])
        if name == "ring8":
            angles = 2.0 * np.pi * np.arange(8) / 8
            means = _RING8_RADIUS * np.stack([np.cos(angles), np.sin(angles)], axis=1)
            return cls(np.full(8, 1 / 8), means, np.tile(_RING8_STD**2 * np.eye(2), (8, 1, 1)))
        raise ValueError(f"unknown preset {name!r}; known presets: {', '.join(PRESETS)}")

    def to_dict(self) -> dict[str, list]:
        """Plain lists (YAML/JSON friendly): ``{"weights", "means", "covariances"}``."""
        return {
            "weights": self.weights.tolist(),
            "means": self.means.tolist(),
            "covariances": self.covariances.tolist(),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> GaussianMixture:
        """Inverse of :meth:`to_dict`; a missing or unknown key raises ``ValueError``."""
        if not isinstance(d, Mapping):
            raise ValueError(f"expected a mapping with weights, means, covariances; got {d!r}")
        expected = {"weights", "means", "covariances"}
        if set(d) != expected:
            raise ValueError(
                f"GaussianMixture dict must have exactly the keys {sorted(expected)}, "
                f"got {sorted(map(str, d))}"
            )
        return cls(d["weights"], d["means"], d["covariances"])

    def subset(self, components: Sequence[int]) -> GaussianMixture:
        """The mixture restricted to ``components``, weights renormalised (e.g. dropped modes)."""
        idx = np.asarray(components, dtype=int)
        if idx.size == 0:
            raise ValueError("subset needs at least one component")
        w = self.weights[idx]
        return GaussianMixture(w / w.sum(), self.means[idx], self.covariances[idx])

    # ------------------------------------------------------------------ the distribution
    @property
    def n_components(self) -> int:
        return int(self.weights.shape[0])

    def sample(self, n: int, rng: np.random.Generator | int | None = None) -> np.ndarray:
        """Draw ``n`` exact samples, shape (n, 2) float64. ``rng``: a Generator or an int seed."""
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
            raise ValueError(f"n must be a non-negative int, got {n!r}")
        gen = as_generator(rng)
        counts = gen.multinomial(int(n), self.weights)
        comp = np.repeat(np.arange(self.n_components), counts)
        z = gen.standard_normal((int(n), 2))
        x = self.means[comp] + np.einsum("nij,nj->ni", self._chol[comp], z)
        return x[gen.permutation(int(n))]

    def component_log_prob(self, x: np.ndarray) -> np.ndarray:
        """Log density of each component (without its weight) at ``x``: shape (n, K), nats."""
        log_det = np.log(self._chol[:, 0, 0]) + np.log(self._chol[:, 1, 1])
        return -0.5 * self.mahalanobis_sq(x) - log_det - math.log(2.0 * math.pi)

    def mahalanobis_sq(self, x: np.ndarray) -> np.ndarray:
        """Squared Mahalanobis distance of ``x`` to each component: shape (n, K)."""
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != 2:
            raise ValueError(f"x must have shape (n, 2), got {x.shape}")
        diff = x[:, None, :] - self.means[None, :, :]  # (n, K, 2)
        l11, l21, l22 = self._chol[:, 0, 0], self._chol[:, 1, 0], self._chol[:, 1, 1]
        z1 = diff[..., 0] / l11
        z2 = (diff[..., 1] - l21 * z1) / l22
        return z1**2 + z2**2

    def log_prob(self, x: np.ndarray) -> np.ndarray:
        """Exact log density log q(x) in nats, for ``x`` of shape (n, 2); returns shape (n,)."""
        with np.errstate(divide="ignore"):
            log_w = np.log(self.weights)
        return logsumexp(self.component_log_prob(x) + log_w, axis=1)

    # ------------------------------------------------------------------ identity
    def __eq__(self, other: object) -> bool:
        return isinstance(other, GaussianMixture) and self._key == other._key

    def __hash__(self) -> int:
        return hash(self._key)

    def __repr__(self) -> str:
        return (
            f"GaussianMixture(weights={self.weights.tolist()}, means={self.means.tolist()}, "
            f"covariances={self.covariances.tolist()})"
        )
