"""Benchmark KL(Q||P) estimators against ground truth; writes docs/kl-estimators.md.

    .venv/bin/python bench/kl_estimators.py [--reps 10] [--out docs/kl-estimators.md]

Truth: closed form for two Gaussians, else Monte Carlo over 10^6 exact draws of Q with exact
log q and log p. For every case and m in (500, 2000, 8000) each estimator sees `reps` independent
generator draws (fewer for the slow ones, see SLOW_REPS); the table gives bias, standard deviation
and RMSE in nats and the median seconds per call. Estimators:

- knn (default): metrics.kl_divergence, k = 1, n = 20000 exact target points, P = Q correction.
- knn k=4: the same with k = 4.
- kde: metrics.kl_divergence(method="kde"), Scott's bandwidth, P = Q correction, n = 2000.
- universal-divergence: the PyPI peer (kNN on samples of both sides, no exact log q), called as
  estimate(target_samples, generator_samples, k=1), which estimates KL(Q||P); n = 10000 target
  samples (its per-point Python loop makes 20000 cost about a second per call; its adaptive k
  scans all points per point and is unusable at these sizes).
- research v1 / v2: metrics._research, the research code's estimators as they were (wrong).
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from universal_divergence import estimate as ud_estimate

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from metrics import GaussianMixture, kl_divergence  # noqa: E402
from metrics._research import research_kl_v1, research_kl_v2  # noqa: E402

MS = (500, 2000, 8000)
N_TARGET = 20_000
UD_N = 10_000
KDE_N = 2_000
SLOW_REPS = {"kde": 5, "universal-divergence": 10, "research": 5}
I2 = np.eye(2)


def gaussian(mean=(0.0, 0.0), scale=1.0) -> GaussianMixture:
    return GaussianMixture([1.0], [mean], [scale**2 * I2])


def with_params(g, *, weights=None, shift=(0.0, 0.0), scale=1.0) -> GaussianMixture:
    w = g.weights if weights is None else weights
    return GaussianMixture(w, g.means + np.asarray(shift), scale**2 * g.covariances)


def truth(q: GaussianMixture, p: GaussianMixture) -> float:
    if q.n_components == 1 and p.n_components == 1:
        m0, c0, m1, c1 = q.means[0], q.covariances[0], p.means[0], p.covariances[0]
        inv1, d = np.linalg.inv(c1), m1 - m0
        return 0.5 * float(np.trace(inv1 @ c0) + d @ inv1 @ d - 2
                           + math.log(np.linalg.det(c1) / np.linalg.det(c0)))
    x = q.sample(10**6, 20240601)
    return float(np.mean(q.log_prob(x) - p.log_prob(x)))


def cases() -> list[tuple[str, GaussianMixture, GaussianMixture]]:
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
    ]


def estimators() -> dict[str, Callable[[GaussianMixture, np.ndarray, int], float]]:
    def ud(q, y, rep):
        return float(ud_estimate(q.sample(UD_N, 900_000 + rep), y, k=1))

    def ud_equal(q, y, rep):  # the usual two-sample use: as many target points as generator's
        return float(ud_estimate(q.sample(len(y), 800_000 + rep), y, k=1))

    return {
        "knn (default, k=1)": lambda q, y, rep: kl_divergence(q, y).value,
        "knn k=4": lambda q, y, rep: kl_divergence(q, y, k=4).value,
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
                rows.append(dict(case=name, m=m, estimator=est_name, truth=t,
                                 bias=float(v.mean() - t), std=float(v.std(ddof=1)),
                                 rmse=float(np.sqrt(np.mean((v - t) ** 2))),
                                 seconds=statistics.median(secs), reps=n_rep))
            print(f"  done: {name}, m={m}", file=sys.stderr, flush=True)
    return rows, headline()


def headline() -> dict[str, float]:
    """Seconds for n = 20000, m = 2000, 5 replicates with a warm cache (median of 20 calls)."""
    q = GaussianMixture.preset("gaussgan")
    reps = [q.sample(2000, 50 + r) for r in range(5)]
    kl_divergence(q, reps)
    secs = []
    for _ in range(20):
        t0 = time.perf_counter()
        kl_divergence(q, reps)
        secs.append(time.perf_counter() - t0)
    return {"seconds_5_reps": statistics.median(secs), "seconds_5_reps_max": max(secs)}


def pooled_rmse(rows, estimator: str, m: int, keep=lambda case: True) -> float:
    sel = [r["rmse"] for r in rows if r["estimator"] == estimator and r["m"] == m
           and keep(r["case"])]
    return float(np.sqrt(np.mean(np.square(sel))))


def render(rows, head, reps: int) -> tuple[str, list[str]]:
    no_drop = lambda case: "dropped" not in case  # noqa: E731
    ours = "knn (default, k=1)"
    figures = [
        f"n=20000, m=2000, 5 replicates, warm cache: {head['seconds_5_reps']:.4f} s "
        f"(median of 20; max {head['seconds_5_reps_max']:.4f} s)",
    ]
    ratios = {}
    for peer, how in (("universal-divergence n=m", "m target samples, k=1"),
                      ("universal-divergence", f"{UD_N} target samples, k=1")):
        a, b = pooled_rmse(rows, ours, 2000, no_drop), pooled_rmse(rows, peer, 2000, no_drop)
        ratios[peer] = b / a
        figures.append(f"RMSE at m=2000 over the cases without dropped modes: knn {a:.4f} nats, "
                       f"universal-divergence ({how}) {b:.4f} nats: {b / a:.1f}x lower")
    met = "met" if min(ratios.values()) >= 3 else "NOT met"
    figures.append(f"target of issue 2 (>= 3x lower RMSE than universal-divergence at m=2000): "
                   f"{met} ({' and '.join(f'{r:.1f}x' for r in ratios.values())})")
    narrow = next(r for r in rows if r["case"] == "gauss too narrow x0.8" and r["m"] == 2000
                  and r["estimator"] == ours)
    out = [
        "# KL(Q||P) estimators against ground truth",
        "",
        "Written by `bench/kl_estimators.py` (`.venv/bin/python bench/kl_estimators.py`); rerun it",
        "to refresh. Q is the target (exact samples, exact log q), P the generator (samples only).",
        "All figures are in nats; seconds are per call, median, on a shared 2-core machine.",
        "",
        "## Headline",
        "",
        *[f"- {f}" for f in figures],
        "",
        "## Default: k-nearest-neighbour with exact log q, k = 1, P = Q correction",
        "",
        "`metrics.kl_divergence(target, samples)` draws n = 20000 target points from a fixed seed,",
        "computes `log p_hat(x) = digamma(k) - log m - log(pi) - 2 log nu_k(x)` from the distance",
        "to the k-th nearest generator point, averages `log q - log p_hat`, and subtracts the",
        "estimator's own mean at P = Q for the same (target, n, m, k, seed): 128 exact draws,",
        "computed once per process and cached. R replicates give a standard error and a 95%",
        "t-interval; with one replicate those are NaN.",
        "",
        "Why the default: it uses what we know (exact log q, 20000 target points) and estimates",
        "only log p; it is fast (one KD-tree query per replicate, about 10 ms at m = 2000);",
        "k = 1 has the smallest bias of the kNN variants where P is narrower than Q (the hard",
        "direction for KL(Q||P)), at a standard deviation still under 0.03 at m = 2000; k = 4",
        "halves the spread but roughly doubles that bias. Against universal-divergence (a kNN",
        "estimator from two sample sets, no exact log q; its default adaptive k takes about 30 s",
        "a call at n = m = 2000, so it is called with k = 1) the pooled RMSE at m = 2000 is",
        f"{ratios['universal-divergence n=m']:.1f}x lower when the peer gets as many target",
        f"samples as generator samples (its usual use), and {ratios['universal-divergence']:.1f}x",
        f"lower when it is given {UD_N} target samples: most of our advantage is the exact log q",
        "and the large fixed evaluation set, and both estimators share the kNN noise of log p.",
        "The fixed-bandwidth KDE oversmooths (Scott's rule on a",
        "multimodal P: biased low on shifted/narrow gaussgan) and costs n*m kernel evaluations.",
        "The research-code estimators do not estimate KL(Q||P) at all: v1 adds two log",
        "densities, v2 estimates -KL(P||Q) (never positive) plus the KDE's resubstitution bias.",
        "",
        "## Limits: read before trusting a number",
        "",
        "- A generator with bounded support (or one that drops modes) has, formally, infinite",
        "  KL(Q||P); with Gaussian tails it is finite but set by tails no sample shows. The",
        "  estimate is then finite and grows with what is missing (more dropped modes, more",
        "  missed mass, farther away), so it still ranks generators, but it is far below the",
        "  truth (see the ring8 rows: bias of -2 nats and more). Report coverage beside it.",
        "- Where P is much narrower than Q, Q's tails fall where P has no samples and the",
        f"  estimate is biased low (too narrow x0.8: {narrow['bias']:+.3f} nats at m = 2000,",
        "  beyond the 0.02 target; x0.85, used in the tests, is within it).",
        "- The interval covers generator-draw noise only: every trial is scored on the same",
        "  evaluation points (seed), whose own sampling error is about sqrt(Var_Q[log q/p] / n).",
        "",
        f"## Table (reps per cell: {reps}, except kde {SLOW_REPS['kde']}, universal-divergence "
        f"{SLOW_REPS['universal-divergence']}, research {SLOW_REPS['research']}; kde uses "
        f"n = {KDE_N})",
        "",
        "| case | truth | m | estimator | bias | std | RMSE | seconds |",
        "|---|---:|---:|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        out.append(f"| {r['case']} | {r['truth']:.4f} | {r['m']} | {r['estimator']} | "
                   f"{r['bias']:+.4f} | {r['std']:.4f} | {r['rmse']:.4f} | {r['seconds']:.4f} |")
    return "\n".join(out) + "\n", figures


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=20, help="generator draws per cell (default 20)")
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "kl-estimators.md")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    rows, head = run(args.reps)
    text, figures = render(rows, head, args.reps)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    for r in rows:
        if r["m"] == 2000:
            print(f"{r['case']:30s} {r['estimator']:22s} truth {r['truth']:8.4f} "
                  f"bias {r['bias']:+9.4f} std {r['std']:.4f} rmse {r['rmse']:.4f} "
                  f"{r['seconds']:.4f}s")
    for f in figures:
        print(f)
    print(f"wrote {args.out} in {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
