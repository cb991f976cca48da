"""What W2's points cost and how much noise they leave (issue 20, part 4; ``metric.w2_points``).

For each sample set and each number of points, the exact W2 (``metrics.wasserstein2``, POT's
transport solver) of every replicate of the set with each of ``--seeds`` seeds (its target
points and, below the draw's size, its subsample): their mean, their standard deviation (the
noise a trial's one W2 carries, from its generator draw and the target points together) and the
median CPU of one solve. One OpenBLAS thread.

Sets: ``exact`` (draws from the gaussgan target itself: W2 of two samples of one distribution)
and, with ``--draws NAME=FILE``, saved final draws (shape (replicates, m, 2), e.g.
``bench/trial_split.py --save-draws``).

    nice -n 19 .venv/bin/python bench/w2_points.py [--points 500,1000,1500,2000]
        [--seeds 4] [--draws NAME=FILE ...]
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import time
from pathlib import Path

os.environ["OPENBLAS_NUM_THREADS"] = "1"  # before numpy: OpenBLAS reads it once

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from metrics import GaussianMixture, wasserstein2  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", default="500,1000,1500,2000",
                        help="numbers of points, comma separated")
    parser.add_argument("--seeds", type=int, default=4, help="seeds per replicate")
    parser.add_argument("--draws", action="append", default=[], metavar="NAME=FILE",
                        help="a sample set, a .npy of shape (replicates, m, 2)")
    args = parser.parse_args()
    sizes = [int(p) for p in args.points.split(",")]
    target = GaussianMixture.preset("gaussgan")
    sets = {"exact": np.stack([target.sample(max(sizes), 900 + r) for r in range(5)])}
    for named in args.draws:
        name, _, path = named.partition("=")
        sets[name] = np.load(path)
    wasserstein2(target, sets["exact"][0][:100])  # POT's import and first call, paid once
    print(f"# {shlex.join(sys.argv)}")
    print(f"# {time.strftime('%Y-%m-%d %H:%M:%S')}  load average "
          f"{' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    print("| draws | " + " | ".join(f"W2 at {n} (sd) | CPU s" for n in sizes) + " |")
    print("|---|" + "---:|---:|" * len(sizes))
    for name, draws in sets.items():
        cells = []
        for n in sizes:
            values, seconds = [], []
            for r, draw in enumerate(draws):
                for s in range(args.seeds):
                    start = time.process_time()
                    values.append(wasserstein2(target, draw, seed=r + len(draws) * s,
                                               max_points=n))
                    seconds.append(time.process_time() - start)
            cells += [f"{np.mean(values):.3f} ({np.std(values, ddof=1):.3f})",
                      f"{np.median(seconds):.3f}"]
        label = f"{name} ({len(draws)} x {draws.shape[1]}, x {args.seeds} seeds)"
        print(f"| {label} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
