"""Multi-fidelity pruners from the study file (hpo/strategy.py) in a per-kind search: each kind's
rungs and brackets hold its own trials, on the embedded journal and on PostgreSQL."""

from __future__ import annotations

import optuna
import pytest
from optuna.trial import TrialState

from hpo.group import ensure_group, load_group, search_studies
from hpo.schedule import decide
from hpo.space import load_spec
from hpo.storage import open_storage
from hpo.strategy import make_pruner
from tests.conftest import SMOKE
from tests.test_study_group import _fake_objective

pytestmark = pytest.mark.e2e  # in this process, on a storage of each kind (a database server)


@pytest.mark.parametrize("kind", ["hyperband", "successive_halving"])
def test_multi_fidelity_pruners_keep_each_kind_in_its_own_rungs(kind, storage_url) -> None:
    """Quantum's curves are 1000x classical's: had the kinds shared rungs or brackets, every
    quantum trial would rank below every classical one and be stopped at its first rung. Each
    kind's search study has its own pruner, so each kind keeps complete trials of its own and
    every pruned trial was the worse of its own kind at the step it stopped."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    spec = load_spec(SMOKE)
    spec = spec.model_copy(update={
        "budget": spec.budget.model_copy(update={"trials": 16}), "layout": "per-kind",
        "pruner": spec.pruner.model_copy(update={"kind": kind, "reduction_factor": 2}),
        "validation": spec.validation.model_copy(update={"top_k": 0})})
    storage = open_storage(storage_url, spec)
    studies = ensure_group(storage, spec, sampler=lambda: optuna.samplers.RandomSampler(seed=1),
                           pruner=lambda: make_pruner(spec))
    for _ in range(100):
        work = decide(studies, spec)
        if work.action == "done":
            break
        studies[work.study].optimize(_fake_objective(search_studies(spec)[work.study], False),
                                     n_trials=1)
    group = load_group(storage, spec.name)
    for arm, trials in group.search.items():
        assert len(trials) == 8, arm
        assert sum(t.state == TrialState.COMPLETE for t in trials) >= 2, arm
        for t in trials:
            if t.state == TrialState.PRUNED:  # never the best of its own kind at that step
                step = max(t.intermediate_values)
                others = [u.intermediate_values[step] for u in trials
                          if u.number != t.number and step in u.intermediate_values]
                assert t.intermediate_values[step] > min(others), (arm, t.number)
