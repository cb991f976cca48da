"""The arms' verdict in words, generated from the numbers: which comparison holds where.

The kind-level comparison is made at each resolution of the profile (factors of s); the primary
p-values are Holm-adjusted across the profile, and a kind "beats" the other at a factor only when
its adjusted p is at most ``1 - confidence``. The first sentence says at which factors that holds
and at which it is not established; the second gives the kind-level interval over searches at the
primary factor beside the best-configuration difference. Notes carry the rank test (and its floor
with few searches) and, when given, the metrics' disagreement.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from .agreement import NONE, Agreement
from .compare import ArmComparison
from .holm import holm

__all__ = ["ArmsVerdict", "arms_verdict"]


@dataclass(frozen=True)
class ArmsVerdict:
    """The verdict over arms and resolutions.

    Attributes
    ----------
    adjusted_p : dict of str to float
        Factor (as text, e.g. ``"0.5"``) -> Holm-adjusted primary p.
    better : dict of str to str
        Factor -> the better kind after Holm, or ``"not established"``.
    holds : bool
        The same conclusion at every factor.
    sentence : str
        One or two sentences: where which kind is better, and the primary factor's intervals.
    notes : tuple of str
        The rank test; the metrics' disagreement when an :class:`Agreement` says so.
    """

    adjusted_p: dict[str, float]
    better: dict[str, str]
    holds: bool
    sentence: str
    notes: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["notes"] = list(self.notes)
        out["correction"] = "Holm across the resolution profile"
        return out


def _at(factor: float) -> str:
    return f"{factor:g} x s"


def _listed(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + f" and {items[-1]}"


def _where(factors: list[float], adjusted: dict[float, float]) -> str:
    ps = ", ".join(f"{adjusted[f]:.2g}" for f in factors)
    return f"at {_listed([_at(f) for f in factors])} (Holm-adjusted p = {ps})"


def _conclusions(by_factor: Mapping[float, ArmComparison], better: dict[float, str],
                 adjusted: dict[float, float]) -> str:
    first = next(iter(by_factor.values()))
    kinds = (first.kind_a, first.kind_b)
    of = f" over {len(better)} resolutions" if len(better) > 1 else ""
    if set(better.values()) == {NONE}:
        return (f"No difference between {kinds[0]} and {kinds[1]} is established "
                f"{_where(list(better), adjusted)}{of}.")
    parts = []
    for kind in (*kinds, NONE):
        factors = [f for f, b in better.items() if b == kind]
        if not factors:
            continue
        other = kinds[1] if kind == kinds[0] else kinds[0]
        what = "not established" if kind == NONE else f"{kind} beats {other}"
        parts.append(f"{what} {_where(factors, adjusted)}")
    return "; ".join(parts) + f"{of}."


def _intervals(c: ArmComparison, factor: float) -> str:
    level = f"{100 * c.confidence:g}% CI"
    n_a, n_b = c.n_searches
    seeds = f"{sum(c.summary_a.seeds)} and {sum(c.summary_b.seeds)} seeds"
    said = [f"At {_at(factor)}, over {n_a} and {n_b} searches ({seeds})"]
    if c.scale == "log":
        said.append(f"the geometric-mean D_s ratio {c.kind_a}/{c.kind_b} is {c.ratio:.3g} "
                    f"({level} {c.ratio_ci_low:.3g} to {c.ratio_ci_high:.3g})")
    said.append(f"the difference of mean D_s is {c.difference:+.3f} nats "
                f"({level} [{c.ci_low:+.3f}, {c.ci_high:+.3f}], Welch over searches)")
    b = c.best
    best = (f"the best configurations differ by {b.difference:+.3f} nats ({level} "
            f"[{b.ci_low:+.3f}, {b.ci_high:+.3f}], Welch over {b.n_a} and {b.n_b} seeds; chosen "
            "after seeing the data, so optimistic)")
    return f"{said[0]}, " + ", ".join(said[1:]) + f"; {best}."


def _rank_note(c: ArmComparison, factor: float) -> str:
    r = c.rank
    note = (f"Mann-Whitney on the searches at {_at(factor)}: p = {r.p_value:.2g} ({c.kind_a} "
            f"lower in {100 * r.prob_a_lower:.0f}% of search pairs)")
    return note + (f"; {r.caveat}." if r.caveat else ".")


def arms_verdict(by_factor: Mapping[float, ArmComparison], *, primary: float = 1.0,
                 agreement: Agreement | None = None) -> ArmsVerdict:
    """Generate the verdict from the comparisons over the resolution profile.

    Parameters
    ----------
    by_factor : mapping of float to ArmComparison
        The arms compared at each multiple of the study's s (same kinds, same confidence); at
        least one.
    primary : float, default 1.0
        The factor whose intervals the second sentence gives; must be a key of ``by_factor``.
    agreement : Agreement, optional
        The metrics' agreement at the primary factor; its sentence becomes a note when they
        disagree.
    """
    if not by_factor:
        raise ValueError("the profile is empty; give the comparison at one factor at least")
    if primary not in by_factor:
        raise ValueError(f"the primary factor {primary:g} is not in the profile "
                         f"{sorted(by_factor)}")
    first = next(iter(by_factor.values()))
    if {(c.kind_a, c.kind_b, c.confidence) for c in by_factor.values()} != {
            (first.kind_a, first.kind_b, first.confidence)}:
        raise ValueError("every factor must compare the same kinds at the same confidence")
    factors = sorted(by_factor)
    adjusted = dict(zip(factors, holm([by_factor[f].p_value for f in factors]).tolist(),
                        strict=True))
    alpha = 1.0 - first.confidence
    better = {f: (by_factor[f].winner or NONE) if adjusted[f] <= alpha else NONE
              for f in factors}
    sentence = (_conclusions(by_factor, better, adjusted) + " "
                + _intervals(by_factor[primary], primary))
    notes = [_rank_note(by_factor[primary], primary)]
    if agreement is not None and not agreement.agree:
        notes.append(agreement.sentence)
    return ArmsVerdict({f"{f:g}": adjusted[f] for f in factors},
                       {f"{f:g}": better[f] for f in factors},
                       len(set(better.values())) == 1, sentence[0].upper() + sentence[1:],
                       tuple(notes))
