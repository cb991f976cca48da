"""A stored study group built by hand: per-kind search studies and a validation study whose trials
carry the attributes the objective records (issue 9's names), with values chosen in the test."""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import optuna
from optuna.distributions import FloatDistribution, IntDistribution
from optuna.trial import TrialState

from hpo.group import search_study_name, validation_study_name

SIGMA = 0.5
FACTORS = (0.5, 1.0, 2.0)
T0 = datetime(2026, 1, 1, 12, 0, 0)
STUDY_FILE = {
    "name": "verdict", "seed": 0, "target": {"preset": "gaussgan"},
    "budget": {"trials": 8, "steps": 30, "eval_every": 10},
    "metric": {"n_target": 20000, "eval_samples": 2000, "replicates": 5, "seed": 0,
               "sigma": SIGMA},
    "validation": {"top_k": 2, "seeds": 5},
}
DISTS = {
    "classical": {"width": IntDistribution(8, 32, step=8), "lr_generator": FloatDistribution(
        1e-3, 1e-2, log=True)},
    "quantum": {"n_layers": IntDistribution(1, 3), "lr_generator": FloatDistribution(
        1e-3, 1e-2, log=True)},
}


def _profile(value: float, spread: float) -> list[dict]:
    # A smoothed KL shrinks as s grows; the shape only has to differ per factor.
    return [{"factor": f, "sigma": f * SIGMA, "value": value / (f + spread),
             "ci_low": value / (f + spread) - 0.01, "ci_high": value / (f + spread) + 0.01}
            for f in FACTORS]


def _attrs(kind: str, seed: int, value: float, seconds: float) -> dict:
    return {"generator_kind": kind, "seed": seed, "sigma": SIGMA, "kl_profile": _profile(value, 0),
            "kl_knn": value + 0.1, "kl_stderr": 0.01, "kl_ci": [value - 0.02, value + 0.02],
            "w2": 2 * value, "mode_coverage": 1.0 if value < 1 else 0.5,
            "n_params": 100 if kind == "classical" else 40,
            "n_params_circuit": 0 if kind == "classical" else 28, "steps": 30, "seconds": seconds,
            "code_version": "0.1.0+gtest",
            "config": {"study": "verdict", "target": {"preset": "gaussgan"},
                       "metric": STUDY_FILE["metric"],
                       "train": {"generator": {"kind": kind}, "seed": seed, "steps": 30}}}


def _params(kind: str, i: int) -> dict:
    return ({"width": 8 * (1 + i % 4), "lr_generator": 1e-3 * (1 + i)} if kind == "classical"
            else {"n_layers": 1 + i % 3, "lr_generator": 1e-3 * (1 + i)})


def build_group(storage, name: str = "verdict", *, search_values=None, validation_values=None,
                pruned: dict[str, list[int]] | None = None) -> dict:
    """Store the group; return what was stored (values by kind and config, seeds)."""
    search_values = search_values or {"classical": [0.9, 0.5, 0.7, 1.4],
                                      "quantum": [1.3, 1.0, 2.0, 1.1]}
    # Validation values per kind: {search trial number: five seed values}.
    validation_values = validation_values or {
        "classical": {1: [0.61, 0.70, 0.55, 0.66, 0.72], 2: [0.80, 0.95, 0.70, 0.88, 0.79]},
        "quantum": {1: [1.20, 1.35, 1.05, 1.40, 1.15], 3: [1.30, 1.60, 1.25, 1.45, 1.50]},
    }
    pruned = pruned or {"classical": [3], "quantum": [2]}
    stored = {"search_seeds": [], "validation_seeds": []}
    clock = T0
    for kind, values in search_values.items():
        study = optuna.create_study(study_name=search_study_name(name, kind), storage=storage)
        study.set_user_attr("study_file", {**STUDY_FILE, "name": name})
        for i, value in enumerate(values):
            seed = i  # the search uses seed + trial number, in each kind's study
            stored["search_seeds"].append(seed)
            start, clock = clock, clock + timedelta(seconds=10 + i)
            if i in pruned.get(kind, []):
                trial = optuna.trial.FrozenTrial(
                    number=i, state=TrialState.PRUNED, value=None, datetime_start=start,
                    datetime_complete=clock, params=_params(kind, i), distributions=DISTS[kind],
                    user_attrs={"generator_kind": kind, "seed": seed}, system_attrs={},
                    intermediate_values={10: 5.0 * value, 20: 4.0 * value}, trial_id=0)
            else:
                trial = optuna.trial.FrozenTrial(
                    number=i, state=TrialState.COMPLETE, value=value, datetime_start=start,
                    datetime_complete=clock, params=_params(kind, i), distributions=DISTS[kind],
                    user_attrs=_attrs(kind, seed, value, 10.0 + i), system_attrs={},
                    intermediate_values={10: 3 * value, 20: 2 * value, 30: value}, trial_id=0)
            study.add_trial(trial)
    vstudy = optuna.create_study(study_name=validation_study_name(name), storage=storage)
    vstudy.set_user_attr("study_file", {**STUDY_FILE, "name": name})
    seed = 1_000_000
    for kind, configs in validation_values.items():
        source = optuna.load_study(study_name=search_study_name(name, kind), storage=storage)
        by_number = {t.number: t for t in source.get_trials()}
        ranked = sorted((t for t in by_number.values() if t.state == TrialState.COMPLETE),
                        key=lambda t: t.value)
        for number, values in configs.items():
            src = by_number[number]
            for value in values:
                stored["validation_seeds"].append(seed)
                attrs = _attrs(kind, seed, value, 12.0)
                attrs["validates"] = {"study": search_study_name(name, kind), "trial": number,
                                      "rank": ranked.index(src) + 1, "search_value": src.value}
                vstudy.add_trial(optuna.trial.create_trial(
                    state=TrialState.COMPLETE, value=value, params=src.params,
                    distributions=src.distributions, user_attrs=attrs,
                    intermediate_values={30: value}))
                seed += 1
    stored["validation_values"] = validation_values
    return stored


def welch_reference(a, b) -> tuple[float, float, float]:
    """Difference and its 95% interval, from scipy (an independent implementation)."""
    from scipy import stats

    ci = stats.ttest_ind(a, b, equal_var=False).confidence_interval(0.95)
    return float(np.mean(a) - np.mean(b)), float(ci.low), float(ci.high)
