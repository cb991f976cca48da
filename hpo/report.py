"""Plain-text summaries of a study: what `hpo run` prints at the end and `hpo status` shows."""

from __future__ import annotations

import optuna
from optuna.trial import TrialState

from hpo.budget import budget_counts


def best_by_kind(trials: list[optuna.trial.FrozenTrial]) -> dict[str, optuna.trial.FrozenTrial]:
    """The lowest-KL complete trial of each generator kind."""
    best: dict[str, optuna.trial.FrozenTrial] = {}
    for t in (t for t in trials if t.state == TrialState.COMPLETE):
        kind = t.user_attrs.get("generator_kind", "?")
        if kind not in best or t.value < best[kind].value:
            best[kind] = t
    return best


def summary(study: optuna.Study, budget: int | None = None) -> str:
    """Counts, then the best trial per generator kind with its 95% KL interval."""
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
    header = f"{'kind':<10} {'trial':>5} {'KL(Q||P) nats':>14} {'95% CI':>19} {'W2':>7} " \
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
