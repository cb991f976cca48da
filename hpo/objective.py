"""One trial: sample a config, train it, report D_s as it goes, return the final estimate.

Every trial reports at the same generator steps (multiples of ``budget.eval_every``), so the pruner
compares like with like. What a trial stores (user attributes) is enough to reproduce and to defend
it: the exportable config (a YAML artifact, ``config_yaml``, summarised in one line, ``config``),
seed, code version, the resolution ``sigma`` (s), D_s's stderr and
95% interval (``kl_stderr``, ``kl_ci``), the resolution profile (``kl_profile``), the k-NN
estimate of the unsmoothed KL (``kl_knn``), Wasserstein-2, mode coverage, parameter count,
seconds, the bias correction in one line (``kl_correction``; every replicate and estimate are a
JSON artifact, ``kl_details_json``) and ``ended`` (complete / pruned at step N / diverged ...).
A PNG of its samples over the target's contours is uploaded as an artifact.
"""

from __future__ import annotations

import errno
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import optuna
from optuna.artifacts import upload_artifact
from optuna.trial import TrialState

import models
from hpo.errors import StorageError
from hpo.group import kind_spec
from hpo.metric import resolved_metric
from hpo.score_details import store_score_details
from hpo.space import suggest_arm
from hpo.study_file import Metric, StudySpec
from hpo.target import build_target
from hpo.transient import dropped_connection_line
from hpo.trial_config import store_config
from hpo.trials import (
    ARTIFACT_ERROR,
    KIND,
    OUTCOME,
    SAMPLES_PNG,
    SEED,
    SIGMA,
    VALIDATES,
    WORKER,
    WORKER_PROCESS,
    Outcome,
    begin,
    mark_ended,
    original_number,
    this_process,
)
from hpo.version import code_version
from metrics import GaussianMixture, KLEstimate

if TYPE_CHECKING:
    from hpo.evaluate import Score


def trial_seed(trial: optuna.Trial, spec: StudySpec) -> int:
    """``spec.seed`` plus the number of the trial's first attempt: a retry keeps its seed."""
    running = trial.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    frozen = next((t for t in running if t.number == trial.number), None)
    return spec.seed + (original_number(frozen) if frozen is not None else trial.number)


def exported_config(spec: StudySpec, target: GaussianMixture, metric: Metric,
                    config: dict[str, Any]) -> dict[str, Any]:
    """What ``hpo train`` needs to reproduce a trial: target, metric settings (s resolved),
    training config."""
    return {
        "study": spec.name,
        "target": target.to_dict(),
        "metric": metric.model_dump(mode="json"),
        "train": config,
    }


def score_caption(score: Score) -> str:
    """A complete trial's image caption: its D_s with interval and its W2."""
    kl = score.kl
    return (f"D_s {kl.value:.3f} [{kl.ci_low:.3f}, {kl.ci_high:.3f}] (s={kl.sigma:g})  "
            f"W2 {score.w2:.2f}")


def samples_title(study: str, number: int, attrs: dict[str, Any], caption: str) -> str:
    """A trial's image title: every image names the kind, the seed and the value."""
    return f"{study} trial {number}, {attrs.get(KIND, '?')} seed {attrs.get(SEED, '?')}\n{caption}"


class Objective:
    """The function of a trial handed to ``study.optimize``: returns the final KL, or raises.

    It owns nothing of the trial's life beyond the trial itself (docs/design.md, "A trial's
    life"): ``should_stop()`` (default: never) is polled at every training step and makes it raise
    ``models.TrainingStopped``, with ``ended`` saying so (and ``should_stop.reason`` when it has
    one); the worker's callbacks log and re-queue.
    """

    def __init__(self, spec: StudySpec, artifact_store: Any, worker_id: str,
                 should_stop: Callable[[], bool] | None = None) -> None:
        self.spec = spec
        self.target = build_target(spec.target)
        self.metric = resolved_metric(spec.metric, self.target)  # s, once per study
        self.artifact_store = artifact_store
        self.worker_id = worker_id
        self.should_stop = should_stop or (lambda: False)

    def __call__(self, trial: optuna.Trial) -> float:
        begin(trial)
        try:
            return self._run(trial)
        except (optuna.TrialPruned, StorageError):
            raise  # a storage whose outage outlasted the worker's patience takes no more writes
        except Exception as err:
            # A trial pruned or complete whose last writes (its picture) failed ends FAIL: its
            # outcome must say why. Diverged, stopped and lost trials have said it already.
            if trial.user_attrs.get(OUTCOME) not in (Outcome.DIVERGED, Outcome.STOPPED,
                                                     Outcome.LOST):
                dropped = dropped_connection_line(err)
                if dropped:  # not the configuration's fault: lost, and retried
                    mark_ended(trial, Outcome.LOST, f"{dropped} cut it off")
                else:
                    mark_ended(trial, Outcome.FAILED, f"{type(err).__name__}: {err}")
            raise

    def _run(self, trial: optuna.Trial) -> float:
        trial.set_user_attr(WORKER, self.worker_id)
        trial.set_user_attr(WORKER_PROCESS, this_process())
        if self.should_stop():
            mark_ended(trial, Outcome.STOPPED, self._stop_reason())
            raise models.TrainingStopped(1)
        validates = trial.user_attrs.get(VALIDATES)
        if validates is not None:  # a seed validation: enqueued with its arm and fresh seed
            arm = trial.user_attrs[KIND]
            arm, config = suggest_arm(trial, kind_spec(self.spec, arm),
                                      int(trial.user_attrs[SEED]))
        else:
            arm, config = suggest_arm(trial, self.spec, trial_seed(trial, self.spec))
        # The exportable config is a YAML artifact; the attribute is one short line (a JSON
        # mapping made the dashboard's trial pages 6,000 px wide).
        # The arm (``hybrid``), which groups trials, first: a trial that fails from here on
        # is still counted with its arm. The model kind is in the config.
        trial.set_user_attr(KIND, arm)
        exported = exported_config(self.spec, self.target, self.metric, config)
        try:
            store_config(trial, self.artifact_store, exported)
        except OSError as err:  # a full or read-only file store: the machine's fault, retried
            if err.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS):
                mark_ended(trial, Outcome.LOST, f"{err.strerror} (artifact store) cut it off")
            raise
        trial.set_user_attr(SEED, config["seed"])
        trial.set_user_attr("code_version", code_version())
        trial.set_user_attr(SIGMA, self.metric.sigma)  # every trial of a study: the same s
        last: dict[str, Any] = {}

        def report(step: int, kl: KLEstimate, samples: np.ndarray) -> None:
            last.update(step=step, samples=samples)
            trial.report(kl.value, step)
            # At the last step training is over: nothing to save, so the trial gets its
            # final, replicated score instead of being pruned.
            if step < self.spec.budget.steps and trial.should_prune():
                mark_ended(trial, Outcome.PRUNED, str(step))
                self._after_training(trial, lambda: self._upload_plot(
                    trial, samples, f"pruned at step {step}, D_s {kl.value:.3f}"))
                raise optuna.TrialPruned(f"D_s {kl.value:.4f} at step {step}")

        # torch with it, at the first trial: a worker that finds the budget taken never loads
        # it (hpo.worker)
        from hpo.evaluate import train_and_score

        try:
            score = train_and_score(config, self.target, self.metric, report,
                                    self.should_stop)
        except models.TrainingDiverged as err:
            mark_ended(trial, Outcome.DIVERGED, str(err))
            if "samples" in last:
                self._after_training(trial, lambda: self._upload_plot(
                    trial, last["samples"], f"diverged after step {last['step']}"))
            raise
        except models.TrainingStopped:
            mark_ended(trial, Outcome.STOPPED, self._stop_reason())
            raise
        self._record(trial, score)
        return score.kl.value

    def _stop_reason(self) -> str:
        return getattr(self.should_stop, "reason", "")  # a worker's StopFlag says why

    def _record(self, trial: optuna.Trial, score: Score) -> None:
        details = score.as_dict()
        for key in ("sigma", "kl_stderr", "kl_ci", "kl_profile", "kl_knn", "w2", "mode_coverage",
                    "n_params", "n_params_circuit", "steps", "seconds"):
            trial.set_user_attr(key, details[key])
        self._after_training(trial, lambda: store_score_details(trial, self.artifact_store, score))
        mark_ended(trial, Outcome.COMPLETE)
        self._after_training(trial, lambda: self._upload_plot(trial, score.samples,
                                                              score_caption(score)))

    @staticmethod
    def _after_training(trial: optuna.Trial, write: Callable[[], Any]) -> None:
        """An artifact written once training is over: a full or read-only file store, or an
        object store that fails, costs the artifact (its error kept in ``artifact_error``), not
        the trained result."""
        try:
            write()
        except _store_errors() as err:
            reason = err.strerror if isinstance(err, OSError) and err.strerror else str(err)
            trial.set_user_attr(ARTIFACT_ERROR, reason[:200])

    def _upload_plot(self, trial: optuna.Trial, samples: np.ndarray, caption: str) -> None:
        # matplotlib here, not at the top: 0.6 s of CPU that a worker whose trials are all pruned,
        # stopped or failed never needs (the process-level tests start about a hundred workers).
        from hpo.plots import plot_samples

        title = samples_title(self.spec.name, trial.number, trial.user_attrs, caption)
        with tempfile.TemporaryDirectory() as tmp:
            path = plot_samples(self.target, samples, Path(tmp) / f"trial-{trial.number}.png",
                                title=title)
            artifact_id = upload_artifact(artifact_store=self.artifact_store,
                                          file_path=str(path), study_or_trial=trial,
                                          mimetype="image/png")
        trial.set_user_attr(SAMPLES_PNG, artifact_id)


def _store_errors() -> tuple[type[BaseException], ...]:
    """What an artifact store's write raises when the store, not the trial, fails: a file
    system's OSError, and botocore's errors where an object store loaded it (not imported here:
    a file store never needs it)."""
    boto = sys.modules.get("botocore.exceptions")
    return (OSError,) + ((boto.BotoCoreError, boto.ClientError) if boto is not None else ())
