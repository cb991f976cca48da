"""Do D_s, W2 and mode coverage tell the same story? A sentence when they do not.

D_s (a smoothed KL) and W2 weigh errors differently: a generator that drops a small mode pays in
D_s and in mode coverage but little in W2; one that puts mass slightly off every mode pays in W2
more. So the metrics may disagree, and a verdict built on D_s must say when they do.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import asdict, dataclass
from typing import Any, Protocol

__all__ = ["Agreement", "Comparison", "metric_agreement"]

#: Metrics for which a higher value is better; every other metric is lower-is-better.
HIGHER_IS_BETTER = ("mode coverage",)
NONE = "not established"


class Comparison(Protocol):
    """What :func:`metric_agreement` reads: :class:`hpo.verdict.Difference` and
    :class:`hpo.arms.ArmComparison` both have it. ``winner`` is the kind with the *lower* value
    when the difference is established, else None."""

    kind_a: str
    kind_b: str
    winner: str | None
    p_value: float


@dataclass(frozen=True)
class Agreement:
    """Each metric's conclusion and whether they agree.

    Attributes
    ----------
    agree : bool
        Every metric names the same better kind, or none establishes a difference.
    better : dict of str to str
        Metric -> the better kind, or ``"not established"``.
    sentence : str
        ``""`` when they agree; otherwise what each metric says.
    """

    agree: bool
    better: dict[str, str]
    sentence: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def metric_agreement(by_metric: Mapping[str, Comparison], *,
                     higher_is_better: Collection[str] = HIGHER_IS_BETTER) -> Agreement:
    """Compare the conclusions of several metrics on the same two kinds.

    Parameters
    ----------
    by_metric : mapping of str to comparison
        E.g. ``{"D_s": ..., "W2": ..., "mode coverage": ...}``, each comparing the same
        ``kind_a`` with the same ``kind_b``; the first is the primary metric. At least two.
    higher_is_better : collection of str, default ("mode coverage",)
        Metrics whose higher value is better: their lower-valued kind is the worse one.
    """
    if len(by_metric) < 2:
        raise ValueError("give at least two metrics to compare their conclusions")
    pairs = {(c.kind_a, c.kind_b) for c in by_metric.values()}
    if len(pairs) != 1:
        raise ValueError(f"every metric must compare the same two kinds, got {sorted(pairs)}")
    (kind_a, kind_b), = pairs
    better = {}
    for metric, c in by_metric.items():
        if c.winner is None:
            better[metric] = NONE
        elif metric in higher_is_better:
            better[metric] = kind_b if c.winner == kind_a else kind_a
        else:
            better[metric] = c.winner
    agree = len(set(better.values())) == 1
    if agree:
        return Agreement(True, better, "")
    said = "; ".join(
        f"{metric} " + ("establishes no difference" if b == NONE else f"finds {b} better")
        + f" (p = {by_metric[metric].p_value:.2g})" for metric, b in better.items())
    names = list(by_metric)
    listed = ", ".join(names[:-1]) + f" and {names[-1]}"
    return Agreement(False, better, f"{listed} disagree on {kind_a} against {kind_b}: {said}.")
