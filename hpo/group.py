"""A study file's Optuna studies, named and read as one group.

A per-kind study file ``NAME`` with arms ``classical`` and ``quantum`` lives in storage as

    NAME.classical    search trials of that arm: its own TPE model, its own pruning population
    NAME.quantum      (the same, for quantum)
    NAME.validation   the top ``validation.top_k`` configurations of each arm re-trained on
                      ``validation.seeds`` fresh seeds, enqueued once the search budget is met

so a trial is only ever compared (sampled, pruned) against trials of its own kind, and
optuna-dashboard lists the three studies side by side. A study file with more arms (``hybrid``,
``control``, ...) has one search study ``NAME.<arm>`` per arm, listed in the file's order. An arm
is what the code calls a kind (the attribute ``generator_kind``, :class:`StudyGroup`'s
``kinds``); the model kind it trains is its ``generator:`` (:func:`hpo.study_file.arm_kind`).
A study file with ``searches: R`` (R > 1) searches each arm R times independently: the search
studies are ``NAME.<arm>.s1`` .. ``NAME.<arm>.sR`` (arm by arm, in the file's order), search
``r`` with the file's sampler and trial seeds offset by ``(r - 1) * SEARCH_SEED_STRIDE``
(:func:`search_spec`); with R = 1 the one search is ``NAME.<arm>`` with the file's seeds, as
before. A single-layout study file is a group of one: the study ``NAME``, where the sampler
chooses the kind, and no validation. What a worker does next in a group is :mod:`hpo.schedule`'s;
docs/verdict.md says why the layout is so.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import optuna
from optuna.trial import FrozenTrial

from hpo.errors import UsageError
from hpo.quiet import quiet_experimental
from hpo.stored_study_file import keep_study_file, study_file_of
from hpo.study_exists import create_or_load_study
from hpo.study_file import SEARCH_SEED_STRIDE, StudySpec
from hpo.trials import KIND, VALIDATES

VALIDATION_SUFFIX = "validation"
_KIND_ORDER = ("classical", "quantum")


def search_study_name(name: str, kind: str, search: int = 1, searches: int = 1) -> str:
    """The Optuna study holding search ``search`` (1-based) of ``searches`` of arm ``kind``:
    ``NAME.<kind>`` when the arm is searched once, else ``NAME.<kind>.s<search>``."""
    if not 1 <= search <= searches:
        raise ValueError(f"search must be 1 .. {searches}, got {search}")
    return f"{name}.{kind}" if searches == 1 else f"{name}.{kind}.s{search}"


def parse_search_part(part: str) -> tuple[str, int] | None:
    """``(arm, search)`` of the part of a search study's name after ``NAME.``: ``"quantum"``
    is ``("quantum", 1)``, ``"quantum.s2"`` is ``("quantum", 2)``; ``None`` for anything else
    (``"validation"`` included)."""
    arm, dot, tail = part.partition(".")
    if not arm or arm == VALIDATION_SUFFIX:
        return None
    if not dot:
        return arm, 1
    if tail[:1] == "s" and tail[1:].isdigit() and int(tail[1:]) >= 1 and tail[1:2] != "0":
        return arm, int(tail[1:])
    return None


def search_offset(search: int) -> int:
    """How far search ``search`` (1-based) moves the file's trial and sampler seeds: 0 for the
    first, so a file searched once keeps its seeds."""
    return (search - 1) * SEARCH_SEED_STRIDE


def search_spec(spec: StudySpec, kind: str | None, search: int = 1) -> StudySpec:
    """What search ``search`` of arm ``kind`` runs: :func:`kind_spec`, its ``seed`` (the base of
    its trial seeds) and ``sampler.seed`` offset by :func:`search_offset`; the last
    ``random_searches`` of an arm sample at random (:func:`is_random_search`)."""
    out = kind_spec(spec, kind)
    offset = search_offset(search)
    random = is_random_search(spec.searches, spec.random_searches, search)
    if offset == 0 and not random:
        return out
    update: dict[str, Any] = {"seed": out.sampler.seed + offset}
    if random:
        update["kind"] = "random"
    sampler = out.sampler.model_copy(update=update)
    return out.model_copy(update={"seed": out.seed + offset, "sampler": sampler})


def is_random_search(searches: int, random_searches: int, search: int) -> bool:
    """Whether search ``search`` of ``searches`` is one of the last ``random_searches``."""
    return search > searches - random_searches


def validation_study_name(name: str) -> str:
    """The Optuna study holding the seed-validation trials of every kind."""
    return f"{name}.{VALIDATION_SUFFIX}"


def search_studies(spec: StudySpec) -> dict[str, str | None]:
    """Search study name -> the generator kind (arm) it samples (``None``: the sampler picks);
    an arm's searches in order, arm by arm."""
    return {name: kind for name, (kind, _) in search_plan(spec).items()}


def search_plan(spec: StudySpec) -> dict[str, tuple[str | None, int]]:
    """Search study name -> ``(arm, search)``: the arm (``None``: the sampler picks) and the
    search's number, 1 .. ``searches``."""
    if spec.layout != "per-kind":
        return {spec.name: (None, 1)}
    return {search_study_name(spec.name, k, r, spec.searches): (k, r)
            for k in spec.search.generators for r in range(1, spec.searches + 1)}


def group_study_names(spec: StudySpec) -> list[str]:
    """The Optuna studies of a study file: its search studies, then (per-kind) the validation."""
    names = list(search_studies(spec))
    return names + ([validation_study_name(spec.name)] if spec.layout == "per-kind" else [])


def kind_spec(spec: StudySpec, kind: str | None) -> StudySpec:
    """The study file restricted to generator ``kind``: what that kind's search study samples
    (no ``generator`` parameter: the study is the kind). ``None``: the whole study file."""
    if kind is None:
        return spec
    search = spec.search.model_copy(update={"generators": {kind: spec.search.generators[kind]}})
    return spec.model_copy(update={"search": search})


def ensure_group(storage: optuna.storages.BaseStorage, spec: StudySpec, *,
                 sampler: Callable[[], Any] | None = None,
                 pruner: Callable[[], Any] | None = None, metric: str | None = None
                 ) -> dict[str, optuna.Study]:
    """Create (or load) the group's studies (:func:`group_study_names`), in that order.

    Call it under the init lock. ``sampler()`` and ``pruner()`` make each search study's own
    (a fresh object per study, so no model is shared); the validation study never prunes. Each
    study carries the study file as its ``study_file`` user attribute and, given ``metric``,
    that name for its objective (what the dashboard's plots show). A study that exists is
    loaded, never created again (:mod:`hpo.study_exists`).

    The study file is kept as :func:`hpo.stored_study_file.keep_study_file` says.
    """
    studies = {}
    search = search_studies(spec)
    for study_name in group_study_names(spec):
        searching = study_name in search
        study = create_or_load_study(
            study_name=study_name, storage=storage, direction="minimize",
            sampler=sampler() if (sampler and searching) else None,
            pruner=(pruner() if pruner else None) if searching else optuna.pruners.NopPruner())
        keep_study_file(storage, study, spec)
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


@dataclass
class StudyGroup:
    """The stored trials behind one study file, by role."""

    name: str
    layout: str  # "per-kind" or "single" (one study where the sampler chose the kind)
    #: arm -> {search study -> its trials}: arms in the study file's order, an arm's searches in
    #: order (one unless the file says ``searches: R``); a single-layout study has each kind's
    #: trials under the one study ``name``
    searches: dict[str, dict[str, list[FrozenTrial]]]
    validation_study: str | None = None
    validation: list[FrozenTrial] = field(default_factory=list)
    study_user_attrs: dict[str, Any] = field(default_factory=dict)
    study_file: dict[str, Any] = field(default_factory=dict)  # :func:`study_file_of`

    # Computed once (the report reads them per arm and figure); ``searches`` is never changed.
    @cached_property
    def search(self) -> dict[str, list[FrozenTrial]]:
        """Arm -> the trials of all its searches."""
        return {k: [t for ts in studies.values() for t in ts]
                for k, studies in self.searches.items()}

    @cached_property
    def search_studies(self) -> dict[str, str]:
        """Arm -> its first search's study (every search's is in ``searches``)."""
        return {k: next(iter(studies)) for k, studies in self.searches.items()}

    @property
    def kinds(self) -> list[str]:
        return list(self.searches)

    @property
    def study_names(self) -> list[str]:
        names = list(dict.fromkeys(s for studies in self.searches.values() for s in studies))
        return names + ([self.validation_study] if self.validation_study else [])

    @property
    def study_trials(self) -> dict[str, list[FrozenTrial]]:
        """Search study -> its trials (a single-layout study: all of them)."""
        out: dict[str, list[FrozenTrial]] = {}
        for studies in self.searches.values():
            for study, trials in studies.items():
                out.setdefault(study, []).extend(trials)
        return out

    def study_of(self, trial: FrozenTrial, kind: str | None = None) -> str:
        """The search study holding ``trial`` (one of ``search[kind]``)."""
        for k, studies in self.searches.items():
            if kind is not None and k != kind:
                continue
            for study, trials in studies.items():
                if any(t is trial for t in trials):
                    return study
        return self.search_studies.get(kind or "", self.name)


def one_search(group: StudyGroup, study: str) -> StudyGroup:
    """``group`` narrowed to its search study ``study`` (``NAME.<arm>.s<r>``): that search's
    trials and the validation of its configurations only."""
    arms = {k: {study: ts} for k, studies in group.searches.items()
            for s, ts in studies.items() if s == study}
    if not arms:
        raise UsageError(f"study group {group.name!r} has no search study {study!r}")
    validation = [t for t in group.validation
                  if (t.user_attrs.get(VALIDATES) or {}).get("study") == study]
    return dataclasses.replace(group, searches=arms, validation=validation)


def load_group(storage: optuna.storages.BaseStorage | str, name: str) -> StudyGroup:
    """Read the studies of study file ``name``; ``KeyError`` when there is none.

    Per-kind layout when any ``NAME.<kind>`` study exists; else the single study ``NAME`` whose
    trials are split by their ``generator_kind`` attribute.
    """
    if isinstance(storage, str):
        storage = optuna.storages.get_storage(storage)
    names = _study_names(storage)
    prefix = f"{name}."
    parts = {n: parse_search_part(n[len(prefix):]) for n in names if n.startswith(prefix)}
    # hpo keeps the study file on every study it makes: NAME.quantum (or NAME.validation) made
    # by someone else, a plain Optuna study in the same storage, is not a study of NAME.
    files = {n: study_file_of(storage, n) for n, part in parts.items() if part is not None}
    found = {n: parts[n] for n, kept in files.items() if kept.get("name") == name}
    validation = validation_study_name(name) if validation_study_name(name) in names and \
        study_file_of(storage, validation_study_name(name)).get("name") == name else None
    searches: dict[str, dict[str, list[FrozenTrial]]] = {}
    if found:
        attrs: dict[str, Any] = {}
        study_file = files[min(found)]
        order = _arm_order(study_file)
        for study_name, (kind, _) in sorted(found.items(),
                                            key=lambda item: (order(item[1]), item[1][1])):
            study = optuna.load_study(study_name=study_name, storage=storage)
            searches.setdefault(kind, {})[study_name] = study.get_trials(deepcopy=False)
            attrs = attrs or dict(study.user_attrs)
        for kind, studies in searches.items():
            if f"{prefix}{kind}" in studies and len(studies) > 1:  # one design searched once,
                # another R times under the same name: which would be search 1 is not known
                raise UsageError(f"study group {name!r} holds both {prefix}{kind} (one search) "
                                 f"and {', '.join(s for s in studies if s != prefix + kind)}; "
                                 "give the study file a new name or another storage")
        layout = "per-kind"
    elif name in names:
        study = optuna.load_study(study_name=name, storage=storage)
        by_kind: dict[str, list[FrozenTrial]] = {}
        study_file = study_file_of(storage, name)
        arms = list((study_file.get("search") or {}).get("generators") or {})
        for t in study.get_trials(deepcopy=False):  # cut off before its kind was kept: its
            # sampled arm, or the study's one arm
            arm = t.params.get("generator") or (arms[0] if len(arms) == 1 else "?")
            by_kind.setdefault(t.user_attrs.get(KIND) or arm, []).append(t)
        searches = {kind: {name: trials}
                    for kind, trials in sorted(by_kind.items(), key=_arm_order(study_file))}
        attrs = dict(study.user_attrs)
        layout = "single"
    else:
        raise KeyError(name)
    group = StudyGroup(name, layout, searches, validation, study_user_attrs=attrs,
                       study_file=study_file)
    if validation is not None:
        group.validation = optuna.load_study(study_name=validation,
                                             storage=storage).get_trials(deepcopy=False)
    return group


def _study_names(storage: optuna.storages.BaseStorage) -> list[str]:
    return [s.study_name for s in storage.get_all_studies()]


def member_of(storage: optuna.storages.BaseStorage, name: str) -> tuple[str, str] | None:
    """``(group, role)`` when ``name`` is one study of a per-kind group rather than a study file's
    name: ``gaussgan.quantum`` is ``("gaussgan", "quantum")``, ``gaussgan.validation`` is
    ``("gaussgan", "validation")``. ``None`` for a group's own name or any other study.

    A study ``NAME.X`` (``NAME.validation`` too) is a member when the study file it keeps is
    named ``NAME``: hpo keeps it on every study it makes, and a plain Optuna study ``NAME.X`` is
    not one. A study that has members of its own is a group, not a member.
    An arm searched several times has no study of its own: ``NAME.<arm>`` names it (role
    ``<arm>``) when a ``NAME.<arm>.s<r>`` is a member.
    """
    names = _study_names(storage)
    if name in names:
        return _stored_member_of(storage, names, name)
    head, dot, arm = name.rpartition(".")
    searches = [n for n in names if n.startswith(f"{name}.")
                and parse_search_part(n[len(head) + 1:]) is not None]
    return (head, arm) if dot and any(_stored_member_of(storage, names, n) == (
        head, n[len(head) + 1:]) for n in searches) else None


def _stored_member_of(storage: optuna.storages.BaseStorage, names: list[str], name: str
                      ) -> tuple[str, str] | None:
    """:func:`member_of` for a stored study ``name`` (``names``: every stored study)."""
    if any(n.startswith(f"{name}.") for n in names):
        return None
    kept = study_file_of(storage, name).get("name")
    # NAME.<arm>.s<r> (an arm searched several times) first, then NAME.<role>.
    return next(((base, role) for base, role in _member_splits(name) if kept == base), None)


def _member_splits(name: str) -> list[tuple[str, str]]:
    """The ``(group, role)`` readings of ``name``: ``a.b.s2`` is ``("a", "b.s2")`` (a search
    of a repeated arm; its role names the arm, as :func:`parse_search_part` reads it) or
    ``("a.b", "s2")``."""
    out = []
    head, dot, last = name.rpartition(".")
    if dot and head:
        base, dot2, arm = head.rpartition(".")
        if dot2 and base and parse_search_part(f"{arm}.{last}") is not None:
            out.append((base, f"{arm}.{last}"))
        out.append((head, last))
    return out


def _arm_order(study_file: Mapping[str, Any]) -> Callable[[tuple[str, Any]], tuple[int, str]]:
    """Sort key of ``(arm, ...)`` items: the study file's order of its arms, else (a study stored
    without its file) classical, quantum, then the rest by name."""
    arms = list((study_file.get("search") or {}).get("generators") or {})
    order = arms or list(_KIND_ORDER)

    def key(item: tuple[str, Any]) -> tuple[int, str]:
        return (order.index(item[0]) if item[0] in order else len(order), item[0])

    return key
