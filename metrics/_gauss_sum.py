"""Sums of isotropic Gaussian kernels at many points, with the leave-one-out sums a jackknife needs.

For evaluation points x_i (n, 2), generator points y_j (m, 2) and a kernel width s (same units),
with K_ij = exp(-|x_i - y_j|^2 / (2 s^2)), S_i = sum_j K_ij and w_ij = K_ij / S_i,
:func:`gauss_sums` returns, per point,

- ``log_p``: log p_hat_s(x_i) = log S_i - log m - log(2 pi s^2), nats;
- ``log_loo``: L_i = sum_j log(1 - w_ij), which gives every leave-one-sample-out density at once,
  p_hat_{-j}(x_i) = p_hat(x_i) (1 - w_ij) m / (m - 1);
- ``w2``: sum_j w_ij^2, which gives the delta method's variance of p_hat.

Exactness. A kernel is dropped only where the total dropped mass is provably below e^-25 of every
leave-one-out sum at that point (not a fixed cut-off radius, which errs by nats at isolated points):
points are processed in blocks that are compact in space (Morton order); a block keeps the
generator points within R = s sqrt(2 (25 + log m + 10)) of its bounding box, so each dropped kernel
is below e^-25 e^-10 / m, and the block's fast path is used only at points whose kept kernels,
the largest left out, still sum to at least e^-10 and whose largest kernel is at most half the
sum. Every other point (far from the samples, or dominated by one sample) is computed against all
m points in float64 with a log-sum-exp shift (its L by the same power series for weights up to
1e-3 and log1p above: under 2.1e-13 nats per point from the series). In the fast path the
exponents are float64 and the kernels float32 (relative error about 1e-7 times the exponent, at
most a few 1e-6 per kernel), and L_i is its four-term power series in w plus the exact remainder
log1p(-w) + w + w^2/2 + w^3/3 + w^4/4 for every w above 0.05: the series' truncation error is
below sum_j w_j^5 / 5 / 0.95 <= 0.05^4 / 4.75 < 1.4e-6 nats per point (in practice far less).
The sums of w^3 and w^4 leave out kernels below 2^-29 (their float32 cubes are subnormal, and
slow): at a fast-path point S > e^-10, so they move L by at most m (2^-87 e^30 / 3 + 2^-116
e^40 / 4) < 3e-14 m nats, 6e-11 at m = 2000 (in practice not a bit: they sit far below the
float32 sums' last place).
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["TRUNCATION", "gauss_sums"]

#: Dropped kernel mass is below exp(-TRUNCATION) of every leave-one-out sum, at every point.
TRUNCATION = 25.0
# The fast path requires sum_{j != largest} K_ij >= exp(-_SLACK); the radius pays for it.
_SLACK = 10.0
# Evaluation points per block.
_BLOCK = 256
# Kernels below this leave the sums of cubes and fourth powers (not S, nor sum w^2): their cubes
# would be float32 subnormals, on which every multiplication costs several normal ones (that was
# 60% of the fast path's time). Error bound in the module docstring.
_POWER_FLOOR = np.float32(2.0**-29)
# Weights above this get the exact log1p; below, the power series to w^4 (see module docstring).
_W_SERIES = 0.05
# A point whose largest weight exceeds this goes to the exact path (1 - w loses digits there).
_W_DOMINANT = 0.5
# The exact path's log1p(-w): its power series to w^4 for every weight up to this (error below
# 2.1e-13 nats per point), log1p above (see _log1m_sums).
_W_EXACT_SERIES = 1e-3
# float64 entries per chunk of the exact path (512 KiB: each of its passes stays in a core's
# L2 cache; 8 MiB chunks streamed from memory, at about 1.5 times the time).
_EXACT_CHUNK = 1 << 16


def _morton_order(x: np.ndarray) -> np.ndarray:
    """Indices that sort ``x`` along a Z-order curve, so consecutive blocks are compact."""
    lo = x.min(axis=0)
    span = np.maximum(x.max(axis=0) - lo, 1e-300)
    q = np.minimum((x - lo) / span * 1023.0, 1023.0).astype(np.uint32)

    def spread(v: np.ndarray) -> np.ndarray:  # 10 bits -> every other bit of 20
        v = (v | (v << 8)) & 0x00FF00FF
        v = (v | (v << 4)) & 0x0F0F0F0F
        v = (v | (v << 2)) & 0x33333333
        return (v | (v << 1)) & 0x55555555

    return np.argsort(spread(q[:, 0]) | (spread(q[:, 1]) << 1), kind="stable")


def _exact_rows(x: np.ndarray, y: np.ndarray, sigma: float
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(log S, L, sum w^2) at ``x`` against every point of ``y``, float64, no truncation.

    Every (row, sample) matrix is computed in place, and the exponent coordinate by coordinate
    (the operations of ``-0.5 * (((x - y) / s) ** 2).sum(axis=2)``, the same bits). L is
    ``sum_j log1p(-w_j)`` as :func:`_log1m_sums` computes it: a power series where every
    weight is small, ``log1p`` elsewhere; the log1p of every (row, sample) pair cost more than
    the kernels' exp.
    """
    n, m = x.shape[0], y.shape[0]
    log_s, loo, w2 = np.empty(n), np.empty(n), np.empty(n)
    step = max(1, _EXACT_CHUNK // m)
    tiny = np.finfo(np.float64).tiny
    y0, y1 = y[None, :, 0], y[None, :, 1]
    # Two scratch matrices reused by every chunk: fresh ones per chunk cost page faults.
    scratch = np.empty((2, min(n, step) * m))
    for a in range(0, n, step):
        xb = x[a:a + step]
        arg, v = (buffer[:xb.shape[0] * m].reshape(xb.shape[0], m) for buffer in scratch)
        np.divide(np.subtract(xb[:, 0, None], y0, out=arg), sigma, out=arg)
        np.multiply(arg, arg, out=arg)
        np.divide(np.subtract(xb[:, 1, None], y1, out=v), sigma, out=v)
        np.multiply(v, v, out=v)
        np.add(arg, v, out=arg)
        np.multiply(-0.5, arg, out=arg)  # -|x - y|^2 / (2 s^2)
        top = arg.argmax(axis=1)
        rows = np.arange(xb.shape[0])
        amax = arg[rows, top]
        np.exp(np.subtract(arg, amax[:, None], out=v), out=v)  # the largest kernel is 1
        v[rows, top] = 0.0
        others = v.sum(axis=1)
        total = 1.0 + others
        w = np.divide(v, total[:, None], out=v)
        log_s[a:a + step] = amax + np.log1p(others)
        square = np.multiply(w, w, out=arg)
        sum_sq = square.sum(axis=1)
        w2[a:a + step] = sum_sq + total ** -2.0
        loo[a:a + step] = (np.log(np.maximum(others, tiny) / total)
                           + _log1m_sums(w, square, others / total, sum_sq))
    return log_s, loo, w2


def _log1m_sums(w: np.ndarray, square: np.ndarray, sum_w: np.ndarray, sum_sq: np.ndarray
                ) -> np.ndarray:
    """``log1p(-w).sum(axis=1)`` for weights ``w`` in [0, 1) (rows summing to ``sum_w``, their
    squares ``square`` to ``sum_sq``); ``square`` is overwritten.

    -(S1 + S2/2 + S3/3 + S4/4) with S_p the row sums of w^p, plus the exact remainder
    log1p(-w) + w + w^2/2 + w^3/3 + w^4/4 of every weight above _W_EXACT_SERIES. The series'
    truncation error is below sum_j w_j^5 / 5 / (1 - w_j) <= _W_EXACT_SERIES^4 * S1 / 4.995,
    under 2.1e-13 nats per row (S1 <= 1).
    """
    sum_4 = np.einsum("ij,ij->i", square, square)
    sum_3 = np.multiply(square, w, out=square).sum(axis=1)
    series = -(sum_w + sum_sq / 2.0 + sum_3 / 3.0 + sum_4 / 4.0)
    flat = np.flatnonzero(w > _W_EXACT_SERIES)
    if flat.size:
        wb = w.ravel()[flat]
        remainder = np.log1p(-wb) + wb + wb**2 / 2.0 + wb**3 / 3.0 + wb**4 / 4.0
        series += np.bincount(flat // w.shape[1], weights=remainder, minlength=w.shape[0])
    return series


class _Buffers:
    """Scratch matrices reused by every block of one thread: a fresh 2 MB array per block costs
    more in page faults than the arithmetic that fills it."""

    def __init__(self, rows: int, cols: int) -> None:
        self.kernels = np.empty(rows * cols, dtype=np.float32)
        self.powers = np.empty(rows * cols, dtype=np.float32)
        self.ones = np.ones(cols, dtype=np.float32)

    def views(self, rows: int, cols: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        size = rows * cols
        return (self.kernels[:size].reshape(rows, cols), self.powers[:size].reshape(rows, cols),
                self.ones[:cols])


def _fast_block(xb: np.ndarray, ys: np.ndarray, sigma: float, radius: float, buffers: _Buffers,
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
    """(log S, L, sum w^2, needs the exact path) for one block; None when fewer than two
    generator points are within ``radius`` of it (every row then takes the exact path)."""
    lo, hi = xb.min(axis=0), xb.max(axis=0)
    i0, i1 = np.searchsorted(ys[:, 0], [lo[0] - radius, hi[0] + radius], side="left")
    cand = ys[i0:i1]
    cand = cand[(cand[:, 1] >= lo[1] - radius) & (cand[:, 1] <= hi[1] + radius)]
    if cand.shape[0] < 2:
        return None
    inv2s2 = 0.5 / sigma**2
    # -|x - y|^2 / (2 s^2) as one small matrix product about the block's centre: float32
    # (rounding about 6e-8 of the largest term, |y - centre|^2 / (2 s^2) <= 4 (R / s)^2 / 2)
    # unless the block is wider than R, where |x - centre|^2 would cancel digits away.
    centre = 0.5 * (lo + hi)
    xc, yc = xb - centre, cand - centre
    left = np.column_stack([xc, np.ones(len(xc)), -inv2s2 * (xc**2).sum(axis=1)])
    right = np.vstack([yc.T / sigma**2, -inv2s2 * (yc**2).sum(axis=1), np.ones(len(yc))])
    u, power, ones = buffers.views(xb.shape[0], cand.shape[0])
    if float(((hi - lo) ** 2).sum()) <= 4.0 * radius**2:
        np.matmul(left.astype(np.float32), right.astype(np.float32), out=u)
    else:
        u[...] = left @ right
    np.exp(u, out=u)
    total = u.sum(axis=1).astype(np.float64)  # pairwise summation: accurate in float32
    largest = u.max(axis=1).astype(np.float64)
    np.multiply(u, u, out=power)  # the power sums only enter divided by total^p: matvecs do
    t2 = (power @ ones).astype(np.float64)
    np.putmask(power, u < _POWER_FLOOR, 0.0)  # no subnormal products below (module docstring)
    power *= u
    t3 = (power @ ones).astype(np.float64)
    power *= u
    t4 = (power @ ones).astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        r2, r3, r4 = t2 / total**2, t3 / total**3, t4 / total**4
        series = -(1.0 + r2 / 2.0 + r3 / 3.0 + r4 / 4.0)
        some = np.flatnonzero(largest > _W_SERIES * total)
        if some.size:
            sub = u[some]
            cut = (_W_SERIES * total[some]).astype(np.float32)
            flat = np.flatnonzero(sub > cut[:, None])
            big_r = flat // sub.shape[1]
            wb = sub.ravel()[flat] / total[some][big_r]
            exact_part = np.log1p(-wb) + wb + wb**2 / 2.0 + wb**3 / 3.0 + wb**4 / 4.0
            series[some] += np.bincount(big_r, weights=exact_part, minlength=some.size)
        log_s = np.log(total)
    bad = ~((total - largest >= math.exp(-_SLACK)) & (largest <= _W_DOMINANT * total))
    return log_s, series, r2, bad


def gauss_sums(x: np.ndarray, y: np.ndarray, sigma: float
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(log_p, log_loo, w2)`` at each row of ``x``; see the module docstring.

    Parameters
    ----------
    x : ndarray of shape (n, 2), float64
        Evaluation points (validated by the caller).
    y : ndarray of shape (m, 2), float64, m >= 2
        Generator points.
    sigma : float
        Kernel standard deviation s > 0, in the units of the data.
    """
    n, m = x.shape[0], y.shape[0]
    order = _morton_order(x)
    xs = x[order]
    ys = y[np.argsort(y[:, 0], kind="stable")]
    radius = sigma * math.sqrt(2.0 * (TRUNCATION + math.log(m) + _SLACK))
    log_s, loo, w2 = np.empty(n), np.empty(n), np.empty(n)
    # (A thread pool over blocks was measured slower on this 2-core machine: the many small
    # per-block operations hold the GIL.)
    buffers = _Buffers(_BLOCK, m)
    redo: list[np.ndarray] = []
    for a in range(0, n, _BLOCK):
        rows = np.arange(a, min(a + _BLOCK, n))
        done = _fast_block(xs[a:a + _BLOCK], ys, sigma, radius, buffers)
        if done is None:
            redo.append(rows)
            continue
        log_s[rows], loo[rows], w2[rows], bad = done
        if bad.any():
            redo.append(rows[bad])
    if redo:
        again = np.concatenate(redo)
        log_s[again], loo[again], w2[again] = _exact_rows(xs[again], y, sigma)
    out_log_p = np.empty(n)
    out_loo = np.empty(n)
    out_w2 = np.empty(n)
    out_log_p[order] = log_s - math.log(m) - math.log(2.0 * math.pi * sigma**2)
    out_loo[order] = loo
    out_w2[order] = w2
    return out_log_p, out_loo, out_w2
