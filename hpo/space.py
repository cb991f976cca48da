"""From a trial to a training config: the conditional search space of a study.

It also checks a study file's space against ``models`` itself (:func:`load_spec`): a trial at either
end of every range must be a valid training config, so a study cannot fail an hour in on
``n_qubits: 13``.

The trial first picks an arm (parameter ``generator``, when the study has more than one); each
arm's parameters are named ``<arm>.<name>`` so the branches never share a name and TPE's grouped
multivariate mode can model them separately. An arm trains the model kind its ``generator:`` names,
by default its own name, so a study file without ``generator:`` names its parameters
``classical.width``, ``quantum.n_qubits`` as it always did; a ``hybrid`` arm of kind quantum has
``hybrid.n_qubits``. Shared training parameters keep their config names (``lr_generator``...).
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import optuna

import models
from hpo.errors import StudyFileError
from hpo.study_file import Param, StudySpec, arm_kind, read_study_file

# Convenience parameters that expand into list-valued config entries, e.g. width x depth -> hidden.
DERIVED_BRANCH_PARAMS = {
    "classical": {"width": "hidden", "depth": "hidden"},
    "quantum": {"head_width": "head_hidden", "head_depth": "head_hidden"},
    "control": {"head_width": "head_hidden", "head_depth": "head_hidden"},
}
DERIVED_SHARED_PARAMS = {"critic_width": "critic", "critic_depth": "critic", "beta1": "betas"}
# Training-config keys that belong to other sections of the study file.
OWNED_ELSEWHERE = {
    "steps": "budget.steps",
    "eval_every": "budget.eval_every",
    "eval_samples": "metric.eval_samples",
    "seed": "seed (top level)",
    "generator": "search.generators",
}


@functools.cache
def _defaults(kind: str) -> dict[str, Any]:
    return models.resolve_config({"generator": {"kind": kind}})


def allowed_shared_params() -> list[str]:
    """Training-config keys a study may fix or search, plus the derived convenience names."""
    keys = [k for k in _defaults("classical") if k not in OWNED_ELSEWHERE]
    return sorted(keys + list(DERIVED_SHARED_PARAMS))


def allowed_branch_params(kind: str) -> list[str]:
    """Generator keys (and derived names) a branch training model ``kind`` may fix or search."""
    keys = [k for k in _defaults(kind)["generator"] if k != "kind"]
    return sorted(keys + list(DERIVED_BRANCH_PARAMS[kind]))


def training_config(spec: StudySpec, arm: str, shared: dict[str, Any],
                    branch: dict[str, Any]) -> dict[str, Any]:
    """The full, validated training config for one trial of ``arm`` (``models.resolve_config``
    output; ``generator.kind`` is the arm's model kind).

    ``shared`` and ``branch`` hold the searched values; the study's fixed values sit under them.
    Raises ``ValueError`` (from ``models``) for a combination that is not a valid config.
    """
    kind = arm_kind(arm, spec.search.generators[arm])
    defaults = _defaults(kind)
    top = {**spec.fixed, **shared}
    critic = dict(defaults["critic"])
    if "critic_width" in top or "critic_depth" in top:
        critic["hidden"] = _layers(critic["hidden"], top.pop("critic_width", None),
                                   top.pop("critic_depth", None))
    if "beta1" in top:
        top["betas"] = [top.pop("beta1"), defaults["betas"][1]]

    generator = {**spec.search.generators[arm].fixed, **branch}
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


def suggest(trial: optuna.Trial, spec: StudySpec, seed: int) -> dict[str, Any]:
    """Sample one training config for ``trial``, trained with ``seed``."""
    return suggest_arm(trial, spec, seed)[1]


def suggest_arm(trial: optuna.Trial, spec: StudySpec, seed: int) -> tuple[str, dict[str, Any]]:
    """The arm ``trial`` samples (the ``generator`` parameter when there is a choice) and its
    training config, trained with ``seed``."""
    arms = list(spec.search.generators)
    arm = trial.suggest_categorical("generator", arms) if len(arms) > 1 else arms[0]
    shared = {name: suggest_param(trial, name, p) for name, p in spec.search.shared.items()}
    branch_spec = spec.search.generators[arm]
    branch = {name: suggest_param(trial, f"{arm}.{name}", p)
              for name, p in branch_spec.search.items()}
    config = training_config(spec, arm, shared, branch)
    config["seed"] = seed
    return arm, config


def suggest_param(trial: optuna.Trial, name: str, param: Param) -> Any:
    """The trial's value of one searched parameter (a range, or a list of choices)."""
    if param.choices is not None:
        return trial.suggest_categorical(name, param.choices)
    if param.is_int:
        return trial.suggest_int(name, param.low, param.high, step=param.step or 1,
                                 log=param.log)
    return trial.suggest_float(name, float(param.low), float(param.high), step=param.step,
                               log=param.log)


def load_spec(path: str | Path) -> StudySpec:
    """Read a study file and check it down to the models' own rules; :class:`StudyFileError`
    names the file, the key and what is allowed."""
    spec = read_study_file(path)
    check_against_models(path, spec)
    return spec


def check_against_models(path: str | Path, spec: StudySpec) -> None:
    """Every searched/fixed key must be a training-config key, and every range end valid."""
    shared_allowed = allowed_shared_params()
    for section, names in (("fixed", spec.fixed), ("search.shared", spec.search.shared)):
        for name in names:
            if name in OWNED_ELSEWHERE:
                raise StudyFileError(str(path), f"{section}.{name}",
                                     f"set this with {OWNED_ELSEWHERE[name]}")
            if name not in shared_allowed:
                raise StudyFileError(str(path), f"{section}.{name}",
                                     f"unknown parameter; allowed: {', '.join(shared_allowed)}")
    for arm, branch in spec.search.generators.items():
        kind = arm_kind(arm, branch)
        allowed = allowed_branch_params(kind)
        for section, names in (("search", branch.search), ("fixed", branch.fixed)):
            for name in names:
                if name not in allowed:
                    raise StudyFileError(
                        str(path), f"search.generators.{arm}.{section}.{name}",
                        f"unknown {kind} parameter; allowed: {', '.join(allowed)}")

    critic = spec.fixed.get("critic")
    if critic is not None and not isinstance(critic, dict):
        raise StudyFileError(str(path), "fixed.critic", "expected a mapping (hidden, "
                             f"activation), got {type(critic).__name__}")
    if "critic" in spec.search.shared:
        raise StudyFileError(str(path), "search.shared.critic", "a mapping is not searched; "
                             "search critic_width and critic_depth")

    # A trial at either end of each range (others at their low ends) must be a valid config.
    def check(arm: str, key: str, shared: dict[str, Any], branch: dict[str, Any]) -> None:
        try:
            training_config(spec, arm, shared, branch)
        except ValueError as err:
            raise StudyFileError(str(path), key, str(err)) from None

    for arm, branch in spec.search.generators.items():
        low_shared = {n: p.ends()[0] for n, p in spec.search.shared.items()}
        low_branch = {n: p.ends()[0] for n, p in branch.search.items()}
        check(arm, f"search.generators.{arm}", low_shared, low_branch)
        for name, param in branch.search.items():
            for value in param.ends():
                check(arm, f"search.generators.{arm}.search.{name}", low_shared,
                      {**low_branch, name: value})
        for name, param in spec.search.shared.items():
            for value in param.ends():
                check(arm, f"search.shared.{name}", {**low_shared, name: value}, low_branch)

    _refuse_a_key_given_twice(path, spec)

    # A value both fixed and searched: one of the two would be silently ignored.
    pairs = [("search.shared", spec.search.shared, spec.fixed)] + [
        (f"search.generators.{arm}.search", b.search, b.fixed)
        for arm, b in spec.search.generators.items()]
    for section, searched, fixed in pairs:
        for name in sorted(set(searched) & set(fixed)):
            raise StudyFileError(str(path), f"{section}.{name}",
                                 "both fixed and searched; keep one")


def _refuse_a_key_given_twice(path: str | Path, spec: StudySpec) -> None:
    """A convenience name and the key it sets, both given (fixed or searched): one of the two
    would be silently overridden (``beta1`` replaced ``betas[0]`` and reset ``betas[1]``; a fixed
    ``critic: {hidden: ...}`` replaced a searched ``critic_width``)."""
    def given(names: dict[str, Any], fixed: dict[str, Any], key: str) -> bool:
        if key == "critic":  # a mapping: only its hidden layers are what the two names set
            return isinstance(fixed.get(key), dict) and "hidden" in fixed[key]
        return key in names

    scopes = [("fixed", "search.shared", spec.fixed, spec.search.shared, DERIVED_SHARED_PARAMS)]
    for arm, b in spec.search.generators.items():
        at = f"search.generators.{arm}"
        scopes.append((f"{at}.fixed", f"{at}.search", b.fixed, b.search,
                       DERIVED_BRANCH_PARAMS[arm_kind(arm, b)]))
    for fixed_at, search_at, fixed, searched, derived in scopes:
        names = {**fixed, **searched}
        for name, key in derived.items():
            if name in names and given(names, fixed, key):
                shown = "critic.hidden" if key == "critic" else key
                where = fixed_at if name in fixed else search_at
                raise StudyFileError(str(path), f"{where}.{name}",
                                     f"{name} and {shown} both given, and {name} sets {shown}; "
                                     "keep one")
