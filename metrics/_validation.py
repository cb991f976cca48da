"""Input checks shared by the estimators: fail early, say what was expected."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["check_points", "check_replicates", "check_target"]


def check_target(target: Any) -> None:
    from .mixture import GaussianMixture

    if not isinstance(target, GaussianMixture):
        raise ValueError(f"target must be a metrics.GaussianMixture, got {type(target).__name__}")


def check_points(x: Any, *, name: str = "samples", min_points: int = 2) -> np.ndarray:
    """Return ``x`` as a float64 (m, 2) array; raise ``ValueError`` on shape, NaN/inf or size."""
    try:
        a = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be a numeric (m, 2) array: {exc}") from None
    if a.ndim != 2 or a.shape[1] != 2:
        raise ValueError(f"{name} must have shape (m, 2), got shape {a.shape}")
    if a.shape[0] < min_points:
        raise ValueError(f"{name} has {a.shape[0]} points; at least {min_points} are needed")
    bad = ~np.all(np.isfinite(a), axis=1)
    if bad.any():
        raise ValueError(
            f"{name} contains {int(bad.sum())} of {a.shape[0]} points with NaN or inf "
            f"(first at row {int(np.flatnonzero(bad)[0])})"
        )
    return a


def check_replicates(samples: Any, *, min_points: int = 2) -> list[np.ndarray]:
    """Accept one (m, 2) array or a non-empty list/tuple of them; return a list of arrays."""
    if isinstance(samples, (list, tuple)):
        if len(samples) == 0:
            raise ValueError("samples is an empty list; pass an (m, 2) array or a list of them")
        if all(np.ndim(s) == 2 for s in samples):
            return [
                check_points(s, name=f"samples[{i}]", min_points=min_points)
                for i, s in enumerate(samples)
            ]
    arr = np.asarray(samples) if not isinstance(samples, np.ndarray) else samples
    if arr.ndim == 3:
        return [check_points(s, name=f"samples[{i}]", min_points=min_points)
                for i, s in enumerate(arr)]
    return [check_points(samples, min_points=min_points)]
