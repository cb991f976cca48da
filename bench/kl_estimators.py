"""Benchmark KL(Q||P) estimators against ground truth; writes docs/kl-estimators.md.

    .venv/bin/python bench/kl_estimators.py [--reps 20] [--out docs/kl-estimators.md]

Truth: closed form for two Gaussians, else Monte Carlo over 10^6 exact draws of Q with exact
log q and log p. For every case and m in (500, 2000, 8000) each estimator sees `reps` independent
generator draws (fewer for the slow ones, see SLOW_REPS); the table gives bias, standard deviation
and RMSE in nats and the median seconds per call. Cases: the issue's Gaussian-mixture P (P = Q,
shifted, too wide, too narrow, unbalanced, ring8 with modes dropped) and P outside the mixture
family (Student-t, a curved "banana", a tanh-bounded Gaussian), where the refit stand-in of the
default correction is only an approximation. Estimators:

- knn (default): metrics.kl_divergence: k = 4, n = 20000 exact target points, bias measured at
  Q refitted to the samples (correction="refit").
- knn k=1, P=Q correction: the estimator as DESIGN.md first wrote it (k = 1, correction="null").
- kde: metrics.kl_divergence(method="kde"), Scott's bandwidth, refit correction, n = 2000.
- universal-divergence: the PyPI peer (kNN on samples of both sides, no exact log q), called as
  estimate(target_samples, generator_samples, k=1), which estimates KL(Q||P); "n=m" gives it as
  many target samples as generator samples (its usual use), the other 10000 (its per-point
  Python loop makes 20000 cost about a second per call; its adaptive default k scans all points
  per point and is unusable at these sizes).
- research v1 / v2: metrics._research, the research code's estimators as they were (wrong).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from scipy import stats
from universal_divergence import estimate as ud_estimate

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from metrics import GaussianMixture, kl_divergence  # noqa: E402
from metrics._research import research_kl_v1, research_kl_v2  # noqa: E402

MS = (500, 2000, 8000)
N_TARGET = 20_000
UD_N = 10_000
KDE_N = 2_000
TRUTH_N = 10**6
SLOW_REPS = {"kde": 5, "universal-divergence": 10, "research": 5}
OURS = "knn (default: k=4, refit)"
DESIGN_FIRST = "knn k=1, P=Q correction"
PEERS = {"universal-divergence n=m": "m target samples, k=1",
         "universal-divergence": f"{UD_N} target samples, k=1"}
I2 = np.eye(2)


def gaussian(mean=(0.0, 0.0), scale=1.0) -> GaussianMixture:
    return GaussianMixture([1.0], [mean], [scale**2 * I2])


def with_params(g, *, weights=None, shift=(0.0, 0.0), scale=1.0) -> GaussianMixture:
    w = g.weights if weights is None else weights
    return GaussianMixture(w, g.means + np.asarray(shift), scale**2 * g.covariances)


class StudentT:
    """2-D Student-t with unit covariance: heavier tails than any Gaussian mixture."""

    def __init__(self, df: float) -> None:
        self._dist = stats.multivariate_t(np.zeros(2), I2 * (df - 2) / df, df=df)

    def sample(self, n: int, seed: int) -> np.ndarray:
        return self._dist.rvs(n, random_state=np.random.default_rng(seed))

    def log_prob(self, x: np.ndarray) -> np.ndarray:
        return self._dist.logpdf(x)


class Banana:
    """(z1, z2 + b (z1^2 - 1)), z standard normal: curved, Jacobian 1, KL(N(0,I)||P) = b^2."""

    def __init__(self, b: float) -> None:
        self.b = b

    def sample(self, n: int, seed: int) -> np.ndarray:
        z = np.random.default_rng(seed).standard_normal((n, 2))
        z[:, 1] += self.b * (z[:, 0] ** 2 - 1)
        return z

    def log_prob(self, x: np.ndarray) -> np.ndarray:
        return stats.norm.logpdf(x[:, 0]) + stats.norm.logpdf(x[:, 1] - self.b * (x[:, 0] ** 2 - 1))


class TanhBounded:
    """a * tanh(z / a) per axis, z ~ N(0, s^2 I): support (-a, a)^2, like a bounded readout."""

    def __init__(self, a: float = 3.5, s: float = 1.3) -> None:
        self.a, self.s = a, s

    def sample(self, n: int, seed: int) -> np.ndarray:
        z = np.random.default_rng(seed).standard_normal((n, 2)) * self.s
        return self.a * np.tanh(z / self.a)

    def log_prob(self, x: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            u = x / self.a
            inside = np.all(np.abs(u) < 1, axis=1)
            u = np.clip(u, -1 + 1e-16, 1 - 1e-16)
            z = self.a * np.arctanh(u)
            lp = (stats.norm.logpdf(z, scale=self.s) - np.log1p(-(u**2))).sum(axis=1)
        return np.where(inside, lp, -np.inf)


def truth(q: GaussianMixture, p) -> float:
    if isinstance(p, GaussianMixture) and q.n_components == 1 and p.n_components == 1:
        m0, c0, m1, c1 = q.means[0], q.covariances[0], p.means[0], p.covariances[0]
        inv1, d = np.linalg.inv(c1), m1 - m0
        return 0.5 * float(np.trace(inv1 @ c0) + d @ inv1 @ d - 2
                           + math.log(np.linalg.det(c1) / np.linalg.det(c0)))
    x = q.sample(TRUTH_N, 20240601)
    return float(np.mean(q.log_prob(x) - p.log_prob(x)))


def efficiency_bound(q: GaussianMixture, p, m: int) -> float:
    """sqrt(chi^2(Q||P) / m): no regular estimator of KL(Q||P) from m draws of P has a smaller
    asymptotic standard deviation (the efficient influence function of P -> E_Q[log p] is
    q/p - 1). Monte Carlo over 10^6 draws of Q: chi^2 + 1 = E_Q[q/p]."""
    x = q.sample(TRUTH_N, 20240602)
    return math.sqrt(max(float(np.mean(np.exp(q.log_prob(x) - p.log_prob(x)))) - 1, 0.0) / m)


def cases() -> list[tuple[str, GaussianMixture, object]]:
    g, gg, r8 = gaussian(), GaussianMixture.preset("gaussgan"), GaussianMixture.preset("ring8")
    return [
        ("gauss P=Q", g, g),
        ("gauss shifted 0.5", g, gaussian((0.5, 0.0))),
        ("gauss too wide x1.5", g, gaussian(scale=1.5)),
        ("gauss too narrow x0.8", g, gaussian(scale=0.8)),
        ("gaussgan P=Q", gg, gg),
        ("gaussgan shifted 0.5", gg, with_params(gg, shift=(0.5, 0.0))),
        ("gaussgan unbalanced 0.7/0.3", gg, with_params(gg, weights=[0.7, 0.3])),
        ("gaussgan too narrow x0.8", gg, with_params(gg, scale=0.8)),
        ("ring8 P=Q", r8, r8),
        ("ring8 1 mode dropped", r8, r8.subset(range(7))),
        ("ring8 2 modes dropped", r8, r8.subset(range(6))),
        ("ring8 3 modes dropped", r8, r8.subset(range(5))),
        ("gauss vs Student-t df=5", g, StudentT(5)),
        ("gauss vs Student-t df=3", g, StudentT(3)),
        ("gauss vs banana b=0.3", g, Banana(0.3)),
        ("gauss vs banana b=0.6", g, Banana(0.6)),
        ("gauss vs tanh-bounded", g, TanhBounded()),
    ]


def in_family(case: str) -> bool:
    """The issue's cases with finite, sample-visible truth: mixtures, no dropped modes."""
    return "dropped" not in case and " vs " not in case


def out_of_family(case: str) -> bool:
    return " vs " in case and "bounded" not in case


def estimators() -> dict[str, Callable[[GaussianMixture, np.ndarray, int], float]]:
    def ud(q, y, rep):
        return float(ud_estimate(q.sample(UD_N, 900_000 + rep), y, k=1))

    def ud_equal(q, y, rep):  # the usual two-sample use: as many target points as generator's
        return float(ud_estimate(q.sample(len(y), 800_000 + rep), y, k=1))

    return {
        OURS: lambda q, y, rep: kl_divergence(q, y).value,
        DESIGN_FIRST: lambda q, y, rep: kl_divergence(q, y, k=1, correction="null").value,
        "kde": lambda q, y, rep: kl_divergence(q, y, method="kde", n_target=KDE_N).value,
        "universal-divergence": ud,
        "universal-divergence n=m": ud_equal,
        "research v1 (wrong)": lambda q, y, rep: research_kl_v1(q, y),
        "research v2 (wrong)": lambda q, y, rep: research_kl_v2(q, y),
    }


def run(reps: int) -> tuple[list[dict], dict[str, float]]:
    rows = []
    for name, q, p in cases():
        t = truth(q, p)
        for m in MS:
            draws = [p.sample(m, 1000 * m + r) for r in range(reps)]
            for est_name, fn in estimators().items():
                n_rep = min(reps, SLOW_REPS.get(est_name.split(" ")[0], reps))
                fn(q, draws[0], 0)  # warm caches (evaluation points, P = Q correction)
                vals, secs = [], []
                for r in range(n_rep):
                    t0 = time.perf_counter()
                    vals.append(fn(q, draws[r], r))
                    secs.append(time.perf_counter() - t0)
                v = np.array(vals)
                finite = math.isfinite(t)  # tanh-bounded: Q has mass where p = 0
                rows.append(dict(case=name, m=m, estimator=est_name, truth=t, mean=float(v.mean()),
                                 bias=float(v.mean() - t) if finite else math.nan,
                                 std=float(v.std(ddof=1)),
                                 rmse=float(np.sqrt(np.mean((v - t) ** 2))) if finite else math.nan,
                                 seconds=statistics.median(secs), reps=n_rep))
            print(f"  done: {name}, m={m}", file=sys.stderr, flush=True)
    return rows, headline()


def headline() -> dict[str, tuple[float, float]]:
    """Seconds for n = 20000, m = 2000, 5 replicates, per preset: (median, max) of 20 calls."""
    out = {}
    for preset in ("gaussgan", "ring8"):
        q = GaussianMixture.preset(preset)
        reps = [q.sample(2000, 50 + r) for r in range(5)]
        kl_divergence(q, reps)  # warm: evaluation points
        secs = []
        for _ in range(20):
            t0 = time.perf_counter()
            kl_divergence(q, reps)
            secs.append(time.perf_counter() - t0)
        out[preset] = (statistics.median(secs), max(secs))
    return out


def pooled_rmse(rows, estimator: str, m: int, keep=lambda case: True) -> float:
    sel = [r["rmse"] for r in rows if r["estimator"] == estimator and r["m"] == m
           and keep(r["case"])]
    return float(np.sqrt(np.mean(np.square(sel))))


def cell(rows, case: str, estimator: str, m: int = 2000) -> dict:
    return next(r for r in rows if (r["case"], r["estimator"], r["m"]) == (case, estimator, m))


def far_away() -> list[tuple[float, float, float]]:
    """(s, ours, k = 1 with P = Q) for uniform samples on [-s, s]^2 against gaussgan."""
    q = GaussianMixture.preset("gaussgan")
    out = []
    for s in (0.1, 1.0, 3.0):
        y = np.random.default_rng(0).uniform(-s, s, (2000, 2))
        out.append((s, kl_divergence(q, y).value,
                    kl_divergence(q, y, k=1, correction="null").value))
    return out


def render(rows, head, reps: int) -> tuple[str, list[str]]:
    figures = [
        f"n=20000, m=2000, 5 replicates, warm: {med:.3f} s on {preset} (median of 20; max "
        f"{mx:.3f} s; target 0.2 s)" for preset, (med, mx) in head.items()
    ]
    ours = pooled_rmse(rows, OURS, 2000, in_family)
    peers = {peer: pooled_rmse(rows, peer, 2000, in_family) for peer in PEERS}
    for peer, how in PEERS.items():
        figures.append(f"RMSE at m=2000, pooled over the 9 mixture cases without dropped modes: "
                       f"ours {ours:.4f} nats, universal-divergence ({how}) {peers[peer]:.4f}: "
                       f"{peers[peer] / ours:.1f}x lower")
    a, b = (pooled_rmse(rows, e, 2000, out_of_family) for e in (OURS, "universal-divergence n=m"))
    figures.append(f"the same over the 4 cases outside the mixture family (Student-t, banana): "
                   f"ours {a:.4f}, universal-divergence (n=m) {b:.4f}: {b / a:.1f}x lower")
    first = pooled_rmse(rows, DESIGN_FIRST, 2000, in_family)
    figures.append(f"the estimator as DESIGN.md first wrote it (k=1, P=Q correction): "
                   f"{first:.4f} on the 9 mixture cases")
    usual = peers["universal-divergence n=m"] / ours
    figures.append(f"target of issue 2 (>= 3x lower RMSE than universal-divergence at m=2000): "
                   f"{'met' if usual >= 3 else 'NOT met'} against its usual use ({usual:.1f}x); "
                   f"{peers['universal-divergence'] / ours:.1f}x against the peer given {UD_N} "
                   f"target samples, where the efficiency bound below caps any estimator")
    bounds = [(c, efficiency_bound(q, p, 2000)) for c, q, p in cases() if in_family(c)
              or out_of_family(c)]
    pooled_bound = math.sqrt(np.mean([b**2 for c, b in bounds if in_family(c)]))
    peer_big = peers["universal-divergence"]
    names = [c for c, _, _ in cases()]
    dropped = [c for c in names if "dropped" in c]
    narrow = [c for c in names if "narrow" in c]
    outside = [c for c in names if out_of_family(c)]
    bounded = next(c for c in names if "bounded" in c)
    out = [
        "# KL(Q||P) estimators against ground truth",
        "",
        "Written by `bench/kl_estimators.py` (`.venv/bin/python bench/kl_estimators.py`, about",
        "10 minutes); rerun it to refresh. Q is the target (exact samples, exact log q), P the",
        "generator (samples only). All figures are in nats; seconds are per call, median, on a",
        "shared 2-core machine.",
        "",
        "## Headline",
        "",
        *[f"- {f}" for f in figures],
        "",
        "## Default: kNN with exact log q, k = 4, bias measured at Q refitted to the samples",
        "",
        "`metrics.kl_divergence(target, samples)` draws n = 20000 target points from a fixed seed,",
        "computes `log p_hat(x) = digamma(k) - log m - log(pi) - 2 log nu_k(x)` from the distance",
        "to the k-th nearest generator point, and averages `log q - log p_hat`. That raw estimate",
        "is biased at finite m, mostly where Q has mass that P's m samples barely reach. The",
        "correction subtracts the estimator's own bias, measured by Monte Carlo where the truth",
        "is known exactly: at Q's mixture refitted by EM to all replicates' samples (start: Q's",
        "own parameters; components the samples do not show are dropped; components are split",
        "in pairs for as long as BIC improves, which for samples of a Q-shaped mixture stops at",
        "once), 6 draws of size m, every call. R replicates give a standard error and a 95%",
        "t-interval; with one replicate those are NaN.",
        "",
        "Why, against the first design (k = 1, bias measured at P = Q, as DESIGN.md wrote it):",
        "",
        "- The P = Q correction is right only where P has Q's shape. Where P is narrower than Q,",
        "  Q's tails fall where P has no samples, and the k = 1 estimate is biased low beyond",
        "  the issue's 0.02. The refitted mixture has P's shape, so its bias is P's. Bias at",
        "  m = 2000 on the narrow cases, ours (k = 1 with P = Q): "
        + "; ".join(f"{c} {cell(rows, c, OURS)['bias']:+.4f} "
                    f"({cell(rows, c, DESIGN_FIRST)['bias']:+.4f})" for c in narrow) + ".",
        "- With the bias measured where P is, a larger k costs no bias and buys variance: k = 4",
        "  roughly halves the spread of k = 1 and comes close to the efficiency bound below.",
        "- It costs two to four small EM fits and 6 more KD-tree queries per call, still under",
        "  the 0.2 s target with 5 replicates (headline).",
        "- The P = Q correction stays available (`correction=\"null\"`), as does none",
        "  (`correction=\"none\"`).",
        "",
        "The peer, universal-divergence, is a kNN estimator from two sample sets (no exact log q).",
        "Its default adaptive k takes about 30 s a call at n = m = 2000, so it is called with",
        "k = 1. Given as many target samples as generator samples (its usual use) it shares none",
        "of our advantages; given 10000 target samples its log q term is nearly exact and what",
        "remains is its k = 1 noise in log p.",
        "",
        "The fixed-bandwidth KDE oversmooths (Scott's rule on a multimodal P) and costs n*m",
        "kernel evaluations. The research-code estimators do not estimate KL(Q||P) at all: v1",
        "adds two log densities, v2 estimates -KL(P||Q) (never positive) plus the KDE's",
        "resubstitution bias.",
        "",
        "## How close to the best possible (m = 2000)",
        "",
        "No regular estimator of KL(Q||P) from m draws of P has an asymptotic standard deviation",
        "below sqrt(chi^2(Q||P) / m) (the efficient influence function of P -> E_Q[log p] is",
        "q/p - 1; chi^2 by Monte Carlo over 10^6 draws of Q). At P = Q the bound is 0: there the",
        "spread is pure finite-sample noise, which larger k removes.",
        f"Pooled over the 9 mixture cases the bound is {pooled_bound:.4f} nats; ours is "
        f"{ours:.4f}. 3x below the peer given {UD_N} target",
        f"samples would take {peer_big / 3:.4f} ({peer_big:.4f} / 3), below the bound: out of "
        "reach for any regular estimator.",
        "",
        "| case | bound | ours std | ours bias | k=1, P=Q std | k=1, P=Q bias | peer n=m std |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for case, bound in bounds:
        o, d, u = (cell(rows, case, e) for e in (OURS, DESIGN_FIRST, "universal-divergence n=m"))
        shown = f"{bound:.4f}" if bound < 1 else "> 1 (q/p unbounded)"
        out.append(f"| {case} | {shown} | {o['std']:.4f} | {o['bias']:+.4f} | {d['std']:.4f} "
                   f"| {d['bias']:+.4f} | {u['std']:.4f} |")
    out += [
        "",
        "## Limits: read before trusting a number",
        "",
        "- A generator with bounded support (or one that drops modes) has, formally, infinite",
        "  KL(Q||P). The estimate is then finite and grows with what is missing. The refit",
        "  prices missing mass with the refitted mixture's Gaussian tails. For the ring8 rows,",
        "  whose P has exactly such tails, that is close to the truth (bias at m = 2000: "
        + ", ".join(f"{cell(rows, c, OURS)['bias']:+.2f}" for c in dropped) + ";",
        "  k = 1 with the P = Q correction: "
        + ", ".join(f"{cell(rows, c, DESIGN_FIRST)['bias']:+.2f}" for c in dropped) + "),",
        "  but it is a model, not an observation, and it is noisier (std "
        + ", ".join(f"{cell(rows, c, OURS)['std']:.2f}" for c in dropped) + " nats).",
        "- For the tanh-bounded P the truth is infinite (Q has mass where p = 0); the estimates",
        "  at m = 2000 are: ours "
        f"{cell(rows, bounded, OURS)['mean']:.3f}, k = 1 with P = Q "
        f"{cell(rows, bounded, DESIGN_FIRST)['mean']:.3f}, universal-divergence (n = m) "
        f"{cell(rows, bounded, 'universal-divergence n=m')['mean']:.3f}. No estimator",
        "  sees the edge. Report mode coverage beside KL.",
        "- A generator far from the target gets a very large value, because the missing mass is",
        "  priced by Gaussian tails fitted to samples that are all elsewhere. Uniform samples on",
        "  [-s, s]^2 scored against gaussgan (m = 2000, one replicate): "
        + "; ".join(f"s = {sv}: {a:.1f} (k = 1, P = Q: {b:.1f})" for sv, a, b in far_away())
        + ". Such numbers rank trials; they are not measured distances.",
        "- Outside the mixture family the refit is an approximation. Bias at m = 2000, ours",
        "  (k = 1 with P = Q): "
        + "; ".join(f"{c.removeprefix('gauss vs ')} {cell(rows, c, OURS)['bias']:+.3f} "
                    f"({cell(rows, c, DESIGN_FIRST)['bias']:+.3f})" for c in outside) + ".",
        "  A curved P (the banana) whose thin side faces Q's mass is biased low by every",
        "  estimator here, and more so as the curve bends: the samples do not show how thin",
        "  that side is, and the few Gaussians BIC allows only approximate the bend.",
        "- Trained generators are not smooth mixtures. For the default generators, the estimate",
        "  keeps growing with m (the m sweep in docs/convergence.md): a bounded quantum readout",
        "  has infinite KL(Q||P), and a ReLU network that puts mass on thin curves needs many",
        "  samples to resolve. Every trial is scored at the same m, so trials are compared at",
        "  the same resolution, but the order of two generators can change with m.",
        "- The interval covers generator-draw noise only: every trial is scored on the same",
        "  evaluation points (seed), and the correction is one number shared by the replicates.",
        "",
        f"## Table (reps per cell: {reps}, except kde {SLOW_REPS['kde']}, universal-divergence "
        f"{SLOW_REPS['universal-divergence']}, research {SLOW_REPS['research']}; kde uses "
        f"n = {KDE_N})",
        "",
        "| case | truth | m | estimator | mean | bias | std | RMSE | seconds |",
        "|---|---:|---:|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        bias = f"{r['bias']:+.4f}" if math.isfinite(r["bias"]) else "n/a"
        rmse = f"{r['rmse']:.4f}" if math.isfinite(r["rmse"]) else "n/a"
        out.append(f"| {r['case']} | {r['truth']:.4f} | {r['m']} | {r['estimator']} | "
                   f"{r['mean']:.4f} | {bias} | {r['std']:.4f} | {rmse} | {r['seconds']:.4f} |")
    return "\n".join(out) + "\n", figures


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=20, help="generator draws per cell (default 20)")
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "kl-estimators.md")
    ap.add_argument("--rows", type=Path, default=ROOT / "runs" / "kl-estimators-rows.json",
                    help="where the measured rows are saved (default runs/kl-estimators-rows.json)")
    ap.add_argument("--render-only", action="store_true",
                    help="rewrite --out from the rows saved by an earlier run, measuring nothing")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    if args.render_only:
        saved = json.loads(args.rows.read_text())
        rows, head, args.reps = saved["rows"], saved["head"], saved["reps"]
    else:
        rows, head = run(args.reps)
        args.rows.parent.mkdir(parents=True, exist_ok=True)
        args.rows.write_text(json.dumps({"rows": rows, "head": head, "reps": args.reps}))
    text, figures = render(rows, head, args.reps)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    for r in rows:
        if r["m"] == 2000:
            print(f"{r['case']:30s} {r['estimator']:26s} truth {r['truth']:8.4f} "
                  f"bias {r['bias']:+9.4f} std {r['std']:.4f} rmse {r['rmse']:.4f} "
                  f"{r['seconds']:.4f}s")
    for f in figures:
        print(f)
    print(f"wrote {args.out} in {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
