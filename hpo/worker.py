"""A worker: pull trials from a study until its total budget of finished trials is met.

The worker owns a trial's life (docs/design.md, "A trial's life"). Under a lock shared by every
process on the storage it counts the budget, and ``study.optimize(n_trials=1)`` (where Optuna's
heartbeat lives) turns the claim into a RUNNING trial before the lock is released; the objective
trains and returns a value or raises; the callbacks log one line and re-queue a trial that was
stopped. SIGTERM/SIGINT only set a flag, which the lock wait and training poll: the worker ends
within seconds, its trial re-queued once. A trial lost to a late heartbeat (judged stale and
re-queued by another worker) or to a storage fault costs that trial, never the worker.
"""

from __future__ import annotations

import datetime
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import IO, Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from hpo.errors import Stopped, StorageError, StudyStopped, find_cause
from hpo.group import search_plan, search_spec, validation_study_name
from hpo.init_lock import ensure_group_studies
from hpo.metric import objective_name
from hpo.objective import Objective
from hpo.own_trial import fail_unbegun, recover_cut_off, requeued_note_locked
from hpo.requeue import recover_lost_trials, recover_unbegun_trials
from hpo.schedule import Work, decide, surplus, validates
from hpo.storage import (
    PATIENCE_S,
    artifact_store,
    lease_seconds,
    process_lock,
    seconds_from_env,
)
from hpo.strategy import make_pruner, make_sampler
from hpo.study_file import StudySpec
from hpo.systematic import systematic_failure
from hpo.transient import dropped_connection_line, retrying
from hpo.trials import (
    ARTIFACT_ERROR,
    KIND,
    Outcome,
    RetryPolicy,
    ended_line,
    mark_begun,
    mark_ended,
    retry_history,
)
from hpo.worker_identity import claim_worker_number, new_worker_id

BUDGET_POLL_S = 1.0
"""Seconds between looks at the budget while the other workers hold its last slots."""


class StopFlag:
    """Set by SIGTERM/SIGINT, or when the launcher that started this worker is gone.

    ``launcher_pid``: the parent process to watch (``HPO_LAUNCHER_PID``); the worker stops when
    it is no longer its parent.
    """

    def __init__(self, launcher_pid: int | None = None) -> None:
        self._event = threading.Event()
        self.reason = ""
        self._launcher = launcher_pid if launcher_pid == os.getppid() else None

    def set(self, reason: str) -> None:
        if not self._event.is_set():
            self.reason = reason
            self._event.set()

    def __call__(self) -> bool:
        if self._launcher is not None and os.getppid() != self._launcher:
            self.set(f"its launcher (pid {self._launcher}) is gone")
        return self._event.is_set()

    @contextmanager
    def on_signals(self) -> Iterator[None]:
        def handler(signum: int, frame: Any) -> None:
            self.set(f"received {signal.Signals(signum).name}")

        previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            yield
        finally:
            for sig, old in previous.items():
                signal.signal(sig, old)


def run_worker(spec: StudySpec, url: str, *, artifacts: str | None = None, threads: int = 1,
               worker_seed: int | None = None, worker_id: str | None = None,
               log: IO = sys.stderr, stopped_before: Callable[[], str | None] | None = None
               ) -> int:
    """Run trials until the study's budget is met, or the worker is stopped; return how many
    trials this worker ran. A storage that stays unreachable for longer than its patience
    (``HPO_STORAGE_PATIENCE_S``, default 75 s) raises :class:`~hpo.errors.StorageError`; a
    worker frozen inside the budget lock loses it after ``HPO_LOCK_LEASE_S`` (default 30 s).
    ``stopped_before()`` names a signal that stopped the process before this function's own
    handlers were in place (``hpo worker``'s start-up): then it returns 0 at once."""
    worker_id = worker_id or new_worker_id()
    launcher = os.environ.get("HPO_LAUNCHER_PID", "")
    stop = StopFlag(int(launcher) if launcher.isdigit() else None)
    say = _say(worker_id, log)
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # our one line per trial says it all
    patience = seconds_from_env("HPO_STORAGE_PATIENCE_S", PATIENCE_S)
    lease = lease_seconds()
    ran = 0
    with stop.on_signals(), _one_line_thread_errors(say):
        # checked once this function's handlers are in place: a stop before is not missed
        if stopped_before is not None and stopped_before() is not None:
            return 0  # it holds nothing yet, and the start-up's handler said so in one line
        store = artifact_store(artifacts)  # a bad location: one line before a worker number
        lock = process_lock(url, f"hpo:budget:{spec.name}", lease_s=lease, patience_s=patience,
                            stop=stop)
        try:
            if worker_seed is None:
                worker_seed = claim_worker_number(url, spec, patience_s=patience, stop=stop)
            say(f"started on {spec.name} as worker number {worker_seed}")
            claim = _claimer(url, spec, worker_seed, store, worker_id, lock, stop, patience, say)
            while (claimed := claim()) is not None:
                if claimed is False:
                    time.sleep(BUDGET_POLL_S)  # the others hold the remaining slots
                    continue
                study, objective = claimed
                ran += _run_one(study, spec, objective, lock, stop, say, threads)
        except Stopped:
            pass  # asked to stop while it waited to start: it holds no trial
        finally:
            lock.close()
    say(f"stopped: {stop.reason}; ran {ran} trial(s)" if stop() else f"done: ran {ran} trial(s)")
    return ran


def _torch_threads(threads: int) -> None:
    """torch's threads, set in each trial rather than at the start: a worker that finds the
    budget taken never imports torch (2.1 -> 0.9 CPU-s and 290 -> 108 MB for such a worker).
    Called once the budget lock is released: the import takes a second or more, and the other
    workers wait for that lock to claim their trials."""
    import torch

    torch.set_num_threads(threads)


def _claimer(url: str, spec: StudySpec, worker_seed: int, store: Any, worker_id: str,
             lock: Any, stop: Callable[[], bool], patience: float, say: Callable[[str], None]
             ) -> Callable[[], tuple[optuna.Study, Objective] | bool | None]:
    """``claim()`` for the study file's group (:mod:`hpo.schedule`; a single-layout study is a
    group of one): under the budget lock, the next search trial of the study with the fewest
    held, then, once the search is finished, the seed validation, enqueued once. Returns
    (study, objective) with the lock held, False to wait, None when all is done or the worker
    stops."""
    studies = ensure_group_studies(
        url, spec, sampler=lambda: make_sampler(spec, worker_seed),
        pruner=lambda: make_pruner(spec), metric=objective_name(spec), patience_s=patience,
        stop=stop)
    objectives = {}
    for name, (kind, search) in search_plan(spec).items():
        # Each search its own sampler and trial seeds (hpo.group.search_spec; the first search's
        # are the file's), however the study was first created.
        searched = search_spec(spec, kind, search)
        studies[name].sampler = make_sampler(searched, worker_seed)
        objectives[name] = Objective(searched, store, worker_id, should_stop=stop)
    if validates(spec):
        objectives[validation_study_name(spec.name)] = Objective(spec, store, worker_id,
                                                                 should_stop=stop)

    def claim() -> tuple[optuna.Study, Objective] | bool | None:
        if not lock.acquire(stop):
            return None

        def look() -> tuple[Work, str | None]:
            # One read of every study serves the decision and the systematic-failure check, and
            # the whole look is retried: a dropped connection has cut off each of its reads in CI.
            for study in studies.values():
                _recover_lost_trials(study, spec, say)
            trials = {name: s.get_trials(deepcopy=False) for name, s in studies.items()}
            failing = next(filter(None, map(systematic_failure, trials.values())), None)
            return decide(studies, spec, trials), failing

        work, failing = retrying(look)
        if work.action == "done" or stop():
            lock.release()
            return None
        if failing is not None:  # rather than spend the budget on failures
            lock.release()
            raise StudyStopped(failing)
        if work.action == "wait":
            lock.release()
            return False
        return studies[work.study], objectives[work.study]

    return claim


class SurplusTrial(Exception):
    """A trial created past the budget (:func:`hpo.schedule.surplus`): ended untrained."""


def _recover_lost_trials(study: optuna.Study, spec: StudySpec, say: Callable[[str], None]
                         ) -> None:
    """:func:`hpo.requeue.recover_lost_trials` and :func:`hpo.requeue.recover_unbegun_trials`:
    a failed trial found without its retry, or a RUNNING one no worker took, is one log line
    each. Both are given the heartbeat's grace period to be re-queued by their own worker."""
    policy = RetryPolicy.from_study_file(spec.retry)
    for number in recover_lost_trials(study, policy, spec.heartbeat.grace_period):
        say(f"trial {number} of {study.study_name} failed without its retry (the process that "
            "failed it did not queue one: killed, stopped or cut off); re-queued")
    for number in recover_unbegun_trials(study, policy, spec.heartbeat.grace_period):
        say(f"trial {number} of {study.study_name} was created but never begun (its worker died "
            "or lost the storage inside Optuna's ask); re-queued")


def _run_one(study: optuna.Study, spec: StudySpec, objective: Objective, lock: Any,
             stop: Callable[[], bool], say: Callable[[str], None], threads: int = 1) -> int:
    """One trial under the held lock, released as soon as the trial is RUNNING; 1 if it ran."""
    started: list[int] = []
    ended: list[tuple[TrialState, float | None]] = []  # how the objective ended, to tell again
    policy = RetryPolicy.from_study_file(spec.retry)

    def claimed(trial: optuna.Trial) -> float:
        mark_begun(trial)  # under the lock: a worker holding it never sees a taken trial unmarked
        lock.release()  # the trial is RUNNING: every worker now counts it
        trials = retrying(lambda: study.get_trials(deepcopy=False))
        why = surplus(spec, study.study_name, trial.number, trial.user_attrs, trials)
        if why is not None:
            mark_ended(trial, Outcome.SURPLUS, f"{why}; not trained")
            raise SurplusTrial(trial.number)
        started.append(trial.number)
        _torch_threads(threads)
        try:
            value = objective(trial)
        except optuna.TrialPruned:
            ended.append((TrialState.PRUNED, None))
            raise
        ended.append((TrialState.COMPLETE, value))
        return value

    def on_finished(study: optuna.Study, trial: FrozenTrial) -> None:
        say(_trial_line(trial) + requeued_note_locked(study, trial, policy, lock))

    asked = datetime.datetime.now()
    try:
        study.optimize(claimed, n_trials=1, catch=(Exception,), callbacks=[on_finished])
    except Exception as err:  # Optuna could not record the trial; see what it cost
        gave_up = _storage_gave_up(err)
        if gave_up is not None:
            raise gave_up from None  # a longer outage than our patience: one line, exit 1
        if not started:  # a storage fault before the trial began: the loop's calls retry
            say(f"storage fault before a trial began ({_short(err)}); trying again")
            retrying(lambda: fail_unbegun(study, policy, asked, say))
            return 0
        cause = dropped_connection_line(err) or _short(err)
        retrying(lambda: recover_cut_off(study, policy, started[0], ended, cause, say,
                                         lambda: lock.acquire(stop)))
    finally:
        lock.release()
    return 1 if started else 0


def _storage_gave_up(err: BaseException) -> StorageError | None:
    """The :class:`StorageError` (patience spent) behind ``err``, if any: Optuna may wrap it, or
    fail on its own while handling it."""
    return find_cause(err, StorageError, depth=20)


@contextmanager
def _one_line_thread_errors(say: Callable[[str], None]) -> Iterator[None]:
    """An exception that ends a thread (Optuna's heartbeat, in a storage fault) is one line."""
    previous = threading.excepthook
    threading.excepthook = lambda a: say(f"{a.thread.name if a.thread else 'a thread'} ended: "
                                         f"{_short(a.exc_value)}")
    try:
        yield
    finally:
        threading.excepthook = previous


def _trial_line(trial: FrozenTrial) -> str:
    """One log line per finished trial; a retry says which trial it repeats."""
    value = f" D_s {trial.value:.4f}" if trial.value is not None else ""
    history = retry_history(trial)
    retry = f" (retry {len(history)} of trial {history[0]})" if history else ""
    lost = trial.user_attrs.get(ARTIFACT_ERROR)
    return (f"trial {trial.number}{retry} {trial.user_attrs.get(KIND, '?')}: "
            f"{ended_line(trial)}{value}" + (f"; an artifact not kept: {lost}" if lost else ""))


def _short(err: BaseException) -> str:
    return f"{type(err).__name__}: {str(err).strip().splitlines()[0] if str(err).strip() else ''}"


def _say(worker_id: str, log: IO) -> Callable[[str], None]:
    def say(line: str) -> None:
        print(f"[{worker_id}] {line}", file=log, flush=True)

    return say

