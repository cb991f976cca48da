"""KL(Q||P) between a known target Q and a generator P seen only through samples, in nats.

    KL(Q||P) = E_{x~Q}[ log q(x) - log p(x) ]

``log q`` is exact (the target is a :class:`~metrics.GaussianMixture`); ``log p`` is estimated from
generator samples at ``n_target`` fresh target points drawn from a fixed evaluation seed, so every
trial is scored on the same points. The default ``method="knn"`` uses the k-nearest-neighbour
density with the digamma term; ``method="kde"`` a fixed-bandwidth Gaussian KDE (Scott's rule unless
``bandwidth`` is given).

The raw estimate is biased at finite m, mostly where Q has mass that P's m samples barely reach.
A correction subtracts the estimator's own bias, measured by Monte Carlo at a distribution whose
density is known exactly and which looks like P:

- ``correction="refit"`` (default): Q's mixture refitted to the samples by EM, with components
  added while BIC asks for them (:func:`metrics.refit.stand_in_mixture`), ``N_REFIT_DRAWS``
  draws of size m, per call;
- ``correction="null"``: Q itself (the P = Q correction of DESIGN.md), 128 draws, cached;
- ``correction="none"``: no correction.

A generator with bounded support (or any P that puts no mass where Q does) has, formally, infinite
KL(Q||P). The estimate is then finite: it grows with the Q-mass that P misses and with how far that
mass lies from P's samples, so it still ranks such generators, but it is not the (infinite) truth.
With ``"refit"`` the missing mass is priced by the refitted mixture's Gaussian tails.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import Any

import numpy as np
from scipy import stats

from ._density import kde_log_density, knn_log_density
from ._validation import check_replicates, check_target
from .mixture import GaussianMixture
from .refit import stand_in_mixture

__all__ = [
    "CORRECTIONS", "DEFAULT_K", "DEFAULT_N_TARGET", "KLEstimate", "METHODS", "kl_divergence",
]

#: Default number of target evaluation points.
DEFAULT_N_TARGET = 20_000
#: Default neighbour rank for ``method="knn"`` (see docs/kl-estimators.md for why 4).
DEFAULT_K = 4
#: Estimators ``kl_divergence`` accepts.
METHODS: tuple[str, ...] = ("knn", "kde")
#: Finite-sample corrections ``kl_divergence`` accepts (see the module docstring).
CORRECTIONS: tuple[str, ...] = ("refit", "null", "none")
#: P = Q draws averaged for ``correction="null"``, per method (once per process, cached).
N_NULL = {"knn": 128, "kde": 16}
#: Draws from the refitted mixture averaged for ``correction="refit"``, per method (every call).
N_REFIT_DRAWS = {"knn": 6, "kde": 2}

# Stream tags that keep evaluation points, P = Q draws and stand-in draws apart from
# default_rng(seed).
_EVAL_STREAM = 0x51A7
_NULL_STREAM = 0x9E11
_REFIT_STREAM = 0x2EF1


@dataclass(frozen=True)
class KLEstimate:
    """An estimate of KL(Q||P) in nats, with its uncertainty over generator replicates.

    Attributes
    ----------
    value : float
        Mean over replicates of the (bias-corrected, unless disabled) estimate, nats.
    stderr : float
        Standard error of ``value`` (sample std with ddof=1 over sqrt(replicates)). ``nan`` when
        there is a single replicate: one draw says nothing about its own spread.
    ci_low, ci_high : float
        95% Student-t interval ``value -/+ t_{0.975, R-1} * stderr``; ``nan`` with one replicate.
        It covers the generator-draw noise only (the evaluation points are fixed by ``seed``).
    method : str
        ``"knn"`` or ``"kde"``.
    n_target : int
        Number of target evaluation points.
    m : int
        Generator points per replicate.
    replicates : int
        Number of independent generator draws R.
    k : int or None
        Neighbour rank (``"knn"``), else None.
    bandwidth : float or None
        Kernel standard deviation if one was given (``"kde"``); None means Scott's rule.
    seed : int
        Evaluation seed.
    correction : float
        The estimated bias that was subtracted from every replicate (0.0 with no correction).
    correction_method : str
        ``"refit"``, ``"null"`` or ``"none"``: where that bias was measured.
    values : tuple of float
        The per-replicate estimates.
    """

    value: float
    stderr: float
    ci_low: float
    ci_high: float
    method: str
    n_target: int
    m: int
    replicates: int
    k: int | None
    bandwidth: float | None
    seed: int
    correction: float
    correction_method: str
    values: tuple[float, ...]

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict (strict JSON: ``nan`` becomes ``None``, ``values`` a list)."""
        d = asdict(self)
        d["values"] = list(self.values)
        return {
            key: (None if isinstance(v, float) and not math.isfinite(v) else v)
            for key, v in d.items()
        }


def _check_int(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return int(value)


@lru_cache(maxsize=16)
def _evaluation_points(
    target: GaussianMixture, n: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """The fixed target points for ``seed`` and their exact log q (read-only, cached)."""
    rng = np.random.default_rng([_EVAL_STREAM, seed])
    x = target.sample(n, rng)
    log_q = target.log_prob(x)
    x.setflags(write=False)
    log_q.setflags(write=False)
    return x, log_q


def _raw_estimate(
    x: np.ndarray, log_q: np.ndarray, y: np.ndarray, method: str, k: int, bandwidth: float | None
) -> float:
    if method == "knn":
        log_p = knn_log_density(x, y, k)
    else:
        log_p = kde_log_density(x, y, bandwidth)
    return float(np.mean(log_q - log_p))


def _bias_at(
    stand_in: GaussianMixture,
    x: np.ndarray,
    log_p: np.ndarray,
    m: int,
    draws: int,
    rng: np.random.Generator,
    method: str,
    k: int,
    bandwidth: float | None,
) -> float:
    """Mean error of the uncorrected estimator when P is ``stand_in``, over ``draws`` of size m.

    ``log_p`` is the stand-in's exact log density at ``x``; it replaces ``log q``, so the truth on
    the evaluation points is exactly 0 and the mean is the estimator's bias for such a P.
    """
    return float(np.mean([
        _raw_estimate(x, log_p, stand_in.sample(m, rng), method, k, bandwidth)
        for _ in range(draws)
    ]))


@lru_cache(maxsize=256)
def _null_mean(
    target: GaussianMixture, n: int, m: int, method: str, k: int, bandwidth: float | None,
    seed: int,
) -> float:
    """The bias at P = Q, over ``N_NULL[method]`` exact draws of size m (cached per process)."""
    x, log_q = _evaluation_points(target, n, seed)
    rng = np.random.default_rng([_NULL_STREAM, seed, m, k])
    return _bias_at(target, x, log_q, m, N_NULL[method], rng, method, k, bandwidth)


def _refit_bias(
    target: GaussianMixture, pooled: np.ndarray, n: int, m: int, method: str, k: int,
    bandwidth: float | None, seed: int,
) -> float:
    """The bias at Q refitted to ``pooled``, over ``N_REFIT_DRAWS[method]`` draws of size m.

    Draws are seeded from (seed, m, k), so the same samples always give the same value.
    """
    x, _ = _evaluation_points(target, n, seed)
    rng = np.random.default_rng([_REFIT_STREAM, seed, m, k])
    stand_in = stand_in_mixture(target, pooled)
    return _bias_at(
        stand_in, x, stand_in.log_prob(x), m, N_REFIT_DRAWS[method], rng, method, k, bandwidth
    )


def kl_divergence(
    target: GaussianMixture,
    samples: Any,
    *,
    seed: int = 0,
    n_target: int = DEFAULT_N_TARGET,
    k: int = DEFAULT_K,
    method: str = "knn",
    correction: str = "refit",
    bandwidth: float | None = None,
) -> KLEstimate:
    """Estimate KL(Q||P) in nats, Q = ``target`` (exact), P known through ``samples``.

    Parameters
    ----------
    target : GaussianMixture
        The target Q.
    samples : array of shape (m, 2), or a list of R such arrays
        Generator draws; a list holds R independent draws of equal size m, which give the standard
        error and confidence interval.
    seed : int, default 0
        Fixes the ``n_target`` evaluation points drawn from Q (and the correction's draws).
    n_target : int, default 20000
        Number of target evaluation points.
    k : int, default 4
        Neighbour rank for ``method="knn"``; ``m`` must exceed it.
    method : {"knn", "kde"}, default "knn"
        Density estimator for log p.
    correction : {"refit", "null", "none"}, default "refit"
        Subtract the estimator's bias measured at Q refitted to all replicates' samples
        (``"refit"``: 6 draws of size m for knn, 2 for kde, every call), at Q itself (``"null"``:
        128 draws for knn, 16 for kde, cached per process), or nothing (``"none"``).
    bandwidth : float or None, default None
        ``method="kde"`` only: isotropic kernel standard deviation; None is Scott's rule.

    Returns
    -------
    KLEstimate
        ``value`` is the mean over replicates; with one replicate ``stderr``, ``ci_low`` and
        ``ci_high`` are ``nan``.

    Raises
    ------
    ValueError
        If ``samples`` contains NaN/inf, is not (m, 2), has too few points (m <= k for knn, m < 3
        for kde), mixes replicate sizes, or an argument is out of range.
    """
    check_target(target)
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if correction not in CORRECTIONS:
        raise ValueError(f"correction must be one of {CORRECTIONS}, got {correction!r}")
    seed = _check_int("seed", seed, 0)
    n_target = _check_int("n_target", n_target, 2)
    if method == "knn":
        k = _check_int("k", k, 1)
        if bandwidth is not None:
            raise ValueError("bandwidth applies to method='kde' only")
        min_points = k + 1
    else:
        k = 0
        if bandwidth is not None:
            bandwidth = float(bandwidth)
            if not (math.isfinite(bandwidth) and bandwidth > 0):
                raise ValueError(f"bandwidth must be a finite float > 0, got {bandwidth!r}")
        min_points = 3
    reps = check_replicates(samples, min_points=min_points)
    sizes = {r.shape[0] for r in reps}
    if len(sizes) != 1:
        raise ValueError(f"all replicates must have the same number of points, got {sorted(sizes)}")
    m = sizes.pop()

    x, log_q = _evaluation_points(target, n_target, seed)
    if correction == "refit":
        pooled = np.concatenate(reps)
        offset = _refit_bias(target, pooled, n_target, m, method, k, bandwidth, seed)
    elif correction == "null":
        offset = _null_mean(target, n_target, m, method, k, bandwidth, seed)
    else:
        offset = 0.0
    values = np.array([_raw_estimate(x, log_q, y, method, k, bandwidth) for y in reps]) - offset
    if not np.all(np.isfinite(values)):  # pragma: no cover - guarded by the distance floor
        raise ValueError(f"KL estimate is not finite ({values.tolist()}); check the samples")

    r = len(values)
    value = float(values.mean())
    if r > 1:
        stderr = float(values.std(ddof=1) / math.sqrt(r))
        half = float(stats.t.ppf(0.975, r - 1)) * stderr
        ci_low, ci_high = value - half, value + half
    else:
        stderr = ci_low = ci_high = float("nan")
    return KLEstimate(
        value=value,
        stderr=stderr,
        ci_low=ci_low,
        ci_high=ci_high,
        method=method,
        n_target=n_target,
        m=m,
        replicates=r,
        k=k if method == "knn" else None,
        bandwidth=bandwidth,
        seed=seed,
        correction=float(offset),
        correction_method=correction,
        values=tuple(float(v) for v in values),
    )
