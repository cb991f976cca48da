"""KL(Q||P) between a known target Q and a generator P seen only through samples, in nats.

The default, ``method="smoothed"``, estimates KL(Q||P) at a stated resolution s: the
Gaussian-smoothed divergence

    D_s = KL(Q_s || P_s) = E_{x~Q_s}[ log q_s(x) - log p_s(x) ],   X_s = X + s Z,  Z ~ N(0, I),

finite for every generator (also those of bounded support, whose KL(Q||P) is infinite), zero iff
P = Q, at most KL(Q||P), and equal to it as s -> 0. Q_s is exact (every covariance plus s^2 I); the
``n_target`` evaluation points are drawn from Q_s with a fixed evaluation seed, so every trial is
scored on the same points. P_s is estimated by p_hat(x) = (1/m) sum_j N(x; y_j, s^2 I), unbiased
for p_s(x); log p_hat is biased low, which the leave-one-generator-sample-out jackknife removes
(exactly, from per-point sums of kernel weights: :mod:`metrics._gauss_sum`). The delta-method
correction is reported beside it: a large gap between the two says s or m is too small.
s defaults to :func:`metrics.default_sigma` of the target.

``method="knn"`` (k-nearest-neighbour density, digamma term) and ``method="kde"`` (fixed-bandwidth
KDE) estimate the unsmoothed KL(Q||P) on points drawn from Q; they stay as comparisons and
diagnostics. Their finite-sample bias is measured by Monte Carlo at a distribution whose density is
known exactly and which looks like P:

- ``correction="refit"`` (their default): Q's mixture refitted to the samples
  (:func:`metrics.refit.stand_in_mixture`), ``N_REFIT_DRAWS`` draws of size m, per call;
- ``correction="null"``: Q itself, ``N_NULL`` draws, cached;
- ``correction="none"``: no correction.

Intervals cover every noise source that moves the number: the spread over the R generator
replicates, the evaluation points' noise (standard error of the per-point terms) and, for the
Monte Carlo corrections, their own noise. The 95% interval is a Student-t interval with
Welch-Satterthwaite degrees of freedom. With one replicate it still exists, but the generator-draw
noise is not in it (``KLEstimate.interval_sources`` says what is).

``points="rqmc"`` (``"smoothed"`` only) scores replicate r on its own randomized quasi-Monte Carlo
set r (fixed by the seed, so every trial's replicate r sees the same points): for the same n the
evaluation points' noise falls several- to tens-fold (docs/kl-estimators.md). A scrambled set
cannot measure its own error, so the replicates' spread, which then holds both noises, is the
whole standard error (Student-t, R - 1 degrees of freedom); with one replicate there is no
interval (NaN).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import Any

import numpy as np
from scipy import special  # stdtrit(df, q) is scipy.stats.t.ppf(q, df), without its import

from ._density import kde_log_density, knn_log_density
from ._gauss_sum import gauss_sums
from ._points import rqmc_points
from ._validation import check_replicates, check_target
from .mixture import GaussianMixture
from .refit import stand_in_mixture
from .resolution import DEFAULT_PROFILE, check_sigma, default_sigma, smoothed_target

__all__ = [
    "CORRECTIONS", "DEFAULT_K", "DEFAULT_N_TARGET", "KLEstimate", "METHODS", "POINTS",
    "kl_divergence", "kl_profile",
]

#: Default number of target evaluation points.
DEFAULT_N_TARGET = 20_000
#: Default neighbour rank for ``method="knn"`` (see docs/kl-estimators.md for why 4).
DEFAULT_K = 4
#: Estimators ``kl_divergence`` accepts; the first is the default.
METHODS: tuple[str, ...] = ("smoothed", "knn", "kde")
#: Finite-sample corrections each method accepts; the first is its default.
CORRECTIONS: dict[str, tuple[str, ...]] = {
    "smoothed": ("jackknife", "delta", "none"),
    "knn": ("refit", "null", "none"),
    "kde": ("refit", "null", "none"),
}
#: How ``method="smoothed"`` draws its evaluation points; the first is the default. ``"iid"``:
#: independent draws from Q_s, the same for every replicate. ``"rqmc"``: randomized quasi-Monte
#: Carlo (:mod:`metrics._points`), an independent scrambled set per replicate.
POINTS: tuple[str, ...] = ("iid", "rqmc")
#: P = Q draws averaged for ``correction="null"``, per method (once per process, cached).
N_NULL = {"knn": 128, "kde": 16}
#: Draws from the refitted mixture averaged for ``correction="refit"``, per method (every call).
N_REFIT_DRAWS = {"knn": 6, "kde": 2}

# Stream tags that keep evaluation points, P = Q draws and stand-in draws apart from
# default_rng(seed).
_EVAL_STREAM = 0x51A7
_NULL_STREAM = 0x9E11
_REFIT_STREAM = 0x2EF1

#: What an interval can contain (``KLEstimate.interval_sources``).
GENERATOR_DRAWS, EVALUATION_POINTS, CORRECTION_NOISE = (
    "generator draws", "evaluation points", "correction Monte Carlo")


@dataclass(frozen=True)
class KLEstimate:
    """An estimate of KL(Q||P) in nats (of D_s = KL(Q_s||P_s) for ``method="smoothed"``).

    Attributes
    ----------
    value : float
        Mean over replicates of the (bias-corrected, unless disabled) estimate, nats.
    stderr : float
        Standard error of ``value``: the root sum of squares of ``stderr_replicates`` (when R > 1),
        ``stderr_points`` and ``stderr_correction``.
    ci_low, ci_high : float
        95% Student-t interval ``value -/+ t_{0.975, df} * stderr``, df by Welch-Satterthwaite.
    method : str
        ``"smoothed"``, ``"knn"`` or ``"kde"``.
    sigma : float or None
        The resolution s of D_s (``"smoothed"``), in the data's units; None for the others.
    n_target : int
        Number of evaluation points (drawn from Q_s for ``"smoothed"``, from Q otherwise).
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
        The estimated bias subtracted from the raw plug-in estimate (mean over replicates).
    correction_method : str
        ``"jackknife"``, ``"delta"``, ``"refit"``, ``"null"`` or ``"none"``.
    values : tuple of float
        The per-replicate estimates.
    stderr_replicates : float
        Standard deviation of ``values`` over sqrt(R): generator-draw noise; ``nan`` when R = 1.
    stderr_points : float
        Standard error of the mean of the per-point terms (averaged over replicates): the
        evaluation points' noise.
    stderr_correction : float
        Monte Carlo standard error of a ``"refit"`` or ``"null"`` correction, else 0.
    interval_sources : tuple of str
        The noise sources that ``stderr`` and the interval contain; without ``"generator draws"``
        (one replicate) the interval says nothing about generator-draw noise.
    delta_correction : float or None
        ``"smoothed"`` only: the delta-method bias estimate, beside the jackknife's ``correction``
        as a diagnostic; a gap of more than about ``stderr`` between them says s or m is too small.
    points : str
        ``"iid"`` or ``"rqmc"`` (``POINTS``). With ``"rqmc"`` the evaluation points' noise is
        inside ``stderr_replicates`` and ``stderr_points`` is ``nan``.
    """

    value: float
    stderr: float
    ci_low: float
    ci_high: float
    method: str
    sigma: float | None
    n_target: int
    m: int
    replicates: int
    k: int | None
    bandwidth: float | None
    seed: int
    correction: float
    correction_method: str
    values: tuple[float, ...]
    stderr_replicates: float
    stderr_points: float
    stderr_correction: float
    interval_sources: tuple[str, ...]
    delta_correction: float | None
    points: str = "iid"

    @property
    def covers_generator_draws(self) -> bool:
        """Whether the interval includes generator-draw noise (it needs two or more replicates)."""
        return GENERATOR_DRAWS in self.interval_sources

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict (strict JSON: ``nan`` becomes ``None``, tuples lists)."""
        d = asdict(self)
        d["values"] = list(self.values)
        d["interval_sources"] = list(self.interval_sources)
        return {
            key: (None if isinstance(v, float) and not math.isfinite(v) else v)
            for key, v in d.items()
        }


def _check_int(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return int(value)


@lru_cache(maxsize=32)
def _evaluation_points(
    source: GaussianMixture, n: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """The fixed points drawn from ``source`` for ``seed`` and their exact log density (cached)."""
    rng = np.random.default_rng([_EVAL_STREAM, seed])
    x = source.sample(n, rng)
    log_q = source.log_prob(x)
    x.setflags(write=False)
    log_q.setflags(write=False)
    return x, log_q


# ---------------------------------------------------------------------------- interval


def _interval(values: np.ndarray, point_terms: np.ndarray, corr_se: float, corr_draws: int
              ) -> tuple[float, float, float, float, float, tuple[str, ...]]:
    """(stderr, ci_low, ci_high, se_replicates, se_points, sources) for replicate ``values``.

    ``point_terms`` (R, n) are the per-point terms whose mean over points is each replicate's
    value. Components: replicate spread (df R - 1), per-point spread of the replicate-averaged
    terms (df n - 1), correction noise (df draws - 1); Welch-Satterthwaite combines them.
    """
    r, n = point_terms.shape
    per_point = point_terms.mean(axis=0)
    se_points = float(per_point.std(ddof=1) / math.sqrt(n))
    parts = [(se_points**2, n - 1)]
    sources = [EVALUATION_POINTS]
    se_reps = float("nan")
    if r > 1:
        se_reps = float(values.std(ddof=1) / math.sqrt(r))
        parts.append((se_reps**2, r - 1))
        sources.insert(0, GENERATOR_DRAWS)
    if corr_draws > 1:
        parts.append((corr_se**2, corr_draws - 1))
        sources.append(CORRECTION_NOISE)
    var = sum(v for v, _ in parts)
    stderr = math.sqrt(var)
    denom = sum(v * v / df for v, df in parts)
    df = var * var / denom if denom > 0 else float(n - 1)
    half = float(special.stdtrit(df, 0.975)) * stderr if stderr > 0 else 0.0
    value = float(values.mean())
    return stderr, value - half, value + half, se_reps, se_points, tuple(sources)


def _replicate_interval(values: np.ndarray
                        ) -> tuple[float, float, float, float, float, tuple[str, ...]]:
    """As :func:`_interval` where each replicate has its own evaluation points: the replicates'
    spread holds both noises (df R - 1); one replicate has no interval."""
    r = values.shape[0]
    value = float(values.mean())
    if r < 2:
        nan = float("nan")
        return nan, nan, nan, nan, nan, ()
    stderr = float(values.std(ddof=1) / math.sqrt(r))
    half = float(special.stdtrit(r - 1, 0.975)) * stderr
    return stderr, value - half, value + half, stderr, float("nan"), (GENERATOR_DRAWS,
                                                                      EVALUATION_POINTS)


# ---------------------------------------------------------------------------- smoothed


def _smoothed_terms(log_q: np.ndarray, x: np.ndarray, y: np.ndarray, sigma: float
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-point log q_s - log p_hat: (raw, jackknifed, delta-corrected), each of shape (n,).

    Jackknife: J = m log p_hat - (m - 1) mean_j log p_hat_{-j}, and p_hat_{-j} = p_hat (1 - w_j)
    m / (m - 1), so J = log p_hat + (m - 1) log((m - 1) / m) - (m - 1) / m * sum_j log(1 - w_j).
    Delta method: E log p_hat ~ log p - Var(p_hat) / (2 p^2), Var estimated without bias.
    """
    m = y.shape[0]
    log_p, log_loo, w2 = gauss_sums(x, y, sigma)
    jack = log_p + (m - 1) * math.log((m - 1) / m) - (m - 1) / m * log_loo
    delta = log_p + 0.5 * m / (m - 1) * (w2 - 1.0 / m)
    return log_q - log_p, log_q - jack, log_q - delta


def _smoothed(target: GaussianMixture, reps: list[np.ndarray], sigma: float, n: int, seed: int,
              correction: str, points: str) -> dict[str, Any]:
    source = smoothed_target(target, sigma)
    if points == "iid":
        x, log_q = _evaluation_points(source, n, seed)
        raw, jack, delta = zip(*(_smoothed_terms(log_q, x, y, sigma) for y in reps), strict=True)
    else:  # replicate r on its own set r; the weights make each set's mean unbiased
        weighted = []
        for r, y in enumerate(reps):
            x, log_q, weight = rqmc_points(source, n, seed, r)
            weighted.append(tuple(t * weight for t in _smoothed_terms(log_q, x, y, sigma)))
        raw, jack, delta = zip(*weighted, strict=True)
    raw_v = np.array([t.mean() for t in raw])
    delta_v = np.array([t.mean() for t in delta])
    chosen = {"jackknife": jack, "delta": delta, "none": raw}[correction]
    terms = np.stack(chosen)
    values = terms.mean(axis=1)
    return {"terms": terms, "values": values, "correction": float((raw_v - values).mean()),
            "delta_correction": float((raw_v - delta_v).mean()), "corr_se": 0.0, "corr_draws": 0}


# ---------------------------------------------------------------------------- knn / kde


def _raw_terms(
    x: np.ndarray, log_q: np.ndarray, y: np.ndarray, method: str, k: int, bandwidth: float | None
) -> np.ndarray:
    if method == "knn":
        log_p = knn_log_density(x, y, k)
    else:
        log_p = kde_log_density(x, y, bandwidth)
    return log_q - log_p


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
) -> tuple[float, float]:
    """Mean error of the uncorrected estimator when P is ``stand_in``, over ``draws`` of size m,
    and its Monte Carlo standard error.

    ``log_p`` is the stand-in's exact log density at ``x``; it replaces ``log q``, so the truth on
    the evaluation points is exactly 0 and the mean is the estimator's bias for such a P.
    """
    errors = np.array([
        _raw_terms(x, log_p, stand_in.sample(m, rng), method, k, bandwidth).mean()
        for _ in range(draws)
    ])
    return float(errors.mean()), float(errors.std(ddof=1) / math.sqrt(draws))


@lru_cache(maxsize=256)
def _null_mean(
    target: GaussianMixture, n: int, m: int, method: str, k: int, bandwidth: float | None,
    seed: int,
) -> tuple[float, float]:
    """The bias at P = Q, over ``N_NULL[method]`` exact draws of size m (cached per process)."""
    x, log_q = _evaluation_points(target, n, seed)
    rng = np.random.default_rng([_NULL_STREAM, seed, m, k])
    return _bias_at(target, x, log_q, m, N_NULL[method], rng, method, k, bandwidth)


def _refit_bias(
    target: GaussianMixture, pooled: np.ndarray, n: int, m: int, method: str, k: int,
    bandwidth: float | None, seed: int,
) -> tuple[float, float]:
    """The bias at Q refitted to ``pooled``, over ``N_REFIT_DRAWS[method]`` draws of size m.

    Draws are seeded from (seed, m, k), so the same samples always give the same value.
    """
    x, _ = _evaluation_points(target, n, seed)
    rng = np.random.default_rng([_REFIT_STREAM, seed, m, k])
    stand_in = stand_in_mixture(target, pooled)
    return _bias_at(
        stand_in, x, stand_in.log_prob(x), m, N_REFIT_DRAWS[method], rng, method, k, bandwidth
    )


def _neighbours(target: GaussianMixture, reps: list[np.ndarray], n: int, seed: int, method: str,
                k: int, bandwidth: float | None, correction: str) -> dict[str, Any]:
    m = reps[0].shape[0]
    x, log_q = _evaluation_points(target, n, seed)
    if correction == "refit":
        offset, corr_se = _refit_bias(target, np.concatenate(reps), n, m, method, k, bandwidth,
                                      seed)
        draws = N_REFIT_DRAWS[method]
    elif correction == "null":
        offset, corr_se = _null_mean(target, n, m, method, k, bandwidth, seed)
        draws = N_NULL[method]
    else:
        offset, corr_se, draws = 0.0, 0.0, 0
    terms = np.stack([_raw_terms(x, log_q, y, method, k, bandwidth) for y in reps]) - offset
    return {"terms": terms, "values": terms.mean(axis=1), "correction": float(offset),
            "delta_correction": None, "corr_se": corr_se, "corr_draws": draws}


# ---------------------------------------------------------------------------- public


def kl_divergence(
    target: GaussianMixture,
    samples: Any,
    *,
    method: str = "smoothed",
    sigma: float | None = None,
    seed: int = 0,
    n_target: int = DEFAULT_N_TARGET,
    k: int = DEFAULT_K,
    correction: str | None = None,
    bandwidth: float | None = None,
    points: str = "iid",
) -> KLEstimate:
    """Estimate KL(Q||P) in nats, Q = ``target`` (exact), P known through ``samples``.

    Parameters
    ----------
    target : GaussianMixture
        The target Q.
    samples : array of shape (m, 2), or a list of R such arrays
        Generator draws; a list holds R independent draws of equal size m (m >= 2), whose spread
        enters the standard error and the interval.
    method : {"smoothed", "knn", "kde"}, default "smoothed"
        ``"smoothed"``: D_s = KL(Q_s||P_s) at resolution ``sigma`` (module docstring).
        ``"knn"``, ``"kde"``: the unsmoothed KL(Q||P) by a k-NN or a Gaussian KDE density.
    sigma : float or None, default None
        ``"smoothed"`` only: the resolution s (> 0, data units); None is
        :func:`metrics.default_sigma` of ``target``.
    seed : int, default 0
        Fixes the ``n_target`` evaluation points (and a Monte Carlo correction's draws).
    n_target : int, default 20000
        Number of evaluation points.
    k : int, default 4
        Neighbour rank for ``method="knn"``; ``m`` must exceed it.
    correction : str or None, default None
        None is the method's default. ``"smoothed"``: ``"jackknife"`` (default), ``"delta"`` or
        ``"none"``. ``"knn"``/``"kde"``: ``"refit"`` (default; bias measured at Q refitted to all
        replicates' samples, 6 draws of size m for knn, 2 for kde, every call), ``"null"`` (at Q
        itself: 128 draws for knn, 16 for kde, cached per process) or ``"none"``.
    bandwidth : float or None, default None
        ``method="kde"`` only: isotropic kernel standard deviation; None is Scott's rule.
    points : {"iid", "rqmc"}, default "iid"
        ``method="smoothed"`` only: independent evaluation points shared by every replicate, or
        an independent randomized quasi-Monte Carlo set per replicate (module docstring).

    Returns
    -------
    KLEstimate
        ``value`` is the mean over replicates; ``stderr`` and the 95% interval cover the sources
        named in ``interval_sources`` (with one replicate, not the generator-draw noise).

    Raises
    ------
    ValueError
        If ``samples`` contains NaN/inf, is not (m, 2), has too few points (m <= k for knn, m < 3
        for kde, m < 2 for smoothed), mixes replicate sizes, or an argument is out of range.
    """
    check_target(target)
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    allowed = CORRECTIONS[method]
    correction = allowed[0] if correction is None else correction
    if correction not in allowed:
        raise ValueError(
            f"correction must be one of {allowed} for method={method!r}, got {correction!r}")
    seed = _check_int("seed", seed, 0)
    n_target = _check_int("n_target", n_target, 2)
    if method != "smoothed" and sigma is not None:
        raise ValueError("sigma applies to method='smoothed' only")
    if method != "kde" and bandwidth is not None:
        raise ValueError("bandwidth applies to method='kde' only")
    if points not in POINTS:
        raise ValueError(f"points must be one of {POINTS}, got {points!r}")
    if method != "smoothed" and points != "iid":
        raise ValueError("points='rqmc' applies to method='smoothed' only")
    if method == "smoothed":
        sigma = default_sigma(target) if sigma is None else check_sigma(sigma)
        min_points = 2
    elif method == "knn":
        k = _check_int("k", k, 1)
        min_points = k + 1
    else:
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

    if method == "smoothed":
        assert sigma is not None
        parts = _smoothed(target, reps, sigma, n_target, seed, correction, points)
    else:
        parts = _neighbours(target, reps, n_target, seed, method, k, bandwidth, correction)
    values = parts["values"]
    if not np.all(np.isfinite(values)):  # pragma: no cover - guarded by the distance floors
        raise ValueError(f"KL estimate is not finite ({values.tolist()}); check the samples")
    if points == "rqmc":
        stderr, ci_low, ci_high, se_reps, se_points, sources = _replicate_interval(values)
    else:
        stderr, ci_low, ci_high, se_reps, se_points, sources = _interval(
            values, parts["terms"], parts["corr_se"], parts["corr_draws"])
    return KLEstimate(
        value=float(values.mean()),
        stderr=stderr,
        ci_low=ci_low,
        ci_high=ci_high,
        method=method,
        sigma=sigma if method == "smoothed" else None,
        n_target=n_target,
        m=m,
        replicates=len(values),
        k=k if method == "knn" else None,
        bandwidth=bandwidth,
        seed=seed,
        correction=parts["correction"],
        correction_method=correction,
        values=tuple(float(v) for v in values),
        stderr_replicates=se_reps,
        stderr_points=se_points,
        stderr_correction=float(parts["corr_se"]),
        interval_sources=sources,
        delta_correction=parts["delta_correction"],
        points=points,
    )


def kl_profile(
    target: GaussianMixture,
    samples: Any,
    *,
    sigma: float | None = None,
    factors: tuple[float, ...] = DEFAULT_PROFILE,
    **options: Any,
) -> tuple[KLEstimate, ...]:
    """The resolution profile: D_s at ``factor * sigma`` for each of ``factors``, in order.

    ``sigma`` defaults to :func:`metrics.default_sigma` of ``target``; ``options`` go to
    :func:`kl_divergence` (``method`` is always ``"smoothed"``). Conclusions that hold at one s can
    change at another, so a result is reported with its profile.
    """
    if "method" in options and options["method"] != "smoothed":
        raise ValueError("kl_profile is for method='smoothed'")
    options.pop("method", None)
    base = default_sigma(target) if sigma is None else check_sigma(sigma)
    if not factors:
        raise ValueError("factors must name at least one multiple of sigma")
    return tuple(
        kl_divergence(target, samples, sigma=base * check_sigma(f), **options) for f in factors
    )
