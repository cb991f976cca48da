"""The in-process layer of hpo: fast tests with no server, no subprocess and no browser.

Search-space config building, budget counting and the one re-queue path, error formatting, export
documents, the journal's lock and repair, the process lock's bounded waits, and the stop check of
training. ``pytest -m "not postgres and not browser and not e2e"`` runs these in seconds.
"""

from __future__ import annotations

import contextlib
import datetime
import errno
import io
import json
import os
import threading
import time
from pathlib import Path

import numpy as np
import optuna
import pytest
import yaml
from optuna.distributions import FloatDistribution
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.trial import TrialState, create_trial

import models
from hpo.errors import StudyFileError, UsageError
from hpo.export import export_documents
from hpo.group import load_group
from hpo.journal import RepairingJournalBackend, StaleBreakingLock, repair_journal
from hpo.locks import ProcessLock
from hpo.own_trial import fail_unbegun, recover_cut_off, requeued_note_locked
from hpo.quiet import quiet_experimental
from hpo.requeue import recover_lost_trials, recover_unbegun_trials, requeue, unretried
from hpo.space import load_spec, suggest, training_config
from hpo.storage import open_storage, seconds_from_env
from hpo.study_file import read_study_file
from hpo.trials import (
    BEGUN,
    Outcome,
    RetryPolicy,
    budget_counts,
    mark_begun,
    mark_ended,
    original_number,
    retry_history,
    unbegun,
)
from tests._faults import assert_exact_study
from tests.conftest import SMOKE

pytestmark = pytest.mark.unit

SPEC = load_spec(SMOKE)
POLICY = RetryPolicy.from_study_file()  # stopped and lost trials, at most 3 retries


def _study() -> optuna.Study:
    return optuna.create_study(direction="minimize")


# --- search space ---------------------------------------------------------------------------

def test_training_config_expands_width_and_depth_and_keeps_study_settings() -> None:
    config = training_config(SPEC, "classical", {"lr_generator": 2e-3, "lr_critic": 3e-3},
                             {"width": 16})
    assert config["generator"]["hidden"] == [16, 16]  # depth fixed at 2 in smoke.yaml
    assert config["critic"]["hidden"] == [32, 32]     # critic_width x critic_depth
    assert config["lr_generator"] == 2e-3 and config["batch_size"] == 64
    assert config["steps"] == SPEC.budget.steps and config["eval_every"] == SPEC.budget.eval_every


def test_suggest_uses_the_given_seed_and_only_the_chosen_branch() -> None:
    trial = optuna.trial.FixedTrial({"generator": "quantum", "lr_generator": 1e-3,
                                     "lr_critic": 1e-3, "quantum.n_layers": 2})
    config = suggest(trial, SPEC, seed=41)
    assert config["seed"] == 41
    assert config["generator"]["kind"] == "quantum" and config["generator"]["n_layers"] == 2


def test_a_range_the_models_reject_names_its_key(tmp_path: Path) -> None:
    data = yaml.safe_load(SMOKE.read_text())
    data["search"]["generators"]["quantum"]["fixed"]["n_qubits"] = 40
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data))
    read_study_file(path)  # the schema alone accepts it
    with pytest.raises(StudyFileError) as err:
        load_spec(path)
    assert str(err.value).startswith(f"{path}: search.generators.quantum")


def test_an_unknown_key_lists_what_is_allowed(tmp_path: Path) -> None:
    data = yaml.safe_load(SMOKE.read_text())
    data["budget"]["trails"] = 3
    path = tmp_path / "typo.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(StudyFileError) as err:
        read_study_file(path)
    assert str(err.value) == f"{path}: budget.trails: unknown key; allowed: trials, steps, " \
                             "eval_every"
    assert err.value.exit_status == 2


def test_seconds_from_env_refuses_nonsense(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HPO_X_S", "soon")
    with pytest.raises(UsageError, match="HPO_X_S must be a number of seconds"):
        seconds_from_env("HPO_X_S", 1.0)
    monkeypatch.setenv("HPO_X_S", "2.5")
    assert seconds_from_env("HPO_X_S", 1.0) == 2.5
    monkeypatch.delenv("HPO_X_S")
    assert seconds_from_env("HPO_X_S", 1.0) == 1.0


# --- budget and the one re-queue path ---------------------------------------------------------

def _add(study: optuna.Study, state: TrialState, x: float = 0.5) -> None:
    study.add_trial(create_trial(state=state, params={"x": x},
                                 distributions={"x": FloatDistribution(0, 1)},
                                 value=1.0 if state == TrialState.COMPLETE else None,
                                 intermediate_values={10: 1.0} if state == TrialState.PRUNED
                                 else None))


def test_budget_counts_a_retried_failure_once() -> None:
    study = _study()
    for state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL, TrialState.FAIL):
        _add(study, state)
    with quiet_experimental():
        RetryHeartbeatStaleTrialCallback()(study, study.trials[3])  # trial 3 gets a retry
    c = budget_counts(study.get_trials())
    assert (c.complete, c.pruned, c.failed, c.waiting, c.running) == (1, 1, 1, 1, 0)
    assert c.finished == 3 and c.claimed == 4


def test_requeue_fails_a_running_trial_once_and_keeps_params_and_first_number() -> None:
    study = _study()
    _add(study, TrialState.COMPLETE)
    trial = study.ask({"x": FloatDistribution(0, 1)})
    frozen = study.get_trials()[trial.number]
    assert requeue(study, frozen, POLICY) is True
    assert requeue(study, frozen, POLICY) is False  # already FAIL and retried
    trials = study.get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE, TrialState.FAIL,
                                         TrialState.WAITING]
    retry = trials[2]
    assert retry.params == trials[1].params and original_number(retry) == 1
    # a retry of the retry still points at the first attempt, whose number sets the seed
    running = study.ask()
    assert running.number == 2 and running.params == trials[1].params
    assert requeue(study, study.get_trials()[2], POLICY)
    assert original_number(study.get_trials()[3]) == 1
    # Optuna's callback appends to the history it is given: the storage's own copy of the
    # retried trial must not read [1, 2] after (its process saw it as a retry of itself)
    assert [retry_history(t) for t in study.get_trials(deepcopy=False)] == [[], [], [1], [1, 2]]


def test_requeue_leaves_a_trial_finished_elsewhere_alone() -> None:
    study = _study()
    _add(study, TrialState.COMPLETE)
    assert requeue(study, study.get_trials()[0], POLICY) is False
    assert len(study.get_trials()) == 1


def _failed(study: optuna.Study, outcome: Outcome | None, detail: str = "") -> int:
    trial = study.ask({"x": FloatDistribution(0, 1)})
    mark_begun(trial)  # as the worker that takes it does
    if outcome is not None:
        mark_ended(trial, outcome, detail)
    study.tell(trial, state=TrialState.FAIL)
    return trial.number


def test_a_failure_that_lost_its_retry_is_requeued_once_when_old_enough() -> None:
    """What a process killed between a trial's FAIL and its re-queue leaves: a stopped trial
    or a lost one (no outcome: failed by another process) without a retry."""
    study = _study()
    stopped = _failed(study, Outcome.STOPPED, "SIGTERM")
    stale = _failed(study, None)
    _failed(study, Outcome.FAILED, "ValueError: a result, not a fault")
    _add(study, TrialState.COMPLETE)
    trials = study.get_trials()
    assert unretried(trials, POLICY, older_than_s=60) == []  # its worker may still queue it
    later = datetime.datetime.now() + datetime.timedelta(seconds=61)
    assert [t.number for t in unretried(trials, POLICY, 60, now=later)] == [stopped, stale]
    spent = RetryPolicy(POLICY.outcomes, max_retries=0)  # none left, but a stop spends none
    assert [t.number for t in unretried(trials, spent, 60, now=later)] == [stopped]
    assert recover_lost_trials(study, POLICY, older_than_s=-1) == [stopped, stale]
    assert recover_lost_trials(study, POLICY, older_than_s=-1) == []  # once only
    retries = [t for t in study.get_trials() if t.state == TrialState.WAITING]
    assert [original_number(t) for t in retries] == [stopped, stale]
    assert [t.params for t in retries] == [study.get_trials()[n].params for n in (stopped, stale)]
    assert budget_counts(study.get_trials()).claimed == 4


def test_stops_spend_none_of_a_trials_retries() -> None:
    """Ctrl-C of `hpo run` four times while one trial trained spent its 3 retries: the fourth
    stop failed it for good and it counted, a configuration lost for pausing a run. A stop
    says nothing about the trial; lost, diverged and failed ends still spend retries."""
    from hpo.requeue import requeued_note

    study = _study()
    first = _failed(study, Outcome.STOPPED, "SIGINT")
    for _ in range(5):  # more stops than the 3 retries
        note = requeued_note(study, study.get_trials()[-1], POLICY)
        assert note == "; re-queued (a stop is not counted among its retries)"
        _failed(study, Outcome.STOPPED, "SIGINT")  # the retry, taken and stopped again
    for n in range(1, 4):  # then lost: the first loss and 3 retries
        note = requeued_note(study, study.get_trials()[-1], POLICY)
        assert note.startswith("; re-queued"), note
        _failed(study, Outcome.LOST, "its worker was killed")  # the retry, lost
        assert POLICY.spent(study.get_trials()[-1], study.get_trials()) == n - 1
    assert requeued_note(study, study.get_trials()[-1], POLICY) == (
        "; re-queued (retry 3 of at most 3)")
    _failed(study, Outcome.LOST, "its worker was killed")
    trials = study.get_trials()
    assert requeued_note(study, trials[-1], POLICY) == "; its 3 retries are spent, so it counts"
    assert original_number(trials[-1]) == first and len(trials) == 10
    assert not any(t.state == TrialState.WAITING for t in study.get_trials())


def test_stops_end_at_ten_and_a_retry_that_never_began_is_no_stop() -> None:
    """A stop on a schedule shorter than the trial (a cron timeout) would repeat it forever: a
    series takes 10 stops. A retry failed before a worker began it (killed inside Optuna's ask)
    inherits its original's `stopped` and was read as a stop: without a bound (review)."""
    from hpo.requeue import requeued_note
    from hpo.trials import MAX_STOPS

    study = _study()
    _failed(study, Outcome.STOPPED, "SIGTERM")
    for _ in range(MAX_STOPS):
        assert requeued_note(study, study.get_trials()[-1], POLICY).startswith("; re-queued")
        _failed(study, Outcome.STOPPED, "SIGTERM")
    assert requeued_note(study, study.get_trials()[-1], POLICY) == (
        f"; stopped {MAX_STOPS + 1} times, so it counts")
    assert not any(t.state == TrialState.WAITING for t in study.get_trials())

    other = _study()
    _failed(other, Outcome.STOPPED, "SIGTERM")
    notes = []
    for _ in range(5):
        notes.append(requeued_note(other, other.get_trials()[-1], POLICY))
        unbegun_retry = other.ask()  # taken, never begun: its inherited outcome is `stopped`
        other.tell(unbegun_retry, state=TrialState.FAIL)
    assert notes[:1] == ["; re-queued (a stop is not counted among its retries)"]
    assert notes[1:] == [f"; re-queued (retry {n} of at most 3)" for n in (1, 2, 3)] + [
        "; its 3 retries are spent, so it counts"]


def test_a_retry_keeps_what_its_original_drew_and_draws_what_a_fault_cut_off() -> None:
    """A storage fault inside one of a trial's suggestions (a dropped connection) fails it before
    it trained, holding part of its configuration: its retry keeps those values and draws the
    rest, which the fault tests' check (``tests._faults.assert_exact_study``) accepts."""
    study = _study()
    cut_off = study.ask()
    drawn = cut_off.suggest_float("a", 0, 1)  # then "b"'s suggestion raised
    study.tell(cut_off, state=TrialState.FAIL)  # no outcome: the policy reads it as lost
    assert requeue(study, study.get_trials()[cut_off.number], POLICY)
    retry = study.ask()
    assert retry.suggest_float("a", 0, 1) == drawn  # stored with the retry, not drawn again
    retry.suggest_float("b", 0, 1)
    study.tell(retry, 1.0)
    trials = study.get_trials()
    assert trials[0].params == {"a": drawn} and set(trials[1].params) == {"a", "b"}
    assert assert_exact_study(trials, budget=1) == [trials[0]]
    trials[1].params["a"] = 1 - drawn  # a retry that changed a drawn value fails the check
    with pytest.raises(AssertionError):
        assert_exact_study(trials, budget=1)


def test_a_trial_no_worker_took_is_failed_and_requeued_once_when_old_enough() -> None:
    """What a worker killed inside Optuna's ask leaves: a RUNNING trial without the mark a
    worker writes as it takes a trial (its own number; a retry inherits its original's)."""
    study = _study()
    taken = study.ask({"x": FloatDistribution(0, 1)})
    mark_begun(taken)
    orphan = study.ask({"x": FloatDistribution(0, 1)}).number
    stopped = _failed(study, Outcome.STOPPED, "SIGTERM")
    assert requeue(study, study.get_trials()[stopped], POLICY)
    retry = study.ask()  # the retry, taken from the queue, inherits no mark of its own
    assert retry.user_attrs.get(BEGUN) != retry.number  # its original's mark, not its own
    assert original_number(study.get_trials()[-1]) == 2
    trials = study.get_trials()
    later = datetime.datetime.now() + datetime.timedelta(seconds=61)
    assert unbegun(trials, older_than_s=60) == []  # its worker may be about to mark it
    assert [t.number for t in unbegun(trials, 60, now=later)] == [orphan, retry.number]
    assert recover_unbegun_trials(study, POLICY, older_than_s=-1) == [orphan, retry.number]
    assert recover_unbegun_trials(study, POLICY, older_than_s=-1) == []  # once only
    assert study.get_trials()[taken.number].state == TrialState.RUNNING
    assert [original_number(t) for t in study.get_trials() if t.state == TrialState.WAITING] \
        == [orphan, stopped]


def test_a_worker_cut_off_inside_ask_requeues_only_the_unmarked_trial_it_started() -> None:
    """After a fault inside Optuna's ask the worker fails and re-queues the trial it created, but
    not a trial started before its ``optimize`` began, nor one another worker took and marked."""
    study = _study()
    earlier = study.ask({"x": FloatDistribution(0, 1)}).number
    since = datetime.datetime.now()
    taken = study.ask({"x": FloatDistribution(0, 1)})
    mark_begun(taken)  # another worker's, should this one have lost the lock to its lease
    cut_off = study.ask({"x": FloatDistribution(0, 1)}).number
    said: list[str] = []
    fail_unbegun(study, POLICY, since, said.append)
    states = {t.number: t.state for t in study.get_trials()}
    assert states[earlier] == states[taken.number] == TrialState.RUNNING
    assert states[cut_off] == TrialState.FAIL
    assert [original_number(t) for t in study.get_trials() if t.state == TrialState.WAITING] \
        == [cut_off]
    assert said == [f"trial {cut_off} was created but not begun (the fault cut off its start); "
                    "re-queued"]


def test_a_trial_judged_stale_is_requeued_once_though_its_own_worker_looks_at_once(
        tmp_path: Path) -> None:
    """The worker that judges a trial stale fails it, then queues its retry, holding the budget
    lock; the trial's own worker, its record cut off, re-queues a FAIL only under that lock. It
    looked between the two in CI (a database restart) and the trial was re-queued twice."""
    study = _study()
    number = study.ask({"x": FloatDistribution(0, 1)}).number
    journal = str(tmp_path / "journal.log")
    judge, own = ProcessLock(journal, "hpo:budget:s"), ProcessLock(journal, "hpo:budget:s")
    assert judge.acquire()
    study.tell(number, state=TrialState.FAIL)  # the judge's FAIL; its retry comes next
    waiting = threading.Event()

    def stop() -> bool:  # polled while the own worker waits for the lock
        waiting.set()
        return False

    said: list[str] = []
    own_worker = threading.Thread(target=recover_cut_off, args=(
        study, POLICY, number, [], "a dropped connection", said.append, lambda: own.acquire(stop)))
    own_worker.start()
    while not waiting.is_set() and own_worker.is_alive():
        time.sleep(0.01)
    with quiet_experimental():
        RetryHeartbeatStaleTrialCallback()(study, study.get_trials()[number])
    judge.release()
    own_worker.join(timeout=60)
    own.release()
    assert [retry_history(t) for t in study.get_trials()[1:]] == [[number]]
    assert said == [f"trial {number} was judged stale while it ran here (late heartbeat) and was "
                    "re-queued by another worker; its result is dropped"]


def test_a_stopping_worker_leaves_a_failed_trial_to_the_next_workers_recovery() -> None:
    study = _study()
    number = study.ask({"x": FloatDistribution(0, 1)}).number
    study.tell(number, state=TrialState.FAIL)
    said: list[str] = []
    recover_cut_off(study, POLICY, number, [], "a dropped connection", said.append,
                    lambda: False)
    assert len(study.get_trials()) == 1
    assert said == [f"trial {number} failed (a dropped connection); its retry is left to the "
                    "next worker"]
    assert [t.number for t in unretried(study.get_trials(), POLICY, older_than_s=-1)] == [number]


def test_a_worker_requeues_its_own_failed_trial_under_the_budget_lock(tmp_path: Path) -> None:
    """A worker frozen (or cut off) between its trial's FAIL and its re-queue for a grace period
    finds another worker's recovery re-queueing it under the budget lock: it waits for the lock
    and then finds the retry, rather than queueing a second."""
    study = _study()
    number = study.ask({"x": FloatDistribution(0, 1)}).number
    study.tell(number, state=TrialState.FAIL)  # its own tell: lost, so the policy retries it
    journal = str(tmp_path / "journal.log")
    recovery, own = ProcessLock(journal, "hpo:budget:s"), ProcessLock(journal, "hpo:budget:s")
    assert recovery.acquire()
    refused = threading.Event()
    try_once = own._try

    def observed_try() -> bool:
        got = try_once()
        if not got:
            refused.set()
        return got

    own._try = observed_try  # type: ignore[method-assign]
    notes: list[str] = []
    own_worker = threading.Thread(target=lambda: notes.append(
        requeued_note_locked(study, study.get_trials()[number], POLICY, own)))
    own_worker.start()
    while not refused.is_set() and own_worker.is_alive():
        time.sleep(0.01)
    assert recover_lost_trials(study, POLICY, older_than_s=-1) == [number]
    recovery.release()
    own_worker.join(timeout=60)
    assert [retry_history(t) for t in study.get_trials()[1:]] == [[number]]
    assert notes == [""] and not own.held


def test_a_budget_lock_not_had_within_its_lease_leaves_the_retry_to_the_recovery(
        tmp_path: Path) -> None:
    study = _study()
    number = study.ask({"x": FloatDistribution(0, 1)}).number
    study.tell(number, state=TrialState.FAIL)
    journal = str(tmp_path / "journal.log")
    frozen = ProcessLock(journal, "hpo:budget:s")
    own = ProcessLock(journal, "hpo:budget:s", lease_s=0.3)
    assert frozen.acquire()
    note = requeued_note_locked(study, study.get_trials()[number], POLICY, own)
    frozen.release()
    assert note == "; its retry is left to the next worker (the budget lock could not be had)"
    assert len(study.get_trials()) == 1
    assert [t.number for t in unretried(study.get_trials(), POLICY, older_than_s=-1)] == [number]


# --- export ----------------------------------------------------------------------------------

def test_export_documents_best_first_with_their_source() -> None:
    storage = optuna.storages.InMemoryStorage()
    study = optuna.create_study(study_name="e", storage=storage)
    for value in (3.0, 1.0, 2.0):
        study.add_trial(create_trial(value=value, params={"x": value / 10},
                                     distributions={"x": FloatDistribution(0, 1)},
                                     user_attrs={"config": {"train": {"seed": int(value)}},
                                                 "kl_ci": [value - 0.1, value + 0.1]}))
    group = load_group(storage, "e")
    docs = export_documents(group, top=2)
    assert [d["source"]["kl"] for d in docs] == [1.0, 2.0]
    assert [d["source"]["rank"] for d in docs] == [1, 2]
    assert docs[0]["train"] == {"seed": 1} and docs[0]["source"]["trial"] == 1
    with pytest.raises(UsageError):
        export_documents(group, top=0)


# --- the journal file ------------------------------------------------------------------------

def _journal_with_trials(path: Path, n: int) -> None:
    study = optuna.create_study(study_name="j", storage=open_storage(str(path)))
    for i in range(n):
        study.add_trial(create_trial(value=float(i), params={"x": 0.5},
                                     distributions={"x": FloatDistribution(0, 1)}))


def test_repair_moves_a_torn_last_line_aside_and_keeps_every_trial(tmp_path: Path) -> None:
    path = tmp_path / "hpo.journal"
    _journal_with_trials(path, 3)
    intact = path.read_bytes()
    path.write_bytes(intact + b'{"op_code": 5, "trial_')  # a write cut short
    log = io.StringIO()
    reports = repair_journal(path, log)
    torn_line = len(intact.splitlines()) + 1
    assert len(reports) == 1 and f"line {torn_line} was torn" in reports[0]
    assert path.read_bytes() == intact
    assert log.getvalue().count("\n") == 1
    aside = list(tmp_path.glob("hpo.journal.bad-*"))
    assert [p.read_bytes() for p in aside] == [b'{"op_code": 5, "trial_\n']
    assert repair_journal(path, log) == []  # intact now: untouched


def test_a_repair_on_a_full_disk_leaves_no_empty_file_and_the_journal_as_it_was(
        tmp_path: Path, monkeypatch) -> None:
    """A full disk under the journal: the repair's `.bad-*` file was created and left empty,
    beside a journal not repaired (fault hunt). The repair now writes it whole or not at all;
    the next writer, with room again, repairs as ever."""
    path = tmp_path / "hpo.journal"
    _journal_with_trials(path, 2)
    torn = path.read_bytes() + b'{"op_code": 5, "trial_'
    path.write_bytes(torn)
    real_write = Path.write_bytes

    def full(self: Path, data: bytes) -> int:
        self.touch()  # the file is made, then its bytes do not fit
        raise OSError(errno.ENOSPC, "No space left on device", str(self))

    monkeypatch.setattr(Path, "write_bytes", full)
    with pytest.raises(OSError, match="No space"):
        repair_journal(path, io.StringIO())
    monkeypatch.setattr(Path, "write_bytes", real_write)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hpo.journal"]
    assert path.read_bytes() == torn
    assert len(repair_journal(path, io.StringIO())) == 1  # room again: repaired


def test_the_backend_never_appends_after_a_torn_line(tmp_path: Path) -> None:
    path = tmp_path / "hpo.journal"
    _journal_with_trials(path, 2)
    backend = RepairingJournalBackend(path, log=io.StringIO())
    with open(path, "ab") as f:
        f.write(b'{"op_code": 5')  # another process crashed mid-write after we opened
    backend.append_logs([{"op_code": 0, "worker_id": "w", "study_name": "k",
                          "directions": [1]}])
    lines = path.read_bytes().splitlines()
    assert all(json.loads(line) for line in lines)
    storage = open_storage(str(path))
    assert len(optuna.load_study(study_name="j", storage=storage).trials) == 2


def test_a_corrupt_middle_line_is_dropped_and_reported(tmp_path: Path) -> None:
    path = tmp_path / "hpo.journal"
    _journal_with_trials(path, 2)
    lines = path.read_bytes().splitlines(keepends=True)
    lines.insert(len(lines), b"\x00\x01 not json\n")
    lines.append(lines[-2])  # the trial after it still parses
    path.write_bytes(b"".join(lines))
    reports = repair_journal(path, io.StringIO())
    assert len(reports) == 1 and f"line {len(lines) - 1} is not valid JSON" in reports[0]


def test_json_lines_that_are_not_entries_are_dropped_and_many_reported_in_two_lines(
        tmp_path: Path) -> None:
    path = tmp_path / "hpo.journal"
    _journal_with_trials(path, 2)
    entries = path.read_bytes().splitlines(keepends=True)
    strays = [b"[]\n", b'{"a": 1}\n', b'"str"\n', b'{"op_code": "0", "worker_id": "w"}\n',
              b'{"op_code": 1}\n', b"not json\n"]
    path.write_bytes(b"".join(entries[:2] + strays + entries[2:]))
    read = io.StringIO()
    logs = list(RepairingJournalBackend(path, log=read, repair=False).read_logs(0))
    assert len(logs) == len(entries)  # every entry read, no stray
    said = read.getvalue().splitlines()
    assert len(said) == 2 and "line 3 is not a journal entry" in said[0], said
    assert "5 more lines" in said[1], said
    log = io.StringIO()
    reports = repair_journal(path, log)
    assert len(reports) == 2 and "line 3 is not a journal entry" in reports[0], reports
    assert "5 more lines" in reports[1] and "moved them to" in reports[1], reports
    assert path.read_bytes() == b"".join(entries)
    storage = open_storage(str(path))
    assert len(optuna.load_study(study_name="j", storage=storage).trials) == 2


@pytest.mark.parametrize("repair", [True, False])
def test_a_file_that_is_not_a_journal_is_refused_and_left_as_it_is(tmp_path: Path,
                                                                   repair: bool) -> None:
    from hpo.errors import UsageError

    path = tmp_path / "notes.yaml"
    path.write_bytes(b"name: smoke\nbudget: {trials: 2}\n")
    with pytest.raises(UsageError, match="is not an Optuna journal"):
        RepairingJournalBackend(path, log=io.StringIO(), repair=repair)
    with pytest.raises(UsageError, match="is not an Optuna journal"):
        open_storage(str(path))
    assert path.read_bytes() == b"name: smoke\nbudget: {trials: 2}\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.yaml"]


def test_a_file_of_one_line_without_newline_is_refused_unless_it_begins_an_entry(
        tmp_path: Path) -> None:
    from hpo.errors import UsageError

    notes, torn = tmp_path / "notes.txt", tmp_path / "hpo.journal"
    notes.write_bytes(b"name: smoke")
    torn.write_bytes(b'{"op_code":0,"worker_id":"w","study_na')  # a crash in the first write
    with pytest.raises(UsageError, match="is not an Optuna journal"):
        RepairingJournalBackend(notes, log=io.StringIO())
    assert notes.read_bytes() == b"name: smoke"
    log = io.StringIO()
    RepairingJournalBackend(torn, log=log)  # repaired: the torn line moved aside
    assert torn.read_bytes() == b"" and "was torn" in log.getvalue()


def test_an_entry_optuna_cannot_replay_is_one_usage_error(tmp_path: Path) -> None:
    from hpo.errors import UsageError

    path = tmp_path / "hpo.journal"
    path.write_bytes(b'{"op_code": 0, "worker_id": "w"}\n')  # no study name
    with pytest.raises(UsageError, match="could not replay it .KeyError"):
        open_storage(str(path), create=False)


def test_a_dangling_old_lock_is_broken_and_a_fresh_one_waited_for(tmp_path: Path) -> None:
    journal = tmp_path / "runs" / "hpo.journal"
    journal.parent.mkdir()
    journal.touch()
    os.symlink("runs/hpo.journal", f"{journal}.lock")  # relative: dangles from runs/
    log = io.StringIO()
    lock = StaleBreakingLock(journal, grace_period_s=0.5, log=log)
    started = time.monotonic()
    with lock.held():
        assert os.readlink(f"{journal}.lock") == str(journal.resolve())
        other = StaleBreakingLock(journal, grace_period_s=30, log=log)
        got = threading.Event()
        waiter = threading.Thread(target=lambda: (other.acquire(), got.set(), other.release()))
        waiter.start()
        assert not got.wait(0.3)  # a live, fresh lock is waited for
    waiter.join(5)
    assert got.is_set()
    assert 0.5 <= time.monotonic() - started < 5
    assert log.getvalue().count("broke a stale journal lock") == 1


# --- the process lock --------------------------------------------------------------------------

def test_a_file_lock_wait_obeys_stop_and_is_bounded(tmp_path: Path) -> None:
    url = str(tmp_path / "hpo.journal")
    holder, waiter = ProcessLock(url, "budget"), ProcessLock(url, "budget")
    assert holder.acquire()
    stop = threading.Event()
    threading.Timer(0.3, stop.set).start()
    started = time.monotonic()
    assert waiter.acquire(stop.is_set) is False
    assert time.monotonic() - started < 2
    from hpo.errors import StorageError

    with pytest.raises(StorageError, match="waited 0 s for the lock 'budget'"):
        waiter.acquire(wait_s=0.2)
    holder.release()
    assert waiter.acquire() and waiter.held
    waiter.close()


# --- stopping training -----------------------------------------------------------------------

def test_training_stops_between_steps_when_asked() -> None:
    steps: list[int] = []

    def should_stop() -> bool:
        return len(steps) >= 3

    def on_eval(step: int, samples: np.ndarray) -> None:
        steps.append(step)

    config = {"generator": {"kind": "classical", "hidden": [8]}, "critic": {"hidden": [8]},
              "steps": 50, "eval_every": 1, "eval_samples": 100, "batch_size": 16, "seed": 0}
    with pytest.raises(models.TrainingStopped) as err:
        models.train(config, lambda n, rng: rng.normal(size=(n, 2)), on_eval, should_stop)
    assert steps == [1, 2, 3] and err.value.step == 4


def test_a_study_file_with_rqmc_points_scores_reports_and_the_final_score_with_them() -> None:
    from hpo.evaluate import train_and_score
    from hpo.study_file import Metric
    from metrics import GaussianMixture

    reports = []
    config = {"generator": {"kind": "classical", "hidden": [8]}, "critic": {"hidden": [8]},
              "steps": 4, "eval_every": 2, "eval_samples": 100, "batch_size": 16, "seed": 0}
    metric = Metric(points="rqmc", n_target=2048, n_report=500, eval_samples=100, replicates=4)
    score = train_and_score(config, GaussianMixture.preset("gaussgan"), metric,
                            lambda step, kl, samples: reports.append(kl))
    assert [(kl.points, kl.n_target, kl.replicates) for kl in reports] == [("rqmc", 500, 1)] * 2
    assert score.kl.replicates == 4
    assert all(e.points == "rqmc" and e.n_target == 2048 for _, e in score.profile)
    assert score.kl.covers_generator_draws and score.kl.ci_low < score.kl.ci_high
    assert score.knn is not None and score.knn.points == "iid"  # the k-NN diagnostic: iid


def test_w2_is_solved_on_the_study_files_w2_points_of_the_first_draw() -> None:
    """``metric.w2_points`` reaches the transport problem (capped by the draw's size, as
    every study before the setting ran); a trial's report reads the same number back."""
    from hpo.evaluate import train_and_score
    from hpo.metric import w2_points
    from hpo.study_file import Metric
    from metrics import GaussianMixture, wasserstein2

    config = {"generator": {"kind": "classical", "hidden": [8]}, "critic": {"hidden": [8]},
              "steps": 2, "eval_every": 2, "eval_samples": 300, "batch_size": 16, "seed": 0}
    target = GaussianMixture.preset("gaussgan")
    w2 = {}
    for points in (100, 2000):
        metric = Metric(eval_samples=300, w2_points=points, knn=False)
        score = train_and_score(config, target, metric)
        assert score.w2 == wasserstein2(target, score.samples, seed=0, max_points=points)
        w2[w2_points(metric.model_dump())] = score.w2
    assert set(w2) == {100, 300} and w2[100] != w2[300]
    assert w2[300] == wasserstein2(target, score.samples, seed=0)  # all 300: as before
    assert w2_points({}) == 2000  # a file stored before the setting: what it ran


# --- the package's own shape -----------------------------------------------------------------

HPO = Path(__file__).resolve().parents[1] / "hpo"


def _hpo_imports() -> dict[str, set[str]]:
    """Which hpo modules each hpo module imports (at any depth in its code)."""
    import ast

    graph = {}
    for path in HPO.glob("*.py"):
        deps = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("hpo."):
                deps.add(node.module)
            elif isinstance(node, ast.Import):
                deps |= {a.name for a in node.names if a.name.startswith("hpo.")}
        graph[f"hpo.{path.stem}"] = deps
    return graph


def test_hpo_has_no_import_cycle() -> None:
    graph, done, cycles = _hpo_imports(), set(), []

    def visit(module: str, path: list[str]) -> None:
        for dep in sorted(graph.get(module, ())):
            if dep in path:
                cycles.append(path[path.index(dep):] + [dep])
            elif dep not in done:
                visit(dep, [*path, dep])
        done.add(module)

    for module in sorted(graph):
        visit(module, [module])
    assert graph["hpo.space"] >= {"hpo.study_file"}  # the check is not vacuous
    assert not cycles, cycles


# ``.system_attrs``: a trial's or study's system attributes are Optuna's own (deprecated on
# Study). The storage's get/set_study_system_attr(s) are BaseStorage's public methods; hpo keeps
# the whole study file there, off the dashboard's study page (hpo.group).
@pytest.mark.parametrize("private", ["._storage", "._trial_id", "._study_id", '"failed_trial"',
                                     '"retry_history"', '"fixed_params"', ".system_attrs"])
def test_hpo_uses_only_optunas_public_api(private: str) -> None:
    offenders = [f"{p.name}:{n}" for p in HPO.glob("*.py")
                 for n, line in enumerate(p.read_text().splitlines(), start=1) if private in line]
    assert not offenders, offenders


def test_a_stop_before_training_fails_the_trial_in_one_attribute(tmp_path: Path) -> None:
    """A stop that arrives between the claim and training: no training, FAIL, ``ended`` says
    why; the worker's callback then re-queues it through ``requeue``."""
    from hpo.objective import Objective
    from hpo.storage import artifact_store

    class Stop:
        reason = "received SIGTERM"

        def __call__(self) -> bool:
            return True

    study = optuna.create_study(storage=open_storage(str(tmp_path / "hpo.journal")))
    objective = Objective(SPEC, artifact_store(str(tmp_path / "artifacts")), "w0", Stop())
    study.optimize(objective, n_trials=1, catch=(Exception,))
    (trial,) = study.get_trials()
    assert trial.state == TrialState.FAIL and not trial.intermediate_values
    assert trial.user_attrs["ended"] == "interrupted: worker stopped (received SIGTERM)"
    assert trial.user_attrs["outcome"] == "stopped"
    assert requeue(study, trial, RetryPolicy.from_study_file())
    assert [t.state for t in study.get_trials()] == [TrialState.FAIL, TrialState.WAITING]


class _FailsAfter:
    """A file artifact store that fails after ``writes`` writes: each later write raises
    ``error(artifact_id)``, by default the OSError a full file system raises."""

    def __init__(self, base: Path, writes: int, error=None) -> None:
        base.mkdir()
        self.store = optuna.artifacts.FileSystemArtifactStore(str(base))
        self.writes = writes
        self.error = error or (lambda artifact_id: OSError(
            errno.ENOSPC, "No space left on device", f"/full/{artifact_id}"))

    def write(self, artifact_id: str, content_body) -> None:
        if self.writes <= 0:
            raise self.error(artifact_id)
        self.writes -= 1
        self.store.write(artifact_id, content_body)

    def __getattr__(self, name: str):
        return getattr(self.store, name)


def _one_short_trial(study: optuna.Study, store: _FailsAfter) -> optuna.trial.FrozenTrial:
    """One trial of SPEC cut to 10 steps, through the real objective, on ``store``."""
    from hpo.objective import Objective

    spec = SPEC.model_copy(update={"budget": SPEC.budget.model_copy(
        update={"steps": 10, "eval_every": 10})})
    study.optimize(Objective(spec, store, "w0"), n_trials=1, catch=(Exception,))
    return study.get_trials()[-1]


def test_a_full_artifact_store_costs_artifacts_not_a_trained_result(tmp_path: Path) -> None:
    """A trial trained to the end failed when its picture could not be written (a full disk),
    and `failed` is not retried by default: the trained result was lost. Now it completes with
    the error kept; a full store before training (the config) is the machine's fault: lost,
    retried, and counted with its arm (it was `?`, and read as that kind's first failures)."""
    from hpo.trials import ARTIFACT_ERROR, KIND

    study = optuna.create_study(storage=open_storage(str(tmp_path / "hpo.journal")))
    trained = _one_short_trial(study, _FailsAfter(tmp_path / "a", 1))
    assert trained.state == TrialState.COMPLETE and trained.value is not None
    assert trained.user_attrs[ARTIFACT_ERROR] == "No space left on device"
    assert "samples_png" not in trained.user_attrs and trained.user_attrs["config_yaml"]
    untrained = _one_short_trial(study, _FailsAfter(tmp_path / "b", 0))
    assert untrained.state == TrialState.FAIL and untrained.user_attrs["outcome"] == "lost"
    assert untrained.user_attrs[KIND] in ("classical", "quantum")
    assert "No space left on device" in untrained.user_attrs["ended"]
    assert requeue(study, untrained, RetryPolicy.from_study_file())


def test_an_object_store_that_fails_after_training_costs_artifacts_not_the_result(
        tmp_path: Path) -> None:
    """The same for an S3 store: botocore's errors are not OSErrors (review)."""
    from botocore.exceptions import EndpointConnectionError

    from hpo.trials import ARTIFACT_ERROR

    def unreachable(artifact_id: str) -> Exception:
        return EndpointConnectionError(endpoint_url="http://127.0.0.1:9/bucket")

    study = optuna.create_study(storage=open_storage(str(tmp_path / "hpo.journal")))
    trained = _one_short_trial(study, _FailsAfter(tmp_path / "a", 1, unreachable))
    assert trained.state == TrialState.COMPLETE and trained.value is not None
    assert "Could not connect to the endpoint URL" in trained.user_attrs[ARTIFACT_ERROR]


# --- threads ---------------------------------------------------------------------------------

def test_the_test_processes_run_one_blas_and_openmp_thread() -> None:
    """tests/conftest.py sets this before any thread pool loads; with a pool per core, two
    pytest workers thrashed 2 cores (a statistical test 7x as slow in the suite as alone)."""
    import ot  # noqa: F401  (POT, and scikit-learn where installed, bring their own OpenMP)
    import scipy.linalg  # noqa: F401
    import threadpoolctl

    with contextlib.suppress(ImportError):  # the bench extra (pyproject.toml), not the tests'
        import sklearn.mixture  # noqa: F401

    if os.environ.get("OPENBLAS_NUM_THREADS", "1") != "1":
        pytest.skip("the environment chose its own thread count")
    pools = threadpoolctl.threadpool_info()
    assert pools and all(p["num_threads"] == 1 for p in pools), \
        [(p["internal_api"], p["num_threads"], Path(p["filepath"]).name) for p in pools]


def test_training_commands_run_as_many_blas_threads_as_torch_threads(tmp_path: Path,
                                                                     monkeypatch) -> None:
    """OpenBLAS would start one thread per core, which made the score 7 to 12 times as
    costly on this 2-core machine (docs/trial-time.md); a setting in the environment wins."""
    from hpo.cli import BLAS_THREAD_VARIABLES, limit_blas_threads, main

    clean = {k: v for k, v in os.environ.items() if k not in BLAS_THREAD_VARIABLES}
    monkeypatch.setattr(os, "environ", dict(clean))
    assert main(["train", str(tmp_path / "none.yaml"), "--threads", "3"]) != 0  # no such file
    assert os.environ["OPENBLAS_NUM_THREADS"] == "3"
    monkeypatch.setattr(os, "environ", dict(clean))
    assert main(["status", "--storage", str(tmp_path / "none.journal")]) != 0
    assert "OPENBLAS_NUM_THREADS" not in os.environ  # a read-only command trains nothing
    monkeypatch.setattr(os, "environ", {**clean, "OMP_NUM_THREADS": "4"})
    limit_blas_threads(1)
    assert "OPENBLAS_NUM_THREADS" not in os.environ


def test_only_a_dropped_connection_is_transient_for_the_init_lock() -> None:
    # Optuna wraps every SQLAlchemy error in StorageInternalError: a denied permission must be
    # reported at once, not retried as a dropped connection is.
    import sqlalchemy

    from hpo.locks import LockLost
    from hpo.transient import is_connection_error

    def wrapped(cause: BaseException) -> optuna.exceptions.StorageInternalError:
        try:
            raise optuna.exceptions.StorageInternalError("wrapped") from cause
        except optuna.exceptions.StorageInternalError as err:
            return err

    dropped = sqlalchemy.exc.OperationalError("SELECT 1", {}, Exception("server closed"))
    denied = sqlalchemy.exc.ProgrammingError("INSERT", {}, Exception("permission denied"))
    assert is_connection_error(dropped) and is_connection_error(wrapped(dropped))
    assert is_connection_error(LockLost("hpo:init"))
    assert not is_connection_error(wrapped(denied)) and not is_connection_error(ValueError())


def test_a_schema_object_created_beside_is_a_race_to_retry_and_other_refusals_are_not() -> None:
    """PostgreSQL's codes for an object another session made first (unique_violation,
    duplicate_table, duplicate_object) are a lost race; a denied permission or a dropped
    connection is not. A refusal is reported as one, not as an unreachable server."""
    import sqlalchemy

    from hpo.storage import database_error_message
    from hpo.transient import is_schema_race

    class Orig(Exception):
        def __init__(self, pgcode: str) -> None:
            super().__init__(f"code {pgcode}")
            self.pgcode = pgcode

    def failed(kind: type[sqlalchemy.exc.DBAPIError], pgcode: str) -> BaseException:
        return kind("CREATE TABLE studies", {}, Orig(pgcode))

    raced = [failed(sqlalchemy.exc.IntegrityError, "23505"),
             failed(sqlalchemy.exc.ProgrammingError, "42P07"),
             failed(sqlalchemy.exc.ProgrammingError, "42710")]
    assert all(is_schema_race(err) for err in raced)
    try:
        raise optuna.exceptions.StorageInternalError("wrapped") from raced[0]
    except optuna.exceptions.StorageInternalError as wrapped_race:
        assert is_schema_race(wrapped_race)
    assert not is_schema_race(failed(sqlalchemy.exc.ProgrammingError, "42501"))  # permission
    assert not is_schema_race(failed(sqlalchemy.exc.OperationalError, "57P01"))  # shut down
    url = "postgresql+psycopg2://u:secret@127.0.0.1:5432/db"
    assert database_error_message(url, raced[0]).startswith(
        "the study database postgresql+psycopg2://u:***@127.0.0.1:5432/db refused a statement: ")
    assert database_error_message(url, failed(sqlalchemy.exc.OperationalError, "08006")) \
        .startswith("cannot reach the study database")


@pytest.mark.parametrize("url, shown", [
    ("postgresql+psycopg2://u@127.0.0.1:5432/db?password=S3cret",
     "postgresql+psycopg2://u@127.0.0.1:5432/db?password=***"),
    ("postgresql+psycopg2://u:S3cret@h:5432/db?sslmode=require&sslpassword=S3cret",
     "postgresql+psycopg2://u:***@h:5432/db?sslmode=require&sslpassword=***"),
    ("sqlite:///x.db?Password=S3cret", "sqlite:///x.db?Password=***"),
    ("postgresql+psycopg2://u:S3cret@h:abc/db?token=S3cret&application_name=a",  # unparseable
     "postgresql+psycopg2://u:***@h:abc/db?token=***&application_name=a"),
    ("postgresql+psycopg2://u:S3c@ret@h/db", "postgresql+psycopg2://u:***@h/db"),  # a raw @
    ("postgresql+psycopg2://u:p@h:abc/db?password=S3c#ret", "postgresql+psycopg2://u:***@h:abc/db?password=***"),
    ("mssql+pyodbc://u@h/db?odbc_connect=DRIVER%3Dx%3BPWD%3DS3cret",
     "mssql+pyodbc://u@h/db?odbc_connect=***"),
])
def test_display_url_hides_a_password_in_the_user_part_and_in_the_query(url: str,
                                                                         shown: str) -> None:
    from hpo.storage import display_url

    assert display_url(url) == shown


def test_an_error_that_quotes_a_huge_input_is_cut_short(monkeypatch, capsys) -> None:
    from hpo import cli
    from hpo.errors import UsageError

    def refuse(args):
        raise UsageError("target.components: " + "[0.1, 0.2], " * 3000)

    monkeypatch.setitem(cli.COMMANDS, "status", refuse)
    assert cli.main(["status"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and len(err) <= cli.MAX_ERROR_CHARS + 20, len(err)
    assert err.startswith("hpo status: target.components: [0.1") and "characters)" in err


def test_an_object_store_without_credentials_is_a_usage_error(tmp_path: Path, monkeypatch):
    """Without credentials every upload fails: the worker would fail every trial and spend the
    budget on failures, a reader would end in botocore's traceback. Refused at once instead."""
    from hpo.artifacts import PrefixedArtifactStore, artifact_store, checked_location
    from hpo.errors import UsageError

    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
                 "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN",
                 "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    for check in (artifact_store, checked_location):
        with pytest.raises(UsageError, match="no credentials"):
            check("s3://bucket/prefix")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "k")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s")
    assert isinstance(artifact_store("s3://bucket/prefix"), PrefixedArtifactStore)


def test_a_study_file_changed_in_what_it_measures_is_refused_while_its_budget_may_grow(
        tmp_path: Path) -> None:
    """A worker given an edited file used to run it against the study created from the old one,
    so trials scored at two resolutions were ranked together."""
    from hpo.group import ensure_group
    from hpo.space import load_spec
    from hpo.storage import open_storage
    from tests.conftest import SMOKE

    spec = load_spec(SMOKE)
    storage = open_storage(str(tmp_path / "hpo.journal"))
    ensure_group(storage, spec)
    budget = spec.budget.model_copy(update={"trials": spec.budget.trials + 5})
    ensure_group(storage, spec.model_copy(update={"budget": budget}))  # more trials: fine
    changed = {
        "metric.sigma": {"metric": spec.metric.model_copy(update={"sigma": 2.0})},
        "metric.points": {"metric": spec.metric.model_copy(update={"points": "rqmc"})},
        "metric.w2_points": {"metric": spec.metric.model_copy(update={"w2_points": 1000})},
        "budget.steps": {"budget": spec.budget.model_copy(update={"steps": 20})},
        "seed": {"seed": spec.seed + 1},
    }
    for key, update in changed.items():
        with pytest.raises(UsageError, match=rf"whose {key} was"):
            ensure_group(storage, spec.model_copy(update=update))
    # the study keeps the file it now runs by (status and the report read its budget there;
    # they showed the first file's), and never a refused one
    from hpo.stored_study_file import study_file_of

    kept = study_file_of(storage, spec.name)
    assert kept["budget"] == {**spec.budget.model_dump(mode="json"), "trials": budget.trials}
    assert kept["metric"]["sigma"] == spec.metric.sigma and kept["seed"] == spec.seed


def test_a_study_stored_under_a_rule_added_since_is_still_compared(tmp_path: Path) -> None:
    """A study created while `validation.seeds: 1` was accepted: today's schema refuses that
    stored file, and the comparison used to stop there, so its steps could change unnoticed."""
    from hpo.group import ensure_group
    from hpo.space import load_spec
    from hpo.storage import open_storage
    from hpo.stored_study_file import STUDY_FILE_SYSTEM_ATTR
    from tests.conftest import SMOKE

    spec = load_spec(SMOKE)
    storage = open_storage(str(tmp_path / "hpo.journal"))
    (study,) = ensure_group(storage, spec).values()
    old = {**spec.model_dump(mode="json"), "validation": {"top_k": 1, "seeds": 1}}
    storage.set_study_system_attr(storage.get_study_id_from_name(study.study_name),
                                  STUDY_FILE_SYSTEM_ATTR, old)
    ensure_group(storage, spec)  # the validation may change: fine
    # a file stored before metric.points existed was scored with independent points: it
    # compares equal to `points: iid` and is refused `rqmc`
    metric = {key: v for key, v in old["metric"].items() if key != "points"}
    storage.set_study_system_attr(storage.get_study_id_from_name(study.study_name),
                                  STUDY_FILE_SYSTEM_ATTR, {**old, "metric": metric})
    ensure_group(storage, spec)
    with pytest.raises(UsageError, match="whose metric.points was \"iid\", not \"rqmc\""):
        ensure_group(storage, spec.model_copy(update={"metric": spec.metric.model_copy(
            update={"points": "rqmc"})}))
    with pytest.raises(UsageError, match="whose budget.steps was 30, not 20"):
        ensure_group(storage, spec.model_copy(update={
            "budget": spec.budget.model_copy(update={"steps": 20})}))


def test_a_ctrl_c_while_optuna_is_imported_is_interrupted_not_a_traceback(
        tmp_path: Path, monkeypatch, capsys) -> None:
    """`import optuna` (a second of a command's start) sat outside the handler: a Ctrl-C then
    printed a 27-48 line KeyboardInterrupt traceback. The first thing after it stands in."""
    from hpo.cli import main

    def ctrl_c(*args: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(optuna.logging, "set_verbosity", ctrl_c)
    assert main(["status", "--storage", str(tmp_path / "hpo.journal")]) == 130
    assert capsys.readouterr().err == "hpo status: interrupted\n"


def test_validate_before_the_search_ends_says_what_will_validate(tmp_path: Path, capsys) -> None:
    """`hpo validate` beside a running search told the user to start `hpo run` again."""
    import yaml

    from hpo.cli import main
    from tests.conftest import SMOKE

    data = yaml.safe_load(SMOKE.read_text())
    data.update(name="early", layout="per-kind")
    path = tmp_path / "early.yaml"
    path.write_text(yaml.safe_dump(data))
    journal = str(tmp_path / "hpo.journal")
    assert main(["init", str(path), "--storage", journal]) == 0
    capsys.readouterr()
    assert main(["validate", str(path), "--storage", journal]) == 2
    err = capsys.readouterr().err
    assert "early.classical 0/3" in err and "(a run already going on it will)" in err, err


def test_a_kept_study_file_that_cannot_be_compared_is_not_replaced(tmp_path: Path) -> None:
    """A stored file today's schema refuses (a key since removed) is not compared; it was then
    replaced by the running file, losing the record of what the study first ran by (review)."""
    from hpo.group import ensure_group
    from hpo.stored_study_file import STUDY_FILE_SYSTEM_ATTR, study_file_of

    storage = open_storage(str(tmp_path / "hpo.journal"))
    (study,) = ensure_group(storage, SPEC).values()
    old = {**SPEC.model_dump(mode="json"), "seed": 12345, "a_key_since_removed": 1}
    storage.set_study_system_attr(storage.get_study_id_from_name(study.study_name),
                                  STUDY_FILE_SYSTEM_ATTR, old)
    ensure_group(storage, SPEC)
    assert study_file_of(storage, SPEC.name) == old


@pytest.mark.parametrize(("kind", "min_resource", "steps"), [
    ("successive_halving", 800, 3000), ("hyperband", 800, 3000),
    (None, None, 3000),  # no pruner section: halving from a quarter of 3000, at a report
    (None, None, 3200)])
def test_the_first_rung_is_the_study_files_min_resource(kind: str | None,
                                                        min_resource: int | None,
                                                        steps: int) -> None:
    """``min_resource: 800`` with halving, or a study file that names no pruner: a trial worse
    than the one before it at every report runs to step 800 and stops there, not at the first
    report (100, ``eval_every``)."""
    from hpo.strategy import make_pruner
    from hpo.study_file import Pruner

    spec = load_spec(SMOKE)
    pruner = Pruner() if kind is None else spec.pruner.model_copy(update={
        "kind": kind, "min_resource": min_resource, "reduction_factor": 2, "patience": None})
    spec = spec.model_copy(update={
        "budget": spec.budget.model_copy(update={"steps": steps, "eval_every": 100}),
        "pruner": pruner})
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(study_name="rungs", pruner=make_pruner(spec))

    def objective(trial: optuna.Trial) -> float:
        for step in range(100, steps + 1, 100):
            trial.report(10.0 * (trial.number + 1) / step, step)
            if step < steps and trial.should_prune():
                raise optuna.TrialPruned()
        return 10.0 * (trial.number + 1) / steps

    study.optimize(objective, n_trials=2)
    states = [t.state for t in study.trials]
    assert states[0] == optuna.trial.TrialState.COMPLETE
    if kind != "hyperband":
        assert states[1] == optuna.trial.TrialState.PRUNED
        assert max(study.trials[1].intermediate_values) == 800
    else:  # a bracket's first rung is min_resource times a power of the reduction factor
        pruned = [t for t in study.trials if t.state == optuna.trial.TrialState.PRUNED]
        assert all(max(t.intermediate_values) >= 800 for t in pruned)
