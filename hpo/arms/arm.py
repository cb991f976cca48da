"""An arm: one generator kind searched R times independently, each search's winner re-seeded.

The model has three levels (docs/verdict.md, "Arms and searches"): a search ``r`` of an arm is one
draw of a noisy process (sampler seed, trial seeds) and ends in a validated winner; that winner is
re-trained on ``S_r`` fresh seeds, giving values ``y_rs`` (D_s in nats). The search is the unit of
the arm's answer: its value is the seed mean ``ybar_r`` (scale ``"nats"``) or the mean of
``log y_rs``, the log of the seeds' geometric mean (scale ``"log"``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from hpo.verdict import CONFIDENCE, SeedSummary, check_confidence, finite_values, seed_summary

__all__ = ["SCALES", "Arm", "ArmSummary", "arm_summary"]

#: The scales a search's value can be taken on: the seed mean in nats, or the mean of log D_s.
SCALES = ("log", "nats")


def check_scale(scale: str) -> None:
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {SCALES}, got {scale!r}")


@dataclass(frozen=True)
class Arm:
    """One kind's independent searches, each given by its validated winner's seed values.

    Parameters
    ----------
    kind : str
        The generator kind (``"classical"``, ``"quantum"``, ...), used in sentences.
    searches : sequence of sequence of float
        ``searches[r][s]``: D_s (nats) of search ``r``'s validated winner re-trained on seed ``s``.
        At least 2 searches (3 or more for a claim), each with at least one finite value; seed
        counts may differ (a failed seed is left out and counted by
        :func:`hpo.arms.failure_rate`). Stored as tuples of floats.
    """

    kind: str
    searches: tuple[tuple[float, ...], ...]

    def __post_init__(self) -> None:
        if not isinstance(self.kind, str) or not self.kind:
            raise ValueError(f"an arm's kind must be a non-empty string, got {self.kind!r}")
        if isinstance(self.searches, str | bytes) or len(self.searches) < 2:
            raise ValueError(f"arm {self.kind!r} needs at least 2 searches (3 or more for a "
                             f"claim), got {len(self.searches)}")
        checked = []
        for r, values in enumerate(self.searches):
            x = finite_values(values, f"arm {self.kind!r} search {r} seed values")
            if x.size == 0:
                raise ValueError(f"arm {self.kind!r} search {r} has no seed values")
            checked.append(tuple(float(v) for v in x))
        object.__setattr__(self, "searches", tuple(checked))

    @property
    def n_searches(self) -> int:
        return len(self.searches)

    @property
    def seeds(self) -> tuple[int, ...]:
        """Number of seed values of each search."""
        return tuple(len(s) for s in self.searches)

    def search_values(self, scale: str = "nats") -> np.ndarray:
        """Each search's value: seed mean of D_s (``"nats"``) or seed mean of ln D_s (``"log"``).

        Raises ``ValueError`` on the log scale when a value is <= 0 (a bias-corrected estimate of
        a nonnegative divergence can dip below zero at a near-perfect fit): use ``"nats"`` then.
        """
        check_scale(scale)
        if scale == "nats":
            return np.array([np.mean(s) for s in self.searches])
        low = min(min(s) for s in self.searches)
        if low <= 0.0:
            raise ValueError(f"arm {self.kind!r} has a value {low} <= 0, which has no logarithm; "
                             "compare on scale='nats'")
        return np.array([np.mean(np.log(s)) for s in self.searches])

    def best_search(self) -> int:
        """Index of the search whose winner has the lowest seed mean: the best configuration."""
        return int(np.argmin(self.search_values("nats")))


@dataclass(frozen=True)
class ArmSummary:
    """An arm over its searches, in nats.

    Attributes
    ----------
    kind : str
    seeds : tuple of int
        Seed values per search.
    search_means : tuple of float
        Each search's seed mean.
    over_searches : SeedSummary
        Mean, sd (ddof=1) and Student-t interval of the search means (n = searches): the
        interval of the arm's expected validated winner, its lower end floored at 0 (the
        expectation of a divergence is >= 0, so the floor never loses coverage).
    geometric_mean, geo_ci_low, geo_ci_high : float
        ``exp`` of the mean of the searches' log-means and of its t-interval: positive by
        construction. ``nan`` when a value is <= 0.
    seed_sd : float
        Pooled within-search seed sd, ``sqrt(sum_r (S_r - 1) v_r / sum_r (S_r - 1))``; ``nan``
        when no search has two seeds.
    """

    kind: str
    seeds: tuple[int, ...]
    search_means: tuple[float, ...]
    over_searches: SeedSummary
    geometric_mean: float
    geo_ci_low: float
    geo_ci_high: float
    seed_sd: float

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "searches": len(self.seeds), "seeds": list(self.seeds),
                "search_means": list(self.search_means),
                "over_searches": self.over_searches.as_dict(),
                "geometric_mean": self.geometric_mean,
                "geometric_ci": [self.geo_ci_low, self.geo_ci_high], "seed_sd": self.seed_sd}


def arm_summary(arm: Arm, confidence: float = CONFIDENCE) -> ArmSummary:
    """Summarise an arm over its searches (two-stage: seeds within a search, then searches).

    Parameters
    ----------
    arm : Arm
    confidence : float, default 0.95
        Two-sided coverage of both intervals.
    """
    check_confidence(confidence)
    means = arm.search_values("nats")
    over = seed_summary(means, confidence, floor=0.0)
    geo = (math.nan,) * 3
    if min(min(s) for s in arm.searches) > 0.0:
        logs = seed_summary(arm.search_values("log"), confidence)
        geo = (math.exp(logs.mean), math.exp(logs.ci_low), math.exp(logs.ci_high))
    dof = sum(len(s) - 1 for s in arm.searches)
    seed_sd = (math.sqrt(sum(np.var(s, ddof=1) * (len(s) - 1)
                             for s in arm.searches if len(s) > 1) / dof) if dof else math.nan)
    return ArmSummary(arm.kind, arm.seeds, tuple(float(m) for m in means), over, *geo,
                      float(seed_sd))

