"""The resolution s of the smoothed divergence D_s = KL(Q_s || P_s), X_s = X + s Z, Z ~ N(0, I).

s is a property of the target (or of the study), never of the number m of generator samples, so
that every trial and every m estimate the same quantity. The default rule,

    s = min( sigma_min,  max_k sigma_k / sqrt(8 w_k) ),

with sigma_k the smallest standard deviation of component k (square root of its covariance's
smallest eigenvalue), w_k its weight and sigma_min the smallest sigma_k, keeps about
2000 * w_k * (s / sigma_k)^2 = 250 generator points (at the reference m = 2000) within one kernel
width of the centre of every component, which is where the jackknifed estimator was measured to
be accurate (docs/kl-estimators.md): half the component width for gaussgan's two halves (0.5),
the full width for ring8's eight eighths (0.2). It never exceeds the narrowest component's width,
so D_s still resolves every component.
"""

from __future__ import annotations

import math

import numpy as np

from ._validation import check_target
from .mixture import GaussianMixture

__all__ = ["DEFAULT_PROFILE", "check_sigma", "default_sigma", "divergence_name",
           "smoothed_target"]

#: Multiples of the study's s at which the resolution profile is computed.
DEFAULT_PROFILE: tuple[float, ...] = (0.5, 1.0, 2.0)
# Generator points wanted within one kernel width of a component's centre, per unit of weight,
# at s = its width: 2000 * w * (s / sigma)^2 = 250  <=>  s = sigma / sqrt(8 w).
_POINTS_RATIO = 8.0


def default_sigma(target: GaussianMixture) -> float:
    """The default resolution s for ``target`` (same units as the data); see the module docstring.

    Depends only on the target's weights and covariances. Components of zero weight are ignored.
    """
    check_target(target)
    active = target.weights > 0
    widths = np.sqrt(np.linalg.eigvalsh(target.covariances[active])[:, 0])
    wanted = widths / np.sqrt(_POINTS_RATIO * target.weights[active])
    return float(min(widths.min(), wanted.max()))


def divergence_name(sigma: float | None) -> str:
    """What D_s at resolution ``sigma`` is called in every table, plot and stored study:
    ``D_s KL(Q||P) [nats], s = 0.5`` (``s not recorded`` when ``sigma`` is None)."""
    at = f"s = {sigma:g}" if sigma is not None else "s not recorded"
    return f"D_s KL(Q||P) [nats], {at}"


def check_sigma(sigma: object) -> float:
    """``sigma`` as a float; raise ``ValueError`` unless it is finite and > 0."""
    if isinstance(sigma, bool):
        raise ValueError(f"sigma must be a finite float > 0, got {sigma!r}")
    try:
        value = float(sigma)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ValueError(f"sigma must be a finite float > 0, got {sigma!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"sigma must be a finite float > 0, got {sigma!r}")
    return value


def smoothed_target(target: GaussianMixture, sigma: float) -> GaussianMixture:
    """Q_s: the law of X + s Z, exactly the mixture with every covariance plus s^2 I."""
    check_target(target)
    sigma = check_sigma(sigma)
    return GaussianMixture(target.weights, target.means,
                           target.covariances + sigma**2 * np.eye(2))
