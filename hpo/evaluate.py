"""Train one configuration and score it: shared by trials (``objective``) and ``hpo train``.

The score is the study's metric: D_s = KL(Q_s||P_s) at the study's resolution s (the metric's
``sigma``, else ``metrics.default_sigma`` of the target), jackknife-corrected, over ``replicates``
independent draws of ``eval_samples`` generator points against ``n_target`` fixed points drawn from
Q_s (independent draws shared by the replicates, or with ``points: rqmc`` a scrambled Sobol set
per replicate); beside it the resolution profile (D at 0.5, 1 and 2 times s), the k-NN estimate
of the unsmoothed KL(Q||P) as a diagnostic, Wasserstein-2 and mode coverage. Intermediate
reports are pruning signals: D_s from one draw of ``eval_samples`` points against only
``n_report`` evaluation points (their interval is wider; see docs/kl-estimators.md). Every
random draw is seeded from the config, so the same config on the same machine gives the same
number.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

import models
from hpo.metric import resolved_metric
from hpo.study_file import Metric
from metrics import (
    DEFAULT_PROFILE,
    GaussianMixture,
    KLEstimate,
    kl_divergence,
    mode_coverage,
    wasserstein2,
)

Report = Callable[[int, KLEstimate, np.ndarray], None]


@dataclass(frozen=True)
class Score:
    """What a finished training run is worth."""

    kl: KLEstimate  # D_s at the study's s
    profile: tuple[tuple[float, KLEstimate], ...]  # (factor, D at factor * s)
    knn: KLEstimate | None  # unsmoothed KL(Q||P) by k-NN, a diagnostic
    w2: float
    mode_coverage: float
    n_params: int
    n_params_circuit: int  # of n_params, those in a quantum circuit; the rest are classical
    steps: int
    seconds: float
    samples: np.ndarray  # the first replicate, for the picture

    def as_dict(self) -> dict[str, Any]:
        return {
            "kl": self.kl.value,
            "sigma": self.kl.sigma,
            "kl_stderr": self.kl.stderr,
            "kl_ci": [self.kl.ci_low, self.kl.ci_high],
            "kl_profile": [
                {"factor": f, "sigma": e.sigma, "value": e.value, "ci_low": e.ci_low,
                 "ci_high": e.ci_high}
                for f, e in self.profile
            ],
            "kl_knn": None if self.knn is None else self.knn.value,
            "w2": self.w2,
            "mode_coverage": self.mode_coverage,
            "n_params": self.n_params,
            "n_params_circuit": self.n_params_circuit,
            "steps": self.steps,
            "seconds": self.seconds,
            "kl_details": self.kl.as_dict(),
        }


def train_and_score(config: dict[str, Any], target: GaussianMixture, metric: Metric,
                    report: Report | None = None,
                    should_stop: Callable[[], bool] | None = None) -> Score:
    """Train ``config`` on ``target``; ``report(step, kl, samples)`` sees every evaluation.

    ``report`` may raise (``optuna.TrialPruned``) to stop training; that propagates.
    ``models.TrainingDiverged`` propagates too, also for non-finite final samples.
    ``should_stop()`` is polled at every training step and between the stages of the final
    scoring (each under half a second at the defaults here); when it answers True,
    ``models.TrainingStopped`` is raised, so a stopped worker never finishes a score it was
    told to abandon.
    """
    metric = resolved_metric(metric, target)
    sigma, seed, n_target = metric.sigma, metric.seed, metric.n_target
    started = time.perf_counter()

    def on_eval(step: int, samples: np.ndarray) -> None:
        if report is not None:
            report(step, kl_divergence(target, samples, sigma=sigma, seed=seed,
                                       n_target=metric.n_report, points=metric.points), samples)

    result = models.train(config, target.sample, on_eval, should_stop)

    def unless_stopped(score: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        if should_stop is not None and should_stop():
            raise models.TrainingStopped(result.steps + 1)
        return score(*args, **kwargs)

    draws = unless_stopped(final_samples, result.generator, config["seed"],
                           metric.replicates, metric.eval_samples)
    for replicate in draws:
        if not np.all(np.isfinite(replicate)):
            raise models.TrainingDiverged(result.steps, "final generator samples")
    kl = unless_stopped(kl_divergence, target, draws, sigma=sigma, seed=seed, n_target=n_target,
                        points=metric.points)
    profile = tuple(
        (factor, kl if factor == 1.0 else
         unless_stopped(kl_divergence, target, draws, sigma=factor * sigma, seed=seed,
                        n_target=n_target, points=metric.points))
        for factor in DEFAULT_PROFILE
    )
    knn = None
    if metric.knn:
        options = {} if metric.k is None else {"k": metric.k}
        knn = unless_stopped(kl_divergence, target, draws, method="knn", seed=seed,
                             n_target=n_target, **options)
    return Score(
        kl=kl,
        profile=profile,
        knn=knn,
        w2=float(unless_stopped(wasserstein2, target, draws[0], seed=seed,
                                max_points=metric.w2_points)),
        mode_coverage=float(mode_coverage(target, draws[0])),
        n_params=result.generator.n_parameters(),
        n_params_circuit=result.generator.n_circuit_parameters(),
        steps=result.steps,
        seconds=time.perf_counter() - started,
        samples=draws[0],
    )


def final_samples(generator: torch.nn.Module, seed: int, replicates: int, m: int
                  ) -> list[np.ndarray]:
    """``replicates`` independent draws of ``m`` points, each from its own seeded stream."""
    draws = []
    with torch.no_grad():
        for r in range(replicates):
            stream = torch.Generator().manual_seed(int(np.random.SeedSequence([seed, 1, r])
                                                       .generate_state(1)[0]))
            draws.append(generator.sample(m, generator=stream).double().cpu().numpy())
    return draws
