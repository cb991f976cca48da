"""The report's answer about kinds: each arm's searches, their validated winners, and the arms
compared over searches with :mod:`hpo.arms` (docs/verdict.md, "Arms and searches").

An arm searched ``R`` times (``searches: R``, one study per search) has one validated winner per
search: the search's validated configuration with the lowest seed mean (at least 2 seeds first,
as :func:`hpo.report_content.validated_configurations` ranks them). Its seed values are one
:class:`hpo.arms.Arm` search. Two arms with at least 2 such searches each are compared by
:func:`hpo.arms.compare_arms` at s and at each factor of the resolution profile, and
:func:`hpo.arms.arms_verdict` writes the sentence (Holm across the profile). With fewer searches
the sentence says that the interval over searches needs ``R >= 2``; none is invented. Each arm's
expected best after n search trials (:func:`hpo.arms.expected_best`) pools its searches' complete
trial values. The last ``random_searches`` of an arm's searches sample at random: they are left
out of the arm's score and compared with its searched winners (:func:`random_baseline`), which
says whether the search helps.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from optuna.trial import TrialState

from hpo.arms import Arm, arm_summary, arms_verdict, compare_arms, expected_best
from hpo.group import StudyGroup, is_random_search, parse_search_part

#: Searches an arm needs for an interval over searches (:class:`hpo.arms.Arm`).
MIN_SEARCHES = 2
#: The factor of s whose intervals the arms' sentence gives (the study's own s).
PRIMARY_FACTOR = 1.0


def _search_number(group: StudyGroup, study: str, default: int) -> int:
    part = parse_search_part(study[len(group.name) + 1:]) if study.startswith(
        f"{group.name}.") else None
    return part[1] if part is not None else default


def random_search_studies(group: StudyGroup) -> frozenset[str]:
    """The search studies that sample at random: the baseline, left out of an arm's score and of
    the best-configuration comparison (which would otherwise pick among other winners than the
    arms' comparison over searches does)."""
    return frozenset(study for studies in group.searches.values()
                     for r, study in enumerate(studies, start=1)
                     if _is_random(group.study_file, _search_number(group, study, r)))


def arm_searches(group: StudyGroup, validated: Mapping[str, Sequence[dict[str, Any]]]
                 ) -> dict[str, list[dict[str, Any]]]:
    """Per arm, one entry per search (in order): its study, its validated winner and the
    winner's seed values (``values``, by seed; empty when the search has none validated)."""
    out: dict[str, list[dict[str, Any]]] = {}
    random = random_search_studies(group)
    for kind, studies in group.searches.items():
        entries = []
        for r, study in enumerate(studies, start=1):
            configs = [c for c in validated.get(kind, []) if c["source_study"] == study]
            winner = next((c for c in configs if c["n_seeds"] >= 1), None)
            number = _search_number(group, study, r)
            entry: dict[str, Any] = {
                "search": number, "study": study,
                "sampler": "random" if study in random else "tpe",
                "validated_configurations": len(configs), "winner": None, "seeds": [],
                "values": []}
            if winner is not None:
                entry["winner"] = {
                    key: winner.get(key) for key in (
                        "source_trial", "rank", "search_value", "params", "n_params",
                        "n_params_circuit", "n_seeds", "mean", "ci", "sd")}
                entry["seeds"] = list(winner["seeds"])
                entry["values"] = list(winner["values"])
                entry["profile"] = {f: list(p["values"]) for f, p in winner["profile"].items()}
            entries.append(entry)
        out[kind] = entries
    return out


def _arm(kind: str, searches: Sequence[dict[str, Any]], factor: float | None = None,
         sampler: str = "tpe") -> Arm | None:
    """The arm's ``sampler`` searches (the searched ones; ``"random"``: the baseline) at s
    (``factor`` None) or at ``factor`` x s; None with fewer than :data:`MIN_SEARCHES` searches
    that have values there."""
    values = []
    for s in searches:
        if s.get("sampler", "tpe") != sampler:
            continue
        v = s["values"] if factor is None else (s.get("profile") or {}).get(f"{factor:g}", [])
        if v:
            values.append(v)
    return Arm(kind, values) if len(values) >= MIN_SEARCHES else None


def _scale(arms: Sequence[Arm]) -> str:
    """Log (ratio of geometric means) unless a value is <= 0 (then nats)."""
    return "log" if all(v > 0 for a in arms for s in a.searches for v in s) else "nats"


def compare_arm_pair(a: str, b: str, searches: Mapping[str, Sequence[dict[str, Any]]]
                     ) -> dict[str, Any]:
    """Arms ``a`` and ``b`` over their searches: ``compare_arms`` at s and over the profile,
    and the generated verdict; or, with too few searches, the sentence saying so."""
    arm_a, arm_b = _arm(a, searches.get(a, [])), _arm(b, searches.get(b, []))
    counts = [sum(1 for s in searches.get(k, []) if s["values"] and s.get("sampler") != "random")
              for k in (a, b)]
    out: dict[str, Any] = {"kinds": [a, b], "searches": counts}
    if arm_a is None or arm_b is None:
        out.update(available=False, scale=None, at_s=None, profile=[], verdict=None,
                   sentence=(f"The kind-level difference {a} vs {b} has no interval over "
                             f"searches: it needs R >= {MIN_SEARCHES} validated searches per "
                             f"arm, and {a} has {counts[0]}, {b} has {counts[1]} (study file "
                             "key searches:)."))
        return out
    by_factor = {PRIMARY_FACTOR: (arm_a, arm_b)}
    factors = sorted({f for k in (a, b) for s in searches[k] for f in (s.get("profile") or {})},
                     key=float)
    for key in factors:
        f = float(key)
        if f == PRIMARY_FACTOR:
            continue  # at s: the trials' own values
        pa, pb = _arm(a, searches[a], f), _arm(b, searches[b], f)
        if pa is not None and pb is not None:
            by_factor[f] = (pa, pb)
    scale = _scale([x for pair in by_factor.values() for x in pair])
    compared = {f: compare_arms(pa, pb, scale=scale) for f, (pa, pb) in by_factor.items()}
    verdict = arms_verdict(dict(sorted(compared.items())), primary=PRIMARY_FACTOR)
    out.update(available=True, scale=scale, at_s=compared[PRIMARY_FACTOR].as_dict(),
               profile=[{"factor": f, **compared[f].as_dict()} for f in sorted(compared)
                        if f != PRIMARY_FACTOR],
               verdict=verdict.as_dict(), sentence=verdict.sentence)
    return out


def arms_section(group: StudyGroup, validated: Mapping[str, Sequence[dict[str, Any]]],
                 pairs: Sequence[Sequence[str]]) -> dict[str, Any]:
    """report.json's ``arms`` (per arm: ``searches``, ``summary``, ``expected_best``) and
    ``arms_comparisons`` (one per pair of ``pairs``)."""
    searches = arm_searches(group, validated)
    arms: dict[str, Any] = {}
    for kind, entries in searches.items():
        arm = _arm(kind, entries)
        values = [float(t.value) for t in group.search.get(kind, [])
                  if t.state == TrialState.COMPLETE and t.value is not None
                  and math.isfinite(t.value)]
        arms[kind] = {
            "searches": entries,
            "summary": arm_summary(arm).as_dict() if arm is not None else None,
            "expected_best": expected_best(values).as_dict() if values else None,
            "random_baseline": random_baseline(kind, entries),
        }
    return {"arms": arms,
            "arms_comparisons": [compare_arm_pair(a, b, searches) for a, b in pairs]}


def random_baseline(kind: str, entries: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    """Whether the search helps arm ``kind``: its searched winners against its random-search
    winners (``None`` when the arm has no random search). With at least 2 of each,
    :func:`hpo.arms.compare_arms` over searches (searched minus random: below 0, the search
    helps); with fewer, where the random winners' seed means fall against the searched winners'
    interval over searches, or that there is nothing to compare yet."""
    random = [e for e in entries if e.get("sampler") == "random"]
    if not random:
        return None
    searched_arm = _arm(f"{kind} searched", entries)
    random_arm = _arm(f"{kind} random", entries, sampler="random")
    means = [sum(e["values"]) / len(e["values"]) for e in random if e["values"]]
    out: dict[str, Any] = {"searches": [e["search"] for e in random], "random_means": means,
                           "comparison": None, "searched": None}
    if searched_arm is not None and random_arm is not None:
        compared = compare_arms(searched_arm, random_arm, scale=_scale([searched_arm,
                                                                        random_arm]))
        out["comparison"] = compared.as_dict()
        helps = ("the search helps" if compared.established and compared.difference < 0 else
                 "random search does better" if compared.established else
                 "no difference is established")
        out["sentence"] = (f"{kind}: searched winners {compared.summary_a.over_searches.mean:.3f}"
                           f" nats against random-search winners "
                           f"{compared.summary_b.over_searches.mean:.3f} over "
                           f"{searched_arm.n_searches} and {random_arm.n_searches} searches: "
                           f"{helps} (p = {compared.p_value:.2g}).")
        return out
    if searched_arm is None or not means:
        out["sentence"] = (f"{kind}: the random-search baseline needs validated winners of "
                           f"{MIN_SEARCHES} searched and 1 random search; not yet.")
        return out
    over = arm_summary(searched_arm).over_searches
    out["searched"] = over.as_dict()
    where = ["below", "inside", "above"][(over.ci_low <= min(means)) + (max(means) > over.ci_high)]
    out["sentence"] = (f"{kind}: the random-search winner's seed mean "
                       f"{', '.join(f'{m:.3f}' for m in means)} nats lies {where} the searched "
                       f"winners' 95% interval over {searched_arm.n_searches} searches "
                       f"[{over.ci_low:.3f}, {over.ci_high:.3f}]; one random search gives no "
                       "interval of its own.")
    return out


def _is_random(study_file: Mapping[str, Any], search: int) -> bool:
    """:func:`hpo.group.is_random_search` as the stored study file says (a file stored before
    ``random_searches`` existed searched with its sampler alone)."""
    return is_random_search(int(study_file.get("searches") or 1),
                            int(study_file.get("random_searches") or 0), search)
