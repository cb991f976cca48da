"""The kind-level comparison of two arms, with its interval over searches.

Model (two-stage, searches are the units). For arm ``k``, search ``r``, seed ``s``::

    z_krs = mu_k + u_kr + e_krs,   u_kr ~ (0, tau_k^2),   e_krs ~ (0, sigma_k^2),

with ``z = log D_s`` (scale ``"log"``) or ``z = D_s`` (scale ``"nats"``). Stage 1 averages the seeds
of each search, ``zbar_kr``, whose variance ``tau_k^2 + sigma_k^2 / S_r`` carries both the
search-level and the seed-level noise; stage 2 compares the ``R_a`` and ``R_b`` search means with
Welch's t. Pooling all seeds as independent would ignore ``tau_k`` and give intervals far too
narrow (the tests measure how far); averaging first needs no estimate of ``tau_k``. With equal
seed counts the stage-2 values are exactly i.i.d. within an arm; with unequal counts Welch is an
approximation.

On the log scale ``exp(mu_a - mu_b)`` is the ratio of the arms' geometric-mean D_s: its interval
``exp([low, high])`` is positive, so it respects D_s >= 0, and it fits noise that scales with
the value. The difference of search means in nats (Welch over searches) is reported beside it.
Next to both: a Mann-Whitney test on the same search values, and the best-configuration
difference (each arm's single best validated winner, Welch over its seeds), which is what one
search per arm would have reported and is optimistic by selection.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from hpo.verdict import CONFIDENCE, Difference, check_confidence, compare_kinds

from .arm import Arm, ArmSummary, arm_summary, check_scale
from .ranks import RankTest, rank_test

__all__ = ["ArmComparison", "compare_arms"]


@dataclass(frozen=True)
class ArmComparison:
    """Arm ``a`` against arm ``b`` over searches.

    Attributes
    ----------
    kind_a, kind_b : str
    scale : str
        ``"log"`` or ``"nats"``: the scale of the primary test (``p_value``, ``established``).
    confidence : float
    summary_a, summary_b : ArmSummary
    difference, ci_low, ci_high, p_difference, df_difference : float
        Difference of the arms' means of search means (nats), Welch interval, p and df over
        searches.
    ratio, ratio_ci_low, ratio_ci_high, p_ratio : float
        Ratio of geometric means ``a / b`` with its interval and Welch p on the log scale;
        ``nan`` on scale ``"nats"``.
    p_value : float
        Primary p: ``p_ratio`` on ``"log"``, ``p_difference`` on ``"nats"``.
    established : bool
        The primary interval excludes no-difference (ratio 1 or difference 0).
    winner : str or None
        The kind with the lower value when established (the better one for D_s and W2).
    rank : RankTest
        Mann-Whitney on the primary scale's search values.
    best : Difference
        Best configuration of ``a`` against best of ``b`` (Welch over seeds).
    """

    kind_a: str
    kind_b: str
    scale: str
    confidence: float
    summary_a: ArmSummary
    summary_b: ArmSummary
    difference: float
    ci_low: float
    ci_high: float
    p_difference: float
    df_difference: float
    ratio: float
    ratio_ci_low: float
    ratio_ci_high: float
    p_ratio: float
    p_value: float
    established: bool
    winner: str | None
    rank: RankTest
    best: Difference

    @property
    def n_searches(self) -> tuple[int, int]:
        return len(self.summary_a.seeds), len(self.summary_b.seeds)

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind_a": self.kind_a, "kind_b": self.kind_b, "scale": self.scale,
            "confidence": self.confidence, "searches": list(self.n_searches),
            "arms": [self.summary_a.as_dict(), self.summary_b.as_dict()],
            "difference": {"value": self.difference, "ci": [self.ci_low, self.ci_high],
                           "p": self.p_difference, "df": self.df_difference,
                           "test": "Welch over search means (nats)"},
            "ratio": {"value": self.ratio, "ci": [self.ratio_ci_low, self.ratio_ci_high],
                      "p": self.p_ratio, "test": "Welch over search log-means"},
            "p": self.p_value, "established": self.established, "winner": self.winner,
            "rank": self.rank.as_dict(), "best_configuration": self.best.as_dict(),
        }


def compare_arms(a: Arm, b: Arm, *, scale: str = "log",
                 confidence: float = CONFIDENCE) -> ArmComparison:
    """Compare two arms over their searches (the model is in the module docstring).

    Parameters
    ----------
    a, b : Arm
        The two arms; each needs 2 searches at least (3 or more for a claim).
    scale : {"log", "nats"}, default "log"
        Scale of the primary test. ``"log"`` needs every value > 0; use ``"nats"`` otherwise.
    confidence : float, default 0.95
        Two-sided coverage of every interval; the tests' level is ``1 - confidence``.
    """
    check_confidence(confidence)
    check_scale(scale)
    if a.kind == b.kind:
        raise ValueError(f"the two arms must be different kinds, got {a.kind!r} twice")
    nats = compare_kinds(a.search_values("nats"), b.search_values("nats"), a.kind, b.kind,
                         confidence=confidence)
    ratio = (math.nan,) * 4
    primary = nats
    if scale == "log":
        primary = compare_kinds(a.search_values("log"), b.search_values("log"), a.kind, b.kind,
                                confidence=confidence)
        ratio = (math.exp(primary.difference), math.exp(primary.ci_low),
                 math.exp(primary.ci_high), primary.p_value)
    rank = rank_test(a.search_values(scale), b.search_values(scale), confidence=confidence)
    best = compare_kinds(a.searches[a.best_search()], b.searches[b.best_search()], a.kind,
                         b.kind, confidence=confidence)
    return ArmComparison(
        a.kind, b.kind, scale, confidence, arm_summary(a, confidence), arm_summary(b, confidence),
        nats.difference, nats.ci_low, nats.ci_high, nats.p_value, nats.df, *ratio,
        primary.p_value, primary.established, primary.winner, rank, best)
