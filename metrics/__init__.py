"""Target distributions and the metrics that score generator samples against them.

numpy/scipy (and POT for Wasserstein) only. All divergences are in nats.

    >>> from metrics import GaussianMixture, default_sigma, kl_divergence
    >>> q = GaussianMixture.preset("gaussgan")
    >>> default_sigma(q)                              # the resolution s of D_s for this target
    0.5
    >>> est = kl_divergence(q, q.sample(2000, rng=1))   # D_s at s = 0.5, one replicate
"""

from .coverage import mode_coverage
from .kl import (
    CORRECTIONS,
    DEFAULT_K,
    DEFAULT_N_TARGET,
    METHODS,
    POINTS,
    KLEstimate,
    kl_divergence,
    kl_profile,
)
from .mixture import PRESETS, GaussianMixture
from .resolution import DEFAULT_PROFILE, default_sigma, divergence_name, smoothed_target
from .wasserstein import wasserstein2

__all__ = [
    "CORRECTIONS",
    "DEFAULT_K",
    "DEFAULT_N_TARGET",
    "DEFAULT_PROFILE",
    "METHODS",
    "POINTS",
    "PRESETS",
    "GaussianMixture",
    "KLEstimate",
    "default_sigma",
    "divergence_name",
    "kl_divergence",
    "kl_profile",
    "mode_coverage",
    "smoothed_target",
    "wasserstein2",
]
