"""The trial record (hpo/trials.py): outcomes as stored and as read from older journals, the
budget count, and the retry policy, changed through the study file alone."""

from __future__ import annotations

import io
from pathlib import Path

import optuna
import pytest
import yaml
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState, create_trial

import hpo.evaluate
import hpo.objective
from hpo.space import load_spec
from hpo.trials import (
    Outcome,
    RetryPolicy,
    budget_counts,
    error_of,
    mark_ended,
    outcome_of,
    retry_history,
)
from hpo.worker import run_worker
from tests.conftest import study_variant

pytestmark = pytest.mark.unit


def _ended(state: TrialState, **attrs: object) -> optuna.trial.FrozenTrial:
    return create_trial(state=state, value=1.0 if state == TrialState.COMPLETE else None,
                        params={}, distributions={}, user_attrs=attrs,
                        intermediate_values={1: 1.0} if state == TrialState.PRUNED else None)


@pytest.mark.parametrize(("outcome", "detail", "line"), [
    (Outcome.PRUNED, "500", "pruned at step 500"),
    (Outcome.DIVERGED, "non-finite loss at step 7", "diverged: non-finite loss at step 7"),
    (Outcome.FAILED, "ValueError: bad", "failed: ValueError: bad"),
    (Outcome.STOPPED, "received SIGTERM", "interrupted: worker stopped (received SIGTERM)"),
])
def test_an_outcome_is_stored_with_its_line_and_read_back(outcome, detail, line) -> None:
    study = optuna.create_study()
    trial = study.ask({"x": FloatDistribution(0, 1)})
    mark_ended(trial, outcome, detail)
    state = TrialState.PRUNED if outcome is Outcome.PRUNED else TrialState.FAIL
    if state == TrialState.PRUNED:
        trial.report(1.0, 1)
    study.tell(trial, state=state)
    (frozen,) = study.get_trials()
    assert frozen.user_attrs["ended"] == line
    assert outcome_of(frozen) is outcome
    assert error_of(frozen) == (detail if outcome is Outcome.FAILED else None)


@pytest.mark.parametrize(("ended", "outcome"), [
    ("interrupted: worker stopped (received SIGTERM); re-queued", Outcome.STOPPED),
    ("interrupted: worker stopped; re-queued", Outcome.STOPPED),
    ("diverged: non-finite generator loss", Outcome.DIVERGED),
    ("failed: RuntimeError: out of memory", Outcome.FAILED),
    (None, Outcome.LOST),
])
def test_trials_stored_before_outcomes_read_from_their_ended_line(ended, outcome) -> None:
    """The published journals hold FAIL trials with only an ``ended`` line."""
    attrs = {} if ended is None else {"ended": ended}
    assert outcome_of(_ended(TrialState.FAIL, **attrs)) is outcome


def test_finished_states_and_live_trials() -> None:
    assert outcome_of(_ended(TrialState.COMPLETE)) is Outcome.COMPLETE
    assert outcome_of(_ended(TrialState.PRUNED, outcome="failed")) is Outcome.PRUNED
    assert outcome_of(create_trial(state=TrialState.WAITING, params={}, distributions={})) \
        is None


def test_budget_counts_add_up_over_a_group() -> None:
    a = budget_counts([_ended(TrialState.COMPLETE), _ended(TrialState.PRUNED)])
    b = budget_counts([_ended(TrialState.FAIL, outcome="failed")])
    total = a + b
    assert (total.finished, total.complete, total.pruned, total.failed) == (3, 1, 1, 1)


def test_the_default_policy_retries_stopped_and_lost_trials() -> None:
    policy = RetryPolicy.from_study_file()
    assert policy.max_retries == 3
    assert policy.retries(_ended(TrialState.FAIL, outcome="stopped"))
    assert policy.retries(_ended(TrialState.FAIL))  # lost: no outcome recorded
    assert not policy.retries(_ended(TrialState.FAIL, outcome="diverged"))
    assert not policy.retries(_ended(TrialState.COMPLETE))


def _failing_study(tmp_path: Path, retry: dict | None) -> Path:
    """smoke.yaml, classical only, 2 trials; ``retry`` as the study file's section."""
    spec = yaml.safe_load(Path("studies/smoke.yaml").read_text())
    changes = {"budget": {"trials": 2, "steps": 10, "eval_every": 10},
               "pruner": {"kind": "none"},
               "search": {"shared": spec["search"]["shared"],
                          "generators": {"classical": spec["search"]["generators"]["classical"]}}}
    if retry is not None:
        changes["retry"] = retry
    return study_variant(tmp_path, "retries", **changes)


@pytest.mark.parametrize(("retry", "attempts"), [
    (None, [1, 1]),                                              # the default: failures stay
    ({"outcomes": ["stopped", "lost", "failed"], "max_retries": 1}, [2, 2]),  # once more each
    ({"outcomes": ["failed"], "max_retries": 2}, [3, 3]),
])
def test_the_retry_policy_is_the_study_files(tmp_path, monkeypatch, retry, attempts) -> None:
    """Every trial fails (the machine, say); the study file alone decides how often each runs
    again. The budget counts each series once, so the study ends with exactly 2 finished."""
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("the device is gone")

    monkeypatch.setattr(hpo.objective, "train_and_score", broken)
    spec = load_spec(_failing_study(tmp_path, retry))
    log = io.StringIO()
    run_worker(spec, str(tmp_path / "hpo.journal"), artifacts=str(tmp_path / "artifacts"),
               worker_seed=0, worker_id="w", log=log)
    study = optuna.load_study(study_name="retries", storage=optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(tmp_path / "hpo.journal"))))
    trials = study.get_trials()
    assert all(t.state == TrialState.FAIL for t in trials)
    assert all(outcome_of(t) is Outcome.FAILED for t in trials)
    series: dict[int, int] = {}
    for t in trials:
        first = (retry_history(t) or [t.number])[0]
        series[first] = series.get(first, 0) + 1
    assert sorted(series.values()) == attempts, log.getvalue()
    assert budget_counts(trials).finished == 2
    if retry is not None:
        assert "re-queued (retry 1 of at most" in log.getvalue()
    assert hpo.evaluate.train_and_score is not broken  # only the objective's name was replaced
