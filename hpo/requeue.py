"""The one way an ended trial runs again: fail it if it still runs, then queue its retry.

Serves the worker (a trial it stopped, or one its retry policy repeats), the launcher (a dead
worker's trial), the recovery of trials that lost their retry and of trials no worker took (a
worker killed inside Optuna's ``ask``). Which trials retry, and how
often, is :class:`hpo.trials.RetryPolicy`; everything here goes through Optuna's public API:
``study.tell`` and ``RetryHeartbeatStaleTrialCallback`` (docs/design.md, "A trial's life").
"""

from __future__ import annotations

import copy
import datetime
from collections.abc import Sequence

import optuna
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.trial import FrozenTrial, TrialState

from hpo.quiet import quiet_experimental
from hpo.trials import MAX_STOPS, RetryPolicy, retried_numbers, unbegun, was_stopped


def requeue(study: optuna.Study, trial: FrozenTrial, policy: RetryPolicy) -> bool:
    """Fail ``trial`` if it still runs, and queue its retry with the same params (and seed).

    Whoever moves the trial to FAIL queues the retry, so a trial is re-queued exactly once: when
    another process finished or failed it first, this returns False and does nothing. A trial
    already FAIL (the worker's own ``optimize`` told it) is re-queued unless some trial already
    retries it. A trial whose outcome the policy does not retry (a lost trial, when ``lost`` is
    not among its outcomes) is failed and stays so; ``max_retries`` bounds the series' retries
    after faults, :data:`hpo.trials.MAX_STOPS` those after stops.

    Returns
    -------
    bool
        True when a retry was queued (or the policy's retries were already spent).
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
    latest = next(t for t in trials if t.number == trial.number)
    if not policy.retries(latest):
        return False
    if policy.runs_again(latest, trials):  # else its retries are spent: it counts
        with quiet_experimental():  # a copy: the callback appends to the trial's own history
            RetryHeartbeatStaleTrialCallback()(study, copy.deepcopy(latest))
    return True


def requeued_note(study: optuna.Study, trial: FrozenTrial, policy: RetryPolicy) -> str:
    """Re-queue ``trial``, just ended, as ``policy`` says; what the worker's line adds."""
    if trial.state != TrialState.FAIL or not policy.retries(trial):
        return ""
    trials = study.get_trials(deepcopy=False)
    spent = policy.spent(trial, trials)
    if not policy.runs_again(trial, trials):
        return (f"; stopped {MAX_STOPS + 1} times, so it counts" if was_stopped(trial)
                else f"; its {spent} retries are spent, so it counts")
    if not requeue(study, trial, policy):
        return ""
    if was_stopped(trial):
        return "; re-queued (a stop is not counted among its retries)"
    return f"; re-queued (retry {spent + 1} of at most {policy.max_retries})"


def unretried(trials: Sequence[FrozenTrial], policy: RetryPolicy, older_than_s: float,
              now: datetime.datetime | None = None) -> list[FrozenTrial]:
    """FAIL trials the policy retries that have no retry, with retries left, failed more than
    ``older_than_s`` seconds ago.

    Such a trial is what a process killed between a trial's FAIL and its re-queue leaves (the two
    are separate storage calls); its own re-queue takes milliseconds, so one that has not come
    within ``older_than_s`` never will.
    """
    retried = retried_numbers(trials)
    now = now or datetime.datetime.now()
    found = []
    for t in trials:
        if t.state != TrialState.FAIL or t.number in retried or not policy.retries(t):
            continue
        finished = t.datetime_complete or now
        if (policy.runs_again(t, trials)
                and (now - finished).total_seconds() > older_than_s):
            found.append(t)
    return found


def recover_lost_trials(study: optuna.Study, policy: RetryPolicy, older_than_s: float
                        ) -> list[int]:
    """Fail the trials whose heartbeat stopped (Optuna queues their retries when the policy
    retries LOST trials), then re-queue the failed trials that lost their retry
    (:func:`unretried`). Call it holding the budget lock, so that two workers never queue the
    same retry. Returns the numbers re-queued by the second step.
    """
    with quiet_experimental():
        optuna.storages.fail_stale_trials(study)
    lost = unretried(study.get_trials(deepcopy=False), policy, older_than_s)
    return [t.number for t in lost if requeue(study, t, policy)]


def recover_unbegun_trials(study: optuna.Study, policy: RetryPolicy, older_than_s: float
                           ) -> list[int]:
    """Fail and re-queue the trials no worker took (:func:`hpo.trials.unbegun`) that started more
    than ``older_than_s`` seconds ago. Call it holding the budget lock. Returns their numbers."""
    found = unbegun(study.get_trials(deepcopy=False), older_than_s)
    return [t.number for t in found if requeue(study, t, policy)]
