"""The trial record: what a trial stores about itself, how it ended, what counts against the
budget, and which ended trials run again.

This module is the one owner of that record (docs/design.md, "A trial's life"). Others write a
trial's outcome with :func:`mark_ended` and read it with :func:`outcome_of`; no other module
parses the ``ended`` line, which is for people (the dashboard, the worker log).

A trial ends in one :class:`Outcome`. COMPLETE and PRUNED are Optuna's states; a FAIL says why in
its ``outcome`` attribute: DIVERGED (non-finite training, a property of the hyperparameters),
FAILED (an error of code or machine), STOPPED (its worker was told to stop), LOST (its process
died or its heartbeat went stale, and another process failed it, so it wrote no outcome; or a
dropped database connection cut off one of its storage calls) or SURPLUS (created past the
budget by a worker that woke from a freeze after its budget lock's lease ran out: ended
untrained, it holds no slot). Which of those run again, and how often, is the study file's
``retry`` section (:class:`RetryPolicy`). A failed trial that has a retry does not count against
the budget: its retry holds the slot (:func:`budget_counts`).
"""

from __future__ import annotations

import datetime
import enum
import os
import socket
from collections.abc import Callable, Iterable, Sequence
from dataclasses import astuple, dataclass

import optuna
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.trial import FrozenTrial, TrialState

from hpo.quiet import quiet_experimental
from hpo.study_file import Retry

# User-attribute keys of the record that more than one module reads.
OUTCOME = "outcome"
ENDED = "ended"  # one line for people: "pruned at step 500", "diverged: ...", "failed: ..."
SEED = "seed"
KIND = "generator_kind"
WORKER = "worker"
WORKER_PROCESS = "worker_process"  # host:pid-namespace:pid, for the launcher's orphan check
VALIDATES = "validates"  # a seed validation: {study, trial, rank, search_value, arm, search}
SIGMA = "sigma"
SAMPLES_PNG = "samples_png"  # the artifact id of the trial's final samples over the target
#: Why an artifact written after training (the picture, the score details) is missing: a full
#: or read-only artifact store costs those, not the trained result.
ARTIFACT_ERROR = "artifact_error"
BEGUN = "begun"  # the trial's own number, written by the worker that takes it (see mark_begun)

MAX_ENDED = 500  # characters of an error kept in ``ended``


class Outcome(enum.StrEnum):
    """How a trial ended; the value is what the ``outcome`` attribute and study files say."""

    COMPLETE = "complete"
    PRUNED = "pruned"
    DIVERGED = "diverged"
    FAILED = "failed"
    STOPPED = "stopped"
    LOST = "lost"
    SURPLUS = "surplus"


# The ``ended`` lines written before trials stored an ``outcome`` (the published journals hold
# them; a stopped trial's said "interrupted: worker stopped (why); re-queued"): read here alone.
_LEGACY_PREFIXES = (("interrupted: worker stopped", Outcome.STOPPED),
                    ("diverged", Outcome.DIVERGED), ("failed: ", Outcome.FAILED))


def mark_ended(trial: optuna.Trial, outcome: Outcome, detail: str = "") -> None:
    """Record how ``trial`` ends: its ``outcome`` and the ``ended`` line that people read.

    ``detail`` is the step of a pruned trial, the reason of a divergence, the error of a
    failure (``Type: message``) or why the worker stopped.
    """
    if outcome is Outcome.COMPLETE:
        line = "complete"
    elif outcome is Outcome.PRUNED:
        line = f"pruned at step {detail}"
    elif outcome is Outcome.STOPPED:
        line = "interrupted: worker stopped" + (f" ({detail})" if detail else "")
    else:
        line = f"{outcome.value}: {detail}"[:MAX_ENDED]
    trial.set_user_attr(OUTCOME, outcome.value)
    trial.set_user_attr(ENDED, line)


def mark_begun(trial: optuna.Trial) -> None:
    """Record that a worker took ``trial``, before it lets the budget lock go. The mark is the
    trial's own number, not a flag: a retry inherits its original's attributes."""
    trial.set_user_attr(BEGUN, trial.number)


def is_begun(trial: FrozenTrial) -> bool:
    """Whether a worker took ``trial`` (:func:`mark_begun`): its own number, not an inherited."""
    return trial.user_attrs.get(BEGUN) == trial.number


def unbegun(trials: Iterable[FrozenTrial], older_than_s: float,
            now: datetime.datetime | None = None) -> list[FrozenTrial]:
    """RUNNING trials that no worker took, started more than ``older_than_s`` seconds ago.

    What a worker killed (or cut off by a fault) inside Optuna's ``ask`` leaves: ``ask`` creates
    the trial, or takes a retry from the queue, and reads the study for the sampler before the
    trial's heartbeat starts, so Optuna never judges such a trial stale. A worker marks its
    trial (:func:`mark_begun`) before it releases the budget lock, so a process holding the lock
    finds a trial unmarked only when its worker is gone or frozen past its lease.
    """
    now = now or datetime.datetime.now()
    return [t for t in trials
            if t.state == TrialState.RUNNING and not is_begun(t)
            and t.datetime_start is not None
            and (now - t.datetime_start).total_seconds() > older_than_s]


def this_process() -> str:
    """``host:pidns:pid``, what :data:`WORKER_PROCESS` records: a PID means something only in
    its PID namespace, and a container on the host network shares the host's name."""
    return f"{socket.gethostname()}:{_pid_namespace()}:{os.getpid()}"


def local_pid(recorded: str) -> int | None:
    """The PID in a :data:`WORKER_PROCESS` record if that process would be this host's and this
    PID namespace's, else None (another machine, or a container's worker: not ours to judge).
    Records of the older ``host:pid`` form are judged by the host alone."""
    parts = str(recorded).split(":")
    if len(parts) == 2:
        parts.insert(1, _pid_namespace())
    if len(parts) != 3 or not parts[2].isdigit():
        return None
    host, namespace, pid = parts
    return int(pid) if (host, namespace) == (socket.gethostname(), _pid_namespace()) else None


def _pid_namespace() -> str:
    try:
        return os.readlink("/proc/self/ns/pid").partition("[")[2].rstrip("]") or "?"
    except OSError:
        return "?"  # no /proc: every process of this host is taken to share one namespace


def begin(trial: optuna.Trial) -> None:
    """Clear the outcome a retry inherited from the trial it repeats (Optuna copies the user
    attributes), so that a retry lost in its turn reads LOST, not its predecessor's outcome."""
    if trial.user_attrs.get(OUTCOME) is not None or trial.user_attrs.get(ENDED) is not None:
        trial.set_user_attr(OUTCOME, None)
        trial.set_user_attr(ENDED, None)


def outcome_of(trial: FrozenTrial) -> Outcome | None:
    """How ``trial`` ended; None while it is RUNNING or WAITING."""
    if trial.state == TrialState.COMPLETE:
        return Outcome.COMPLETE
    if trial.state == TrialState.PRUNED:
        return Outcome.PRUNED
    if trial.state != TrialState.FAIL:
        return None
    stored = trial.user_attrs.get(OUTCOME)
    if stored in (Outcome.COMPLETE, Outcome.PRUNED):  # written, then its tell never came:
        return Outcome.LOST  # its process died or it was judged stale before telling
    if stored in Outcome.__members__.values():
        return Outcome(stored)
    ended = trial.user_attrs.get(ENDED)
    if ended is None:
        return Outcome.LOST  # failed by another process: a dead worker, a stale heartbeat
    return next((o for prefix, o in _LEGACY_PREFIXES if str(ended).startswith(prefix)),
                Outcome.FAILED)


def error_of(trial: FrozenTrial) -> str | None:
    """The error a FAILED trial recorded (``Type: message``), else None."""
    if outcome_of(trial) is not Outcome.FAILED:
        return None
    return str(trial.user_attrs.get(ENDED, "")).removeprefix("failed: ")


def ended_line(trial: FrozenTrial) -> str:
    """The ``ended`` line, or the state's name for a trial that has none."""
    return str(trial.user_attrs.get(ENDED) or trial.state.name.lower())


@dataclass(frozen=True)
class RetryPolicy:
    """Which ended trials run again (same parameters, same seed) and how many times.

    Made from the study file's ``retry`` section (:meth:`from_study_file`; its defaults: a
    trial whose worker was stopped or lost runs again, at most 3 times). A retry keeps its seed,
    so retrying DIVERGED or FAILED helps only where the outcome does not follow from the seed
    (a machine that ran out of memory, a thread race).
    """

    outcomes: frozenset[Outcome]
    max_retries: int

    @classmethod
    def from_study_file(cls, retry: Retry | None = None) -> RetryPolicy:
        """The policy a study file's ``retry`` section states (its defaults when None)."""
        retry = retry or Retry()
        return cls(frozenset(Outcome(o) for o in retry.outcomes), retry.max_retries)

    def retries(self, trial: FrozenTrial) -> bool:
        """Whether ``trial``'s outcome is one this policy runs again (retries left or not)."""
        return outcome_of(trial) in self.outcomes

    def spent(self, trial: FrozenTrial, trials: Sequence[FrozenTrial]) -> int:
        """Retries already spent on ``trial``'s series (``trials``: its study's). A retry after
        a stop is not one (:func:`was_stopped`): the worker was stopped (Ctrl-C, ``docker
        compose stop``), nothing about the trial, and four stops of a long run used to lose its
        configuration."""
        return len(retry_history(trial)) - self._stops(trial, trials)

    def runs_again(self, trial: FrozenTrial, trials: Sequence[FrozenTrial]) -> bool:
        """Whether ``trial`` (ended) is to run again: an outcome this policy retries, and
        retries left (for a stop, stops left: :data:`MAX_STOPS`)."""
        if not self.retries(trial):
            return False
        if was_stopped(trial):
            return self._stops(trial, trials) < MAX_STOPS
        return self.spent(trial, trials) < self.max_retries

    @staticmethod
    def _stops(trial: FrozenTrial, trials: Sequence[FrozenTrial]) -> int:
        by_number = {t.number: t for t in trials}
        return sum(1 for n in retry_history(trial) if n in by_number
                   and was_stopped(by_number[n]))

    def stale_trial_callback(self) -> Callable[[optuna.Study, FrozenTrial], None] | None:
        """The callback for trials failed by a stale heartbeat (LOST), if those retry: Optuna's
        retry where :meth:`runs_again` says (a surplus trial judged stale is not retried)."""
        if Outcome.LOST not in self.outcomes:
            return None

        def retry_lost(study: optuna.Study, trial: FrozenTrial) -> None:
            if self.runs_again(trial, study.get_trials(deepcopy=False)):
                with quiet_experimental():
                    RetryHeartbeatStaleTrialCallback()(study, trial)
        return retry_lost


#: Stops a trial's series may take beyond its retries: a stop is no fault of the trial, but one
#: on a schedule shorter than the trial (a cron timeout, a batch walltime) would repeat forever.
MAX_STOPS = 10


def was_stopped(trial: FrozenTrial) -> bool:
    """Whether ``trial`` ended because its worker was stopped. A retry that never began
    inherits its original's outcome (Optuna copies the user attributes): it was not stopped."""
    return outcome_of(trial) is Outcome.STOPPED and is_begun(trial)


def retry_history(trial: FrozenTrial) -> list[int]:
    """Numbers of the trials this one retries, oldest first (Optuna's experimental helper)."""
    with quiet_experimental():
        return list(RetryHeartbeatStaleTrialCallback.retry_history(trial) or [])


def retried_numbers(trials: Iterable[FrozenTrial]) -> set[int]:
    """Numbers of the trials that some trial of ``trials`` retries."""
    return {n for t in trials for n in retry_history(t)}


def original_number(trial: FrozenTrial) -> int:
    """The number of the first trial of ``trial``'s retry series (its own when not a retry)."""
    history = retry_history(trial)
    return history[0] if history else trial.number


def trial_seed(trial: FrozenTrial) -> int | None:
    """The training seed a trial recorded, if any."""
    seed = trial.user_attrs.get(SEED)
    return int(seed) if seed is not None else None


@dataclass(frozen=True)
class BudgetCounts:
    """A study's trials as the budget sees them (a failed trial with a retry is not counted)."""

    finished: int = 0
    running: int = 0
    waiting: int = 0
    complete: int = 0
    pruned: int = 0
    failed: int = 0
    retries: int = 0  # trials that retry another (finished or not)

    def __add__(self, other: BudgetCounts) -> BudgetCounts:
        """The counts of two studies together (a study group's)."""
        return BudgetCounts(*(a + b for a, b in zip(astuple(self), astuple(other), strict=True)))

    @property
    def held(self) -> int:
        """Slots held now: finished or running."""
        return self.finished + self.running

    @property
    def claimed(self) -> int:
        """Slots taken: finished, running, or queued to run."""
        return self.held + self.waiting


def counted(trials: Sequence[FrozenTrial]) -> list[FrozenTrial]:
    """The trials that count against the budget: all but the failed trials that were retried
    and the surplus ones."""
    retried = retried_numbers(trials)
    return [t for t in trials if not (t.state == TrialState.FAIL and (
        t.number in retried or t.user_attrs.get(OUTCOME) == Outcome.SURPLUS))]


def created_past(budget: int, number: int, trials: Sequence[FrozenTrial]) -> bool:
    """Whether trial ``number`` found ``budget`` slots already held by earlier trials (finished or
    running) when it was created: a surplus trial, never to be trained.

    Trial numbers follow the order of creation, so of two trials racing for the last slot the
    later one is the surplus, whichever process looks first.
    """
    earlier = [t for t in counted(trials) if t.number < number
               and (t.state.is_finished() or t.state == TrialState.RUNNING)]
    return len(earlier) >= budget


def duplicate_retry(number: int, trials: Sequence[FrozenTrial]) -> int | None:
    """The trial that trial ``number`` retries when an earlier trial already retries it, else
    None: a second retry, never to be trained.

    Each retry is queued under the budget lock, but a database restart ends the session that
    holds it while its holder goes on: two processes may then queue one retry each. Of the two
    the later by number is the duplicate, whichever process looks first.
    """
    this = next((t for t in trials if t.number == number), None)
    parent = retry_history(this)[-1:] if this is not None else []
    if not parent:
        return None
    earlier = any(t.number < number and retry_history(t)[-1:] == parent for t in trials)
    return parent[0] if earlier else None


def budget_counts(trials: Sequence[FrozenTrial]) -> BudgetCounts:
    """Count a study's trials against its budget: the one definition of what a slot is.

    Takes the trials, not the study, so a caller that also reads them fetches them once.
    """
    states = [t.state for t in counted(trials)]
    complete, pruned = states.count(TrialState.COMPLETE), states.count(TrialState.PRUNED)
    failed = states.count(TrialState.FAIL)
    return BudgetCounts(finished=complete + pruned + failed,
                        running=states.count(TrialState.RUNNING),
                        waiting=states.count(TrialState.WAITING),
                        complete=complete, pruned=pruned, failed=failed,
                        retries=sum(1 for t in trials if retry_history(t)))
