"""Failure rates against scipy and the beta closed form; the metrics' agreement; the generated
verdict sentence on synthetic cases (holds, not established, mixed, reversed)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from scipy import stats

from hpo.arms import Arm, arms_verdict, compare_arms, failure_rate, holm, metric_agreement
from hpo.verdict import compare_kinds

pytestmark = pytest.mark.unit

CLASSICAL = [[0.50, 0.60, 0.55, 0.52, 0.58], [0.70, 0.65, 0.80, 0.75, 0.72],
             [0.45, 0.50, 0.60, 0.48, 0.52]]
QUANTUM = [[1.10, 1.30, 0.90, 1.00, 1.20], [1.60, 1.20, 1.40, 1.50, 1.30],
           [0.90, 1.00, 1.20, 0.95, 1.05]]


@pytest.mark.parametrize("failed, seeds", [(0, 5), (1, 5), (3, 5), (5, 5), (2, 20)])
def test_failure_rate_is_clopper_pearson(failed, seeds) -> None:
    f = failure_rate(failed, seeds)
    ci = stats.binomtest(failed, seeds).proportion_ci(0.95, method="exact")
    assert (f.ci_low, f.ci_high) == pytest.approx((ci.low, ci.high), rel=1e-10)
    low = 0.0 if failed == 0 else stats.beta.ppf(0.025, failed, seeds - failed + 1)
    high = 1.0 if failed == seeds else stats.beta.ppf(0.975, failed + 1, seeds - failed)
    assert (f.ci_low, f.ci_high) == pytest.approx((low, high), rel=1e-8)
    assert f.rate == failed / seeds


def test_failure_rate_edges_and_exact_coverage() -> None:
    assert failure_rate(0, 5).ci_high == pytest.approx(1 - 0.025 ** (1 / 5))  # 0.522
    assert failure_rate(5, 5).ci_low == pytest.approx(0.025 ** (1 / 5))
    # Coverage summed over the binomial law (no simulation): at least 95% at every rate.
    for rate in np.linspace(0.01, 0.99, 50):
        cover = sum(stats.binom.pmf(k, 5, rate) for k in range(6)
                    if failure_rate(k, 5).ci_low <= rate <= failure_rate(k, 5).ci_high)
        assert cover >= 0.95 - 1e-12
    for failed, seeds in [(-1, 5), (6, 5), (0, 0), (1.5, 5)]:
        with pytest.raises(ValueError):
            failure_rate(failed, seeds)


def _arms(scale: str = "log"):
    return compare_arms(Arm("classical", CLASSICAL), Arm("quantum", QUANTUM), scale=scale)


def test_metrics_agree_or_say_how_they_differ() -> None:
    ds = _arms()
    assert ds.winner == "classical"
    unclear = compare_kinds([0.1, 0.5, 0.3], [0.2, 0.6, 0.1], "classical", "quantum")
    reverse = compare_kinds([0.5, 0.52, 0.49], [0.1, 0.12, 0.11], "classical", "quantum")
    higher_for_classical = compare_kinds([1.0, 0.98, 1.0], [0.5, 0.52, 0.49], "classical",
                                         "quantum")
    same = metric_agreement({"D_s": ds, "W2": _arms("nats"),
                             "mode coverage": higher_for_classical})
    assert same.agree and same.sentence == ""
    assert same.better == {"D_s": "classical", "W2": "classical", "mode coverage": "classical"}
    split = metric_agreement({"D_s": ds, "W2": unclear})
    assert not split.agree and split.better["W2"] == "not established"
    assert split.sentence == (
        f"D_s and W2 disagree on classical against quantum: D_s finds classical better "
        f"(p = {ds.p_value:.2g}); W2 establishes no difference (p = {unclear.p_value:.2g}).")
    opposed = metric_agreement({"D_s": ds, "W2": reverse, "mode coverage": higher_for_classical})
    assert not opposed.agree and opposed.better["W2"] == "quantum"
    assert opposed.sentence.startswith("D_s, W2 and mode coverage disagree")
    with pytest.raises(ValueError, match="at least two"):
        metric_agreement({"D_s": ds})
    with pytest.raises(ValueError, match="same two kinds"):
        metric_agreement({"D_s": ds, "W2": compare_kinds([1, 2], [3, 4], "quantum", "classical")})


def test_holds_at_every_resolution() -> None:
    c = _arms()
    v = arms_verdict({0.5: c, 1.0: c, 2.0: c})
    adj = holm([c.p_value] * 3)
    assert v.adjusted_p == pytest.approx(dict(zip(("0.5", "1", "2"), adj, strict=True)))
    assert v.holds and set(v.better.values()) == {"classical"}
    assert v.sentence.startswith(
        f"Classical beats quantum at 0.5 x s, 1 x s and 2 x s (Holm-adjusted p = {adj[0]:.2g}, "
        f"{adj[1]:.2g}, {adj[2]:.2g}) over 3 resolutions. At 1 x s, over 3 and 3 searches "
        f"(15 and 15 seeds), the geometric-mean D_s ratio classical/quantum is {c.ratio:.3g} "
        f"(95% CI {c.ratio_ci_low:.3g} to {c.ratio_ci_high:.3g}), the difference of mean D_s is "
        f"{c.difference:+.3f} nats")
    best = c.best
    assert (f"the best configurations differ by {best.difference:+.3f} nats (95% CI "
            f"[{best.ci_low:+.3f}, {best.ci_high:+.3f}], Welch over 5 and 5 seeds") in v.sentence
    assert v.notes == (
        "Mann-Whitney on the searches at 1 x s: p = 0.1 (classical lower in 100% of search "
        "pairs); a rank test cannot reach 0.05 with 3 and 3 searches per arm (smallest "
        "attainable p = 0.1).",)


def test_mixed_profile_names_each_resolution_after_holm() -> None:
    """Raw p 0.01, 0.02, 0.04: all below 0.05, but Holm (0.03, 0.04, 0.04) keeps the first two;
    with 0.3 at 2 x s the adjusted values are 0.03, 0.04, 0.3."""
    c = _arms()
    at = {0.5: replace(c, p_value=0.01), 1.0: replace(c, p_value=0.02),
          2.0: replace(c, p_value=0.3, established=False, winner=None)}
    v = arms_verdict(at)
    assert v.better == {"0.5": "classical", "1": "classical", "2": "not established"}
    assert not v.holds
    assert v.sentence.startswith(
        "Classical beats quantum at 0.5 x s and 1 x s (Holm-adjusted p = 0.03, 0.04); "
        "not established at 2 x s (Holm-adjusted p = 0.3) over 3 resolutions. At 1 x s,")
    near = {0.5: replace(c, p_value=0.03), 1.0: replace(c, p_value=0.04),
            2.0: replace(c, p_value=0.045)}
    assert arms_verdict(near).better == {"0.5": "not established", "1": "not established",
                                         "2": "not established"}
    assert arms_verdict(near).sentence.startswith(
        "No difference between classical and quantum is established at 0.5 x s, 1 x s and "
        "2 x s (Holm-adjusted p = 0.09, 0.09, 0.09) over 3 resolutions.")


def test_reversed_direction_and_notes() -> None:
    c = _arms()
    flipped = replace(c, p_value=0.001, winner="quantum")
    unclear = compare_kinds([0.1, 0.5, 0.3], [0.2, 0.6, 0.1], "classical", "quantum")
    split = metric_agreement({"D_s": c, "W2": unclear})
    v = arms_verdict({0.5: flipped, 1.0: c}, agreement=split)
    assert v.better == {"0.5": "quantum", "1": "classical"}
    second = holm([0.001, c.p_value])[1]
    assert v.sentence.startswith(
        f"Classical beats quantum at 1 x s (Holm-adjusted p = {second:.2g}); "
        "quantum beats classical at 0.5 x s (Holm-adjusted p = 0.002) over 2 resolutions.")
    assert v.notes[-1] == split.sentence
    nats = arms_verdict({1.0: _arms("nats")})
    assert "geometric-mean" not in nats.sentence and "over 1 resolutions" not in nats.sentence
    with pytest.raises(ValueError, match="primary"):
        arms_verdict({0.5: c})
    with pytest.raises(ValueError):
        arms_verdict({})
    with pytest.raises(ValueError, match="same kinds"):
        arms_verdict({1.0: c, 2.0: replace(c, confidence=0.9)})
