"""Seconds per trial of a study file's search space, per generator kind, and the budget that fits
a wall-clock target (search plus seed validation) with N workers.

Draws ``--configs`` random configurations of each kind from the study's space (Optuna's
RandomSampler through the study's own ``suggest``), trains each for ``--steps`` steps with the
study's evaluation schedule and scoring, and projects a full trial: the training-and-evaluation
time scaled to ``budget.steps``, plus the final scoring once. One torch thread, as a worker runs.

The budget projection: search trials cost ``prune_factor`` of a full trial on average (the median
pruner stops about half the trials part-way; 0.7 is a conservative mean), split equally over the
kinds; validation re-trains ``top_k`` configurations of each kind on ``seeds`` seeds at full length.

    .venv/bin/python bench/trial_seconds.py studies/gaussgan.yaml [--configs 4] [--steps 300]
        [--hours 1] [--workers 2] [--prune-factor 0.7]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import optuna
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import models  # noqa: E402
from hpo.group import kind_spec  # noqa: E402
from hpo.metric import resolved_metric  # noqa: E402
from hpo.space import load_spec, suggest  # noqa: E402
from hpo.target import build_target  # noqa: E402
from metrics import kl_divergence  # noqa: E402

#: Quiet-machine seconds per step of the default classical config (docs/convergence.md: 2000
#: steps in 14.5 s, evaluation excluded); the reference that calibrates this machine's load.
QUIET_REFERENCE_S_PER_STEP = 14.5 / 2000
REFERENCE = {"generator": {"kind": "classical"}}


def train_seconds_per_step(config: dict, target, steps: int) -> float:
    """Training seconds per generator step (evaluation excluded) over ``steps`` steps."""
    config = {**config, "steps": steps, "eval_every": steps}
    return models.train(config, target.sample).seconds / steps


def scoring_seconds(target, metric) -> tuple[float, float]:
    """Seconds of one intermediate KL report and of one final score (all replicates)."""
    options = {"sigma": metric.sigma, "seed": metric.seed}
    samples = target.sample(metric.eval_samples, rng=1)
    started = time.perf_counter()
    kl_divergence(target, samples, n_target=metric.n_report, **options)
    one = time.perf_counter() - started
    draws = [target.sample(metric.eval_samples, rng=r) for r in range(metric.replicates)]
    started = time.perf_counter()
    kl_divergence(target, draws, n_target=metric.n_target, **options)
    return one, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("study_file")
    parser.add_argument("--configs", type=int, default=4, help="random configs per kind")
    parser.add_argument("--steps", type=int, default=300, help="steps timed per config")
    parser.add_argument("--hours", type=float, default=1.0, help="wall-clock target")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--prune-factor", type=float, default=0.7,
                        help="mean cost of a search trial as a fraction of a full one")
    args = parser.parse_args()
    torch.set_num_threads(1)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    spec = load_spec(args.study_file)
    target = build_target(spec.target)
    metric = resolved_metric(spec.metric, target)
    top_k, seeds = spec.validation.top_k, spec.validation.seeds
    print(f"{args.study_file}: {args.configs} random configs per kind, {args.steps} training "
          "steps each, 1 torch thread; the machine is shared, so each config is timed beside the "
          "default classical config and scaled to a quiet machine by their ratio")
    report_s, final_s = scoring_seconds(target, metric)
    n_reports = spec.budget.steps // spec.budget.eval_every
    full: dict[str, list[float]] = {}
    for kind in spec.search.generators:
        study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
        for _ in range(args.configs):
            trial = study.ask()
            config = suggest(trial, kind_spec(spec, kind), seed=trial.number)
            loaded = train_seconds_per_step(config, target, args.steps)
            reference = train_seconds_per_step(REFERENCE, target, args.steps)
            load = reference / QUIET_REFERENCE_S_PER_STEP
            quiet = loaded / load
            projected = quiet * spec.budget.steps + (n_reports * report_s + final_s) / load
            full.setdefault(kind, []).append(projected)
            print(f"  {kind:<9} {loaded * 1e3:7.2f} ms/step loaded (load x{load:4.1f}) -> "
                  f"{quiet * 1e3:6.2f} ms/step quiet -> full trial {projected:6.1f} s   "
                  f"{dict(trial.params)}", flush=True)
            study.tell(trial, 0.0)
    print(f"scoring (loaded): {report_s:.2f} s per intermediate report x {n_reports}, "
          f"{final_s:.2f} s final; included above, scaled by each config's load factor")
    mean = {k: statistics.fmean(v) for k, v in full.items()}
    print("\nprojected seconds of a full trial (mean over configs): "
          + ", ".join(f"{k} {v:.1f} s" for k, v in mean.items()))
    worker_seconds = args.hours * 3600 * args.workers
    validation_cost = top_k * seeds * sum(mean.values())
    per_round = args.prune_factor * sum(mean.values())  # one search trial of each kind
    rounds = max(0, int((worker_seconds - validation_cost) / per_round))
    print(f"validation: {top_k} configs x {seeds} seeds x {len(mean)} kinds = "
          f"{top_k * seeds * len(mean)} full trials, {validation_cost / 60:.1f} worker-minutes")
    print(f"search: {args.prune_factor} x a full trial each on average; "
          f"{args.workers} workers x {args.hours:g} h = {worker_seconds / 60:.0f} worker-minutes")
    print(f"=> budget.trials = {rounds * len(mean)} ({rounds} per kind) fits search + validation "
          f"in {args.hours:g} h with {args.workers} workers")


if __name__ == "__main__":
    main()
