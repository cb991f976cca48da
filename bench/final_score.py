"""What a gaussgan trial's final score and one report cost, piece by piece (issue 20, part 4).

The pieces of ``hpo.evaluate.train_and_score``'s scoring, on fixed generator draws (5 replicates
of 2000 points, seeded), at the study's metric (n_target 20000, n_report 2000, s = 0.5 for
gaussgan): D_s at s/2, s and 2s, k-NN with its refitted-mixture correction, W2 (the cost matrix
and the transport solver apart), mode coverage, and one intermediate report. CPU seconds
(``time.process_time``), one OpenBLAS thread and one torch thread, as a worker runs.

Generator sample sets:

- near: a slightly-off mixture (means moved by 0.2, widths 1.1x): a trained generator;
- far: the target shrunk to 0.3x between the modes: most evaluation points lie far from every
  sample and take the exact path of the kernel sums (metrics/_gauss_sum.py), the costly one;
- boxed: uniform on two boxes of bounded support, as a quantum generator's map can be.

``--draws NAME=FILE`` adds a set saved with numpy (shape (5, 2000, 2): e.g. a trained
generator's ``hpo.evaluate.final_samples``). ``--repo DIR`` scores with the metrics package of
another checkout (e.g. the code before a change), so two runs compare; ``--json FILE`` writes
every number computed, for comparing the two checkouts' results; ``--repeat`` times each
piece that many times and keeps the fastest.

    nice -n 19 .venv/bin/python bench/final_score.py [--repo DIR] [--json FILE] [--repeat 3]
        [--draws NAME=FILE ...]
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from pathlib import Path

os.environ["OPENBLAS_NUM_THREADS"] = "1"  # before numpy: OpenBLAS reads it once
os.environ["OMP_NUM_THREADS"] = "1"


def _sample_sets(np, GaussianMixture):  # noqa: N803 - the class, passed in after the path is set
    gg = GaussianMixture.preset("gaussgan")
    near = GaussianMixture(gg.weights, gg.means + [0.2, -0.2], gg.covariances * 1.21)

    def boxed(m: int, seed: int):
        rng = np.random.default_rng(seed)
        centre = np.where(rng.random(m) < 0.5, -4.0, 4.0)
        return np.column_stack([centre + rng.uniform(-1.5, 1.5, m), rng.uniform(3.5, 6.5, m)])

    return gg, {
        "near": [near.sample(2000, 100 + r) for r in range(5)],
        "far": [gg.sample(2000, 200 + r) * 0.3 + [0.4, 1.4] for r in range(5)],
        "boxed": [boxed(2000, 300 + r) for r in range(5)],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repo", type=Path, default=Path(__file__).resolve().parents[1],
                        help="the checkout whose metrics package is timed (default: this one)")
    parser.add_argument("--json", type=Path, default=None, help="write every result here")
    parser.add_argument("--repeat", type=int, default=1, help="time each piece this many times")
    parser.add_argument("--sets", default=None, help="sample sets, comma separated (default all)")
    parser.add_argument("--draws", action="append", default=[], metavar="NAME=FILE",
                        help="another sample set, a .npy of shape (replicates, m, 2)")
    args = parser.parse_args()
    sys.path.insert(0, str(args.repo.resolve()))

    import numpy as np
    import torch

    import metrics
    from metrics import GaussianMixture, default_sigma, kl_divergence, mode_coverage, wasserstein2

    torch.set_num_threads(1)
    import ot  # noqa: F401 - its import (and torch's) is not a scoring cost

    gg, sets = _sample_sets(np, GaussianMixture)
    for named in args.draws:
        name, _, path = named.partition("=")
        sets[name] = list(np.load(path))
    chosen = list(sets) if args.sets is None else args.sets.split(",")
    s = default_sigma(gg)
    print(f"# {shlex.join(sys.argv)}  (metrics from {Path(metrics.__file__).parent})")
    print(f"# {time.strftime('%Y-%m-%d %H:%M:%S')}  load average "
          f"{' '.join(f'{v:.2f}' for v in os.getloadavg())}  s = {s}")
    # Warm-up: first calls (imports inside functions, caches of evaluation points are per
    # sigma and paid once per process by a worker too, so they are warmed here).
    for f in (0.5, 1.0, 2.0):
        kl_divergence(gg, sets["near"][0][:200], sigma=f * s, n_target=20_000)
    kl_divergence(gg, sets["near"][0][:200], sigma=s, n_target=2000)
    kl_divergence(gg, sets["near"][0][:200], method="knn", n_target=20_000)
    wasserstein2(gg, sets["near"][0][:100])

    pieces = {
        "D_s at s/2": lambda d: kl_divergence(gg, d, sigma=0.5 * s, n_target=20_000),
        "D_s at s": lambda d: kl_divergence(gg, d, sigma=s, n_target=20_000),
        "D_s at 2s": lambda d: kl_divergence(gg, d, sigma=2.0 * s, n_target=20_000),
        "k-NN": lambda d: kl_divergence(gg, d, method="knn", n_target=20_000),
        "W2": lambda d: wasserstein2(gg, d[0]),
        "mode coverage": lambda d: mode_coverage(gg, d[0]),
        "report": lambda d: kl_divergence(gg, d[0], sigma=s, n_target=2000),
    }
    results: dict[str, dict[str, object]] = {}
    header = f"{'CPU s':<16}" + "".join(f"{name:>10}" for name in sets if name in chosen)
    print(header)
    rows: dict[str, list[float]] = {piece: [] for piece in pieces}
    for name, draws in sets.items():
        if name not in chosen:
            continue
        results[name] = {}
        for piece, fn in pieces.items():
            best = float("inf")
            for _ in range(args.repeat):
                start = time.process_time()
                value = fn(draws)
                best = min(best, time.process_time() - start)
            rows[piece].append(best)
            results[name][piece] = value.as_dict() if hasattr(value, "as_dict") else float(value)
    final = [sum(rows[p][i] for p in pieces if p != "report") for i in range(len(results))]
    for piece, seconds in [*rows.items(), ("final score", final)]:
        print(f"{piece:<16}" + "".join(f"{v:>10.3f}" for v in seconds))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, sort_keys=True))


if __name__ == "__main__":
    main()
