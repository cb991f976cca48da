"""A systematic error: the first trials of a generator kind all failed the same way.

A study whose every trial fails for one reason (a device that cannot run the circuit, a size the
machine cannot hold) would otherwise spend its whole budget on failures and end "successfully".
Workers check :func:`systematic_failure` before they claim a trial and stop, naming the error.
"""

from __future__ import annotations

from collections.abc import Sequence

import optuna
from optuna.trial import TrialState

from hpo.trials import KIND, error_of, retried_numbers

FIRST_TRIALS = 3  # this many failures, the first of their kind and all alike, stop the study


def systematic_failure(trials: Sequence[optuna.trial.FrozenTrial],
                       first: int = FIRST_TRIALS) -> str | None:
    """One line naming the error if the first ``first`` finished trials of some generator kind
    all failed with the same error; else None. Retried trials (re-queued after their worker died)
    are not counted."""
    retried = retried_numbers(trials)
    finished: dict[str, list[optuna.trial.FrozenTrial]] = {}
    for t in sorted(trials, key=lambda t: t.number):
        if t.state.is_finished() and t.number not in retried:
            # Interrupted (a stopped or killed worker) and diverged trials (a property of the
            # hyperparameters) say nothing about the code or the machine.
            if t.state == TrialState.FAIL and error_of(t) is None:
                continue
            finished.setdefault(str(t.user_attrs.get(KIND, "?")), []).append(t)
    for kind, done in sorted(finished.items()):
        errors = {error_of(t) for t in done[:first]}
        if len(done) >= first and len(errors) == 1 and None not in errors:
            numbers = ", ".join(str(t.number) for t in done[:first])
            return (f"study stopped: its first {first} {kind} trials ({numbers}) all failed "
                    f"with {errors.pop()[:300]}")
    return None
