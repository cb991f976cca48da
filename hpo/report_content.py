"""What `hpo report` says, as plain data: the content of report.json (schema: docs/report.md).

Everything here is a function of the stored trials of one study group (:mod:`hpo.group`):
the validated configurations of each kind with their seed statistics, the comparison of the
kinds' best validated configurations at the study's s and across the resolution profile, the
anytime curves, and provenance. The HTML page, the dashboard note and report.json all render
this one dictionary, so they cannot disagree.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

from optuna.trial import FrozenTrial, TrialState

from hpo.group import StudyGroup
from hpo.metric import w2_points
from hpo.report_arms import arms_section, random_search_studies
from hpo.schedule import kind_budgets, validation_plan
from hpo.trials import (
    ENDED,
    KIND,
    VALIDATES,
    budget_counts,
    counted,
    retried_numbers,
    trial_seed,
)
from hpo.verdict import CONFIDENCE, compare_kinds, profile_conclusion, seed_summary
from metrics import DEFAULT_PROFILE, divergence_name

SCHEMA = "qgan-hpo/report/1"
metric_name = divergence_name  # what report.json's metric.name and every table say


def _finished(trials: Sequence[FrozenTrial]) -> list[FrozenTrial]:
    """Finished trials that count (a failed trial that was retried is replaced by its retry)."""
    return [t for t in counted(trials) if t.state.is_finished()]


def _mean(values: Sequence[float]) -> float | None:
    vals = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    return sum(vals) / len(vals) if vals else None


def _profile_values(trial: FrozenTrial) -> dict[float, tuple[float, float]]:
    """factor -> (sigma, value) from a trial's ``kl_profile`` attribute."""
    out = {}
    for point in trial.user_attrs.get("kl_profile") or []:
        try:
            out[float(point["factor"])] = (float(point["sigma"]), float(point["value"]))
        except (KeyError, TypeError, ValueError):
            continue
    return out


def _seconds_per_step(trial: FrozenTrial) -> float | None:
    a = trial.user_attrs
    if a.get("seconds") is None or not a.get("steps"):
        return None
    return float(a["seconds"]) / float(a["steps"])


def validated_configurations(group: StudyGroup) -> dict[str, list[dict[str, Any]]]:
    """Per kind, each validated configuration with its seed statistics, best (lowest mean) first.

    A random-search baseline's configurations (``random_search``) come after the searched ones:
    the kind's best is what its searches found, the one the verdict compares, so the page, the
    note, ``hpo status`` and ``hpo export`` all name the same winner. Only COMPLETE validation
    trials give values; the others are counted in ``not_complete``.
    """
    baseline = random_search_studies(group)
    by_source: dict[tuple[str, str, int], list[FrozenTrial]] = defaultdict(list)
    for t in _finished(group.validation):
        v = t.user_attrs.get(VALIDATES) or {}
        kind = t.user_attrs.get(KIND, "?")
        by_source[(kind, str(v.get("study")), int(v.get("trial", -1)))].append(t)
    out: dict[str, list[dict[str, Any]]] = {}
    for (kind, study, number), trials in by_source.items():
        done = sorted((t for t in trials if t.state == TrialState.COMPLETE),
                      key=lambda t: trial_seed(t) or 0)
        values = [float(t.value) for t in done]
        validates = trials[0].user_attrs.get(VALIDATES) or {}
        entry: dict[str, Any] = {
            "source_study": study,
            "source_trial": number,
            "rank": validates.get("rank"),
            "random_search": study in baseline,
            "search_value": validates.get("search_value"),
            "params": dict(trials[0].params),
            "validation_trials": [t.number for t in done],
            "seeds": [trial_seed(t) for t in done],
            "values": values,
            "not_complete": len(trials) - len(done),
        }
        if values:
            s = seed_summary(values, floor=0.0)  # D_s >= 0
            entry.update(n_seeds=s.n, mean=s.mean, ci=[s.ci_low, s.ci_high], sd=s.sd)
        else:
            entry.update(n_seeds=0, mean=None, ci=[None, None], sd=None)
        entry.update(
            w2_mean=_mean([t.user_attrs.get("w2") for t in done]),
            mode_coverage_mean=_mean([t.user_attrs.get("mode_coverage") for t in done]),
            n_params=_first_recorded(done, "n_params"),
            n_params_circuit=_first_recorded(done, "n_params_circuit"),
            seconds_per_step=_mean([_seconds_per_step(t) for t in done]),
            profile=_config_profile(done),
        )
        out.setdefault(kind, []).append(entry)
    for configs in out.values():
        configs.sort(key=lambda c: (c["mean"] is None or c["n_seeds"] < 2, c["random_search"],
                                    c["mean"] if c["mean"] is not None else math.inf))
    return {k: out[k] for k in group.kinds if k in out} | {k: v for k, v in out.items()
                                                           if k not in group.kinds}


def _config_profile(done: Sequence[FrozenTrial]) -> dict[str, Any]:
    per_factor: dict[float, list[tuple[float, float]]] = defaultdict(list)
    for t in done:
        for factor, point in _profile_values(t).items():
            per_factor[factor].append(point)
    profile = {}
    for factor in sorted(per_factor):
        points = per_factor[factor]
        s = seed_summary([v for _, v in points], floor=0.0)
        profile[f"{factor:g}"] = {"sigma": points[0][0], **s.as_dict(),
                                  "values": [v for _, v in points]}
    return profile


#: The comparisons the verdict states, when both arms of a pair exist: which kind learns the
#: target better, then what a hybrid's circuit adds over its own head (its control).
VERDICT_PAIRS = (("classical", "quantum"), ("hybrid", "control"))


def comparisons(validated: dict[str, list[dict[str, Any]]], sigma: float | None = None
                ) -> dict[str, Any]:
    """The arms' best validated configurations compared at s and over the profile.

    Every pair of arms is compared, the pairs of :data:`VERDICT_PAIRS` first and in their order
    (``D_s(hybrid) - D_s(control)``), then the others in the study file's arm order. ``primary``
    is the first pair (classical vs quantum when both exist); ``control`` is hybrid vs control,
    or ``None``.
    """
    best = {kind: configs[0] for kind, configs in validated.items()
            if configs and configs[0]["n_seeds"] >= 1}
    pairs = [_compare_pair(best[a], best[b], a, b, sigma) for a, b in ordered_pairs(list(best))]
    control = next((p for p in pairs if tuple(p["kinds"]) == VERDICT_PAIRS[1]), None)
    return {"pairs": pairs, "primary": pairs[0] if pairs else None, "control": control}


def ordered_pairs(kinds: Sequence[str]) -> list[tuple[str, str]]:
    """Every pair of ``kinds``: :data:`VERDICT_PAIRS` first (those whose arms both exist), then
    the others in ``kinds``' order."""
    named = [pair for pair in VERDICT_PAIRS if set(pair) <= set(kinds)]
    return named + [(a, b) for i, a in enumerate(kinds) for b in kinds[i + 1:]
                    if (a, b) not in named and (b, a) not in named]


def _compare_pair(ca: dict[str, Any], cb: dict[str, Any], a: str, b: str,
                  sigma: float | None) -> dict[str, Any]:
    """Configurations ``ca`` and ``cb`` (of arms ``a`` and ``b``) compared at s and over the
    profile: one entry of ``comparisons``' pairs."""
    at_s = compare_kinds(ca["values"], cb["values"], a, b,
                         at=f"s = {sigma:g}" if sigma is not None else "")
    by_factor = {}
    for key in sorted(set(ca["profile"]) & set(cb["profile"]), key=float):
        pa, pb = ca["profile"][key], cb["profile"][key]
        by_factor[float(key)] = compare_kinds(pa["values"], pb["values"], a, b,
                                              at=f"{key} x s = {pa['sigma']:g}")
    pair = {"kinds": [a, b],
            "configs": [[ca["source_study"], ca["source_trial"]],
                        [cb["source_study"], cb["source_trial"]]],
            "at_s": at_s.as_dict(),
            "profile": [{"factor": f, "sigma": ca["profile"][f"{f:g}"]["sigma"],
                         **d.as_dict()} for f, d in by_factor.items()]}
    if by_factor:
        pair["profile_conclusion"] = profile_conclusion(by_factor).as_dict()
    return pair


def _pair_verdict(pair: dict[str, Any]) -> dict[str, Any]:
    """The verdict's fields for one compared pair: its sentence at s and over the profile."""
    pc = pair.get("profile_conclusion")
    return {"sentence": pair["at_s"]["sentence"],
            "established": pair["at_s"]["established"],
            "winner": pair["at_s"]["winner"],
            "profile_holds": pc["holds"] if pc else None,
            "profile_sentence": pc["sentence"] if pc else None}


def _anytime(trials: Sequence[FrozenTrial]) -> dict[str, list]:
    """Best D_s so far against finished trials and cumulative training seconds."""
    finished = sorted((t for t in _finished(trials) if t.datetime_complete is not None),
                      key=lambda t: (t.datetime_complete, t.number))
    xs, secs, best, numbers = [], [], [], []
    total, current = 0.0, None
    for i, t in enumerate(finished, start=1):
        if t.datetime_start is not None:
            total += (t.datetime_complete - t.datetime_start).total_seconds()
        if t.state == TrialState.COMPLETE and (current is None or t.value < current):
            current = float(t.value)
        xs.append(i)
        secs.append(total)
        best.append(current)
        numbers.append(t.number)
    return {"trials": xs, "cumulative_seconds": secs, "best_so_far": best, "trial_number": numbers}


def trial_counts(trials: Sequence[FrozenTrial]) -> dict[str, int]:
    """The budget's counts (:func:`hpo.trials.budget_counts`) as JSON data."""
    return asdict(budget_counts(trials))


def _first_recorded(trials: Sequence[FrozenTrial], key: str) -> Any:
    """User attribute ``key`` of the first of ``trials`` that recorded it, else None (a
    configuration's trials share it: its parameter counts)."""
    return next((t.user_attrs[key] for t in trials if key in t.user_attrs), None)


def _search_summary(group: StudyGroup, kind: str, trials: Sequence[FrozenTrial]
                    ) -> dict[str, Any]:
    done = [t for t in trials if t.state == TrialState.COMPLETE]
    best = min(done, key=lambda t: (t.value, t.number)) if done else None
    return {"study": group.search_studies[kind],
            "studies": list(group.searches.get(kind, {})), **trial_counts(trials),
            "best_search_study": group.study_of(best, kind) if best else None,
            "best_search_trial": best.number if best else None,
            "best_search_value": float(best.value) if best else None,
            "best_search_ci": best.user_attrs.get("kl_ci") if best else None}


def _failures(group: StudyGroup) -> list[dict[str, Any]]:
    out = []
    studies = list(group.study_trials.items())
    studies += [(group.validation_study, group.validation)] if group.validation_study else []
    for study, trials in studies:
        retried = retried_numbers(trials)
        for t in trials:
            if t.state == TrialState.FAIL:
                out.append({"study": study, "trial": t.number, "retried": t.number in retried,
                            "ended": t.user_attrs.get(ENDED) or ""})
    return out


def study_sigma(group: StudyGroup) -> tuple[float | None, list[float]]:
    """The group's s: what its complete trials recorded (None if they disagree), else the study
    file's ``metric.sigma``, else the target's default; and every value the trials recorded."""
    trials = [t for ts in group.search.values() for t in ts] + list(group.validation)
    seen = sorted({float(t.user_attrs["sigma"]) for t in trials
                   if t.state == TrialState.COMPLETE and t.user_attrs.get("sigma") is not None})
    if seen:
        return seen[0] if len(seen) == 1 else None, seen
    study_file = group.study_file
    sigma = (study_file.get("metric") or {}).get("sigma")
    if sigma is None and study_file.get("target"):
        from hpo.target import build_target
        from metrics import default_sigma

        try:
            sigma = default_sigma(build_target(study_file["target"]))
        except (ValueError, KeyError, TypeError):
            sigma = None
    return (float(sigma) if sigma is not None else None), []


def no_validation_reason(group: StudyGroup) -> str | None:
    """Why ``group`` has no seed validation to wait for (``hpo validate`` would refuse it or
    run nothing), or ``None`` when it has one."""
    if group.layout == "single":
        return "a single-layout study has no seed validation; layout: per-kind runs one"
    plan = validation_plan(group.study_file)
    if plan["validation.top_k"] == 0 or plan["validation.seeds"] == 0:
        return "its study file turns seed validation off (validation.top_k or seeds 0)"
    return None


def build_report(group: StudyGroup, *, storage: str = "",
                 generated_at: datetime | None = None) -> dict[str, Any]:
    """The whole report as JSON-ready data (NaN and infinities become ``None``)."""
    study_file = group.study_file
    metric = study_file.get("metric") or {}
    sigma, sigmas_seen = study_sigma(group)
    validated = validated_configurations(group)
    compared = comparisons({k: [c for c in cs if not c["random_search"]]
                            for k, cs in validated.items()}, sigma)
    primary = compared["primary"]
    if primary is None:
        why = ("fewer than two kinds have validated configurations" if validated
               else no_validation_reason(group)
               or "no seed validation has finished yet; run `hpo validate`")
        verdict = {"sentence": f"A difference between the kinds is not established ({why}).",
                   "established": False, "winner": None, "profile_holds": None,
                   "profile_sentence": None}
    else:
        verdict = _pair_verdict(primary)
    # What the hybrid's circuit adds over its own head: hybrid vs control, when both validated.
    verdict["control"] = (_pair_verdict(compared["control"]) | {"kinds": list(VERDICT_PAIRS[1])}
                          if compared["control"] is not None else None)
    # The answer about kinds: each arm's searches' validated winners, compared over searches.
    arms = arms_section(group, validated, ordered_pairs(group.kinds))
    primary_arms = arms["arms_comparisons"][0] if arms["arms_comparisons"] else None
    verdict["arms"] = primary_arms and {
        "kinds": primary_arms["kinds"], "searches": primary_arms["searches"],
        "available": primary_arms["available"], "sentence": primary_arms["sentence"],
        "notes": (primary_arms["verdict"] or {}).get("notes", []),
        "holds": (primary_arms["verdict"] or {}).get("holds"),
        "better": (primary_arms["verdict"] or {}).get("better"),
        "adjusted_p": (primary_arms["verdict"] or {}).get("adjusted_p")}
    search_trials = [t for ts in group.search.values() for t in ts]
    search_seeds = sorted({s for t in search_trials if (s := trial_seed(t)) is not None})
    validation_seeds = sorted({s for t in group.validation if (s := trial_seed(t)) is not None})
    budget = study_file.get("budget") or {}
    validation_cfg = study_file.get("validation") or {}
    report = {
        "schema": SCHEMA,
        "study": group.name,
        "layout": group.layout,
        "generated_at": (generated_at or datetime.now(UTC)).isoformat(timespec="seconds"),
        "confidence": CONFIDENCE,
        "metric": {"name": metric_name(sigma), "unit": "nats", "sigma": sigma,
                   "sigmas_seen": sigmas_seen, "m": metric.get("eval_samples"),
                   "n": metric.get("n_target"), "points": metric.get("points", "iid"),
                   "replicates": metric.get("replicates"),
                   "profile_factors": list(DEFAULT_PROFILE),
                   "w2_points": w2_points(metric)},
        "verdict": verdict,
        "kinds": {
            kind: {"search": _search_summary(group, kind, trials),
                   "validated": validated.get(kind, [])}
            for kind, trials in group.search.items()},
        "comparisons": compared["pairs"],
        **arms,
        "anytime": {kind: _anytime(trials) for kind, trials in group.search.items()},
        "provenance": {
            "study_file": study_file,
            "storage": storage,
            "search_studies": group.search_studies,
            "searches": {kind: list(studies) for kind, studies in group.searches.items()},
            "validation_study": group.validation_study,
            "code_versions": sorted({str(t.user_attrs["code_version"])
                                     for t in search_trials + list(group.validation)
                                     if t.user_attrs.get("code_version")}),
            "seeds": {"search": search_seeds, "validation": validation_seeds,
                      "overlap": sorted(set(search_seeds) & set(validation_seeds))},
            "budget": {
                "trials": budget.get("trials"),
                "per_kind": (kind_budgets(int(budget["trials"]), list(group.search))
                             if budget.get("trials") and group.layout == "per-kind" else None),
                "steps": budget.get("steps"),
                "validation": {"top_k": validation_cfg.get("top_k"),
                               "seeds": validation_cfg.get("seeds")},
                "spent": {kind: trial_counts(trials) for kind, trials in group.search.items()}
                | {"validation": trial_counts(group.validation)},
            },
            "failures": _failures(group),
        },
    }
    return json_safe(report)


def json_safe(value: Any) -> Any:
    """``value`` with NaN/inf floats as ``None`` and tuples as lists, so ``json.dumps`` gives
    standard JSON."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value
