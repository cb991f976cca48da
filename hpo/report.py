"""Plain-text summaries of a study: what `hpo run` prints at the end and `hpo status` shows."""

from __future__ import annotations

from typing import Any

import optuna
from optuna.trial import TrialState

from hpo.group import StudyGroup
from hpo.report_content import json_safe, metric_name
from hpo.schedule import kind_budgets
from hpo.trials import KIND, budget_counts


def best_by_kind(trials: list[optuna.trial.FrozenTrial]) -> dict[str, optuna.trial.FrozenTrial]:
    """The lowest-KL complete trial of each generator kind."""
    best: dict[str, optuna.trial.FrozenTrial] = {}
    for t in (t for t in trials if t.state == TrialState.COMPLETE):
        kind = t.user_attrs.get(KIND, "?")
        if kind not in best or t.value < best[kind].value:
            best[kind] = t
    return best


def summary(study: optuna.Study, budget: int | None = None) -> str:
    """Counts and the objective's name, then the best trial per generator kind with its 95%
    interval of D_s."""
    trials = study.get_trials(deepcopy=False)
    c = budget_counts(trials)
    total = f"/{budget}" if budget is not None else ""
    lines = [
        f"study {study.study_name}: {c.finished}{total} finished "
        f"({c.complete} complete, {c.pruned} pruned, {c.failed} failed), "
        f"{c.running} running, {c.waiting} waiting",
    ]
    best = best_by_kind(trials)
    if not best:
        lines.append("no complete trial yet")
        return "\n".join(lines)
    if study.metric_names:
        objective = study.metric_names[0]
    else:  # a study created before studies named their objective: the s its trials recorded
        sigmas = {t.user_attrs.get("sigma") for t in best.values()}
        objective = metric_name(sigmas.pop() if len(sigmas) == 1 else None)
    lines.append(f"objective {objective}")
    header = f"{'kind':<10} {'trial':>5} {'D_s nats':>14} {'95% CI':>19} {'W2':>7} " \
             f"{'modes':>6} {'params':>7} {'seconds':>8}"
    lines += ["", header, "-" * len(header)]
    for kind, t in sorted(best.items(), key=lambda kv: kv[1].value):
        a = t.user_attrs
        ci = a.get("kl_ci", [float("nan")] * 2)
        lines.append(
            f"{kind:<10} {t.number:>5} {t.value:>14.4f} {f'[{ci[0]:.4f}, {ci[1]:.4f}]':>19} "
            f"{a.get('w2', float('nan')):>7.3f} {a.get('mode_coverage', float('nan')):>6.2f} "
            f"{a.get('n_params', 0):>7d} {a.get('seconds', float('nan')):>8.1f}")
    return "\n".join(lines)


def status_data(group: StudyGroup) -> dict[str, Any]:
    """What ``hpo status STUDY --json`` prints: per kind its counts, budget share and best
    trial; the validation's progress; the objective's name."""
    from hpo.report_content import (
        metric_name,
        study_sigma,
        trial_counts,
        validated_configurations,
    )

    study_file = group.study_user_attrs.get("study_file") or {}
    total = (study_file.get("budget") or {}).get("trials")
    shares = (kind_budgets(int(total), group.kinds)
              if total and group.layout == "per-kind" else {})
    kinds = {}
    for kind, trials in group.search.items():
        best = best_by_kind(trials).get(kind)
        kinds[kind] = {
            "study": group.search_studies[kind], "budget": shares.get(kind),
            **trial_counts(trials),
            "best": None if best is None else {
                "trial": best.number, "value": best.value, "ci": best.user_attrs.get("kl_ci"),
                "w2": best.user_attrs.get("w2"),
                "mode_coverage": best.user_attrs.get("mode_coverage"),
                "n_params": best.user_attrs.get("n_params"),
                "seconds": best.user_attrs.get("seconds"), "params": dict(best.params)}}
    validated = validated_configurations(group)
    sigma, _ = study_sigma(group)
    return json_safe({
        "study": group.name, "layout": group.layout, "metric": metric_name(sigma),
        "budget": total, "kinds": kinds,
        "validation": {
            "study": group.validation_study, **trial_counts(group.validation),
            "configurations": {k: [{"source_trial": c["source_trial"], "n_seeds": c["n_seeds"],
                                    "mean": c["mean"], "ci": c["ci"]} for c in cs]
                               for k, cs in validated.items()}},
    })


def group_summary(group: StudyGroup) -> str:
    """``hpo status STUDY`` for a study group: each kind's counts and best, then validation."""
    data = status_data(group)
    lines = [f"study {group.name} ({group.layout} layout), objective {data['metric']}"]
    header = f"{'kind':<10} {'study':<24} {'done':>9} {'pruned':>6} {'failed':>6} " \
             f"{'running':>7} {'best trial':>10} {'best D_s':>9}"
    lines += [header, "-" * len(header)]
    for kind, k in data["kinds"].items():
        done = f"{k['finished']}/{k['budget']}" if k["budget"] else str(k["finished"])
        best = k["best"] or {}
        value = f"{best['value']:.4f}" if best.get("value") is not None else "-"
        lines.append(f"{kind:<10} {k['study']:<24} {done:>9} {k['pruned']:>6} {k['failed']:>6} "
                     f"{k['running']:>7} {best.get('trial', '-')!s:>10} {value:>9}")
    v = data["validation"]
    if v["study"] is None:
        lines.append("validation: not started")
    else:
        lines.append(f"validation ({v['study']}): {v['complete']} complete, {v['failed']} "
                     f"failed, {v['running']} running, {v['waiting']} waiting")
        for kind, configs in v["configurations"].items():
            for c in configs:
                ci = c["ci"]
                interval = f"[{ci[0]:.4f}, {ci[1]:.4f}]" if ci[0] is not None else "-"
                mean = f"{c['mean']:.4f}" if c["mean"] is not None else "-"
                lines.append(f"  {kind} #{c['source_trial']}: {c['n_seeds']} seeds, "
                             f"mean {mean}, 95% CI {interval}")
    return "\n".join(lines)
