"""Learning curves of a grid over the gaussgan space, recorded once for bench/search_efficiency.py.

Each grid point is trained at full length (the study file's ``budget.steps`` and ``eval_every``)
and scored as a worker scores a trial (the reports and final D_s of
``hpo.evaluate.train_and_score``, with the study's metric settings), one torch thread. For each
configuration one JSON line is appended to the data file: the intermediate D_s at every evaluation
step, the CPU-seconds (``time.process_time``, this process) spent up to and including each report,
and the final jackknife-corrected D_s with the CPU-seconds at the end of the final scoring.
Configurations already in the file are skipped, so the recorder can be stopped at any time and
started again. A diverged configuration is recorded too: its curve up to the divergence and
``final: null``.

The grid (:data:`STAGES`) spans each kind's main dimensions; every other searched parameter is held
at the value in :data:`FIXED`. ``--seeds 1 --points I ...`` re-records chosen grid points on a
second training seed, to measure the seed noise that a replay cannot see; ``--extras`` also times
the rest of the worker's final scoring. docs/search-efficiency.md lists the runs that made the
record in bench/data.

    nice -n 19 .venv/bin/python bench/record_curves.py studies/gaussgan.yaml --kind classical
        [--seeds 0] [--limit N | --points I ...] [--extras] [--steps 3000 (smoke: fewer)]
        [--out bench/data/gaussgan_curves.jsonl]
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import models  # noqa: E402
from hpo.evaluate import final_samples  # noqa: E402
from hpo.group import kind_spec  # noqa: E402
from hpo.metric import resolved_metric  # noqa: E402
from hpo.space import load_spec, training_config  # noqa: E402
from hpo.target import build_target  # noqa: E402
from metrics import DEFAULT_PROFILE, kl_divergence, wasserstein2  # noqa: E402

DEFAULT_OUT = Path(__file__).resolve().parent / "data" / "gaussgan_curves.jsonl"

#: The grid per kind, in stages: each stage adds levels to some dimensions, and the recorder
#: finishes the whole grid of one stage (every combination of the levels so far) before the next,
#: so a recording stopped at a stage boundary is a complete, smaller grid. The dimensions are the
#: space's main ones: learning rates on a log scale (log-spaced levels), the generator's size.
STAGES: dict[str, list[dict[str, list[Any]]]] = {
    "classical": [
        {"lr_generator": [4.6e-4, 2.2e-3], "lr_critic": [4.6e-4, 2.2e-3], "width": [16, 64],
         "depth": [1, 3]},  # 16 points
        {"lr_generator": [1e-4, 1e-2]},  # 32
        {"lr_critic": [1e-4, 1e-2]},  # 64
    ],
    "quantum": [
        {"lr_generator": [1e-2], "n_qubits": [2, 4], "n_layers": [1, 3],
         "ansatz": ["gaussgan", "strongly_entangling"]},  # 8 points
        {"lr_generator": [1e-3]},  # 16
        {"lr_generator": [3e-3]},  # 24 (recorded 2026-12-06, to choose a pruner on both kinds)
        {"ansatz": ["reuploading"]},  # 36
        {"n_qubits": [6]},  # 54
    ],
}
#: Every other searched parameter, held at one value of its range. n_critic 3 and batch 128 (the
#: space's cheaper ends) halve a trial's CPU against 5 and 256, so that the grid can be larger.
FIXED: dict[str, dict[str, Any]] = {
    "classical": {"n_critic": 3, "batch_size": 128, "beta1": 0.5, "latent": "normal",
                  "activation": "relu"},
    "quantum": {"lr_critic": 1e-3, "n_critic": 3, "batch_size": 128, "beta1": 0.5},
}
#: Held at one value here while the study searched them, fixed by the study file since (quantum:
#: ``fixed: {head: linear}``): a point trains with the same value either way, so the file's
#: must agree, and the recorder passes it only while the study still searches it.
FIXED_BY_THE_STUDY_SINCE: dict[str, dict[str, Any]] = {
    "quantum": {"head": "linear"},
}


def grid_points(kind: str) -> list[dict[str, Any]]:
    """The grid of ``kind``: one dict of searched values per point, stage by stage."""
    levels: dict[str, list[Any]] = {}
    points: list[dict[str, Any]] = []
    for stage in STAGES[kind]:
        for name, added in stage.items():
            levels[name] = levels.get(name, []) + added
        for values in itertools.product(*levels.values()):
            point = dict(zip(levels, values, strict=True))
            if point not in points:
                points.append(point)
    return points


def config_key(kind: str, params: dict[str, Any], seed: int) -> str:
    """A stable key for one recorded (kind, params, seed)."""
    return json.dumps({"kind": kind, "params": params, "seed": seed}, sort_keys=True)


def recorded_keys(path: Path) -> set[str]:
    if not path.exists():
        return set()
    keys = set()
    for line in path.read_text().splitlines():
        if line.strip():
            row = json.loads(line)
            keys.add(config_key(row["kind"], row["params"], row["seed"]))
    return keys


def training_config_of(spec, kind: str, params: dict[str, Any], seed: int) -> dict[str, Any]:
    values = {**FIXED[kind], **params}
    for name, value in FIXED_BY_THE_STUDY_SINCE.get(kind, {}).items():
        if name not in spec.search.generators[kind].search:
            fixed = spec.search.generators[kind].fixed.get(name)
            if fixed != value:
                raise SystemExit(f"the study fixes {name}={fixed!r}; the record has {value!r}")
        else:
            values[name] = value
    shared = {k: v for k, v in values.items() if k in spec.search.shared}
    branch = {k: v for k, v in values.items() if k in spec.search.generators[kind].search}
    unknown = set(values) - set(shared) - set(branch)
    if unknown:
        raise SystemExit(f"grid names parameters the study does not search: {sorted(unknown)}")
    config = training_config(kind_spec(spec, kind), kind, shared, branch)
    config["seed"] = seed
    return config


def record_one(spec, target, metric, kind: str, params: dict[str, Any], seed: int,
               extras: bool = False) -> dict[str, Any]:
    """Train one grid point as a worker would; its curve, CPU-seconds and final D_s.

    The reports and the final D_s are ``hpo.evaluate.train_and_score``'s own computations. The
    worker's final scoring also computes the resolution profile, the k-NN estimate and W2, which
    the replay does not need (about 3x the final D_s's CPU); ``extras`` computes them too and
    records their CPU-seconds as ``extras_cpu``, so that the replay can charge them.
    """
    config = training_config_of(spec, kind, params, seed)
    sigma, eval_seed = metric.sigma, metric.seed
    steps, kls, cpus = [], [], []
    started = time.process_time()

    def on_eval(step: int, samples: np.ndarray) -> None:
        kl = kl_divergence(target, samples, sigma=sigma, seed=eval_seed, n_target=metric.n_report)
        steps.append(step)
        kls.append(round(float(kl.value), 4))
        cpus.append(round(time.process_time() - started, 2))

    row: dict[str, Any] = {"kind": kind, "params": params, "seed": seed}
    wall = time.perf_counter()
    try:
        result = models.train(config, target.sample, on_eval)
        draws = final_samples(result.generator, seed, metric.replicates, metric.eval_samples)
        if not all(np.all(np.isfinite(d)) for d in draws):
            raise models.TrainingDiverged(result.steps, "final generator samples")
        kl = kl_divergence(target, draws, sigma=sigma, seed=eval_seed, n_target=metric.n_target)
        row.update(final=round(float(kl.value), 4), final_stderr=round(float(kl.stderr), 4),
                   ended="complete")
    except models.TrainingDiverged as err:
        draws = None
        row.update(final=None, final_stderr=None, ended=f"diverged: {err}")
    row["final_cpu"] = round(time.process_time() - started, 2)
    if extras and draws is not None:
        tick = time.process_time()
        for factor in DEFAULT_PROFILE:
            if factor != 1.0:
                kl_divergence(target, draws, sigma=factor * sigma, seed=eval_seed,
                              n_target=metric.n_target)
        kl_divergence(target, draws, method="knn", seed=eval_seed, n_target=metric.n_target)
        wasserstein2(target, draws[0], seed=eval_seed)
        row["extras_cpu"] = round(time.process_time() - tick, 2)
    row.update(wall=round(time.perf_counter() - wall, 1), steps=steps, kl=kls, cpu=cpus)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("study_file")
    parser.add_argument("--kind", choices=sorted(STAGES), default="classical")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0],
                        help="training seeds (the worker's is study seed + trial number)")
    parser.add_argument("--limit", type=int, default=None, help="only the first N grid points")
    parser.add_argument("--points", type=int, nargs="+", default=None,
                        help="only these grid points (indices in recording order)")
    parser.add_argument("--steps", type=int, default=None, help="override budget.steps (smoke)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--extras", action="store_true",
                        help="also time the rest of the worker's final scoring (extras_cpu)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    spec = load_spec(args.study_file)
    if args.steps is not None:
        spec = spec.model_copy(update={"budget": spec.budget.model_copy(
            update={"steps": args.steps})})
    target = build_target(spec.target)
    metric = resolved_metric(spec.metric, target)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    done = recorded_keys(args.out)
    points = grid_points(args.kind)
    if args.points is not None:
        points = [points[i] for i in args.points]
    points = points[:args.limit]
    print(f"{args.kind}: {len(points)} grid points x seeds {args.seeds}, "
          f"{spec.budget.steps} steps, report every {spec.budget.eval_every}, s={metric.sigma:g}; "
          f"{len(done)} rows already in {args.out}", flush=True)
    for seed in args.seeds:
        for params in points:
            if config_key(args.kind, params, seed) in done:
                continue
            row = record_one(spec, target, metric, args.kind, params, seed, args.extras)
            with args.out.open("a") as out:
                out.write(json.dumps(row, separators=(",", ":")) + "\n")
            print(f"  seed {seed} {params}: final {row['final']} ({row['ended']}), "
                  f"{row['final_cpu']:.0f} CPU-s, {row['wall']:.0f} s wall", flush=True)


if __name__ == "__main__":
    main()
