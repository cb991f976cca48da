"""What a worker does next in a study group: the budget split, the next claim, the seed
validation's plan, and when the group is done.

Decided under the budget lock (:func:`decide`), from the group's studies (:mod:`hpo.group`). A
search study is open while its finished and running trials hold fewer slots than its share of
``budget.trials`` (:func:`kind_budgets`: equal shares, within one; an arm searched ``R`` times
has ``R`` studies, each its own share); the open study with the fewest
goes first, so kinds advance together. When every search study holds its share and has
finished, a per-kind group enqueues its seed validation once (:func:`validation_requests`), runs
it, and is done; a single-layout group is done at once.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from hpo.errors import UsageError
from hpo.group import search_plan, search_studies, validation_study_name
from hpo.requeue import unretried
from hpo.study_file import StudySpec, Validation
from hpo.trials import (
    KIND,
    SEED,
    VALIDATES,
    RetryPolicy,
    budget_counts,
    created_past,
    duplicate_retry,
    trial_seed,
)

#: Validation seeds start here (plus the study's seed), far above any search trial's seed
#: (``seed + trial number``), and skip any seed a search trial used.
VALIDATION_SEED_BASE = 1_000_000
#: Study user attribute of ``NAME.validation``: how many validation trials were enqueued.
ENQUEUED_ATTR = "validation_enqueued"
#: Study user attribute of ``NAME.validation``: the study file's values it was enqueued for
#: (:func:`validation_plan`).
PLAN_ATTR = "validation_plan"


def kind_budgets(total: int, kinds: Sequence[str]) -> dict[str, int]:
    """Split ``total`` search trials equally over ``kinds``; the first ``total % len(kinds)``
    kinds get one more, so counts differ by at most one."""
    if total < 0:
        raise ValueError(f"the trial budget must be >= 0, got {total}")
    if not kinds:
        raise ValueError("no generator kinds to split the budget over")
    share, extra = divmod(total, len(kinds))
    return {kind: share + (i < extra) for i, kind in enumerate(kinds)}


def next_search_kind(held: Mapping[str, int], budgets: Mapping[str, int]) -> str | None:
    """The key (kind or study) to pull the next search trial from, or ``None`` when every one
    holds its budget.

    ``held[key]`` counts its finished and running trials. The open key with the fewest goes
    first (ties: the order of ``budgets``), so a run stopped at any point holds counts within
    one of each other.
    """
    open_keys = [k for k in budgets if held.get(k, 0) < budgets[k]]
    if not open_keys:
        return None
    return min(open_keys, key=lambda k: (held.get(k, 0), list(budgets).index(k)))


@dataclass(frozen=True)
class ValidationRequest:
    """One re-training of a search trial's configuration on a fresh seed."""

    kind: str
    source_study: str
    source_trial: int
    source_value: float
    rank: int  # 1 = the best trial of its search
    params: dict[str, Any]
    seed: int
    search: int = 1  # which of the arm's searches (1-based) the source trial is from

    def user_attrs(self) -> dict[str, Any]:
        return {KIND: self.kind, SEED: self.seed,
                VALIDATES: {"study": self.source_study, "trial": self.source_trial,
                            "rank": self.rank, "search_value": self.source_value,
                            "arm": self.kind, "search": self.search}}


def validation_requests(search: Mapping[str, Sequence[FrozenTrial]],
                        source_studies: Mapping[str, str], *, top_k: int, seeds: int,
                        base_seed: int = 0,
                        arms: Mapping[str, tuple[str, int]] | None = None
                        ) -> list[ValidationRequest]:
    """The validation work: the ``top_k`` complete trials of each search, ``seeds`` fresh seeds
    each.

    ``search`` maps a key to a search's trials and ``source_studies`` that key to its study;
    ``arms`` maps it to ``(arm, search number)`` (default: the key is the arm, searched once),
    what each request records. Seeds run upwards from ``base_seed + VALIDATION_SEED_BASE``,
    skipping every seed a search trial of any search used; each (configuration, replicate) gets
    its own seed. Searches with fewer complete trials validate what they have.
    """
    if top_k < 1 or seeds < 1:
        raise ValueError(f"validation needs top_k >= 1 and seeds >= 1, got {top_k}, {seeds}")
    used = {s for trials in search.values() for t in trials if (s := trial_seed(t)) is not None}
    next_seed = base_seed + VALIDATION_SEED_BASE
    requests = []
    for key, trials in search.items():
        kind, number = arms[key] if arms is not None else (key, 1)
        done = sorted((t for t in trials if t.state == TrialState.COMPLETE),
                      key=lambda t: (t.value, t.number))
        for rank, t in enumerate(done[:top_k], start=1):
            for _ in range(seeds):
                while next_seed in used:
                    next_seed += 1
                requests.append(ValidationRequest(kind, source_studies[key], t.number,
                                                  float(t.value), rank, dict(t.params),
                                                  next_seed, number))
                used.add(next_seed)
    return requests


def enqueue_validation(study: optuna.Study, requests: Sequence[ValidationRequest]) -> int:
    """Enqueue the requests not yet in ``study`` (matched by seed); return how many were added.

    Call it under the budget lock: it reads, then writes.
    """
    present = {trial_seed(t) for t in study.get_trials(deepcopy=False)}
    added = 0
    for r in requests:
        if r.seed in present:
            continue
        study.enqueue_trial(r.params, user_attrs=r.user_attrs())
        added += 1
    return added


@dataclass(frozen=True)
class Work:
    """What a worker does next (decided under the budget lock).

    ``action`` is ``"search"`` (pull a trial of search study ``study``), ``"enqueue"`` (the
    search is over: enqueue the validation, then ask again), ``"validate"`` (pull a waiting
    trial of the validation ``study``), ``"wait"`` (others hold the remaining work) or
    ``"done"``.
    """

    action: str
    study: str | None = None


def next_work(budgets: Mapping[str, int], search: Mapping[str, Sequence[FrozenTrial]],
              validation: str | None, validation_trials: Sequence[FrozenTrial],
              enqueued: int | None, policy: RetryPolicy) -> Work:
    """The next piece of work of a study group.

    Parameters
    ----------
    budgets : mapping of search study name to int
        Each search study's share of the trial budget (:func:`study_budgets`).
    search : mapping of search study name to trials
        The trials of each search study.
    validation : str or None
        The validation study's name; None when the group validates nothing (a single-layout
        study, or ``validation: {top_k: 0}``).
    validation_trials : trials
        The trials of the validation study (empty if it has none).
    enqueued : int or None
        The validation study's :data:`ENQUEUED_ATTR`; ``None`` before the validation is enqueued.
    policy : RetryPolicy
        The study file's: a failed trial it runs again whose retry is not yet queued holds the
        group open (:func:`_unsettled`).
    """
    held = {k: budget_counts(search.get(k, [])).held for k in budgets}
    study = next_search_kind(held, budgets)
    if study is not None:
        return Work("search", study)
    if any(_unsettled(ts, policy) for ts in search.values()):
        return Work("wait")
    if validation is None:
        return Work("done")
    if enqueued is None:
        return Work("enqueue", validation)
    if any(t.state == TrialState.WAITING for t in validation_trials):
        return Work("validate", validation)
    if _unsettled(validation_trials, policy):
        return Work("wait")
    return Work("done")


def _unsettled(trials: Sequence[FrozenTrial], policy: RetryPolicy) -> bool:
    """A trial that may yet run again: running (it may fail and be retried), or failed with its
    retry not yet queued (its worker stopped, or could not take the budget lock: the next
    worker's recovery queues it, :func:`hpo.requeue.recover_lost_trials`). Workers that said
    "done" there left the failure in the study's count."""
    return any(not t.state.is_finished() for t in trials) or bool(
        unretried(trials, policy, older_than_s=-math.inf))


def study_budgets(spec: StudySpec) -> dict[str, int]:
    """Search study name -> its share of ``budget.trials``."""
    return kind_budgets(spec.budget.trials, list(search_studies(spec)))


def surplus(spec: StudySpec, study: str, number: int, user_attrs: Mapping[str, Any],
            trials: Sequence[FrozenTrial]) -> str | None:
    """Why trial ``number`` of ``study`` is surplus, never to be trained, else None: created
    past the group's plan (in a search study, past its share of the budget; in the validation
    study, any trial not enqueued by it), or a second retry of one trial
    (:func:`hpo.trials.duplicate_retry`).

    A worker checks this once its trial exists, outside the budget lock: a worker frozen while
    it held the lock (SIGSTOP, ``docker compose pause``) loses the lock after its lease and, when
    it wakes, may create a trial another worker already ran in its place; a database restart
    takes the lock from under its holder alike.
    """
    retried = duplicate_retry(number, trials)
    if retried is not None:
        return (f"a second retry of trial {retried} (two processes queued one: a database "
                "restart had taken the budget lock from under one of them)")
    budgets = study_budgets(spec)
    past = (created_past(budgets[study], number, trials) if study in budgets
            else VALIDATES not in user_attrs)
    return ("the budget was full when it was created (its worker woke after losing the budget "
            "lock to its lease)") if past else None


def validates(spec: StudySpec) -> bool:
    """Whether the study file's group runs a seed validation after its search."""
    v = spec.validation
    return spec.layout == "per-kind" and v.top_k > 0 and v.seeds > 0


def planned_trials(spec: StudySpec, studies: Mapping[str, optuna.Study]) -> int:
    """Trials the group will finish: the budget, plus the seed validation's (as enqueued, or
    as planned before it is)."""
    if not validates(spec):
        return spec.budget.trials
    enqueued = studies[validation_study_name(spec.name)].user_attrs.get(ENQUEUED_ATTR)
    if enqueued is not None:
        return spec.budget.trials + int(enqueued)
    v = spec.validation
    return spec.budget.trials + v.top_k * v.seeds * len(search_studies(spec))


def group_work(spec: StudySpec, studies: Mapping[str, optuna.Study],
               trials: Mapping[str, Sequence[FrozenTrial]] | None = None) -> Work:
    """The group's next :class:`Work` read from its ``studies`` (:func:`hpo.group.ensure_group`'s
    mapping), without acting on it; ``trials`` (study name -> its trials), when the caller has
    just read them, saves reading them again."""
    search = {name: trials_given_or_read(studies[name], trials)
              for name in search_studies(spec)}
    policy = RetryPolicy.from_study_file(spec.retry)
    if not validates(spec):
        return next_work(study_budgets(spec), search, None, [], None, policy)
    vstudy = studies[validation_study_name(spec.name)]
    attrs = vstudy.user_attrs
    # Under the budget lock too: a worker started before another enqueued the validation
    refuse_a_changed_validation_plan(spec, attrs, {})
    return next_work(study_budgets(spec), search, vstudy.study_name,
                     trials_given_or_read(vstudy, trials), attrs.get(ENQUEUED_ATTR), policy)


def trials_given_or_read(study: optuna.Study,
                         trials: Mapping[str, Sequence[FrozenTrial]] | None
                         ) -> Sequence[FrozenTrial]:
    """``study``'s trials from ``trials`` when the caller read them (an empty list included),
    else read from its storage."""
    if trials is not None and study.study_name in trials:
        return trials[study.study_name]
    return study.get_trials(deepcopy=False)


def decide(studies: Mapping[str, optuna.Study], spec: StudySpec,
           trials: Mapping[str, Sequence[FrozenTrial]] | None = None) -> Work:
    """The worker's next :class:`Work` for study file ``spec`` (``trials``: as
    :func:`group_work`).

    Call it under the budget lock. When the search is over and the validation not yet enqueued,
    it enqueues it here (once, recorded in :data:`ENQUEUED_ATTR`) and decides again.
    """
    work = group_work(spec, studies, trials)
    if work.action != "enqueue":
        return work
    plan = search_plan(spec)
    search = {name: trials_given_or_read(studies[name], trials) for name in plan}
    requests = validation_requests(search, {name: name for name in plan},
                                   top_k=spec.validation.top_k, seeds=spec.validation.seeds,
                                   base_seed=spec.seed,
                                   arms={name: (str(kind), r) for name, (kind, r) in plan.items()})
    vstudy = studies[validation_study_name(spec.name)]
    enqueue_validation(vstudy, requests)
    vstudy.set_user_attr(PLAN_ATTR, validation_plan(spec))
    vstudy.set_user_attr(ENQUEUED_ATTR, len(requests))
    return group_work(spec, studies)


def validation_plan(spec: StudySpec | Mapping[str, Any]) -> dict[str, Any]:
    """What the seed validation is enqueued from: the search budget and the validation section
    (of a spec, or of a study file as stored: a section it leaves out has the schema's
    defaults)."""
    data = spec.model_dump(mode="json") if isinstance(spec, StudySpec) else spec
    budget = data.get("budget") or {}
    validation = {**Validation().model_dump(), **(data.get("validation") or {})}
    return {"budget.trials": budget.get("trials"), "validation.top_k": validation["top_k"],
            "validation.seeds": validation["seeds"]}


def refuse_a_changed_validation_plan(spec: StudySpec, user_attrs: Mapping[str, Any],
                                     stored: Mapping[str, Any]) -> None:
    """:class:`UsageError` when the group's seed validation was enqueued (once, for good) from
    another budget or validation than ``spec`` states: a grown search's new trials would never
    be validated, and the report would compare the old winners as the best. ``user_attrs``:
    the validation study's; ``stored``: the study file it keeps, read where the plan was not
    recorded (a study enqueued before)."""
    planned = user_attrs.get(PLAN_ATTR) or (validation_plan(stored) if stored else None)
    if user_attrs.get(ENQUEUED_ATTR) is None or planned is None:
        return
    for key, value in validation_plan(spec).items():
        if planned.get(key) not in (None, value):
            raise UsageError(
                f"study {spec.name}'s seed validation was enqueued for {key} {planned[key]}, "
                f"not {value}, and is enqueued once: new search trials would never be "
                "validated and hpo report would compare the old winners; give the changed "
                "study file another name")
