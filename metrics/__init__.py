"""Target distributions and the metrics that score generator samples against them.

numpy/scipy (and POT for Wasserstein) only. All divergences are in nats.

    >>> from metrics import GaussianMixture, kl_divergence
    >>> q = GaussianMixture.preset("gaussgan")
    >>> est = kl_divergence(q, q.sample(2000, rng=1))   # one replicate: stderr is nan
"""

from .coverage import mode_coverage
from .kl import CORRECTIONS, DEFAULT_K, DEFAULT_N_TARGET, METHODS, KLEstimate, kl_divergence
from .mixture import PRESETS, GaussianMixture
from .wasserstein import wasserstein2

__all__ = [
    "CORRECTIONS",
    "DEFAULT_K",
    "DEFAULT_N_TARGET",
    "METHODS",
    "PRESETS",
    "GaussianMixture",
    "KLEstimate",
    "kl_divergence",
    "mode_coverage",
    "wasserstein2",
]
