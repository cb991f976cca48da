"""Search efficiency of samplers and pruners on the gaussgan space, by replaying recorded curves.

Re-training every repeat of every search is unaffordable here, so, as tabular HPO benchmarks do,
the learning curves of a grid over the space are recorded once (bench/record_curves.py, kept in
bench/data/) and each search replays them. Every strategy is a real Optuna study: its sampler
(RandomSampler, or TPESampler with the study file's settings) proposes grid points (the grid's
levels as categorical choices), and its pruner (built from the study file by
``hpo.strategy.make_pruner``) sees the recorded intermediate D_s step by step through
``trial.report`` / ``trial.should_prune``, exactly as ``hpo.objective`` reports them. A trial is
charged the recorded CPU-seconds up to the report where it stopped (pruned), or to the end of its
final scoring (complete). Each search runs ``--trials`` trials and is repeated ``--repeats`` times
with different sampler seeds.

Per strategy the table gives the median CPU-seconds (over repeats) to first complete a trial at
or below a target D_s, with a distribution-free 95% interval for that median (order statistics,
``scipy.stats.binom``), and the share of repeats that reach it at all. Two targets: within 0.05
nats of the best final D_s recorded (the best any strategy can find), and random search's median
best-of-``--trials`` D_s (exact for uniform draws from the grid, :func:`random_best_of`).

    .venv/bin/python bench/search_efficiency.py studies/gaussgan.yaml [--kind classical]
        [--repeats 40] [--trials 40] [--figure docs/search-efficiency/classical.png]
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import optuna
from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hpo.strategy import make_pruner, make_sampler  # noqa: E402
from hpo.study_file import Pruner, Sampler, StudySpec  # noqa: E402

DEFAULT_DATA = Path(__file__).resolve().parent / "data" / "gaussgan_curves.jsonl"
#: "Reached the best": within this many nats of the best final D_s recorded.
TOLERANCE = 0.05


@dataclass(frozen=True)
class Curve:
    """One recorded configuration: D_s and cumulative CPU-seconds at each report, and the end."""

    steps: tuple[int, ...]
    kl: tuple[float, ...]
    cpu: tuple[float, ...]
    final: float | None  # None: training diverged (the trial fails)
    final_cpu: float


@dataclass(frozen=True)
class Table:
    """The replayed space: each dimension's levels and the curve of every grid point."""

    grid: dict[str, tuple[Any, ...]]
    curves: dict[tuple[Any, ...], Curve]
    max_step: int

    def best_final(self) -> float:
        return min(c.final for c in self.curves.values() if c.final is not None)


@dataclass(frozen=True)
class Strategy:
    """A sampler ("random" or "tpe") and a pruner: fields of the study file's ``pruner``
    section (every field the kind reads, so a row does not change with the study file) and,
    for TPE, the ``sampler`` fields it sets (its start-up trials: not the study file's)."""

    sampler: str
    pruner: dict[str, Any]
    sampler_fields: dict[str, Any] | None = None


_MEDIAN = {"kind": "median", "n_startup_trials": 5, "n_warmup_steps": 500}
_PATIENT = {"patience": 2}
_NONE = {"patience": None}
#: TPE's random start-up trials, set on every TPE row: studies/gaussgan.yaml had 8 when the
#: tables in docs/search-efficiency.md were made and has 2 since it searches 4 trials per search,
#: so a row must not follow the file (as the pruner's fields don't).
_TPE = {"n_startup_trials": 8}


def _tpe(pruner: dict[str, Any], **sampler: Any) -> Strategy:
    return Strategy("tpe", pruner, {**_TPE, **sampler})


#: Successive halving and Hyperband from the first report (step 100), a third going on.
_SH = {"kind": "successive_halving", "reduction_factor": 3, "min_early_stopping_rate": 0,
       "min_resource": 100}
_HB = {"kind": "hyperband", "reduction_factor": 3, "min_resource": 100}
#: Successive halving from step 800: the worse half stops at 800 and again at 1600, nothing
#: before (the curves that end best start slowly: docs/search-efficiency.md).
_HALVING = {**_SH, "reduction_factor": 2, "min_resource": 800}
#: Every pruner field at the schema's default: what a study file without a pruner section gets.
_DEFAULT_PRUNER = Pruner().model_dump()

#: The strategies compared. "tpe + median (warmup 500, patience 2)" was studies/gaussgan.yaml's
#: sampler and pruner at 40 trials a search; "the defaults" (since 2026-12-06, successive halving
#: from step 800 on this budget) is the strategy docs/search-efficiency.md chose.
STRATEGIES: dict[str, Strategy] = {
    "random": Strategy("random", {"kind": "none"}),
    "random + median (warmup 500)": Strategy("random", {**_MEDIAN, **_NONE}),
    "tpe": _tpe({"kind": "none"}),
    "tpe + median (warmup 500, patience 2)": _tpe({**_MEDIAN, **_PATIENT}),
    "tpe + median (warmup 500)": _tpe({**_MEDIAN, **_NONE}),
    "tpe + median (warmup 1000, patience 2)": _tpe(
        {**_MEDIAN, "n_warmup_steps": 1000, **_PATIENT}),
    "tpe + median (warmup 1000)": _tpe({**_MEDIAN, "n_warmup_steps": 1000, **_NONE}),
    "tpe + 25th percentile (warmup 500, patience 2)": _tpe(
        {**_MEDIAN, "kind": "percentile", "percentile": 25.0, **_PATIENT}),
    "tpe + successive halving": _tpe({**_SH, **_NONE}),
    "tpe + successive halving, patience 2": _tpe({**_SH, **_PATIENT}),
    "tpe + hyperband": _tpe({**_HB, **_NONE}),
    "tpe + hyperband, patience 2": _tpe({**_HB, **_PATIENT}),
    "tpe, 4 start-up trials + median (warmup 500, patience 2)": _tpe(
        {**_MEDIAN, **_PATIENT}, n_startup_trials=4),
    "tpe + successive halving from step 800 (rf 2)": _tpe({**_HALVING, **_NONE}),
    "tpe + successive halving from step 800 (rf 2), patience 2": _tpe({**_HALVING, **_PATIENT}),
    # The defaults: what a study file that names no sampler or pruner searches with (TPE with
    # 10 start-up trials, successive halving from a quarter of budget.steps); this row follows
    # the schema. The next two follow the study file: its own sampler and pruner (every field
    # as the file sets it), and its sampler with the default pruner.
    "the defaults": Strategy("tpe", _DEFAULT_PRUNER,
                             {k: v for k, v in Sampler().model_dump().items() if k != "seed"}),
    "the study file's": Strategy("tpe", {}, {}),
    "the study file's sampler + the default pruner": Strategy("tpe", _DEFAULT_PRUNER, {}),
}

#: The strategies drawn in the figure (all of them crowd it).
FIGURE_STRATEGIES = ("random", "tpe", "tpe + median (warmup 500, patience 2)",
                     "tpe + successive halving", "tpe + successive halving, patience 2",
                     "tpe + hyperband, patience 2", "the defaults")

#: The strategies whose 25-75% band is drawn: random search and the defaults.
BANDED = ("random", "the defaults")


@dataclass(frozen=True)
class Trace:
    """One search: after each trial, the CPU-seconds spent so far and the best final D_s so far
    (``inf`` until a trial completes); ``pruned`` counts the trials stopped early."""

    cpu: np.ndarray
    best: np.ndarray
    pruned: int

    def cpu_to_reach(self, target: float) -> float:
        """CPU-seconds spent when a completed trial first scored at or below ``target``."""
        hit = np.flatnonzero(self.best <= target)
        return float(self.cpu[hit[0]]) if hit.size else math.inf

    def best_at(self, cpu: np.ndarray) -> np.ndarray:
        """Best final D_s known after ``cpu`` CPU-seconds (``inf`` before the first)."""
        idx = np.searchsorted(self.cpu, cpu, side="right") - 1
        return np.where(idx >= 0, self.best[np.maximum(idx, 0)], math.inf)


def load_table(path: Path, kind: str, seed: int = 0,
               stages: list[dict[str, list[Any]]] | None = None) -> Table:
    """The recorded curves of ``kind`` on training ``seed``.

    Without ``stages`` the grid is every level recorded, and a hole in it raises ``ValueError``
    (a replayed sampler may propose any combination of levels). With the recorder's ``stages``
    (bench/record_curves.py) the grid is the largest stage recorded completely, so a recording
    stopped part-way through a stage still replays.
    """
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    rows = [r for r in rows if r["kind"] == kind and r["seed"] == seed]
    if not rows:
        raise ValueError(f"{path}: no {kind} curves on seed {seed}")
    names = list(rows[0]["params"])
    recorded = {tuple(r["params"][n] for n in names): _curve(r) for r in rows}
    if stages is None:
        grid = {n: tuple(sorted({r["params"][n] for r in rows}, key=_order)) for n in names}
        missing = math.prod(len(v) for v in grid.values()) - len(recorded)
        if missing:
            raise ValueError(f"{path}: {missing} points of the {kind} grid are not recorded")
    else:
        grid, levels = {}, {n: [] for n in names}
        for stage in stages:
            for name, added in stage.items():
                levels[name] = levels[name] + added
            if not all(p in recorded for p in itertools.product(*levels.values())):
                break
            grid = {n: tuple(sorted(v, key=_order)) for n, v in levels.items()}
        if not grid:
            raise ValueError(f"{path}: not even the first stage of the {kind} grid is recorded")
    curves = {p: recorded[p] for p in itertools.product(*grid.values())}
    max_step = max(c.steps[-1] for c in curves.values() if c.final is not None)
    return Table(grid, curves, max_step)


def _order(value: Any) -> tuple[int, Any]:
    return (0, value) if isinstance(value, int | float) else (1, str(value))


def _curve(row: dict[str, Any]) -> Curve:
    return Curve(tuple(row["steps"]), tuple(row["kl"]), tuple(row["cpu"]), row["final"],
                 row["final_cpu"])


def random_best_of(table: Table, n: int) -> float:
    """The median of random search's best final D_s after ``n`` trials, exactly: a random
    sampler draws the grid's points uniformly with replacement, so the best of ``n`` is at or
    below the k-th best point with probability 1 - (1 - k/N)^n (a diverged point scores nothing).
    """
    finals = sorted(math.inf if c.final is None else c.final for c in table.curves.values())
    size = len(finals)
    k = next(k for k in range(1, size + 1) if 1 - (1 - k / size) ** n >= 0.5)
    return finals[k - 1]


def replay_objective(table: Table, spent: list[float]) -> Callable[[optuna.Trial], float]:
    """An objective that looks the trial's grid point up instead of training it; each call
    appends the CPU-seconds it is charged to ``spent``."""

    def objective(trial: optuna.Trial) -> float:
        key = tuple(trial.suggest_categorical(n, levels) for n, levels in table.grid.items())
        curve = table.curves[key]
        for step, kl, cpu in zip(curve.steps, curve.kl, curve.cpu, strict=True):
            trial.report(kl, step)
            # As hpo.objective: at the last step training is over, so it is never pruned there.
            if step < table.max_step and trial.should_prune():
                spent.append(cpu)
                raise optuna.TrialPruned()
        spent.append(curve.final_cpu)
        if curve.final is None:
            raise FloatingPointError("diverged")  # as models.TrainingDiverged: the trial fails
        return curve.final

    return objective


def make_strategy(spec: StudySpec, strategy: Strategy, seed: int
                  ) -> tuple[optuna.samplers.BaseSampler, optuna.pruners.BasePruner]:
    """The strategy's sampler (seeded ``seed``) and pruner, built as a worker builds them."""
    spec = spec.model_copy(update={
        "pruner": spec.pruner.model_copy(update=strategy.pruner),
        "sampler": spec.sampler.model_copy(update=strategy.sampler_fields or {})})
    if strategy.sampler == "random":
        sampler: optuna.samplers.BaseSampler = optuna.samplers.RandomSampler(seed=seed)
    else:
        sampler = make_sampler(spec, worker_seed=seed)
    return sampler, make_pruner(spec)


def run_search(table: Table, sampler: optuna.samplers.BaseSampler,
               pruner: optuna.pruners.BasePruner, n_trials: int,
               study_name: str = "replay") -> Trace:
    """One search of ``n_trials`` replayed trials, in a study named ``study_name``: Hyperband
    assigns a trial to a bracket by a hash of the study's name and the trial's number, so an
    unnamed study (a random name) would draw other brackets on every run."""
    study = optuna.create_study(study_name=study_name, sampler=sampler, pruner=pruner)
    spent: list[float] = []
    study.optimize(replay_objective(table, spent), n_trials=n_trials,
                   catch=(FloatingPointError,))
    best, values = math.inf, []
    for trial in study.trials:
        if trial.state == optuna.trial.TrialState.COMPLETE:
            best = min(best, trial.value)
        values.append(best)
    pruned = sum(t.state == optuna.trial.TrialState.PRUNED for t in study.trials)
    return Trace(np.cumsum(spent), np.array(values), pruned)


def run_strategy(spec: StudySpec, table: Table, strategy: Strategy, repeats: int,
                 n_trials: int, first_seed: int = 0) -> list[Trace]:
    """``repeats`` searches, sampler seeds ``spec.sampler.seed + first_seed`` + 0, 1, ...; each
    search's study is named by its seed, so it replays the same on every run."""
    seeds = [spec.sampler.seed + first_seed + r for r in range(repeats)]
    return [run_search(table, *make_strategy(spec, strategy, seed), n_trials, f"search-{seed}")
            for seed in seeds]


def median_interval(values: Iterable[float], confidence: float = 0.95
                    ) -> tuple[float, float, float]:
    """The median and a distribution-free interval for it from order statistics: the ranks
    (j, k) of the sorted values with P(X_(j) <= median < X_(k)) >= ``confidence`` under
    Binomial(n, 1/2). ``inf`` values (never reached) sort last and may bound the interval."""
    x = np.sort(np.asarray(list(values), dtype=float))
    n = x.size
    alpha = (1 - confidence) / 2
    # Largest 1-based rank j with P(B < j) <= alpha, B ~ Binomial(n, 1/2): then
    # P(X_(j) <= median <= X_(n+1-j)) >= 1 - 2 alpha.
    j = 1
    while j + 1 <= n and stats.binom.cdf(j, n, 0.5) <= alpha:
        j += 1
    return float(np.median(x)), float(x[j - 1]), float(x[n - j])


def ratio_interval(a: np.ndarray, b: np.ndarray, seed: int = 0, resamples: int = 4000
                   ) -> tuple[float, float, float]:
    """median(a) / median(b) with a percentile bootstrap 95% interval (repeats resampled
    independently; ``inf`` medians give ``inf`` ratios)."""
    rng = np.random.default_rng(seed)
    ratios = _ratio(np.median(rng.choice(a, (resamples, a.size)), axis=1),
                    np.median(rng.choice(b, (resamples, b.size)), axis=1))
    low, high = np.quantile(ratios, [0.025, 0.975], method="inverted_cdf")
    return float(_ratio(np.median(a), np.median(b))), float(low), float(high)


def _ratio(a: np.ndarray | float, b: np.ndarray | float) -> np.ndarray:
    """a / b, ``inf`` where a is ``inf`` (never reached) or b is not positive."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(np.isinf(a) | (b <= 0), math.inf, a / np.where(b > 0, b, 1.0))


@dataclass(frozen=True)
class Row:
    strategy: str
    reach: dict[str, tuple[float, float, float]]  # target name -> median, low, high CPU-s
    share: dict[str, float]  # target name -> share of repeats that reach it
    ratio: tuple[float, float, float]  # CPU to the ratio target / random's CPU for its search
    total: float  # median CPU-seconds of the whole search
    pruned: float  # mean share of trials pruned
    best: float  # median best final D_s of the search


def summarize(traces: dict[str, list[Trace]], targets: dict[str, float],
              reference: str = "random", ratio_target: str | None = None) -> list[Row]:
    """One row per strategy. ``ratio``: its CPU-seconds to reach ``ratio_target`` (default: the
    last target) over the CPU-seconds of ``reference``'s whole search (the cost of its best-of-n),
    medians over repeats."""
    ratio_target = ratio_target or list(targets)[-1]
    ref = np.array([t.cpu[-1] for t in traces[reference]])
    rows = []
    for name, runs in traces.items():
        reach, share = {}, {}
        for target_name, target in targets.items():
            cpu = np.array([t.cpu_to_reach(target) for t in runs])
            reach[target_name] = median_interval(cpu)
            share[target_name] = float(np.mean(np.isfinite(cpu)))
        ratio = ratio_interval(np.array([t.cpu_to_reach(targets[ratio_target]) for t in runs]),
                               ref)
        rows.append(Row(name, reach, share, ratio,
                        float(np.median([t.cpu[-1] for t in runs])),
                        float(np.mean([t.pruned / t.cpu.size for t in runs])),
                        float(np.median([t.best[-1] for t in runs]))))
    return rows


def markdown_table(rows: list[Row], targets: dict[str, float]) -> str:
    names = list(targets)
    head = ["strategy"] + [f"CPU-s to {n} (D_s <= {targets[n]:.3f}) [95% CI]; share reached"
                           for n in names]
    head += [f"CPU-s to {names[-1]} / random search's CPU-s [95% CI]", "CPU-s of the search",
             "pruned", "best-of-search D_s (median)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r.strategy]
        for n in names:
            m, lo, hi = r.reach[n]
            cells.append(f"{_s(m)} [{_s(lo)}, {_s(hi)}]; {r.share[n]:.0%}")
        m, lo, hi = r.ratio
        cells += [f"{_x(m)} [{_x(lo)}, {_x(hi)}]", f"{r.total:.0f}", f"{r.pruned:.0%}",
                  f"{r.best:.3f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _s(x: float) -> str:
    return "never" if math.isinf(x) else f"{x:.0f}"


def _x(x: float) -> str:
    return "inf" if math.isinf(x) else f"{x:.2f}"


def seed_noise(path: Path, kind: str) -> list[tuple[dict[str, Any], float | None, float | None]]:
    """(params, final D_s on seed 0, on seed 1) for every point recorded on both seeds."""
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    by_seed: dict[int, dict[str, Any]] = {}
    for r in rows:
        if r["kind"] == kind:
            by_seed.setdefault(r["seed"], {})[json.dumps(r["params"], sort_keys=True)] = r
    first, second = by_seed.get(0, {}), by_seed.get(1, {})
    return [(first[k]["params"], first[k]["final"], second[k]["final"])
            for k in first if k in second]


def plot(traces: dict[str, list[Trace]], targets: dict[str, float], path: Path,
         title: str) -> None:
    """Median best-so-far D_s against CPU-seconds per strategy, with the 25-75% band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    traces = {n: traces[n] for n in FIGURE_STRATEGIES if n in traces} or traces
    horizon = max(float(np.median([t.cpu[-1] for t in runs])) for runs in traces.values())
    x = np.linspace(0, horizon, 400)
    fig, ax = plt.subplots(figsize=(8, 5))
    for name, runs in traces.items():
        best = np.array([t.best_at(x) for t in runs])
        with np.errstate(invalid="ignore"):  # inf (nothing complete yet) in the quantiles
            median = np.median(best, axis=0)
            low, high = np.quantile(best, [0.25, 0.75], axis=0)
        shown = np.isfinite(median)
        banded = name in BANDED
        line, = ax.plot(x[shown], median[shown], label=name, linewidth=2.2 if banded else 1.2,
                        linestyle="--" if name.startswith("random") else "-")
        band = np.isfinite(high)
        if banded:  # the others' bands overlap these; all of them crowd the plot
            ax.fill_between(x[band], low[band], high[band], color=line.get_color(), alpha=0.15)
    for i, (name, target) in enumerate(targets.items()):
        ax.axhline(target, color="grey", linewidth=0.8, linestyle=":")
        ax.annotate(f"{name}: {target:.3f}", (horizon * (0.99 - 0.3 * i), target), fontsize=7,
                    ha="right", va="bottom", color="grey")
    finals = [t.best[-1] for runs in traces.values() for t in runs if np.isfinite(t.best[-1])]
    top = float(np.quantile([t.best_at(x[len(x) // 8]) for runs in traces.values()
                             for t in runs], 0.75)) if finals else 1.0
    bottom = min(finals) if finals else 0.0
    ax.set_ylim(bottom - 0.05, max(top, bottom + 0.3) if np.isfinite(top) else bottom + 1.0)
    ax.set_xlabel("CPU-seconds spent by the search (replayed; one core)")
    ax.set_ylabel("best final D_s so far (median over searches)")
    ax.set_title(title + "\nbands: 25-75% of searches, for " + " and ".join(BANDED),
                 fontsize=9)
    ax.legend(fontsize=8)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def extras_cpu(path: Path) -> float:
    """Median CPU-seconds of the rest of a worker's final scoring (resolution profile, k-NN, W2),
    as timed on the points recorded with ``--extras``, 0 when none was. It scores samples of a
    fixed size against fixed points, so one number serves every kind."""
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    timed = [r["extras_cpu"] for r in rows if "extras_cpu" in r]
    return float(np.median(timed)) if timed else 0.0


def with_extras(table: Table, extra: float) -> Table:
    """``table`` with ``extra`` CPU-seconds added to the final scoring of every completed curve."""
    curves = {k: Curve(c.steps, c.kl, c.cpu, c.final,
                       c.final_cpu + (extra if c.final is not None else 0.0))
              for k, c in table.curves.items()}
    return Table(table.grid, curves, table.max_step)


def replace_section(path: Path, name: str, text: str) -> None:
    """Write ``text`` between the markers ``<!-- NAME:begin -->`` and ``<!-- NAME:end -->``."""
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    doc = path.read_text()
    if begin not in doc or end not in doc:
        raise SystemExit(f"{path}: no {begin} ... {end} section to replace")
    head, rest = doc.split(begin, 1)
    path.write_text(f"{head}{begin}\n{text.strip()}\n{end}{rest.split(end, 1)[1]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("study_file")
    parser.add_argument("--kind", default="classical")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--repeats", type=int, default=40)
    parser.add_argument("--trials", type=int, default=40)
    parser.add_argument("--strategies", nargs="+", default=list(STRATEGIES),
                        choices=list(STRATEGIES))
    parser.add_argument("--first-seed", type=int, default=0,
                        help="sampler seeds first-seed + 0 .. repeats - 1 (a fresh set: 100)")
    parser.add_argument("--figure", type=Path, default=None)
    parser.add_argument("--doc", type=Path, default=None,
                        help="write the results into this markdown file's "
                        "<!-- search-efficiency:KIND:TRIALS:FIRST_SEED:begin/end --> section")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    from bench.record_curves import STAGES  # imports torch: only here
    from hpo.space import load_spec

    spec = load_spec(args.study_file)
    extra = extras_cpu(args.data)
    table = with_extras(load_table(args.data, args.kind, stages=STAGES[args.kind]), extra)
    finals = sorted(c.final for c in table.curves.values() if c.final is not None)
    diverged = sum(c.final is None for c in table.curves.values())
    command = (f".venv/bin/python bench/search_efficiency.py {args.study_file} --kind {args.kind}"
               f" --repeats {args.repeats} --trials {args.trials}"
               + (f" --data {args.data}" if args.data.resolve() != DEFAULT_DATA else "")
               + (f" --first-seed {args.first_seed}" if args.first_seed else "")
               + (" --strategies " + " ".join(n if n.isidentifier() else f'"{n}"'
                                               for n in args.strategies)
                  if args.strategies != list(STRATEGIES) else "")
               + (f" --figure {args.figure}" if args.figure else "")
               + (f" --doc {args.doc}" if args.doc else ""))
    out = [
        f"`{command}`",
        "",
        f"{args.kind}: {len(table.curves)} grid points "
        + " x ".join(f"{n} {list(v)}" for n, v in table.grid.items())
        + f", training seed 0; {diverged} diverged. Final D_s: best {finals[0]:.3f}, median "
        f"{np.median(finals):.3f}, worst {finals[-1]:.3f}. CPU-seconds of a full trial "
        f"(median): {np.median([c.final_cpu for c in table.curves.values()]):.0f}, of which "
        f"{extra:.1f} are the rest of the worker's final scoring (profile, k-NN, W2; timed "
        "on the points recorded with `--extras`).",
    ]
    print("\n".join(out), flush=True)
    traces = {}
    for name in args.strategies:
        traces[name] = run_strategy(spec, table, STRATEGIES[name], args.repeats, args.trials,
                                    args.first_seed)
        print(f"  replayed {name}: {args.repeats} searches of {args.trials} trials", flush=True)
    targets = {"best": table.best_final() + TOLERANCE,
               f"random's best-of-{args.trials}": random_best_of(table, args.trials)}
    out += ["", markdown_table(summarize(traces, targets), targets)]
    pairs = seed_noise(args.data, args.kind)
    diffs = [abs(a - b) for _, a, b in pairs if a is not None and b is not None]
    if diffs:
        out += ["", f"Seed noise: {len(pairs)} grid points trained again on seed 1; "
                f"|final D_s, seed 0 - seed 1|: median {np.median(diffs):.3f}, "
                f"max {max(diffs):.3f} nats.", ""]
        out += [f"- {params}: {a} (seed 0), {b} (seed 1)" for params, a, b in pairs]
    if args.figure:
        plot(traces, targets, args.figure,
             f"{spec.name} {args.kind}: {args.repeats} replayed searches of {args.trials} "
             f"trials per strategy")
        out += ["", f"![best D_s so far against CPU-seconds]"
                f"({args.figure.relative_to(args.doc.parent) if args.doc else args.figure})"]
    text = "\n".join(out)
    print("\n".join(out[3:]))  # the first three lines went out before the replay
    if args.doc:
        replace_section(args.doc, f"search-efficiency:{args.kind}:{args.trials}:"
                        f"{args.first_seed}", text)
        print(f"wrote {args.doc}")
    print(f"reproduce: {command}")


if __name__ == "__main__":
    main()
