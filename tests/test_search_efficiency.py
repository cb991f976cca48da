"""bench/search_efficiency.py's replay on a synthetic table whose answers are known."""

from __future__ import annotations

import json
import math

import numpy as np
import optuna
import pytest

from bench.search_efficiency import (
    DEFAULT_DATA,
    STRATEGIES,
    Curve,
    Table,
    Trace,
    load_table,
    make_strategy,
    median_interval,
    random_best_of,
    run_search,
    run_strategy,
    summarize,
)
from hpo.space import load_spec

pytestmark = pytest.mark.unit

STEPS = (100, 200, 300)


def curve(kl: tuple[float, ...], final: float | None, cpu_per_report: float = 10.0) -> Curve:
    """A curve charged ``cpu_per_report`` per report and 5 more for the final scoring."""
    cpu = tuple(cpu_per_report * (i + 1) for i in range(len(kl)))
    return Curve(STEPS[:len(kl)], kl, cpu, final, cpu[-1] + 5.0)


# Point (a, b): the best is (2, "y"), final 0.1; the others end at 1 or more.
TABLE = Table(
    grid={"a": (0, 1, 2), "b": ("x", "y")},
    curves={
        (0, "x"): curve((5.0, 4.0, 3.0), 3.0),
        (0, "y"): curve((6.0, 5.0, 4.0), 4.0),
        (1, "x"): curve((2.0, 1.5, 1.0), 1.0),
        (1, "y"): curve((9.0,), None),  # diverged after the first report
        (2, "x"): curve((3.0, 2.5, 2.0), 2.0),
        (2, "y"): curve((0.5, 0.2, 0.1), 0.1),
    },
    max_step=300,
)


class SequenceSampler(optuna.samplers.BaseSampler):
    """Proposes the given grid points in order: a strategy whose answer is known."""

    def __init__(self, points: list[tuple]) -> None:
        self.points = points

    def infer_relative_search_space(self, study, trial):
        return {}

    def sample_relative(self, study, trial, search_space):
        return {}

    def sample_independent(self, study, trial, param_name, param_distribution):
        return self.points[trial.number % len(self.points)][list(TABLE.grid).index(param_name)]


def test_a_strategy_that_finds_the_best_first_pays_one_full_trial() -> None:
    trace = run_search(TABLE, SequenceSampler([(2, "y"), (0, "x")]), optuna.pruners.NopPruner(),
                       n_trials=2)
    assert trace.cpu.tolist() == [35.0, 70.0]
    assert trace.best.tolist() == [0.1, 0.1]
    assert trace.cpu_to_reach(0.1 + 0.05) == 35.0
    assert trace.pruned == 0


def test_a_pruned_trial_is_charged_up_to_its_last_report_and_a_diverged_one_scores_nothing(
) -> None:
    # The diverged first trial is charged its 15 CPU-s and scores nothing; the median pruner
    # (1 completed startup trial) stops the worse third trial at its first report.
    pruner = optuna.pruners.MedianPruner(n_startup_trials=1, n_warmup_steps=0)
    trace = run_search(TABLE, SequenceSampler([(1, "y"), (1, "x"), (0, "y"), (2, "y")]), pruner,
                       n_trials=4)
    assert trace.cpu.tolist() == [15.0, 50.0, 60.0, 95.0]
    assert trace.best.tolist() == [math.inf, 1.0, 1.0, 0.1]
    assert trace.pruned == 1
    assert trace.cpu_to_reach(0.15) == 95.0
    assert math.isinf(trace.cpu_to_reach(0.05))


def test_the_median_interval_uses_the_binomial_order_statistics() -> None:
    # n = 20: ranks 6 and 15 cover the median with probability 1 - 2 * 0.0207 >= 0.95.
    median, low, high = median_interval(range(1, 21))
    assert (median, low, high) == (10.5, 6.0, 15.0)
    median, low, high = median_interval([1.0] * 12 + [math.inf] * 8)
    assert (median, low, high) == (1.0, 1.0, math.inf)


def test_random_searchs_median_best_of_n_is_exact() -> None:
    # 6 points, one diverged: the best of 1 draw is at or below the 3rd best with probability
    # 1/2; the best of 4 draws is the best point with probability 1 - (5/6)^4 = 0.52.
    assert random_best_of(TABLE, 1) == 2.0
    assert random_best_of(TABLE, 4) == 0.1


def test_cpu_is_compared_with_random_searchs_whole_search() -> None:
    spec = load_spec("studies/gaussgan.yaml")
    random = [run_search(TABLE, *make_strategy(spec, STRATEGIES["random"], seed), n_trials=12)
              for seed in range(20)]
    perfect = [Trace(np.array([35.0, 70.0]), np.array([0.1, 0.1]), 0)] * 20
    targets = {"best": 0.15}
    rows = {r.strategy: r for r in summarize({"random": random, "perfect": perfect}, targets)}
    random_cpu = np.median([t.cpu[-1] for t in random])
    assert rows["random"].total == random_cpu
    assert rows["random"].ratio[0] <= 1.0  # random reaches the target within its own search
    assert rows["perfect"].reach["best"] == (35.0, 35.0, 35.0)
    assert rows["perfect"].share["best"] == 1.0
    assert rows["perfect"].ratio[0] == pytest.approx(35.0 / random_cpu)


def test_tpe_with_every_pruner_replays_the_grid() -> None:
    spec = load_spec("studies/gaussgan.yaml")
    for name, strategy in STRATEGIES.items():
        trace = run_search(TABLE, *make_strategy(spec, strategy, 0), n_trials=12)
        assert trace.cpu.size == 12, name
        assert np.all(np.diff(trace.cpu) > 0), name
        assert np.all(np.diff(trace.best) <= 0), name


def test_a_replayed_hyperband_search_is_the_same_on_every_run() -> None:
    # Hyperband's brackets follow a hash of the study name; an unnamed study's name is random,
    # which made the tables' Hyperband rows differ from one run of the bench to the next.
    spec = load_spec("studies/gaussgan.yaml")
    table = load_table(DEFAULT_DATA, "classical")
    runs = [run_strategy(spec, table, STRATEGIES["tpe + hyperband, patience 2"], 6, 40)
            for _ in range(2)]
    for a, b in zip(*runs, strict=True):
        assert np.array_equal(a.cpu, b.cpu) and np.array_equal(a.best, b.best)
        assert a.pruned == b.pruned


def test_the_table_is_read_back_and_a_hole_in_the_grid_refused(tmp_path) -> None:
    rows = [{"kind": "classical", "params": {"a": a, "b": b}, "seed": 0, "final": c.final,
             "final_cpu": c.final_cpu, "steps": c.steps, "kl": c.kl, "cpu": c.cpu}
            for (a, b), c in TABLE.curves.items()]
    path = tmp_path / "curves.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    table = load_table(path, "classical")
    assert table.grid == TABLE.grid
    assert table.best_final() == 0.1
    assert table.max_step == 300
    path.write_text("".join(json.dumps(r) + "\n" for r in rows[:-1]))
    with pytest.raises(ValueError, match="1 points of the classical grid"):
        load_table(path, "classical")
    # With the recorder's stages, the largest stage recorded completely is replayed.
    stages = [{"a": [0, 1], "b": ["x", "y"]}, {"a": [2]}]
    table = load_table(path, "classical", stages=stages)
    assert table.grid == {"a": (0, 1), "b": ("x", "y")}
    assert len(table.curves) == 4


def test_the_recorder_trains_what_the_study_file_fixes_and_refuses_a_disagreement() -> None:
    """The quantum record held ``head: linear`` while the study searched it; the study file fixes
    it since. A point trains with the linear head either way, and a file that fixes another head
    would make new points unlike the recorded ones: refused."""
    from bench.record_curves import training_config_of

    spec = load_spec("studies/gaussgan.yaml")
    point = {"lr_generator": 1e-2, "n_qubits": 4, "n_layers": 3, "ansatz": "gaussgan"}
    assert training_config_of(spec, "quantum", point, 0)["generator"]["head"] == "linear"
    quantum = spec.search.generators["quantum"]
    other = spec.model_copy(update={"search": spec.search.model_copy(update={"generators": {
        **spec.search.generators,
        "quantum": quantum.model_copy(update={"fixed": {**quantum.fixed, "head": "mlp"}})}})})
    with pytest.raises(SystemExit, match="head"):
        training_config_of(other, "quantum", point, 0)
