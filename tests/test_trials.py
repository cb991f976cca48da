"""The trial record (hpo/trials.py): outcomes as stored and as read from older journals, the
budget count, and the retry policy, changed through the study file alone."""

from __future__ import annotations

import io
import os
import types
from pathlib import Path

import numpy as np
import optuna
import pytest
import sqlalchemy
import yaml
from optuna.distributions import FloatDistribution
from optuna.storages import JournalStorage
from optuna.trial import TrialState, create_trial

import hpo.evaluate
import hpo.objective
from hpo.artifacts import artifact_store
from hpo.group import kind_spec
from hpo.schedule import study_budgets
from hpo.space import load_spec
from hpo.storage import open_storage
from hpo.trials import (
    WORKER_PROCESS,
    Outcome,
    RetryPolicy,
    budget_counts,
    created_past,
    duplicate_retry,
    error_of,
    local_pid,
    mark_ended,
    outcome_of,
    retry_history,
    this_process,
)
from hpo.worker import _run_one, run_worker
from tests.conftest import LIGHT_METRIC, SMOKE, study_variant

pytestmark = pytest.mark.unit


class _HeldLock:
    """A budget lock that ``_run_one`` always gets: the lock a worker holds, or one whose lease
    already ran out while it believed it held it."""

    lease_s = 30.0

    def acquire(self, stop: object = None, wait_s: float = 0.0) -> bool:
        return True

    def release(self) -> None:
        pass


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
               "pruner": {"kind": "none"}, "metric": LIGHT_METRIC,  # a trial's path, not its score
               "search": {"shared": spec["search"]["shared"],
                          "generators": {"classical": spec["search"]["generators"]["classical"]}}}
    if retry is not None:
        changes["retry"] = retry
    return study_variant(tmp_path, "retries", **changes)


def _worker_trials(tmp_path: Path, retry: dict | None, log: io.StringIO
                   ) -> list[optuna.trial.FrozenTrial]:
    """The trials one worker leaves on :func:`_failing_study` (``retry`` as its section)."""
    spec = load_spec(_failing_study(tmp_path, retry))
    run_worker(spec, str(tmp_path / "hpo.journal"), artifacts=str(tmp_path / "artifacts"),
               worker_seed=0, worker_id="w", log=log)
    study = optuna.load_study(study_name="retries", storage=optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(tmp_path / "hpo.journal"))))
    return study.get_trials()


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

    monkeypatch.setattr(hpo.evaluate, "train_and_score", broken)
    log = io.StringIO()
    trials = _worker_trials(tmp_path, retry, log)
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


def test_a_dropped_connection_in_a_trial_is_lost_and_retried_not_a_result(tmp_path, monkeypatch
                                                                          ) -> None:
    """A storage call cut off inside training (Optuna wraps the server's closed connection) is
    not the configuration's failure: each attempt ends ``lost``, which the default policy runs
    again up to 3 times, where a code error (above) ends ``failed`` and stays."""
    def cut_off(*args: object, **kwargs: object) -> None:
        raise _cut_off("INSERT INTO trial_intermediate_values")

    monkeypatch.setattr(hpo.evaluate, "train_and_score", cut_off)
    trials = _worker_trials(tmp_path, None, io.StringIO())
    assert len(trials) == 8 and all(outcome_of(t) is Outcome.LOST for t in trials)
    assert {t.user_attrs["ended"] for t in trials} == {
        "lost: a dropped database connection (server closed the connection unexpectedly) cut "
        "it off"}
    assert budget_counts(trials).finished == 2


def _cut_off(statement: str) -> optuna.exceptions.StorageInternalError:
    """What Optuna raises when the server closed the connection under ``statement``."""
    closed = sqlalchemy.exc.OperationalError(statement, {}, Exception(
        "server closed the connection unexpectedly\n\tThis probably means ..."),
        connection_invalidated=True)
    error = optuna.exceptions.StorageInternalError("An exception is raised during the commit.")
    error.__cause__ = closed
    return error


def test_a_pruned_trial_whose_picture_fails_ends_failed_not_pruned(tmp_path, monkeypatch
                                                                   ) -> None:
    """The objective marks a trial pruned, then draws and uploads its picture; when drawing it
    raises, the trial ends FAIL, and its outcome must say why (not "pruned", which is never
    retried or counted as a failure). A full file store (OSError) costs the picture only: the
    trial stays pruned, the error kept."""
    class AlwaysPrune(optuna.pruners.BasePruner):
        def prune(self, study: optuna.Study, trial: object) -> bool:
            return True

    def one_report(config, target, metric, report, should_stop):  # noqa: ANN001, ANN202
        report(1, types.SimpleNamespace(value=0.3), np.zeros((4, 2)))
        raise AssertionError("pruned at the first report")

    def plot_fails(*args: object) -> None:
        raise RuntimeError("the figure could not be drawn")

    def full_disk(*args: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(hpo.evaluate, "train_and_score", one_report)
    monkeypatch.setattr(hpo.objective.Objective, "_upload_plot", plot_fails)
    study = optuna.create_study(storage=open_storage(str(tmp_path / "hpo.journal")),
                                pruner=AlwaysPrune())
    objective = hpo.objective.Objective(load_spec(SMOKE), artifact_store(str(tmp_path / "a")), "w0")
    study.optimize(objective, n_trials=1, catch=(Exception,))
    (trial,) = study.get_trials()
    assert trial.state == TrialState.FAIL and outcome_of(trial) is Outcome.FAILED
    assert trial.user_attrs["ended"] == "failed: RuntimeError: the figure could not be drawn"
    monkeypatch.setattr(hpo.objective.Objective, "_upload_plot", full_disk)
    study.optimize(objective, n_trials=1, catch=(Exception,))
    kept = study.get_trials()[1]
    assert kept.state == TrialState.PRUNED and outcome_of(kept) is Outcome.PRUNED
    assert kept.user_attrs["artifact_error"] == "No space left on device"


@pytest.mark.parametrize("ends", ["complete", "failed"])
def test_an_end_recorded_before_its_tell_was_cut_off_is_kept_or_requeued_at_once(
        tmp_path, monkeypatch, ends: str) -> None:
    """Optuna's tell commits, then the connection drops before the answer: a complete trial is
    left as it is; a failed one is re-queued now (not a grace period later), once."""
    tell = JournalStorage.set_trial_state_values

    def committed_then_cut(self, trial_id, state, values=None):  # noqa: ANN001, ANN202
        tell(self, trial_id, state, values)
        raise _cut_off("UPDATE trials SET state")

    def objective(trial: optuna.Trial) -> float:
        monkeypatch.setattr(JournalStorage, "set_trial_state_values", committed_then_cut)
        if ends == "failed":
            raise _cut_off("INSERT INTO trial_intermediate_values")
        return 0.5

    spec = load_spec(SMOKE)
    study = optuna.create_study(storage=open_storage(str(tmp_path / "hpo.journal")),
                                study_name=next(iter(study_budgets(spec))))
    said: list[str] = []
    assert _run_one(study, spec, objective, _HeldLock(), lambda: False, said.append) == 1
    monkeypatch.undo()
    trials = study.get_trials()
    dropped = "a dropped database connection (server closed the connection unexpectedly)"
    if ends == "complete":
        assert [(t.state, t.value) for t in trials] == [(TrialState.COMPLETE, 0.5)]
        assert said == [f"trial 0: its end was recorded before {dropped}"]
    else:
        assert [t.state for t in trials] == [TrialState.FAIL, TrialState.WAITING]
        assert retry_history(trials[1]) == [0]
        assert said == [f"trial 0: its failure was recorded before {dropped}; re-queued"]


def test_a_fail_whose_record_says_complete_or_pruned_reads_lost_and_is_retried() -> None:
    """The objective writes ``complete`` (or ``pruned``) and then Optuna tells the state: a worker
    killed, or judged stale, in between leaves a FAIL whose record says otherwise (seen in the
    compose test: 'FAIL complete'). It ended without its result: lost, and retried."""
    for written in ("complete", "pruned"):
        trial = create_trial(state=TrialState.FAIL, user_attrs={"outcome": written})
        assert outcome_of(trial) is Outcome.LOST
        assert RetryPolicy.from_study_file().retries(trial)


def _running(number: int) -> optuna.trial.FrozenTrial:
    trial = create_trial(state=TrialState.RUNNING, params={}, distributions={})
    trial.number = number
    return trial


def test_of_two_trials_racing_for_the_last_slot_the_later_is_surplus() -> None:
    """Budget 3: trials 0 and 1 done, 2 and 3 created by two workers that each thought it held
    the lock. Trial numbers follow creation, so 3 is the surplus whoever looks first; a surplus
    trial holds no slot, and a retried failure none either."""
    done = [_ended(TrialState.COMPLETE), _ended(TrialState.PRUNED)]
    for i, t in enumerate(done):
        t.number = i
    trials = [*done, _running(2), _running(3)]
    assert not created_past(3, 2, trials)
    assert created_past(3, 3, trials)
    surplus = _ended(TrialState.FAIL, outcome="surplus")
    surplus.number = 3
    assert budget_counts([*done, _running(2), surplus]).held == 3
    assert not created_past(3, 4, [*done, surplus, _running(4)])  # 3 held no slot


def test_a_worker_that_wakes_past_the_budget_never_trains_its_trial(tmp_path, monkeypatch
                                                                    ) -> None:
    """A worker frozen while it held the budget lock loses it to the lease; the others fill
    the budget; it wakes still believing it holds the lock and creates one more trial. That
    trial ends ``surplus`` before training, and the study keeps exactly its budget."""
    spec = load_spec(_failing_study(tmp_path, None))
    url, artifacts = str(tmp_path / "hpo.journal"), str(tmp_path / "artifacts")
    run_worker(spec, url, artifacts=artifacts, worker_seed=0, worker_id="w0", log=io.StringIO())
    trained: list[int] = []

    def counted_training(*args: object, **kwargs: object) -> None:
        trained.append(1)
        raise AssertionError("a surplus trial was trained")

    monkeypatch.setattr(hpo.evaluate, "train_and_score", counted_training)

    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(url))
    study = optuna.load_study(study_name="retries", storage=storage)
    objective = hpo.objective.Objective(kind_spec(spec, "classical"), artifact_store(artifacts),
                                        "w1")
    log: list[str] = []
    # the woken worker's lock: its lease already ran out, yet it believes it holds it
    assert _run_one(study, spec, objective, _HeldLock(), lambda: False, log.append) == 0
    trials = study.get_trials()
    assert len(trials) == 3 and not trained
    assert outcome_of(trials[2]) is Outcome.SURPLUS and not trials[2].intermediate_values
    assert budget_counts(trials).finished == 2
    assert "surplus: the budget was full" in log[-1], log


def test_a_second_retry_of_one_trial_is_surplus_and_never_trained(tmp_path, monkeypatch
                                                                   ) -> None:
    """A database restart ends the session that holds the budget lock while its holder goes on,
    so two processes may each queue a retry of one failed trial (CI, test_a_database_restart_...).
    The later by number ends surplus before training, whoever takes it; the budget holds."""
    spec = load_spec(_failing_study(tmp_path, None))  # budget 2
    storage = JournalStorage(optuna.storages.journal.JournalFileBackend(
        str(tmp_path / "hpo.journal")))
    study = optuna.create_study(study_name="retries", storage=storage)
    x = {"x": FloatDistribution(0, 1)}
    study.add_trial(create_trial(state=TrialState.FAIL, params={"x": 0.5}, distributions=x))
    for state in (TrialState.COMPLETE, TrialState.WAITING):  # the first retry ran; a second
        study.add_trial(create_trial(state=state, value=1.0 if state.is_finished() else None,
                                     params={"x": 0.5}, distributions=x,
                                     system_attrs={"retry_history": [0]}))
    assert duplicate_retry(1, study.get_trials()) is None
    assert duplicate_retry(2, study.get_trials()) == 0
    assert not created_past(2, 2, study.get_trials())  # the budget alone would train it
    monkeypatch.setattr(hpo.evaluate, "train_and_score", lambda *a, **k: pytest.fail("trained"))

    objective = hpo.objective.Objective(kind_spec(spec, "classical"),
                                        artifact_store(str(tmp_path / "artifacts")), "w1")
    log: list[str] = []
    assert _run_one(study, spec, objective, _HeldLock(), lambda: False, log.append) == 0
    trials = study.get_trials()
    assert outcome_of(trials[2]) is Outcome.SURPLUS and not trials[2].intermediate_values
    assert budget_counts(trials).finished == 1
    assert "surplus: a second retry of trial 0" in log[-1], log


def test_a_surplus_trial_judged_stale_is_not_retried() -> None:
    """A surplus trial (a second retry, marked before training) left RUNNING by a worker frozen
    or cut off before its tell is judged stale by another worker: Optuna's callback would queue
    a retry of it, which no rule then calls a duplicate, and it would train the configuration a
    second time (the restart-storm hunt, in a step-by-step run against a real server)."""
    study = optuna.create_study()
    x = {"x": FloatDistribution(0, 1)}
    for outcome in ("surplus", None):  # judged stale: FAIL, with or without a recorded outcome
        attrs = {"outcome": outcome} if outcome else {}
        study.add_trial(create_trial(state=TrialState.FAIL, params={"x": 0.5}, distributions=x,
                                     user_attrs=attrs))
    retry_lost = RetryPolicy.from_study_file().stale_trial_callback()
    for trial in study.get_trials():
        retry_lost(study, trial)
    assert [retry_history(t) for t in study.get_trials()] == [[], [], [1]]


def test_a_worker_process_is_judged_only_in_its_own_pid_namespace(monkeypatch) -> None:
    """A compose worker on the host network has this host's name and a PID of its container's
    namespace: `hpo run` here must not take its PID for one of this host's processes."""
    import hpo.launcher

    mine = this_process()
    host, namespace, pid = mine.split(":")
    assert os.readlink("/proc/self/ns/pid") == f"pid:[{namespace}]" and int(pid) == os.getpid()
    assert local_pid(mine) == os.getpid()
    assert local_pid(f"{host}:{os.getpid()}") == os.getpid()  # older records: host alone
    assert local_pid(f"{host}:1{namespace}:7") is None  # a container's PID 7
    assert local_pid(f"not-{host}:{namespace}:7") is None
    assert local_pid("") is None

    study = optuna.create_study()
    for record in (f"{host}:1{namespace}:7", f"{host}:{namespace}:7"):
        trial = study.ask()
        trial.set_user_attr(WORKER_PROCESS, record)
    monkeypatch.setattr(hpo.launcher, "_alive", lambda pid: False)  # neither PID 7 lives here
    spec = load_spec(Path("studies/smoke.yaml"))
    hpo.launcher._recover_orphans([study], spec, io.StringIO())
    states = [t.state for t in study.get_trials()[:2]]
    assert states == [TrialState.RUNNING, TrialState.FAIL]  # only the local one is re-queued


def test_torch_is_loaded_after_the_budget_lock_is_released(tmp_path, monkeypatch) -> None:
    """A worker imports torch at its first trial (a second or more), so never under the budget
    lock that every other worker waits on to claim its trial."""
    class Lock(_HeldLock):
        held = True

        def release(self) -> None:
            self.held = False

    lock, seen = Lock(), []
    monkeypatch.setattr("hpo.worker._torch_threads", lambda threads: seen.append(
        (lock.held, threads)))
    spec = load_spec(SMOKE)
    study = optuna.create_study(storage=open_storage(str(tmp_path / "hpo.journal")),
                                study_name=next(iter(study_budgets(spec))))
    said: list[str] = []
    assert _run_one(study, spec, lambda trial: 0.5, lock, lambda: False, said.append,
                    threads=3) == 1
    assert seen == [(False, 3)]
