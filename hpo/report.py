"""Plain-text summaries of a study: what `hpo run` prints at the end and `hpo status` shows."""

from __future__ import annotations

from typing import Any

import optuna
from optuna.trial import TrialState

from hpo.group import StudyGroup
from hpo.report_content import json_safe, metric_name
from hpo.report_html import parameter_split
from hpo.schedule import kind_budgets
from hpo.trials import KIND, budget_counts
from hpo.verdict import seeds_phrase


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
             f"{'modes':>6} {'params (circuit + classical)':>28} {'seconds':>8}"
    lines += ["", header, "-" * len(header)]
    for kind, t in sorted(best.items(), key=lambda kv: kv[1].value):
        a = t.user_attrs
        ci = a.get("kl_ci", [float("nan")] * 2)
        lines.append(
            f"{kind:<10} {t.number:>5} {t.value:>14.4f} {f'[{ci[0]:.4f}, {ci[1]:.4f}]':>19} "
            f"{a.get('w2', float('nan')):>7.3f} {a.get('mode_coverage', float('nan')):>6.2f} "
            f"{parameter_split(a.get('n_params'), a.get('n_params_circuit')):>28} "
            f"{a.get('seconds', float('nan')):>8.1f}")
    return "\n".join(lines)


def status_data(group: StudyGroup) -> dict[str, Any]:
    """What ``hpo status STUDY --json`` prints: per kind its counts, budget share and best; the
    validation's progress; the objective's name.

    A kind's ``best`` is its validated winner (lowest seed mean; ``ranked_by: validated``,
    ``value`` the seed mean over ``n_seeds``) once it has one, else its best search trial
    (``ranked_by: search``, one seed); ``search_best`` is always the best search trial."""
    from hpo.report_content import (
        metric_name,
        study_sigma,
        trial_counts,
        validated_configurations,
    )

    study_file = group.study_file
    total = (study_file.get("budget") or {}).get("trials")
    shares = (kind_budgets(int(total), group.kinds)
              if total and group.layout == "per-kind" else {})
    validated = validated_configurations(group)
    kinds = {}
    for kind, trials in group.search.items():
        best = best_by_kind(trials).get(kind)
        search_best = None if best is None else {
            "trial": best.number, "value": best.value, "ci": best.user_attrs.get("kl_ci"),
            "w2": best.user_attrs.get("w2"),
            "mode_coverage": best.user_attrs.get("mode_coverage"),
            "n_params": best.user_attrs.get("n_params"),
            "n_params_circuit": best.user_attrs.get("n_params_circuit"),
            "seconds": best.user_attrs.get("seconds"), "params": dict(best.params),
            "ranked_by": "search", "n_seeds": 1}
        winner = next((c for c in validated.get(kind, []) if c["mean"] is not None), None)
        headline = search_best if winner is None else {
            "trial": winner["source_trial"], "value": winner["mean"], "ci": winner["ci"],
            "sd": winner["sd"], "w2": winner["w2_mean"],
            "mode_coverage": winner["mode_coverage_mean"], "n_params": winner["n_params"],
            "n_params_circuit": winner["n_params_circuit"],
            "params": winner["params"], "ranked_by": "validated", "n_seeds": winner["n_seeds"],
            "search_rank": winner["rank"]}
        kinds[kind] = {
            "study": group.search_studies[kind], "budget": shares.get(kind),
            "studies": list(group.searches.get(kind, {})),
            **trial_counts(trials), "best": headline, "search_best": search_best}
    sigma, _ = study_sigma(group)
    return json_safe({
        "study": group.name, "layout": group.layout, "metric": metric_name(sigma),
        "budget": total, "kinds": kinds,
        "validation": {
            "study": group.validation_study, **trial_counts(group.validation),
            "configurations": {k: [{"source_study": c["source_study"],
                                    "source_trial": c["source_trial"], "n_seeds": c["n_seeds"],
                                    "mean": c["mean"], "ci": c["ci"]} for c in cs]
                               for k, cs in validated.items()}},
    })


def ranked_by(best: dict[str, Any]) -> str:
    """How a kind's best was chosen, in the words status and the note use."""
    if best.get("ranked_by") == "validated":
        return (f"validated: mean of {seeds_phrase(best['n_seeds'])} (search rank "
                f"{best.get('search_rank', '?')})")
    return "search: one seed"


def group_summary(group: StudyGroup) -> str:
    """``hpo status STUDY`` for a study group: each kind's counts and best (the validated winner
    by seed mean once there is one, and it says so), then the validation."""
    data = status_data(group)
    lines = [f"study {group.name} ({group.layout} layout), objective {data['metric']}"]
    header = f"{'kind':<10} {'study':<24} {'done':>9} {'pruned':>6} {'failed':>6} " \
             f"{'running':>7} {'best trial':>10} {'best D_s':>9} " \
             f"{'params (circuit + classical)':>28}  ranked by"
    lines += [header, "-" * len(header)]
    for kind, k in data["kinds"].items():
        done = f"{k['finished']}/{k['budget']}" if k["budget"] else str(k["finished"])
        best = k["best"] or {}
        value = f"{best['value']:.4f}" if best.get("value") is not None else "-"
        params = parameter_split(best.get("n_params"), best.get("n_params_circuit"))
        study = k["study"] if len(k["studies"]) <= 1 else f"{len(k['studies'])} searches"
        lines.append(f"{kind:<10} {study:<24} {done:>9} {k['pruned']:>6} {k['failed']:>6} "
                     f"{k['running']:>7} {best.get('trial', '-')!s:>10} {value:>9} "
                     f"{params:>28}  {ranked_by(best) if best else '-'}")
    v = data["validation"]
    if v["study"] is None:
        lines.append("validation: not started")
    else:
        lines.append(f"validation ({v['study']}): {v['complete']} complete, {v['failed']} "
                     f"failed, {v['running']} running, {v['waiting']} waiting")
        for kind, configs in v["configurations"].items():
            repeated = len(data["kinds"].get(kind, {}).get("studies", [])) > 1
            for c in configs:
                ci = c["ci"]
                interval = f"[{ci[0]:.4f}, {ci[1]:.4f}]" if ci[0] is not None else "-"
                mean = f"{c['mean']:.4f}" if c["mean"] is not None else "-"
                where = f" {c['source_study']}" if repeated else ""
                lines.append(f"  {kind}{where} #{c['source_trial']}: {seeds_phrase(c['n_seeds'])}, "
                             f"mean {mean}, 95% CI {interval}")
    return "\n".join(lines)


def storage_listing(storage: optuna.storages.BaseStorage) -> list[dict[str, Any]]:
    """``hpo status`` without a study: every study's trials as its budget counts them
    (:func:`hpo.trials.budget_counts`; a failed trial that was retried is not counted, its retry
    holds its place), with the failures so replaced beside them."""
    rows = []
    for study in storage.get_all_studies():
        trials = storage.get_all_trials(storage.get_study_id_from_name(study.study_name),
                                        deepcopy=False)
        c = budget_counts(trials)
        rows.append({"name": study.study_name, "n_trials": c.claimed, "finished": c.finished,
                     "running": c.running, "waiting": c.waiting,
                     "retried_failures": len(trials) - c.claimed})
    return rows


def format_listing(rows: list[dict[str, Any]], where: str) -> str:
    """The listing as text: one line per study."""
    lines = [f"{len(rows)} studies in {where} (trials as the budget counts them)"]
    for r in rows:
        line = (f"  {r['name']}: {r['n_trials']} trials ({r['finished']} finished, "
                f"{r['running']} running, {r['waiting']} waiting)")
        if r["retried_failures"]:
            line += (f"; {r['retried_failures']} failed and retried, not counted (each retry "
                     "holds its place)")
        lines.append(line)
    return "\n".join(lines)
