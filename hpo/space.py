"""From a trial to a training config: the conditional search space of a study.

The trial first picks a generator kind (parameter ``generator``); each kind's parameters are named
``<kind>.<name>`` so the branches never share a name and TPE's grouped multivariate mode can model
them separately. Shared training parameters keep their config names (``lr_generator``...).
"""

from __future__ import annotations

import functools
from typing import Any

import optuna

import models
from hpo.study_file import (
    DERIVED_BRANCH_PARAMS,
    DERIVED_SHARED_PARAMS,
    OWNED_ELSEWHERE,
    StudySpec,
)


@functools.cache
def _defaults(kind: str) -> dict[str, Any]:
    return models.resolve_config({"generator": {"kind": kind}})


def allowed_shared_params() -> list[str]:
    """Training-config keys a study may fix or search, plus the derived convenience names."""
    keys = [k for k in _defaults("classical") if k not in OWNED_ELSEWHERE]
    return sorted(keys + list(DERIVED_SHARED_PARAMS))


def allowed_branch_params(kind: str) -> list[str]:
    keys = [k for k in _defaults(kind)["generator"] if k != "kind"]
    return sorted(keys + list(DERIVED_BRANCH_PARAMS[kind]))


def training_config(spec: StudySpec, kind: str, shared: dict[str, Any],
                    branch: dict[str, Any]) -> dict[str, Any]:
    """The full, validated training config for one trial (``models.resolve_config`` output).

    ``shared`` and ``branch`` hold the searched values; the study's fixed values sit under them.
    Raises ``ValueError`` (from ``models``) for a combination that is not a valid config.
    """
    defaults = _defaults(kind)
    top = {**spec.fixed, **shared}
    critic = dict(defaults["critic"])
    if "critic_width" in top or "critic_depth" in top:
        critic["hidden"] = _layers(critic["hidden"], top.pop("critic_width", None),
                                   top.pop("critic_depth", None))
    if "beta1" in top:
        top["betas"] = [top.pop("beta1"), defaults["betas"][1]]

    generator = {**spec.search.generators[kind].fixed, **branch}
    for list_key in set(DERIVED_BRANCH_PARAMS[kind].values()):
        width_key, depth_key = (n for n, k in DERIVED_BRANCH_PARAMS[kind].items() if k == list_key)
        if width_key in generator or depth_key in generator:
            generator[list_key] = _layers(defaults["generator"][list_key] or [16],
                                          generator.pop(width_key, None),
                                          generator.pop(depth_key, None))

    config = {
        **top,
        "critic": {**critic, **top.get("critic", {})},
        "generator": {"kind": kind, **generator},
        "seed": spec.seed,
        "steps": spec.budget.steps,
        "eval_every": spec.budget.eval_every,
        "eval_samples": spec.metric.eval_samples,
    }
    return models.resolve_config(config)


def _layers(base: list[int], width: int | None, depth: int | None) -> list[int]:
    width = int(width) if width is not None else (base[0] if base else 16)
    depth = int(depth) if depth is not None else len(base)
    return [width] * depth


def suggest(trial: optuna.Trial, spec: StudySpec) -> dict[str, Any]:
    """Sample one training config; its seed is ``spec.seed`` plus the trial's original number."""
    kinds = list(spec.search.generators)
    kind = trial.suggest_categorical("generator", kinds) if len(kinds) > 1 else kinds[0]
    shared = {name: p.suggest(trial, name) for name, p in spec.search.shared.items()}
    branch_spec = spec.search.generators[kind]
    branch = {name: p.suggest(trial, f"{kind}.{name}") for name, p in branch_spec.search.items()}
    config = training_config(spec, kind, shared, branch)
    config["seed"] = spec.seed + original_trial_number(trial)
    return config


def original_trial_number(trial: optuna.Trial) -> int:
    """A retried trial keeps the number, and so the seed, of the trial it replaces."""
    attrs = trial.storage.get_trial_system_attrs(trial._trial_id)
    retried = attrs.get("failed_trial")
    return int(retried) if retried is not None else trial.number
