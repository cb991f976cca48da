"""Holm's step-down correction across the resolution profile.

The same comparison made at several resolutions (0.5, 1 and 2 times s) is a family of tests; a
claim "at some resolution" must control the family-wise error. Holm (1979) does so under any
dependence between the tests (the profile's tests are strongly dependent: the same trainings
scored at nearby s) and is uniformly more powerful than Bonferroni. scipy has no Holm
(``scipy.stats.false_discovery_control`` is Benjamini-Hochberg, which controls the false
discovery rate instead).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from hpo.verdict import finite_values

__all__ = ["holm"]


def holm(p_values: Sequence[float]) -> np.ndarray:
    """Holm-adjusted p-values, in the input's order.

    Parameters
    ----------
    p_values : sequence of float
        One p-value in [0, 1] per hypothesis; at least one.

    Returns
    -------
    numpy.ndarray
        With ``p_(1) <= ... <= p_(m)`` the sorted p-values,
        ``adj_(i) = min(1, max_{j <= i} (m - j + 1) p_(j))``. Hypothesis ``i`` is rejected at level
        ``alpha`` (family-wise) iff ``adj_i <= alpha``: the same decisions as the step-down rule
        "reject ``H_(1)``, ``H_(2)``, ... while ``p_(j) <= alpha / (m - j + 1)``, stop at the first
        that fails". Adjusted values keep the order of the raw ones.
    """
    p = finite_values(p_values, "p-values")
    if p.size == 0:
        raise ValueError("p-values are empty; give at least one")
    if np.any((p < 0.0) | (p > 1.0)):
        raise ValueError(f"p-values must lie in [0, 1], got {p.tolist()}")
    order = np.argsort(p, kind="stable")
    scaled = (p.size - np.arange(p.size)) * p[order]
    adjusted = np.empty_like(p)
    adjusted[order] = np.minimum(1.0, np.maximum.accumulate(scaled))
    return adjusted
