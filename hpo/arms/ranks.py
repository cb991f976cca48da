"""A rank test beside Welch: Mann-Whitney U on search-level values, with its floor stated.

With few searches per arm the exact rank test has a floor: the most extreme arrangement (every
search of one arm below every search of the other) has probability ``1 / C(m + n, m)`` under the
null, so the smallest two-sided p is ``2 / C(m + n, m)``: 0.1 at 3 and 3 searches, 0.057 at 3 and
4, 0.029 at 4 and 4. Below that floor no data can reach the level, and the sentence says so.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from hpo.verdict import CONFIDENCE, check_confidence, finite_values

__all__ = ["RankTest", "min_rank_p", "rank_test"]

#: Largest total sample size for the exact null distribution; beyond it (or with ties) the normal
#: approximation with tie and continuity correction is used.
EXACT_UP_TO = 40


def min_rank_p(n_a: int, n_b: int) -> float:
    """Smallest attainable two-sided exact Mann-Whitney p with ``n_a`` and ``n_b`` values, no ties.

    ``min(1, 2 / C(n_a + n_b, n_a))``.
    """
    if n_a < 1 or n_b < 1:
        raise ValueError(f"each side needs at least one value, got {n_a} and {n_b}")
    return min(1.0, 2.0 / math.comb(n_a + n_b, n_a))


@dataclass(frozen=True)
class RankTest:
    """Two-sided Mann-Whitney U test of ``a`` against ``b``.

    Attributes
    ----------
    n_a, n_b : int
    u : float
        scipy's U for ``a``: pairs with ``a_i > b_j`` plus half the ties.
    prob_a_lower : float
        ``1 - u / (n_a n_b)``: the share of pairs in which ``a`` is lower (ties count half).
    p_value : float
    method : str
        ``"exact"`` (no ties, at most ``EXACT_UP_TO`` values) or ``"asymptotic"``.
    min_p : float
        :func:`min_rank_p` of the sizes.
    can_reach : bool
        ``min_p <= 1 - confidence``: whether any data could make the test significant.
    caveat : str
        A sentence when it cannot reach the level, else ``""``.
    """

    n_a: int
    n_b: int
    u: float
    prob_a_lower: float
    p_value: float
    method: str
    min_p: float
    can_reach: bool
    caveat: str

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["test"] = "Mann-Whitney U, two-sided"
        return out


def rank_test(a: Sequence[float], b: Sequence[float], *, unit: str = "searches",
              confidence: float = CONFIDENCE) -> RankTest:
    """Mann-Whitney U test on two samples of search-level values.

    Parameters
    ----------
    a, b : sequence of float
        One value per unit (a search's seed mean, or its log-mean); at least one each.
    unit : str, default "searches"
        What a value is, for the caveat's wording.
    confidence : float, default 0.95
        The level tested against is ``1 - confidence``.
    """
    check_confidence(confidence)
    x, y = finite_values(a, "rank test values a"), finite_values(b, "rank test values b")
    if x.size == 0 or y.size == 0:
        raise ValueError("each side of a rank test needs at least one value")
    ties = np.unique(np.concatenate([x, y])).size < x.size + y.size
    method = "exact" if not ties and x.size + y.size <= EXACT_UP_TO else "asymptotic"
    from scipy import stats  # here, not at the top: 0.4 s of `hpo status`'s start
    res = stats.mannwhitneyu(x, y, alternative="two-sided", method=method)
    floor = min_rank_p(x.size, y.size)
    alpha = 1.0 - confidence
    can_reach = floor <= alpha + 1e-12
    caveat = "" if can_reach else (
        f"a rank test cannot reach {alpha:.2g} with {x.size} and {y.size} {unit} per arm "
        f"(smallest attainable p = {floor:.2g})")
    u = float(res.statistic)
    return RankTest(int(x.size), int(y.size), u, 1.0 - u / (x.size * y.size),
                    float(res.pvalue), method, floor, bool(can_reach), caveat)
