"""The verdict over arms: several independent searches per generator kind, seeds within them.

An arm is one generator kind searched R >= 3 times independently; each search's validated winner
is re-trained on S >= 5 fresh seeds. The arm's score is the distribution of its searches'
validated winners, and the kind-level difference has an interval over searches (model: searches,
configurations, seeds; docs/verdict.md, "Arms and searches").

numpy/scipy only: this package knows nothing of Optuna, so it is tested on plain numbers.

    >>> from hpo.arms import Arm, compare_arms
    >>> c = Arm("classical", [[0.5, 0.6, 0.55], [0.7, 0.65, 0.8], [0.45, 0.5, 0.6]])
    >>> q = Arm("quantum", [[1.1, 1.3, 0.9], [1.6, 1.2, 1.4], [0.9, 1.0, 1.2]])
    >>> d = compare_arms(c, q)            # ratio of geometric means, Welch over searches
    >>> d.winner, round(d.ratio, 2)
    ('classical', 0.51)
"""

from .agreement import Agreement, Comparison, metric_agreement
from .arm import SCALES, Arm, ArmSummary, arm_summary
from .compare import ArmComparison, compare_arms
from .expected_best import ExpectedBest, expected_best
from .failures import FailureRate, failure_rate
from .holm import holm
from .ranks import RankTest, min_rank_p, rank_test
from .sentence import ArmsVerdict, arms_verdict

__all__ = [
    "SCALES",
    "Agreement",
    "Arm",
    "ArmComparison",
    "ArmSummary",
    "ArmsVerdict",
    "Comparison",
    "ExpectedBest",
    "FailureRate",
    "RankTest",
    "arm_summary",
    "arms_verdict",
    "compare_arms",
    "expected_best",
    "failure_rate",
    "holm",
    "metric_agreement",
    "min_rank_p",
    "rank_test",
]
