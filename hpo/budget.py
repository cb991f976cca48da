"""The study's trial budget: what counts as finished, and the one way a lost trial is re-queued.

Finished means COMPLETE, PRUNED, or FAIL that is not being retried. A trial whose worker died, was
stopped, or was judged stale is failed and re-queued with the same parameters and seed (see
docs/design.md, "A trial's life"); its retry takes its place in the budget. Everything here goes
through Optuna's public API: ``study.tell`` and ``RetryHeartbeatStaleTrialCallback``.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from dataclasses import dataclass

import optuna
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.trial import FrozenTrial, TrialState

from hpo.quiet import quiet_experimental

STOPPED = "interrupted: worker stopped"
"""How ``ended`` of a trial stopped by its worker begins (the reason follows)."""


@dataclass(frozen=True)
class BudgetCounts:
    finished: int
    running: int
    waiting: int
    complete: int
    pruned: int
    failed: int

    @property
    def claimed(self) -> int:
        """Slots taken: finished, running, or queued to run."""
        return self.finished + self.running + self.waiting


def retried_numbers(trials: Sequence[FrozenTrial]) -> set[int]:
    """Numbers of the trials that some later trial retries."""
    with quiet_experimental():
        return {n for t in trials for n in RetryHeartbeatStaleTrialCallback.retry_history(t)}


def original_number(trial: FrozenTrial) -> int:
    """The number of the first trial of ``trial``'s retry series (its own when not a retry)."""
    with quiet_experimental():
        first = RetryHeartbeatStaleTrialCallback.retried_trial_number(trial)
    return trial.number if first is None else first


def budget_counts(trials: Sequence[FrozenTrial]) -> BudgetCounts:
    """Count a study's trials against its budget; a failed trial that has a retry does not count.

    Takes the trials, not the study, so a caller that also reads them fetches them once.
    """
    retried = retried_numbers(trials)
    states = [t.state for t in trials if not (t.state == TrialState.FAIL and t.number in retried)]
    complete, pruned = states.count(TrialState.COMPLETE), states.count(TrialState.PRUNED)
    failed = states.count(TrialState.FAIL)
    return BudgetCounts(finished=complete + pruned + failed,
                        running=states.count(TrialState.RUNNING),
                        waiting=states.count(TrialState.WAITING),
                        complete=complete, pruned=pruned, failed=failed)


def requeue(study: optuna.Study, trial: FrozenTrial, max_retry: int) -> bool:
    """Fail ``trial`` if it still runs, and queue its retry with the same params (and seed).

    The one re-queue path of the worker (a stopped trial), the launcher (a dead worker's trial)
    and recovery of orphans. Whoever moves the trial to FAIL queues the retry, so a trial is
    re-queued exactly once: when another process finished or failed it first, this returns False
    and does nothing. A trial already FAIL (the worker's own ``optimize`` told it) is re-queued
    unless some trial already retries it.

    Returns
    -------
    bool
        True when a retry was queued (or ``max_retry`` retries were already spent).
    """
    if trial.state == TrialState.RUNNING:
        try:
            study.tell(trial.number, state=TrialState.FAIL)
        except (ValueError, optuna.exceptions.UpdateFinishedTrialError):
            return False  # finished, or failed and re-queued, by someone else meanwhile
    elif trial.state != TrialState.FAIL:
        return False
    trials = study.get_trials(deepcopy=False)
    if trial.number in retried_numbers(trials):
        return False
    with quiet_experimental():
        latest = next(t for t in trials if t.number == trial.number)
        RetryHeartbeatStaleTrialCallback(max_retry=max_retry)(study, latest)
    return True


def unretried(trials: Sequence[FrozenTrial], max_retry: int, older_than_s: float,
              now: datetime.datetime | None = None) -> list[FrozenTrial]:
    """FAIL trials that were meant to be retried and have no retry: stopped by their worker
    (``ended`` begins with :data:`STOPPED`) or failed by a stale heartbeat or a lost storage call
    (no ``ended``), with retries left, failed more than ``older_than_s`` seconds ago.

    Such a trial is what a process killed between a trial's FAIL and its re-queue leaves (the two
    are separate storage calls); its own re-queue takes milliseconds, so one that has not come
    within ``older_than_s`` never will. A trial that failed on its own (``ended`` says why) is
    not retried: that is a result.
    """
    retried = retried_numbers(trials)
    now = now or datetime.datetime.now()
    found = []
    for t in trials:
        if t.state != TrialState.FAIL or t.number in retried:
            continue
        ended = t.user_attrs.get("ended")
        if ended is not None and not str(ended).startswith(STOPPED):
            continue
        with quiet_experimental():
            spent = len(RetryHeartbeatStaleTrialCallback.retry_history(t))
        finished = t.datetime_complete or now
        if spent < max_retry and (now - finished).total_seconds() > older_than_s:
            found.append(t)
    return found


def recover_lost_trials(study: optuna.Study, max_retry: int, older_than_s: float) -> list[int]:
    """Fail the trials whose heartbeat stopped (Optuna queues their retries), then re-queue the
    failed trials that lost their retry (:func:`unretried`). Call it holding the budget lock, so
    that two workers never queue the same retry. Returns the numbers re-queued by the second step.
    """
    with quiet_experimental():
        optuna.storages.fail_stale_trials(study)
    lost = unretried(study.get_trials(deepcopy=False), max_retry, older_than_s)
    return [t.number for t in lost if requeue(study, t, max_retry)]
