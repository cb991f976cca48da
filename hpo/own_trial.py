"""A worker's own trial at an end that is not the plain one: each re-queue of a FAIL under the
budget lock, a trial whose record a storage fault cut off, a trial whose start it cut off.

Two processes may come to the same FAIL without its retry: the worker that judged the trial
stale (Optuna's callback, which fails it and then queues its retry) or that recovers a retry
lost a grace period ago (:func:`hpo.requeue.recover_lost_trials`), both holding the budget lock,
and the trial's own worker. The own worker re-queues under that lock too: it looked between a
stale judge's FAIL and its retry in CI (a database restart) and re-queued the trial twice; one
frozen between its tell and its re-queue for a grace period would too
(docs/design.md, "A trial's life").
"""

from __future__ import annotations

import datetime
import math
from collections.abc import Callable
from contextlib import suppress

import optuna
from optuna.trial import FrozenTrial, TrialState

from hpo.errors import StorageError
from hpo.locks import ProcessLock
from hpo.requeue import requeue, requeued_note
from hpo.trials import RetryPolicy, retried_numbers, unbegun

LEFT_NOTE = "; its retry is left to the next worker (the budget lock could not be had)"
#: Seconds a worker whose trial just failed waits for the budget lock: it is held for
#: milliseconds at a time, and a stopped worker is to end within seconds.
LOCK_WAIT_S = 5.0


def requeued_note_locked(study: optuna.Study, trial: FrozenTrial, policy: RetryPolicy,
                         lock: ProcessLock) -> str:
    """:func:`hpo.requeue.requeued_note` for the worker's own trial just ended, holding the
    budget lock when the trial failed. Not given up on a stop (a stopped trial is re-queued as
    its worker stops); a lock not had within :data:`LOCK_WAIT_S` (or the lock's lease, if
    shorter: a holder frozen, a server gone) leaves the retry to the next worker's recovery."""
    if trial.state != TrialState.FAIL or not policy.retries(trial):
        return requeued_note(study, trial, policy)
    try:
        lock.acquire(wait_s=min(lock.lease_s, LOCK_WAIT_S))
    except StorageError:
        return LEFT_NOTE
    try:
        return requeued_note(study, trial, policy)
    finally:
        lock.release()


def fail_unbegun(study: optuna.Study, policy: RetryPolicy, since: datetime.datetime,
                 say: Callable[[str], None]) -> None:
    """Fail and re-queue the trial a fault inside Optuna's ``study.ask()`` left RUNNING.

    ``ask`` creates the trial (or takes it from the queue) and then reads the study for the
    sampler; a fault there (a database restart) ends ``optimize`` before the trial's heartbeat
    starts, and Optuna never judges a trial without a heartbeat stale: it would stay RUNNING,
    holding its slot, and the study would never end. This worker has held the budget lock since
    ``since``, so every unmarked trial started since then is the one it lost (a marked one was
    taken: by another worker, should this one have lost the lock to its lease meanwhile).
    """
    running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    for trial in unbegun(running, older_than_s=-math.inf):
        if trial.datetime_start >= since:
            requeue(study, trial, policy)
            say(f"trial {trial.number} was created but not begun (the fault cut off its "
                "start); re-queued")


def recover_cut_off(study: optuna.Study, policy: RetryPolicy, number: int,
                    ended: list[tuple[TrialState, float | None]], cause: str,
                    say: Callable[[str], None], take_lock: Callable[[], bool]) -> None:
    """After ``optimize`` failed to record trial ``number``: tell its end again when the
    objective ended (the fault cut off Optuna's tell: a trained trial keeps its result); if
    another worker already judged it stale (a late heartbeat) its retry exists; else re-queue
    it (a FAIL that Optuna's cut-off tell did record included). It re-queues under the budget
    lock (``take_lock``); stopping (False), a FAIL is left to the next worker's recovery, and
    a RUNNING trial is still failed and re-queued (the tell decides which process does it)."""
    trial = _trial_numbered(study, number)
    if trial.state == TrialState.RUNNING and ended:
        state, value = ended[0]
        with suppress(ValueError, optuna.exceptions.UpdateFinishedTrialError):  # judged stale
            study.tell(number, value, state=state)
            say(f"trial {number}: {cause} cut off the record of its end; told again: "
                f"{state.name.lower()}")
            return
        trial = _trial_numbered(study, number)
    if trial.state == TrialState.RUNNING:
        take_lock()
        requeued = requeue(study, trial, policy)
        say(f"trial {number} was lost to a storage fault ({cause})"
            + ("; re-queued" if requeued else ""))
    elif trial.state != TrialState.FAIL:
        say(f"trial {number}: its end was recorded before {cause}")
    elif not policy.retries(trial):
        say(f"trial {number}: its failure was recorded before {cause}")
    elif not take_lock():
        say(f"trial {number} failed ({cause}); its retry is left to the next worker")
    elif number in retried_numbers(study.get_trials(deepcopy=False)):
        say(f"trial {number} was judged stale while it ran here (late heartbeat) and was "
            f"re-queued by another worker; its result is dropped")
    else:
        requeued = requeue(study, trial, policy)
        say(f"trial {number}: its failure was recorded before {cause}"
            + ("; re-queued" if requeued else ""))


def _trial_numbered(study: optuna.Study, number: int) -> FrozenTrial:
    return next(t for t in study.get_trials(deepcopy=False) if t.number == number)
