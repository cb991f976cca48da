"""The study's trial budget: what counts as finished, and re-queueing a trial that was lost.

Finished means COMPLETE, PRUNED, or FAIL that is not being retried. A trial whose worker died or
was stopped is failed and re-queued with the same parameters (and so the same seed); its retry
takes its place in the budget.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import optuna
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.trial import TrialState

from hpo.quiet import quiet_experimental


@dataclass(frozen=True)
class BudgetCounts:
    finished: int
    running: int
    waiting: int
    complete: int
    pruned: int
    failed: int


def budget_counts(trials: Sequence[optuna.trial.FrozenTrial]) -> BudgetCounts:
    """Count a study's trials against its budget; a failed trial that has a retry does not count.

    Takes the trials, not the study, so a caller that also reads them fetches them once.
    """
    retried = {n for t in trials for n in t.system_attrs.get("retry_history", [])}
    states = [t.state for t in trials if not (t.state == TrialState.FAIL and t.number in retried)]
    complete, pruned = states.count(TrialState.COMPLETE), states.count(TrialState.PRUNED)
    failed = states.count(TrialState.FAIL)
    return BudgetCounts(finished=complete + pruned + failed,
                        running=states.count(TrialState.RUNNING),
                        waiting=states.count(TrialState.WAITING),
                        complete=complete, pruned=pruned, failed=failed)


def retry_trial(study: optuna.Study, trial: optuna.trial.FrozenTrial, max_retry: int) -> None:
    """Re-queue a failed trial with the same parameters (and so the same seed)."""
    with quiet_experimental():
        RetryHeartbeatStaleTrialCallback(max_retry=max_retry)(study, trial)
