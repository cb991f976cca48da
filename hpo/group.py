"""A study file's Optuna studies, named and read as one group.

A per-kind study file ``NAME`` with kinds ``classical`` and ``quantum`` lives in storage as

    NAME.classical    search trials of that kind: its own TPE model, its own pruning population
    NAME.quantum      (the same, for quantum)
    NAME.validation   the top ``validation.top_k`` configurations of each kind re-trained on
                      ``validation.seeds`` fresh seeds, enqueued once the search budget is met

so a trial is only ever compared (sampled, pruned) against trials of its own kind, and
optuna-dashboard lists the three studies side by side. A single-layout study file is a group of
one: the study ``NAME``, where the sampler chooses the kind, and no validation. What a worker
does next in a group is :mod:`hpo.schedule`'s; docs/verdict.md says why the layout is so.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import optuna
from optuna.trial import FrozenTrial

from hpo.quiet import quiet_experimental
from hpo.study_exists import create_or_load_study
from hpo.study_file import StudySpec
from hpo.trials import KIND

VALIDATION_SUFFIX = "validation"
_KIND_ORDER = ("classical", "quantum")


def search_study_name(name: str, kind: str) -> str:
    """The Optuna study holding the search trials of generator ``kind``."""
    return f"{name}.{kind}"


def validation_study_name(name: str) -> str:
    """The Optuna study holding the seed-validation trials of every kind."""
    return f"{name}.{VALIDATION_SUFFIX}"


def search_studies(spec: StudySpec) -> dict[str, str | None]:
    """Search study name -> the generator kind it samples (``None``: the sampler picks)."""
    if spec.layout != "per-kind":
        return {spec.name: None}
    return {search_study_name(spec.name, k): k for k in spec.search.generators}


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
    """
    studies = {}
    search = search_studies(spec)
    for study_name in group_study_names(spec):
        searching = study_name in search
        study = create_or_load_study(
            study_name=study_name, storage=storage, direction="minimize",
            sampler=sampler() if (sampler and searching) else None,
            pruner=(pruner() if pruner else None) if searching else optuna.pruners.NopPruner())
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
            search.setdefault(t.user_attrs.get(KIND) or "?", []).append(t)
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
    return (_KIND_ORDER.index(item[0]) if item[0] in _KIND_ORDER else len(_KIND_ORDER), item[0])
