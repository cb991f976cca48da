"""The fair search: one Optuna study per generator kind, and one study of seed validations.

A study file ``NAME`` with kinds ``classical`` and ``quantum`` lives in storage as

    NAME.classical    search trials of that kind: its own TPE model, its own pruning population
    NAME.quantum      (the same, for quantum)
    NAME.validation   the top ``validation.top_k`` configurations of each kind re-trained on
                      ``validation.seeds`` fresh seeds, enqueued once the search budget is met

so a trial is only ever compared (sampled, pruned) against trials of its own kind, and
optuna-dashboard lists the three studies side by side. The total trial budget is split equally
between the kinds (counts within one of each other). The worker loop asks :func:`next_search_kind`
which study to pull from, and once it returns ``None`` enqueues the validation with
:func:`validation_requests` and :func:`enqueue_validation` (under the budget lock, once).

A study stored before this layout (one study ``NAME`` where TPE chose the kind) is still read,
split by each trial's ``generator_kind``; see :func:`load_group`. docs/verdict.md says why.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from hpo.quiet import quiet_experimental
from hpo.study_exists import create_or_load_study

__all__ = [
    "ENQUEUED_ATTR", "VALIDATION_SEED_BASE", "VALIDATION_SUFFIX", "StudyGroup", "ValidationRequest",
    "Work", "decide", "ensure_group", "group_study_names", "kind_spec", "next_work",
    "claimed_slots", "enqueue_validation", "kind_budgets", "load_group", "next_search_kind",
    "search_study_name", "set_objective_name", "validation_requests", "validation_study_name",
]

VALIDATION_SUFFIX = "validation"
#: Validation seeds start here (plus the study's seed), far above any search trial's seed
#: (``seed + trial number``), and skip any seed a search trial used.
VALIDATION_SEED_BASE = 1_000_000
#: Defaults of ``validation: {top_k, seeds}`` (see docs/verdict.md for why these).
DEFAULT_TOP_K = 3
DEFAULT_SEEDS = 5


def search_study_name(name: str, kind: str) -> str:
    """The Optuna study holding the search trials of generator ``kind``."""
    return f"{name}.{kind}"


def validation_study_name(name: str) -> str:
    """The Optuna study holding the seed-validation trials of every kind."""
    return f"{name}.{VALIDATION_SUFFIX}"


def kind_budgets(total: int, kinds: Sequence[str]) -> dict[str, int]:
    """Split ``total`` search trials equally over ``kinds``; the first ``total % len(kinds)``
    kinds get one more, so counts differ by at most one."""
    if total < 0:
        raise ValueError(f"the trial budget must be >= 0, got {total}")
    if not kinds:
        raise ValueError("no generator kinds to split the budget over")
    share, extra = divmod(total, len(kinds))
    return {kind: share + (i < extra) for i, kind in enumerate(kinds)}


def claimed_slots(trials: Iterable[FrozenTrial]) -> int:
    """Finished or running trials that hold a budget slot (a failed trial with a retry does not:
    its retry holds the slot)."""
    trials = list(trials)
    retried = {n for t in trials for n in retry_history(t)}
    return sum(1 for t in trials
               if t.state != TrialState.WAITING
               and not (t.state == TrialState.FAIL and t.number in retried))


def next_search_kind(claimed: Mapping[str, int], budgets: Mapping[str, int]) -> str | None:
    """The kind whose search study a worker should pull its next trial from, or ``None`` when
    every kind has claimed its budget.

    ``claimed[kind]`` counts the kind's finished and running trials. The open kind with the
    fewest claimed goes first (ties: the study file's order), so kinds advance together and a run
    stopped at any point holds counts within one of each other.
    """
    open_kinds = [k for k in budgets if claimed.get(k, 0) < budgets[k]]
    if not open_kinds:
        return None
    return min(open_kinds, key=lambda k: (claimed.get(k, 0), list(budgets).index(k)))


@dataclass(frozen=True)
class ValidationRequest:
    """One re-training of a search trial's configuration on a fresh seed."""

    kind: str
    source_study: str
    source_trial: int
    source_value: float
    rank: int  # 1 = the kind's best search trial
    params: dict[str, Any]
    seed: int

    def user_attrs(self) -> dict[str, Any]:
        return {"generator_kind": self.kind, "seed": self.seed,
                "validates": {"study": self.source_study, "trial": self.source_trial,
                              "rank": self.rank, "search_value": self.source_value}}


def retry_history(trial: FrozenTrial) -> list[int]:
    """Numbers of the trials this one retries (Optuna's public, experimental helper)."""
    with quiet_experimental():
        return list(optuna.storages.RetryHeartbeatStaleTrialCallback.retry_history(trial) or [])


def trial_seed(trial: FrozenTrial) -> int | None:
    seed = trial.user_attrs.get("seed")
    return int(seed) if seed is not None else None


def validation_requests(search: Mapping[str, Sequence[FrozenTrial]],
                        source_studies: Mapping[str, str], *, top_k: int, seeds: int,
                        base_seed: int = 0) -> list[ValidationRequest]:
    """The validation work: the ``top_k`` complete trials of each kind, ``seeds`` fresh seeds each.

    Seeds run upwards from ``base_seed + VALIDATION_SEED_BASE``, skipping every seed a search trial
    of any kind used; each (configuration, replicate) gets its own seed. Kinds with fewer complete
    trials validate what they have.
    """
    if top_k < 1 or seeds < 1:
        raise ValueError(f"validation needs top_k >= 1 and seeds >= 1, got {top_k}, {seeds}")
    used = {s for trials in search.values() for t in trials if (s := trial_seed(t)) is not None}
    next_seed = base_seed + VALIDATION_SEED_BASE
    requests = []
    for kind, trials in search.items():
        done = sorted((t for t in trials if t.state == TrialState.COMPLETE),
                      key=lambda t: (t.value, t.number))
        for rank, t in enumerate(done[:top_k], start=1):
            for _ in range(seeds):
                while next_seed in used:
                    next_seed += 1
                requests.append(ValidationRequest(kind, source_studies[kind], t.number,
                                                  float(t.value), rank, dict(t.params),
                                                  next_seed))
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


@dataclass
class StudyGroup:
    """The stored trials behind one study file, by role."""

    name: str
    layout: str  # "per-kind" or "single" (one study where the sampler chose the kind)
    search_studies: dict[str, str]  # kind -> Optuna study name
    search: dict[str, list[FrozenTrial]]
    validation_study: str | None = None
    validation: list[FrozenTrial] = field(default_factory=list)
    study_user_attrs: dict[str, Any] = field(default_factory=dict)

    @property
    def kinds(self) -> list[str]:
        return list(self.search)

    @property
    def study_names(self) -> list[str]:
        names = list(dict.fromkeys(self.search_studies.values()))
        return names + ([self.validation_study] if self.validation_study else [])


def load_group(storage: optuna.storages.BaseStorage | str, name: str) -> StudyGroup:
    """Read the studies of study file ``name``; ``KeyError`` when there is none.

    Per-kind layout when any ``NAME.<kind>`` study exists; else the single study ``NAME`` whose
    trials are split by their ``generator_kind`` attribute.
    """
    names = [s.study_name for s in optuna.get_all_study_summaries(storage,
                                                                  include_best_trial=False)]
    prefix = f"{name}."
    kind_studies = {n[len(prefix):]: n for n in names
                    if n.startswith(prefix) and n != validation_study_name(name)
                    and "." not in n[len(prefix):]}
    validation = validation_study_name(name) if validation_study_name(name) in names else None
    if kind_studies:
        search = {}
        attrs: dict[str, Any] = {}
        for kind, study_name in sorted(kind_studies.items(), key=_kind_order):
            study = optuna.load_study(study_name=study_name, storage=storage)
            search[kind] = study.get_trials(deepcopy=False)
            attrs = attrs or dict(study.user_attrs)
        layout = "per-kind"
    elif name in names:
        study = optuna.load_study(study_name=name, storage=storage)
        search = {}
        for t in study.get_trials(deepcopy=False):
            search.setdefault(t.user_attrs.get("generator_kind") or "?", []).append(t)
        search = dict(sorted(search.items(), key=_kind_order))
        kind_studies = {kind: name for kind in search}
        attrs = dict(study.user_attrs)
        layout = "single"
    else:
        raise KeyError(name)
    group = StudyGroup(name, layout, kind_studies, search, validation, study_user_attrs=attrs)
    if validation is not None:
        group.validation = optuna.load_study(study_name=validation,
                                             storage=storage).get_trials(deepcopy=False)
    return group


def _kind_order(item: tuple[str, Any]) -> tuple[int, str]:
    order = ("classical", "quantum")
    return (order.index(item[0]) if item[0] in order else len(order), item[0])


#: Study user attribute of ``NAME.validation``: how many validation trials were enqueued.
ENQUEUED_ATTR = "validation_enqueued"


@dataclass(frozen=True)
class Work:
    """What a worker does next (decided under the budget lock).

    ``action`` is ``"search"`` (pull a trial of ``study``, kind ``kind``), ``"enqueue"`` (the
    search is over: enqueue the validation, then ask again), ``"validate"`` (pull a waiting
    trial of the validation ``study``), ``"wait"`` (others hold the remaining work) or
    ``"done"``.
    """

    action: str
    study: str | None = None
    kind: str | None = None


def next_work(name: str, budgets: Mapping[str, int], search: Mapping[str, Sequence[FrozenTrial]],
              validation: Sequence[FrozenTrial], enqueued: int | None, *,
              validate: bool = True) -> Work:
    """The next piece of work of study group ``name``.

    Parameters
    ----------
    budgets : mapping of kind to int
        Search trials per kind (:func:`kind_budgets`).
    search : mapping of kind to trials
        The trials of each kind's search study.
    validation : trials
        The trials of the validation study (empty if it has none).
    enqueued : int or None
        The validation study's :data:`ENQUEUED_ATTR`; ``None`` before the validation is enqueued.
    validate : bool, default True
        False stops after the search (a study file with ``validation: {top_k: 0}``).
    """
    kind = next_search_kind({k: claimed_slots(search.get(k, [])) for k in budgets}, budgets)
    if kind is not None:
        return Work("search", search_study_name(name, kind), kind)
    if any(not t.state.is_finished() for ts in search.values() for t in ts):
        return Work("wait")  # the last search trials decide which configurations to validate
    if not validate:
        return Work("done")
    if enqueued is None:
        return Work("enqueue", validation_study_name(name))
    if any(t.state == TrialState.WAITING for t in validation):
        return Work("validate", validation_study_name(name))
    if any(t.state == TrialState.RUNNING for t in validation):
        return Work("wait")
    return Work("done")


def validation_settings(spec: Any) -> tuple[int, int]:
    """``(top_k, seeds)`` of a study file; the defaults when it has no ``validation`` section."""
    validation = getattr(spec, "validation", None)
    return (int(getattr(validation, "top_k", DEFAULT_TOP_K)),
            int(getattr(validation, "seeds", DEFAULT_SEEDS)))


def kind_spec(spec: Any, kind: str) -> Any:
    """The study file restricted to generator ``kind``: what that kind's search study samples
    (no ``generator`` parameter: the study is the kind)."""
    search = spec.search.model_copy(update={"generators": {kind: spec.search.generators[kind]}})
    return spec.model_copy(update={"search": search})


def group_study_names(spec: Any) -> list[str]:
    """The Optuna studies of a per-kind study file: each kind's, then the validation study."""
    return ([search_study_name(spec.name, k) for k in spec.search.generators]
            + [validation_study_name(spec.name)])


def ensure_group(storage: optuna.storages.BaseStorage, spec: Any, *,
                 sampler: Any = None, pruner: Any = None, metric: str | None = None
                 ) -> dict[str, optuna.Study]:
    """Create (or load) the group's studies: one per kind, and the validation study.

    Call it under the init lock. ``sampler()`` and ``pruner()`` make each search study's own
    (a fresh object per study, so no model is shared); the validation study never prunes. Each
    study carries the study file as its ``study_file`` user attribute and, given ``metric``,
    that name for its objective (what the dashboard's plots show).
    """
    studies = {}
    for study_name in group_study_names(spec):
        search = study_name != validation_study_name(spec.name)
        study = create_or_load_study(
            study_name=study_name, storage=storage, direction="minimize",
            sampler=sampler() if (sampler and search) else None,
            pruner=(pruner() if pruner else None) if search else optuna.pruners.NopPruner())
        if "study_file" not in study.user_attrs:
            study.set_user_attr("study_file", spec.model_dump(mode="json"))
        if metric is not None:
            set_objective_name(study, metric)
        studies[study_name] = study
    return studies


def set_objective_name(study: optuna.Study, metric: str) -> None:
    """Name ``study``'s objective ``metric`` (what the dashboard's plots and tables show); a
    study already so named is not written again."""
    if study.metric_names != [metric]:
        with quiet_experimental():
            study.set_metric_names([metric])


def decide(studies: Mapping[str, optuna.Study], spec: Any) -> Work:
    """The worker's next :class:`Work` for study file ``spec``, from its group's ``studies``
    (:func:`ensure_group`'s mapping).

    Call it under the budget lock. When the search is over and the validation not yet enqueued,
    it enqueues it here (once, recorded in :data:`ENQUEUED_ATTR`) and decides again.
    """
    kinds = list(spec.search.generators)
    budgets = kind_budgets(spec.budget.trials, kinds)
    search = {k: studies[search_study_name(spec.name, k)].get_trials(deepcopy=False)
              for k in kinds}
    vstudy = studies[validation_study_name(spec.name)]
    top_k, seeds = validation_settings(spec)
    enqueued = vstudy.user_attrs.get(ENQUEUED_ATTR)
    work = next_work(spec.name, budgets, search, vstudy.get_trials(deepcopy=False), enqueued,
                     validate=top_k > 0 and seeds > 0)
    if work.action != "enqueue":
        return work
    requests = validation_requests(
        search, {k: search_study_name(spec.name, k) for k in kinds}, top_k=top_k, seeds=seeds,
        base_seed=spec.seed)
    enqueue_validation(vstudy, requests)
    vstudy.set_user_attr(ENQUEUED_ATTR, len(requests))
    return next_work(spec.name, budgets, search, vstudy.get_trials(deepcopy=False),
                     len(requests))
