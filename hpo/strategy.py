"""The study file's sampler and pruner as Optuna objects."""

from __future__ import annotations

import optuna

from hpo.quiet import quiet_experimental
from hpo.study_file import StudySpec


def make_sampler(spec: StudySpec, worker_seed: int = 0) -> optuna.samplers.BaseSampler:
    """Seeded TPE (or, ``sampler.kind: random``, RandomSampler) at ``sampler.seed +
    worker_seed``: each worker start has its own offset
    (:func:`hpo.worker_identity.claim_worker_number`), so parallel workers do not propose alike."""
    s = spec.sampler
    if s.kind == "random":  # the baseline (random_searches): no model, the same seeding
        return optuna.samplers.RandomSampler(seed=(s.seed + worker_seed) % 2**32)
    with quiet_experimental():
        return optuna.samplers.TPESampler(
            seed=(s.seed + worker_seed) % 2**32, n_startup_trials=s.n_startup_trials,
            multivariate=s.multivariate, group=s.group, constant_liar=s.constant_liar)


def make_pruner(spec: StudySpec) -> optuna.pruners.BasePruner:
    """Prunes on the intermediate D_s reported every ``budget.eval_every`` generator steps.

    A per-kind study file gives each kind's search study its own pruner, so a multi-fidelity
    pruner's rungs and brackets hold that kind's trials only (Optuna keeps them in the study).
    ``patience`` wraps any of them in PatientPruner: a trial is then pruned only when the
    wrapped pruner says so *and* it has not improved for ``patience`` reports.
    """
    p, budget = spec.pruner, spec.budget
    if p.kind == "none":
        return optuna.pruners.NopPruner()
    if p.kind == "median":
        pruner: optuna.pruners.BasePruner = optuna.pruners.MedianPruner(
            n_startup_trials=p.n_startup_trials, n_warmup_steps=p.n_warmup_steps,
            interval_steps=budget.eval_every)
    elif p.kind == "percentile":
        pruner = optuna.pruners.PercentilePruner(
            p.percentile, n_startup_trials=p.n_startup_trials, n_warmup_steps=p.n_warmup_steps,
            interval_steps=budget.eval_every)
    elif p.kind == "successive_halving":
        # Resources are generator steps, as reported. By default the first rung is a quarter of
        # the way through, at a report: the GAN curves that end best start slowly
        # (docs/search-efficiency.md).
        quarter = -(-budget.steps // (4 * budget.eval_every)) * budget.eval_every
        pruner = optuna.pruners.SuccessiveHalvingPruner(
            min_resource=p.min_resource or quarter, reduction_factor=p.reduction_factor,
            min_early_stopping_rate=p.min_early_stopping_rate)
    else:  # Hyperband's brackets start at the first report and skip rungs themselves
        pruner = optuna.pruners.HyperbandPruner(
            min_resource=p.min_resource or budget.eval_every, max_resource=budget.steps,
            reduction_factor=p.reduction_factor)
    if p.patience is not None:
        with quiet_experimental():
            pruner = optuna.pruners.PatientPruner(pruner, patience=p.patience)
    return pruner
