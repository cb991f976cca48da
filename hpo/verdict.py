"""The verdict's statistics: seed means with t-intervals, and Welch's comparison of two kinds.

The training seed is the largest noise source of a trial's value (seed-to-seed sd 10-35x the
spread inside one trial), so a configuration's value is the mean of D_s over independently
re-trained seeds, and its 95% interval is Student's t over those seeds. Two kinds are compared
through their best validated configurations with Welch's unequal-variance t interval and test;
the conclusion is put in one sentence that says "not established" when the interval holds zero.

numpy/scipy only: this module knows nothing of Optuna, so it is tested on plain numbers.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy import special  # t quantiles and tails: scipy.stats's own, without its import

__all__ = [
    "CONFIDENCE", "Difference", "ProfileConclusion", "SeedSummary", "check_confidence",
    "compare_kinds", "finite_values", "profile_conclusion", "seed_summary",
]

#: Two-sided confidence of every interval in the verdict.
CONFIDENCE = 0.95


def seeds_phrase(n: Any) -> str:
    """``"1 seed"``, ``"5 seeds"``: how many seeds a mean is over, in the report's words."""
    return "1 seed" if n == 1 else f"{n} seeds"


def check_confidence(confidence: float) -> None:
    """Raise ``ValueError`` unless ``confidence`` lies strictly between 0 and 1."""
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie strictly between 0 and 1, got {confidence}")


def finite_values(values: Sequence[float], what: str) -> np.ndarray:
    """``values`` as a flat float array; ``ValueError`` naming ``what`` if not flat or finite."""
    array = np.asarray(values, dtype=float)
    if array.ndim != 1:
        raise ValueError(f"{what} must be a flat sequence of numbers, got shape {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{what} must be finite numbers, got {array.tolist()}")
    return array


@dataclass(frozen=True)
class SeedSummary:
    """One configuration's value over re-trained seeds, in nats.

    Attributes
    ----------
    n : int
        Number of seeds.
    mean : float
        Seed mean of D_s.
    sd : float
        Seed standard deviation (ddof=1); ``nan`` for one seed.
    ci_low, ci_high : float
        ``mean -/+ t_{(1+confidence)/2, n-1} * sd / sqrt(n)``; ``nan`` for one seed.
    """

    n: int
    mean: float
    sd: float
    ci_low: float
    ci_high: float

    def as_dict(self) -> dict[str, Any]:
        return {"n": self.n, "mean": self.mean, "sd": self.sd,
                "ci": [self.ci_low, self.ci_high]}


def seed_summary(values: Sequence[float], confidence: float = CONFIDENCE,
                 floor: float | None = None) -> SeedSummary:
    """Seed mean, seed sd and the Student-t interval of the mean.

    Parameters
    ----------
    values : sequence of float
        One value per seed (nats); at least one, all finite.
    confidence : float, default 0.95
        Two-sided coverage of the interval.
    floor : float, optional
        The least value the mean can take: the interval's lower end is raised to it. A
        divergence's mean is >= 0, so with ``floor=0`` the interval covers whenever the t-interval
        does (the same coverage), and never shows a negative D_s a referee would reject.
    """
    check_confidence(confidence)
    x = finite_values(values, "seed values")
    if x.size == 0:
        raise ValueError("seed values are empty; give at least one")
    mean = float(x.mean())
    if x.size < 2:
        return SeedSummary(1, mean, math.nan, math.nan, math.nan)
    sd = float(x.std(ddof=1))
    half = float(special.stdtrit(x.size - 1, 0.5 + confidence / 2)) * sd / math.sqrt(x.size)
    low = mean - half if floor is None else max(mean - half, floor)
    return SeedSummary(int(x.size), mean, sd, low, mean + half)


@dataclass(frozen=True)
class Difference:
    """``mean(a) - mean(b)`` of two configurations' seed values (Welch), in nats.

    A negative difference means ``a`` has the lower (better) D_s. ``established`` is True when the
    interval excludes zero; ``sentence`` says the conclusion in plain words.
    """

    kind_a: str
    kind_b: str
    n_a: int
    n_b: int
    mean_a: float
    mean_b: float
    difference: float
    ci_low: float
    ci_high: float
    t: float
    df: float
    p_value: float
    confidence: float
    established: bool
    winner: str | None
    sentence: str

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["ci"] = [out.pop("ci_low"), out.pop("ci_high")]
        out["test"] = "Welch two-sample t-test, two-sided"
        return out


def compare_kinds(a: Sequence[float], b: Sequence[float], kind_a: str = "a", kind_b: str = "b",
                  *, confidence: float = CONFIDENCE, at: str = "") -> Difference:
    """Welch's interval and two-sided test for ``mean(a) - mean(b)``.

    Parameters
    ----------
    a, b : sequence of float
        Seed values (nats) of the two configurations; each needs at least 2 for an interval.
    kind_a, kind_b : str
        Names used in the sentence.
    confidence : float, default 0.95
        Two-sided coverage of the interval; the test's level is ``1 - confidence``.
    at : str, default ""
        Where the comparison is made (e.g. ``"s = 0.5"``), put at the start of the sentence.

    Notes
    -----
    Welch-Satterthwaite degrees of freedom
    ``(va/na + vb/nb)^2 / ((va/na)^2/(na-1) + (vb/nb)^2/(nb-1))``. With fewer than two values on
    either side there is no interval: the result is "not established".
    """
    check_confidence(confidence)
    x, y = finite_values(a, f"{kind_a} values"), finite_values(b, f"{kind_b} values")
    if x.size == 0 or y.size == 0:
        raise ValueError("each side of a comparison needs at least one value")
    mean_a, mean_b = float(x.mean()), float(y.mean())
    diff = mean_a - mean_b
    nan = math.nan
    if x.size < 2 or y.size < 2:
        sentence = _sentence(kind_a, kind_b, diff, nan, nan, nan, x.size, y.size, False,
                             confidence, at, reason="fewer than 2 seeds on one side")
        return Difference(kind_a, kind_b, int(x.size), int(y.size), mean_a, mean_b, diff, nan,
                          nan, nan, nan, nan, confidence, False, None, sentence)
    va, vb = x.var(ddof=1) / x.size, y.var(ddof=1) / y.size
    se = math.sqrt(va + vb)
    if se == 0.0:  # both sides constant: the sign is certain unless the means are equal
        df = float(x.size + y.size - 2)
        t = math.copysign(math.inf, diff) if diff else nan
        p = 0.0 if diff else 1.0
        low = high = diff
    else:
        df = float((va + vb) ** 2 / (va**2 / (x.size - 1) + vb**2 / (y.size - 1)))
        t = diff / se
        p = float(2.0 * special.stdtr(df, -abs(t)))
        half = float(special.stdtrit(df, 0.5 + confidence / 2)) * se
        low, high = diff - half, diff + half
    established = bool(low > 0.0 or high < 0.0)
    winner = (kind_a if diff < 0 else kind_b) if established else None
    sentence = _sentence(kind_a, kind_b, diff, low, high, p, x.size, y.size, established,
                         confidence, at)
    return Difference(kind_a, kind_b, int(x.size), int(y.size), mean_a, mean_b, diff, low, high,
                      float(t), df, p, confidence, established, winner, sentence)


def _sentence(kind_a: str, kind_b: str, diff: float, low: float, high: float, p: float,
              n_a: int, n_b: int, established: bool, confidence: float, at: str,
              reason: str = "") -> str:
    where = f"At {at}, " if at else ""
    level = f"{100 * confidence:g}%"
    seeds = "1 seed each" if n_a == n_b == 1 else f"{n_a} and {n_b} seeds"
    if reason:
        return (f"{where}a difference between {kind_a} and {kind_b} is not established "
                f"({reason}; {seeds}).")
    interval = f"{level} CI [{low:+.3f}, {high:+.3f}] nats, Welch p = {p:.3g}, {seeds}"
    if not established:
        return (f"{where}a difference between {kind_a} and {kind_b} is not established: "
                f"D_s({kind_a}) - D_s({kind_b}) = {diff:+.3f} nats ({interval}).")
    better, worse = (kind_a, kind_b) if diff < 0 else (kind_b, kind_a)
    return (f"{where}{better} is better than {worse}: its D_s is lower by {abs(diff):.3f} nats "
            f"({interval}).")


@dataclass(frozen=True)
class ProfileConclusion:
    """Whether a comparison reaches the same conclusion at every resolution of the profile."""

    holds: bool
    conclusions: dict[str, str]  # factor (as text) -> winner kind, or "not established"
    sentence: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def profile_conclusion(by_factor: Mapping[float, Difference]) -> ProfileConclusion:
    """Do the comparisons at 0.5, 1, 2 x s agree? Same winner established, or none established.

    Parameters
    ----------
    by_factor : mapping of float to Difference
        The comparison at each multiple of the study's s; at least one.
    """
    if not by_factor:
        raise ValueError("the profile is empty; give the comparison at one factor at least")
    conclusions = {f"{factor:g}": (d.winner or "not established")
                   for factor, d in sorted(by_factor.items())}
    holds = len(set(conclusions.values())) == 1
    factors = ", ".join(f"{f} x s" for f in conclusions)
    if holds:
        what = next(iter(conclusions.values()))
        said = ("no difference is established" if what == "not established"
                else f"{what} is better")
        sentence = f"The conclusion holds across the resolution profile ({factors}): {said}."
    else:
        parts = "; ".join(
            f"at {f} x s " + ("no difference is established" if w == "not established"
                              else f"{w} is better")
            for f, w in conclusions.items())
        sentence = f"The conclusion depends on the resolution: {parts}."
    return ProfileConclusion(holds, conclusions, sentence)
