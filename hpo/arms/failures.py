"""A configuration's failure (or divergence) rate over its seeds, with an exact interval.

A configuration that reaches a low D_s on four seeds and diverges on the fifth is not the same
answer as one that never fails; its seed mean leaves the failed seed out, so the rate is reported
beside it. The interval is Clopper-Pearson's (exact: it inverts two binomial tests), which keeps
its coverage at the small counts seed validation has (5 seeds); it is conservative.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from hpo.verdict import CONFIDENCE, check_confidence

__all__ = ["FailureRate", "failure_rate"]


@dataclass(frozen=True)
class FailureRate:
    """``failed`` of ``seeds`` trainings failed or diverged.

    Attributes
    ----------
    failed, seeds : int
    rate : float
        ``failed / seeds``.
    ci_low, ci_high : float
        Clopper-Pearson interval: ``Beta(a/2; k, n-k+1)`` and ``Beta(1-a/2; k+1, n-k)``
        quantiles (0 and 1 at the edges), ``a = 1 - confidence``.
    confidence : float
    """

    failed: int
    seeds: int
    rate: float
    ci_low: float
    ci_high: float
    confidence: float

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["ci"] = [out.pop("ci_low"), out.pop("ci_high")]
        out["method"] = "Clopper-Pearson"
        return out


def failure_rate(failed: int, seeds: int, confidence: float = CONFIDENCE) -> FailureRate:
    """Failure rate of one configuration over its seeds, with a Clopper-Pearson interval.

    Parameters
    ----------
    failed : int
        Seeds whose training failed or diverged (the caller's definition: e.g. a failed trial,
        a non-finite D_s, or D_s above a stated threshold); ``0 <= failed <= seeds``.
    seeds : int
        Seeds tried, at least 1.
    confidence : float, default 0.95
        Two-sided coverage of the interval.
    """
    check_confidence(confidence)
    if int(seeds) != seeds or int(failed) != failed or seeds < 1 or not 0 <= failed <= seeds:
        raise ValueError(f"need integers 0 <= failed <= seeds and seeds >= 1, got {failed} "
                         f"failed of {seeds}")
    failed, seeds = int(failed), int(seeds)
    from scipy import stats  # here, not at the top: 0.4 s of `hpo status`'s start
    ci = stats.binomtest(failed, seeds).proportion_ci(confidence, method="exact")
    return FailureRate(failed, seeds, failed / seeds, float(ci.low), float(ci.high), confidence)
