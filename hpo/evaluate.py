"""Train one configuration and score it: shared by trials (``objective``) and ``hpo train``.

The score is the study's metric: a bias-corrected KL(Q||P) over ``replicates`` independent draws of
``eval_samples`` generator points, against ``n_target`` fixed target points, with Wasserstein-2 and
mode coverage beside it. Every random draw is seeded from the config, so the same config on the same
machine gives the same number.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

import models
from metrics import GaussianMixture, KLEstimate, kl_divergence, mode_coverage, wasserstein2

Report = Callable[[int, KLEstimate, np.ndarray], None]


@dataclass(frozen=True)
class Score:
    """What a finished training run is worth."""

    kl: KLEstimate
    w2: float
    mode_coverage: float
    n_params: int
    steps: int
    seconds: float
    samples: np.ndarray  # the first replicate, for the picture

    def as_dict(self) -> dict[str, Any]:
        return {
            "kl": self.kl.value,
            "kl_stderr": self.kl.stderr,
            "kl_ci": [self.kl.ci_low, self.kl.ci_high],
            "w2": self.w2,
            "mode_coverage": self.mode_coverage,
            "n_params": self.n_params,
            "steps": self.steps,
            "seconds": self.seconds,
            "kl_details": self.kl.as_dict(),
        }


def kl_options(metric: dict[str, Any]) -> dict[str, Any]:
    options = {"seed": metric["seed"], "n_target": metric["n_target"]}
    if metric.get("k") is not None:
        options["k"] = metric["k"]
    return options


def train_and_score(config: dict[str, Any], target: GaussianMixture, metric: dict[str, Any],
                    report: Report | None = None,
                    should_stop: Callable[[], bool] | None = None) -> Score:
    """Train ``config`` on ``target``; ``report(step, kl, samples)`` sees every evaluation.

    ``report`` may raise (``optuna.TrialPruned``) to stop training; that propagates.
    ``models.TrainingDiverged`` propagates too, also for non-finite final samples.
    ``should_stop()`` is polled at every training step and before the final scoring; when it
    answers True, ``models.TrainingStopped`` is raised.
    """
    options = kl_options(metric)
    started = time.perf_counter()

    def on_eval(step: int, samples: np.ndarray) -> None:
        if report is not None:
            report(step, kl_divergence(target, samples, **options), samples)

    result = models.train(config, target.sample, on_eval, should_stop)
    if should_stop is not None and should_stop():
        raise models.TrainingStopped(result.steps + 1)
    draws = final_samples(result.generator, config["seed"], metric["replicates"],
                          metric["eval_samples"])
    for replicate in draws:
        if not np.all(np.isfinite(replicate)):
            raise models.TrainingDiverged(result.steps, "final generator samples")
    kl = kl_divergence(target, draws, **options)
    return Score(
        kl=kl,
        w2=float(wasserstein2(target, draws[0], seed=metric["seed"])),
        mode_coverage=float(mode_coverage(target, draws[0])),
        n_params=result.generator.n_parameters(),
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
