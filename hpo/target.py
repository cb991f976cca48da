"""The target mixture of a study or of an exported config."""

from __future__ import annotations

from typing import Any

from metrics import GaussianMixture


def build_target(target: Any) -> GaussianMixture:
    """A :class:`metrics.GaussianMixture` from a study file's ``target`` (model or plain dict).

    ``{"preset": name}`` or ``{"weights": ..., "means": ..., "covariances": ...}``; raises
    ``ValueError`` (from ``metrics``) naming what is wrong.
    """
    data = target.model_dump(exclude_none=True) if hasattr(target, "model_dump") else dict(target)
    if "preset" in data:
        return GaussianMixture.preset(data["preset"])
    return GaussianMixture(data["weights"], data["means"], data["covariances"])
