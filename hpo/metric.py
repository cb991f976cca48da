"""The study's metric resolved on its target, and the objective name the dashboard shows.

Torch-free on purpose: `hpo init` and `hpo run` name the study's objective before any training,
and importing torch (hpo.evaluate trains) cost each of those processes seconds of CPU.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hpo.study_file import Metric, StudySpec
from hpo.target import build_target
from metrics import GaussianMixture, default_sigma, divergence_name


def resolved_metric(metric: Metric, target: GaussianMixture) -> Metric:
    """``metric`` with its resolution s filled in (the study file's ``sigma``, else the target's
    default): resolved once per study, then carried by trials and exported configs."""
    if metric.sigma is not None:
        return metric
    return metric.model_copy(update={"sigma": float(default_sigma(target))})


def objective_name(spec: StudySpec) -> str:
    """The study's objective as the dashboard names it: ``D_s KL(Q||P) [nats], s = ...``."""
    return divergence_name(resolved_metric(spec.metric, build_target(spec.target)).sigma)


def w2_points(metric: Mapping[str, Any]) -> int:
    """The points W2 was solved on under a stored file's metric section: ``w2_points``, capped
    by ``eval_samples`` as :func:`metrics.wasserstein2` caps it (files from before the setting
    read through its default, which is what they ran)."""
    def setting(key: str) -> int:  # not validated: a report reads whatever a study ran by
        return int(metric.get(key, Metric.model_fields[key].default))

    return min(setting("w2_points"), setting("eval_samples"))
