"""Expected best after n trials (Dodge et al. 2019, "Show your work"), for minimisation.

How good is an arm's answer after a budget of n trials? Treat the arm's N observed trial values as
the distribution of one trial's value (empirical CDF ``F_N``) and ask for the expected minimum of
n independent draws from it. With the values sorted ``v_(1) <= ... <= v_(N)``,
``P(min = v_(i)) = ((N - i + 1) / N)^n - ((N - i) / N)^n``, so

    E[min_n] = sum_i v_(i) [((N - i + 1) / N)^n - ((N - i) / N)^n].

(Dodge et al. write the same for the maximum.) The curve falls with n and flattens where more
trials stop helping; a curve still falling at n = N says the budget was too small. The band is a
percentile bootstrap: the N values are resampled with replacement and the curve recomputed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from hpo.verdict import CONFIDENCE, check_confidence, finite_values

__all__ = ["ExpectedBest", "expected_best"]

#: Bootstrap resamples of the band.
DEFAULT_BOOT = 2000


@dataclass(frozen=True)
class ExpectedBest:
    """Expected best (lowest) value after n trials, n = 1 .. n_max, with a bootstrap band.

    Attributes
    ----------
    n : numpy.ndarray of int
        1 .. n_max.
    expected : numpy.ndarray
        ``E[min_n]`` under the empirical CDF of the trial values (same unit as the values).
    band_low, band_high : numpy.ndarray
        Percentile bootstrap band of ``confidence`` (pointwise in n).
    n_values : int
        N, the number of trial values.
    n_boot : int
    confidence : float
    """

    n: np.ndarray
    expected: np.ndarray
    band_low: np.ndarray
    band_high: np.ndarray
    n_values: int
    n_boot: int
    confidence: float

    def as_dict(self) -> dict[str, Any]:
        return {"n": self.n.tolist(), "expected": self.expected.tolist(),
                "band": [self.band_low.tolist(), self.band_high.tolist()],
                "n_values": self.n_values, "n_boot": self.n_boot, "confidence": self.confidence,
                "method": "Dodge et al. 2019, empirical CDF, percentile bootstrap band"}


def _weights(n_values: int, n_max: int) -> np.ndarray:
    """``w[n - 1, i] = P(min of n draws = i-th smallest)``, shape (n_max, N)."""
    above = (n_values - np.arange(n_values + 1)) / n_values  # P(draw >= v_(i)), i = 1 .. N + 1
    powers = above[None, :] ** np.arange(1, n_max + 1)[:, None]
    return powers[:, :-1] - powers[:, 1:]


def expected_best(values: Sequence[float], *, n_max: int | None = None,
                  confidence: float = CONFIDENCE, n_boot: int = DEFAULT_BOOT,
                  rng: int | np.random.Generator | None = 0) -> ExpectedBest:
    """Expected minimum of n trials drawn from an arm's observed trial values, with a band.

    Parameters
    ----------
    values : sequence of float
        The arm's N trial values (e.g. D_s in nats; lower is better), at least one, finite. Pool
        an arm's searches when they are independent runs of the same process.
    n_max : int, optional
        Largest budget of the curve; defaults to N (beyond N the curve extrapolates).
    confidence : float, default 0.95
        Pointwise coverage of the bootstrap band.
    n_boot : int, default 2000
        Bootstrap resamples (at least 100).
    rng : int, numpy.random.Generator or None, default 0
        Seed or generator of the resampling (fixed by default: the band is reproducible).
    """
    check_confidence(confidence)
    v = np.sort(finite_values(values, "trial values"))
    if v.size == 0:
        raise ValueError("trial values are empty; give at least one")
    n_max = v.size if n_max is None else int(n_max)
    if n_max < 1:
        raise ValueError(f"n_max must be at least 1, got {n_max}")
    if n_boot < 100:
        raise ValueError(f"n_boot must be at least 100, got {n_boot}")
    w = _weights(v.size, n_max)
    gen = np.random.default_rng(rng)
    boot = np.sort(gen.choice(v, size=(n_boot, v.size), replace=True), axis=1) @ w.T
    tail = (1.0 - confidence) / 2
    low, high = np.quantile(boot, [tail, 1.0 - tail], axis=0)
    return ExpectedBest(np.arange(1, n_max + 1), w @ v, low, high, int(v.size), int(n_boot),
                        confidence)
