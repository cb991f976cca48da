"""Where a trial's time goes: training, evaluation and storage, per generator kind (issue 20,
part 4: evaluation and storage together at most 5% of a trial's CPU on the gaussgan study).

Runs ``--trials`` real trials of each generator kind of a study file through the real objective
(:class:`hpo.objective.Objective` inside ``study.optimize``, as a worker runs it), on a temporary
journal file and, with ``--postgres``, on a temporary PostgreSQL database that it creates and
drops. One torch thread, and OpenBLAS threads as ``hpo worker`` sets them (``--blas-threads``;
0 leaves numpy's default, one per core, as workers ran before). Each kind's study is first
filled with ``--prefill`` finished trials (the budget per kind by default), each with a report at
every evaluation step of a full trial, so that the pruner and the sampler read a study of the
size a real one reaches; their values are poor, so no measured trial is pruned.

What a worker pays once, in its first trial (imports, first calls), is paid before, untimed.
Timers wrap the call sites (monkeypatching here; nothing in the product times itself) and
split each trial's CPU time (``time.process_time``) and wall time, exclusively (a storage call
made inside an artifact write counts as storage, not twice):

- training: ``models.train``, less what it calls back;
- evaluation: ``kl_divergence``, ``wasserstein2``, ``mode_coverage`` and the final generator
  draws, split into the intermediate reports (during training) and the final score;
- storage: every call on the storage object (reports, ``should_prune``'s reads, user
  attributes, ``ask``/``tell``'s writes), split into those during training and the rest;
- artifacts: the config YAML, the score JSON and the PNG (rendering and upload);
- other: the rest of ``study.optimize`` (the sampler, the objective's own code).

Projection to a full trial (``budget.steps`` of the study file, ``steps / eval_every`` reports):
training scales with steps (training seconds per step measured over ``--steps``), the reports'
evaluation and storage with the number of reports (cost per report measured), the final score,
artifacts and the rest once per trial. The share printed is (evaluation + storage + artifacts) /
total, of the measured trials and of the projected full ones.

    nice -n 19 .venv/bin/python bench/trial_split.py studies/gaussgan.yaml [--trials 3]
        [--steps 300] [--prefill N] [--postgres] [--blas-threads 1]
        [--metric points=rqmc --metric n_target=4096 ...] [--save-draws DIR]

``--metric KEY=VALUE`` replaces one key of the study file's ``metric`` (validated as a study file
is), so one sitting can time the study's scoring beside another; ``--save-draws`` keeps each
trial's final generator draws (``DIR/<kind>-<trial>.npy``, shape (replicates, m, 2)) for
bench/score_points.py.
"""

from __future__ import annotations

import argparse
import functools
import os
import shlex
import sys
import tempfile
import threading
import time
import uuid
import warnings
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

PG_ADMIN_URL = "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"
PARTS = ("training", "eval reports", "eval final", "storage reports", "storage rest",
         "artifacts", "other")
OVERHEAD = ("eval reports", "eval final", "storage reports", "storage rest", "artifacts")


class Split:
    """Exclusive CPU and wall seconds per part, from wrappers on the main thread (a storage's
    heartbeat thread passes through untimed)."""

    def __init__(self) -> None:
        self.stack: list[list[float]] = []
        self.seconds: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
        self.counts: dict[str, int] = defaultdict(int)
        self.detail: dict[tuple[str, str], list[float]] = defaultdict(lambda: [0.0, 0])
        self.training = False

    def wrap(self, fn: Callable[..., Any], part: str | Callable[[], str],
             label: Callable[..., str] | None = None) -> Callable[..., Any]:
        """``fn`` timed as ``part``; ``label(*args, **kwargs)`` names it in :attr:`detail`."""
        @functools.wraps(fn)
        def timed(*args: Any, **kwargs: Any) -> Any:
            if threading.current_thread() is not threading.main_thread():
                return fn(*args, **kwargs)
            frame = [time.process_time(), time.perf_counter(), 0.0, 0.0]
            name = part() if callable(part) else part
            self.stack.append(frame)
            try:
                return fn(*args, **kwargs)
            finally:
                self.stack.pop()
                cpu, wall = time.process_time() - frame[0], time.perf_counter() - frame[1]
                self.seconds[name][0] += cpu - frame[2]
                self.seconds[name][1] += wall - frame[3]
                self.counts[name] += 1
                if label is not None:
                    row = self.detail[(name, label(*args, **kwargs))]
                    row[0] += cpu - frame[2]
                    row[1] += 1
                if self.stack:
                    self.stack[-1][2] += cpu
                    self.stack[-1][3] += wall
        return timed

    def during(self, inside: str, after: str) -> Callable[[], str]:
        return lambda: inside if self.training else after

    def reset(self) -> None:
        self.seconds.clear()
        self.counts.clear()
        self.detail.clear()


def instrument(split: Split) -> None:
    """Wrap the call sites of training, evaluation and artifacts (storage: timed_storage)."""
    import hpo.evaluate
    import hpo.objective
    import models

    train = models.train

    def training(*args: Any, **kwargs: Any) -> Any:
        split.training = True
        try:
            return train(*args, **kwargs)
        finally:
            split.training = False

    models.train = split.wrap(training, "training")
    evaluation = split.during("eval reports", "eval final")
    def kl_label(*args: Any, **kwargs: Any) -> str:
        method = kwargs.get("method", "smoothed")
        return f"{method} s={kwargs['sigma']:g}" if method == "smoothed" else method

    hpo.evaluate.kl_divergence = split.wrap(hpo.evaluate.kl_divergence, evaluation, kl_label)
    final_samples = hpo.evaluate.final_samples

    def kept_final_samples(*args: Any, **kwargs: Any) -> Any:
        LAST_DRAWS[:] = final_samples(*args, **kwargs)  # saved after the trial, untimed
        return LAST_DRAWS

    hpo.evaluate.final_samples = kept_final_samples
    for name in ("wasserstein2", "mode_coverage", "final_samples"):
        setattr(hpo.evaluate, name, split.wrap(getattr(hpo.evaluate, name), evaluation,
                                               lambda *a, _name=name, **k: _name))
    for name in ("store_config", "store_score_details"):
        setattr(hpo.objective, name, split.wrap(getattr(hpo.objective, name), "artifacts"))
    hpo.objective.Objective._upload_plot = split.wrap(hpo.objective.Objective._upload_plot,
                                                      "artifacts")


# The last trial's final generator draws, for --save-draws.
LAST_DRAWS: list[Any] = []


def timed_storage(storage: Any, split: Split) -> Any:
    """Every public method of ``storage`` timed as storage (on the instance)."""
    part = split.during("storage reports", "storage rest")
    for name in dir(type(storage)):
        if name.startswith("_") or not callable(getattr(type(storage), name, None)):
            continue
        setattr(storage, name, split.wrap(getattr(storage, name), part))
    return storage


def prefill(study: Any, spec: Any, n: int) -> None:
    """``n`` finished trials with a (poor) report at every evaluation step of a full trial."""
    from hpo.space import suggest

    budget = spec.budget
    warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used")
    for i in range(n):
        trial = study.ask()
        suggest(trial, spec, spec.seed + i)
        for step in range(budget.eval_every, budget.steps + 1, budget.eval_every):
            trial.report(50.0 + i + 1000.0 / step, step)
        study.tell(trial, 50.0 + i)


def warm_up(spec: Any) -> None:
    """What a worker's first trial pays once (imports, first calls), untimed: a few steps of each
    kind's default configuration, each estimator once."""
    import models
    from hpo.metric import resolved_metric
    from hpo.study_file import arm_kind
    from hpo.target import build_target
    from metrics import kl_divergence, wasserstein2

    target = build_target(spec.target)
    metric = resolved_metric(spec.metric, target)
    # An arm names its model kind (hybrid and control arms train quantum and control models).
    for kind in dict.fromkeys(arm_kind(a, b) for a, b in spec.search.generators.items()):
        models.train({"generator": {"kind": kind}, "steps": 20, "eval_every": 20}, target.sample)
    draws = [target.sample(metric.eval_samples, rng=r) for r in range(2)]
    kl_divergence(target, draws, sigma=metric.sigma, seed=metric.seed, n_target=metric.n_report,
                  points=metric.points)
    kl_divergence(target, draws, method="knn", seed=metric.seed, n_target=metric.n_report)
    wasserstein2(target, draws[0], seed=metric.seed)


def run_kind(url: str, spec: Any, kind: str, args: argparse.Namespace, workdir: Path,
             split: Split) -> list[dict[str, Any]]:
    """The measured trials of one kind on storage ``url``: one dict of parts per trial."""
    import optuna

    from hpo.artifacts import artifact_store
    from hpo.group import kind_spec
    from hpo.objective import Objective
    from hpo.storage import close_storage, open_storage
    from hpo.strategy import make_pruner, make_sampler

    full = kind_spec(spec, kind)
    short = full.model_copy(update={"budget": full.budget.model_copy(
        update={"steps": args.steps})})
    storage = open_storage(url, short)  # as a worker opens it (heartbeat on PostgreSQL)
    name = f"{spec.name}.{kind}.{uuid.uuid4().hex[:6]}"
    study = optuna.create_study(study_name=name, storage=storage, direction="minimize",
                                sampler=make_sampler(short, 0), pruner=make_pruner(short))
    prefill(study, full, args.prefill)
    timed_storage(storage, split)
    objective = Objective(short, artifact_store(str(workdir / "artifacts")), "bench")
    rows = []
    for _ in range(args.trials):
        split.reset()
        LAST_DRAWS.clear()
        cpu, wall = time.process_time(), time.perf_counter()
        study.optimize(objective, n_trials=1)
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        trial = study.get_trials(deepcopy=False)[-1]
        if args.save_draws is not None and LAST_DRAWS:
            import numpy as np

            np.save(args.save_draws / f"{kind}-{trial.number}.npy", np.stack(LAST_DRAWS))
        seconds = {p: list(split.seconds.get(p, [0.0, 0.0])) for p in PARTS[:-1]}
        seconds["other"] = [cpu - sum(s[0] for s in seconds.values()),
                            wall - sum(s[1] for s in seconds.values())]
        rows.append({"kind": kind, "number": trial.number, "state": trial.state.name,
                     "config": trial.user_attrs.get("config", ""),
                     "reports": split.counts.get("eval reports", 0),
                     "steps": args.steps, "cpu": cpu, "wall": wall, "seconds": seconds,
                     "detail": {f"{part}: {what}": list(v)
                                for (part, what), v in split.detail.items()}})
        print(f"  {kind} trial {trial.number} {trial.state.name.lower()}: {cpu:.1f} s CPU, "
              f"{wall:.1f} s wall; {trial.user_attrs.get('config', '')}", flush=True)
    close_storage(storage)
    return rows


def project(rows: list[dict[str, Any]], full_steps: int, eval_every: int, column: int
            ) -> dict[str, float]:
    """Parts of a full trial (seconds, ``column`` 0: CPU, 1: wall), from the measured ones."""
    n = len(rows)
    steps = sum(r["steps"] for r in rows)
    reports = sum(r["reports"] for r in rows)
    total = {p: sum(r["seconds"][p][column] for r in rows) for p in PARTS}
    full_reports = full_steps // eval_every
    out = {"training": total["training"] / steps * full_steps}
    for p in ("eval reports", "storage reports"):
        out[p] = total[p] / reports * full_reports if reports else 0.0
    for p in ("eval final", "storage rest", "artifacts", "other"):
        out[p] = total[p] / n
    return out


def table(title: str, parts: dict[str, float]) -> list[str]:
    total = sum(parts.values())
    overhead = sum(parts[p] for p in OVERHEAD)
    lines = [title, f"  {'part':<16} {'seconds':>9} {'share':>7}"]
    for p in PARTS:
        lines.append(f"  {p:<16} {parts[p]:>9.2f} {parts[p] / total:>7.1%}")
    lines.append(f"  {'total':<16} {total:>9.2f}")
    lines.append(f"  evaluation + storage (+ artifacts): {overhead:.2f} s = "
                 f"{overhead / total:.2%} of the trial; with 'other' too: "
                 f"{(overhead + parts['other']) / total:.2%}")
    return lines


def report(rows: list[dict[str, Any]], spec: Any, label: str) -> list[str]:
    budget = spec.budget
    lines = []
    for column, clock in ((0, "CPU"), (1, "wall")):
        measured_all: dict[str, float] = defaultdict(float)
        full_all: dict[str, float] = defaultdict(float)
        for kind in dict.fromkeys(r["kind"] for r in rows):
            own = [r for r in rows if r["kind"] == kind]
            measured = {p: sum(r["seconds"][p][column] for r in own) for p in PARTS}
            full = project(own, budget.steps, budget.eval_every, column)
            for p in PARTS:
                measured_all[p] += measured[p]
                full_all[p] += full[p]
            if column == 0:
                lines += table(f"{label} {kind}, {clock}: {len(own)} trials of {own[0]['steps']} "
                               f"steps as measured (sums)", measured)
                detail: dict[str, list[float]] = defaultdict(lambda: [0.0, 0])
                for r in own:
                    for what, (sec, calls) in r["detail"].items():
                        detail[what][0] += sec
                        detail[what][1] += calls
                lines.append("  evaluation, CPU s (calls): " + "; ".join(
                    f"{what} {sec:.2f} ({calls})" for what, (sec, calls) in sorted(detail.items())))
            if own[0]["steps"] != budget.steps or column == 1:
                lines += table(f"{label} {kind}, {clock}: one full trial projected "
                               f"({budget.steps} steps, {budget.steps // budget.eval_every} "
                               "reports)", full)
        lines += table(f"{label} all kinds, {clock}: one full trial of each kind projected "
                       "(sum)", dict(full_all))
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("study_file")
    parser.add_argument("--trials", type=int, default=3, help="measured trials per kind")
    parser.add_argument("--steps", type=int, default=300,
                        help="generator steps per measured trial (a multiple of eval_every)")
    parser.add_argument("--prefill", type=int, default=None,
                        help="finished trials put in each kind's study first (default: its "
                             "budget share)")
    parser.add_argument("--postgres", action="store_true",
                        help="also on a temporary PostgreSQL database at 127.0.0.1:5432")
    parser.add_argument("--metric", action="append", default=[], metavar="KEY=VALUE",
                        help="replace a key of the study file's metric (YAML value), e.g. "
                             "points=rqmc; repeatable")
    parser.add_argument("--save-draws", type=Path, default=None, metavar="DIR",
                        help="keep each trial's final draws as DIR/<kind>-<trial>.npy")
    parser.add_argument("--blas-threads", type=int, default=1,
                        help="OpenBLAS threads (default 1, as hpo worker sets them; 0: numpy's "
                             "default, one per core)")
    args = parser.parse_args()
    for name in ("OPENBLAS_NUM_THREADS", "GOTO_NUM_THREADS", "OMP_NUM_THREADS"):
        os.environ.pop(name, None)  # set before numpy is imported: OpenBLAS reads it once
    if args.blas_threads > 0:
        try:
            from hpo.cli import limit_blas_threads  # what `hpo worker` does
        except ImportError:  # a checkout from before it: the same by hand
            def limit_blas_threads(threads: int) -> None:
                os.environ["OPENBLAS_NUM_THREADS"] = str(threads)
        limit_blas_threads(args.blas_threads)

    import optuna
    import sqlalchemy
    import torch

    from hpo.schedule import kind_budgets
    from hpo.space import load_spec

    torch.set_num_threads(1)
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    spec = load_spec(args.study_file)
    if args.metric:
        import pydantic
        import yaml

        from hpo.study_file import Metric, one_line_error

        changes = {}
        for item in args.metric:
            key, sep, value = item.partition("=")
            if not sep:
                parser.error(f"--metric takes KEY=VALUE, got {item!r}")
            changes[key] = yaml.safe_load(value)
        try:
            metric = Metric.model_validate({**spec.metric.model_dump(), **changes})
        except pydantic.ValidationError as err:
            parser.error(str(one_line_error("--metric", Metric, err)))
        spec = spec.model_copy(update={"metric": metric})
    if args.save_draws is not None:
        args.save_draws.mkdir(parents=True, exist_ok=True)
    if args.steps % spec.budget.eval_every:
        parser.error(f"--steps must be a multiple of eval_every ({spec.budget.eval_every})")
    kinds = list(spec.search.generators)
    if args.prefill is None:
        args.prefill = min(kind_budgets(spec.budget.trials, kinds).values())
    try:
        from threadpoolctl import threadpool_info

        blas = ", ".join(f"{i['internal_api']} {i['num_threads']}" for i in threadpool_info())
    except ImportError:
        blas = "unknown (threadpoolctl is not installed)"
    command = "nice -n 19 .venv/bin/python bench/trial_split.py " + shlex.join(sys.argv[1:])
    print(f"{command}\n{args.study_file}: {args.trials} trials per kind of {args.steps} steps "
          f"(a full trial: {spec.budget.steps}), each kind's study prefilled with "
          f"{args.prefill} trials; metric {spec.metric.model_dump()}; "
          f"torch threads {torch.get_num_threads()}, BLAS threads: "
          f"{blas}; load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores",
          flush=True)
    warm_up(spec)
    split = Split()
    instrument(split)
    lines: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        storages = [("journal", str(workdir / "hpo.journal"))]
        admin = None
        if args.postgres:
            admin = sqlalchemy.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT",
                                             poolclass=sqlalchemy.pool.NullPool)
            database = f"hpo_bench_{uuid.uuid4().hex[:12]}"
            with admin.connect() as conn:
                conn.execute(sqlalchemy.text(f'CREATE DATABASE "{database}"'))
            storages.append(("postgres",
                             f"postgresql+psycopg2://postgres@127.0.0.1:5432/{database}"))
        try:
            for label, url in storages:
                print(f"{label}:", flush=True)
                rows = [r for kind in kinds for r in run_kind(url, spec, kind, args, workdir,
                                                              split)]
                lines += [""] + report(rows, spec, label)
        finally:
            if admin is not None:
                with admin.connect() as conn:
                    conn.execute(sqlalchemy.text(
                        f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
                admin.dispose()
    print("\n".join(lines))
    print(f"\nload average at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
