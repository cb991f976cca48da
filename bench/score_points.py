"""What the evaluation points cost and how much noise they leave: independent points against
scrambled Sobol sets (``points="rqmc"``), on the same generator draws.

For each draw set (5 replicates x 2000 points: saved final draws of trained generators, from
``bench/trial_split.py --save-draws``, and the fixed sets of bench/final_score.py) and each
setting (``iid:20000`` is the study's), D_s at s/2, s and 2s (the profile a final score
computes) with ``--seeds`` evaluation seeds, the draws held fixed, so that the spread over seeds
is the evaluation points' noise alone:

- cpu: CPU seconds of one profile (three resolutions), single-threaded;
- points sd: the standard deviation of D_s at s over the seeds (nats);
- half-width: the 95% interval's half-width at s, mean over the seeds (generator draws and
  points together);
- value: D_s at s, mean over the seeds.

    nice -n 19 .venv/bin/python bench/score_points.py [--draws NAME=FILE ...] [--sets near,far]
        [--settings iid:20000,rqmc:4096,rqmc:8192] [--seeds 8] [--reports iid:2000,rqmc:1024]
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import time
from pathlib import Path

os.environ["OPENBLAS_NUM_THREADS"] = "1"  # before numpy: OpenBLAS reads it once
os.environ["OMP_NUM_THREADS"] = "1"

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402 - after the thread limits
from final_score import _sample_sets  # noqa: E402

from metrics import GaussianMixture, default_sigma, kl_divergence  # noqa: E402
from metrics.resolution import DEFAULT_PROFILE  # noqa: E402


def _settings(text: str) -> list[tuple[str, int]]:
    out = []
    for item in text.split(","):
        points, _, n = item.partition(":")
        out.append((points, int(n)))
    return out


def _measure(target: GaussianMixture, draws: list[np.ndarray], points: str, n: int, seeds: int,
             s: float) -> dict[str, float]:
    cpu, values, halves = [], [], []
    for seed in range(seeds):
        started = time.process_time()
        profile = {f: kl_divergence(target, draws, sigma=f * s, seed=seed, n_target=n,
                                    points=points) for f in DEFAULT_PROFILE}
        cpu.append(time.process_time() - started)
        values.append(profile[1.0].value)
        halves.append(0.5 * (profile[1.0].ci_high - profile[1.0].ci_low))
    return {"cpu": float(np.median(cpu)), "sd": float(np.std(values, ddof=1)),
            "half": float(np.mean(halves)), "value": float(np.mean(values))}


def _report_noise(target: GaussianMixture, draw: np.ndarray, points: str, n: int, seeds: int,
                  s: float) -> tuple[float, float]:
    """(CPU s, sd over seeds) of one intermediate report: one replicate, ``n`` points."""
    cpu, values = [], []
    for seed in range(seeds):
        started = time.process_time()
        values.append(kl_divergence(target, draw, sigma=s, seed=seed, n_target=n,
                                    points=points).value)
        cpu.append(time.process_time() - started)
    return float(np.median(cpu)), float(np.std(values, ddof=1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", action="append", default=[], metavar="NAME=FILE",
                        help="a .npy of shape (replicates, m, 2): a trained generator's draws")
    parser.add_argument("--sets", default="near,far,boxed",
                        help="bench/final_score.py's fixed sets, comma separated ('' for none)")
    parser.add_argument("--settings", default="iid:20000,rqmc:4096,rqmc:8192",
                        help="POINTS:N pairs, comma separated; the first is the baseline")
    parser.add_argument("--reports", default="iid:2000,rqmc:1024",
                        help="POINTS:N pairs for one intermediate report ('' for none)")
    parser.add_argument("--seeds", type=int, default=8, help="evaluation seeds per setting")
    args = parser.parse_args()
    target, fixed = _sample_sets(np, GaussianMixture)
    s = default_sigma(target)
    sets = {name: fixed[name] for name in filter(None, args.sets.split(","))}
    for item in args.draws:
        name, _, path = item.partition("=")
        sets[name] = list(np.load(path))
    settings = _settings(args.settings)
    reports = _settings(args.reports) if args.reports else []
    print("nice -n 19 .venv/bin/python bench/score_points.py " + shlex.join(sys.argv[1:]))
    print(f"gaussgan, s = {s:g}; {args.seeds} evaluation seeds per setting, draws fixed; "
          f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores\n")
    head = " | ".join(f"{p} {n}" for p, n in settings)
    print(f"| draws | D_s at s | points sd: {head} | half-width: {head} | profile CPU s: {head} |")
    print("|---|---:|" + "---:|" * (3 * len(settings)))
    for name, draws in sets.items():
        rows = [_measure(target, draws, p, n, args.seeds, s) for p, n in settings]
        print(f"| {name} | {rows[0]['value']:.4f} | "
              + " | ".join(f"{r['sd']:.5f}" for r in rows) + " | "
              + " | ".join(f"{r['half']:.4f}" for r in rows) + " | "
              + " | ".join(f"{r['cpu']:.2f}" for r in rows) + " |", flush=True)
    if reports:
        head = " | ".join(f"{p} {n}" for p, n in reports)
        print(f"\none report (one replicate): | draws | points sd: {head} | CPU s: {head} |")
        for name, draws in sets.items():
            rows = [_report_noise(target, draws[0], p, n, args.seeds, s) for p, n in reports]
            print(f"| {name} | " + " | ".join(f"{sd:.5f}" for _, sd in rows) + " | "
                  + " | ".join(f"{cpu:.3f}" for cpu, _ in rows) + " |", flush=True)
    print(f"\nload average at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
