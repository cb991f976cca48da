"""The kNN estimator's stand-in refit: the hand-written EM (metrics.refit) against scikit-learn's
``GaussianMixture`` started from the same mixture, grown by the same BIC rule (sklearn's ``bic()``).

For each case, generator samples of size m come from a known density P; the stand-in is fitted
to them and scored by KL(P || stand-in), estimated on 100,000 fresh draws of P with P's exact log
density (lower is better: the stand-in is what the kNN correction measures its bias at). Prints
the mean and worst KL over ``--repeats`` draws, the component counts, and the median fit time.

    .venv/bin/pip install -e '.[bench]'   # scikit-learn: not in the test extra
    .venv/bin/python bench/refit_stand_in.py [--m 2000] [--repeats 10]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture as SklearnMixture

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from metrics import GaussianMixture  # noqa: E402
from metrics.refit import (  # noqa: E402
    MAX_ROUNDS,
    ROUND_ITER,
    ROUND_POINTS,
    SPLITS_PER_ROUND,
    VARIANCE_FLOOR,
    split_components,
    stand_in_mixture,
)

GG, R8 = GaussianMixture.preset("gaussgan"), GaussianMixture.preset("ring8")


def _sklearn_fit(start: GaussianMixture, samples: np.ndarray, max_iter: int) -> SklearnMixture:
    """sklearn's EM from ``start``, with the covariance floor and tolerance of metrics.refit."""
    floor = VARIANCE_FLOOR * float(np.linalg.eigvalsh(start.covariances).min())
    fit = SklearnMixture(start.n_components, covariance_type="full", tol=1e-6, max_iter=max_iter,
                         reg_covar=floor, weights_init=start.weights, means_init=start.means,
                         precisions_init=np.linalg.inv(start.covariances))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # the short growth rounds stop early
        return fit.fit(samples)


def _as_mixture(fit: SklearnMixture) -> GaussianMixture:
    return GaussianMixture(fit.weights_, fit.means_, fit.covariances_)


def sklearn_stand_in(start: GaussianMixture, samples: np.ndarray) -> GaussianMixture:
    """metrics.refit.stand_in_mixture's rule, with sklearn doing the EM and the BIC."""
    head = samples[:ROUND_POINTS]
    best = _sklearn_fit(start, samples, 100)
    best_bic = best.bic(head)
    for _ in range(MAX_ROUNDS):
        grown = _sklearn_fit(split_components(_as_mixture(best), SPLITS_PER_ROUND), head,
                             ROUND_ITER)
        if grown.bic(head) >= best_bic:
            break
        best, best_bic = grown, grown.bic(head)
    return _as_mixture(best)


class Banana:
    """z ~ N(0, I), x = (z1, z2 + 0.6 (z1^2 - 1)): curved, with an exact density (Jacobian 1)."""

    def sample(self, n: int, seed: int) -> np.ndarray:
        z = np.random.default_rng(seed).standard_normal((n, 2))
        z[:, 1] += 0.6 * (z[:, 0] ** 2 - 1)
        return z

    def log_prob(self, x: np.ndarray) -> np.ndarray:
        z2 = x[:, 1] - 0.6 * (x[:, 0] ** 2 - 1)
        return -0.5 * (x[:, 0] ** 2 + z2**2) - np.log(2 * np.pi)


CASES = {
    "gaussgan P = Q": (GG, GG),
    "gaussgan moved": (GG, GaussianMixture([0.7, 0.3], GG.means + [0.5, -0.3],
                                           0.64 * GG.covariances)),
    "ring8, 6 modes": (R8, R8.subset(range(6))),
    "ring8 reweighted": (R8, GaussianMixture(np.r_[[0.2] * 4, [0.05] * 4], 1.1 * R8.means,
                                             R8.covariances)),
    "banana from N(0, I)": (GaussianMixture([1.0], [[0.0, 0.0]], [np.eye(2)]), Banana()),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--m", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    print(f"$ {' '.join([Path(sys.executable).name, *sys.argv])}")
    print(f"{'case':22s} {'refit':8s} {'KL(P||fit) mean':>16s} {'worst':>7s} {'K':>8s} {'ms':>7s}")
    for name, (start, p) in CASES.items():
        x = p.sample(100_000, 10_000)
        log_p = p.log_prob(x)
        for label, fit_to in (("EM", stand_in_mixture), ("sklearn", sklearn_stand_in)):
            kls, ks, seconds = [], set(), []
            for seed in range(args.repeats):
                samples = p.sample(args.m, seed)
                t0 = time.perf_counter()
                fit = fit_to(start, samples)
                seconds.append(time.perf_counter() - t0)
                kls.append(float(np.mean(log_p - fit.log_prob(x))))
                ks.add(fit.n_components)
            print(f"{name:22s} {label:8s} {statistics.mean(kls):16.4f} {max(kls):7.4f} "
                  f"{','.join(map(str, sorted(ks))):>8s} {1e3 * statistics.median(seconds):7.1f}",
                  flush=True)


if __name__ == "__main__":
    main()
