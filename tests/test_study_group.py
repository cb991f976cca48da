"""The fair search's rules (hpo/group.py, hpo/schedule.py), in process with a cheap objective:
equal budgets per kind, pruning only against the same kind, validation of the top configurations
on seeds the search never used, enqueued once."""

from __future__ import annotations

import statistics

import numpy as np
import optuna
import pytest
from optuna.trial import TrialState

from hpo.group import (
    ensure_group,
    load_group,
    search_studies,
    search_study_name,
    validation_study_name,
)
from hpo.schedule import (
    ENQUEUED_ATTR,
    Work,
    decide,
    enqueue_validation,
    kind_budgets,
    next_search_kind,
    validation_requests,
)
from hpo.space import load_spec
from hpo.trials import budget_counts
from tests.conftest import SMOKE

pytestmark = pytest.mark.unit

SCALE = {"classical": 1.0, "quantum": 1000.0}  # quantum curves far above classical ones


def test_kind_budgets_split_equally() -> None:
    assert kind_budgets(9, ["classical", "quantum"]) == {"classical": 5, "quantum": 4}
    assert kind_budgets(8, ["classical", "quantum"]) == {"classical": 4, "quantum": 4}
    assert kind_budgets(7, ["quantum"]) == {"quantum": 7}
    with pytest.raises(ValueError):
        kind_budgets(4, [])


def test_next_search_kind_keeps_kinds_level() -> None:
    budgets = {"classical": 5, "quantum": 4}
    assert next_search_kind({}, budgets) == "classical"
    assert next_search_kind({"classical": 1}, budgets) == "quantum"
    assert next_search_kind({"classical": 1, "quantum": 1}, budgets) == "classical"
    assert next_search_kind({"classical": 5, "quantum": 3}, budgets) == "quantum"
    assert next_search_kind({"classical": 5, "quantum": 4}, budgets) is None


def _fake_objective(kind: str, validation: bool):
    def objective(trial: optuna.Trial) -> float:
        x = trial.suggest_float("lr_generator", 1e-3, 1e-2, log=True)
        seed = trial.user_attrs.get("seed")
        if seed is None:
            seed = trial.number
            trial.set_user_attr("seed", seed)
            trial.set_user_attr("generator_kind", kind)
        noise = np.random.default_rng(seed).normal(0, 0.05)
        final = SCALE[kind] * (1.0 + 100 * (x - 5e-3) ** 2 + noise)
        if not validation:
            for step in (10, 20):
                trial.report(final * (1 + 1.0 / step), step)
                if trial.should_prune():
                    raise optuna.TrialPruned()
        return final
    return objective


def _run(storage, spec) -> list[str]:
    """Workers' loop, in process: decide, then pull one trial of the chosen study."""
    studies = ensure_group(
        storage, spec, sampler=lambda: optuna.samplers.TPESampler(seed=1),
        pruner=lambda: optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=0))
    vname = validation_study_name(spec.name)
    actions = []
    for _ in range(200):
        work = decide(studies, spec)
        actions.append(work.action)
        if work.action == "done":
            return actions
        assert work.action in ("search", "validate"), work
        kind = search_studies(spec).get(work.study)
        if work.action == "validate":
            waiting = [t for t in studies[vname].get_trials() if t.state == TrialState.WAITING]
            kind = waiting[0].user_attrs["generator_kind"]
        studies[work.study].optimize(_fake_objective(kind, work.action == "validate"),
                                     n_trials=1)
    raise AssertionError(f"no end after 200 decisions: {actions[-5:]}")


@pytest.fixture
def finished_group():
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    spec = load_spec(SMOKE)
    spec = spec.model_copy(update={"budget": spec.budget.model_copy(update={"trials": 13}),
                                   "layout": "per-kind"})
    storage = optuna.storages.InMemoryStorage()
    actions = _run(storage, spec)
    return spec, storage, actions


def test_two_kinds_get_equal_budgets_and_their_own_pruning(finished_group) -> None:
    spec, storage, actions = finished_group
    group = load_group(storage, spec.name)
    counts = {k: budget_counts(ts).held for k, ts in group.search.items()}
    assert counts == {"classical": 7, "quantum": 6}
    for kind, trials in group.search.items():
        assert all(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials)
        # A pruned trial was worse than the median of its own kind's earlier trials, which a
        # pooled population (quantum 1000x classical) would never let a quantum trial finish.
        for t in trials:
            if t.state != TrialState.PRUNED:
                continue
            step = max(t.intermediate_values)
            earlier = [u.intermediate_values[step] for u in trials
                       if u.number < t.number and step in u.intermediate_values]
            assert t.intermediate_values[step] > statistics.median(earlier)
        assert sum(t.state == TrialState.COMPLETE for t in trials) >= 3, kind
    assert actions.index("validate") > max(i for i, a in enumerate(actions) if a == "search")


def test_validation_retrains_the_top_configs_on_unseen_seeds(finished_group) -> None:
    spec, storage, _ = finished_group
    group = load_group(storage, spec.name)
    vstudy = optuna.load_study(study_name=validation_study_name(spec.name), storage=storage)
    assert vstudy.user_attrs[ENQUEUED_ATTR] == 3 * 5 * 2 == len(group.validation)
    assert all(t.state == TrialState.COMPLETE for t in group.validation)
    search_seeds = {t.user_attrs["seed"] for ts in group.search.values() for t in ts}
    seeds = [t.user_attrs["seed"] for t in group.validation]
    assert len(set(seeds)) == 30 and not set(seeds) & search_seeds
    for kind, trials in group.search.items():
        top3 = sorted((t for t in trials if t.state == TrialState.COMPLETE),
                      key=lambda t: t.value)[:3]
        mine = [t for t in group.validation if t.user_attrs["generator_kind"] == kind]
        assert {t.user_attrs["validates"]["trial"] for t in mine} == {t.number for t in top3}
        for t in mine:
            source = next(s for s in trials if s.number == t.user_attrs["validates"]["trial"])
            assert t.params == source.params
            assert t.user_attrs["validates"]["study"] == search_study_name(spec.name, kind)


def test_validation_is_enqueued_once(finished_group) -> None:
    spec, storage, _ = finished_group
    group = load_group(storage, spec.name)
    requests = validation_requests(group.search, group.search_studies, top_k=3, seeds=5,
                                   base_seed=spec.seed)
    vstudy = optuna.load_study(study_name=validation_study_name(spec.name), storage=storage)
    assert enqueue_validation(vstudy, requests) == 0
    assert decide(ensure_group(storage, spec), spec).action == "done"
    assert len(vstudy.get_trials()) == 30


def test_validation_seeds_skip_search_seeds() -> None:
    trials = [optuna.trial.create_trial(value=float(v), params={}, distributions={},
                                        user_attrs={"seed": s})
              for v, s in [(1.0, 1_000_000), (2.0, 1_000_002), (0.5, 3)]]
    requests = validation_requests({"classical": trials}, {"classical": "x.classical"},
                                   top_k=2, seeds=2)
    assert [r.seed for r in requests] == [1_000_001, 1_000_003, 1_000_004, 1_000_005]
    assert [r.rank for r in requests] == [1, 1, 2, 2]
    assert [r.source_value for r in requests] == [0.5, 0.5, 1.0, 1.0]



def test_a_single_layout_trial_cut_off_before_its_kind_was_kept_keeps_its_arm(tmp_path) -> None:
    """A trial whose worker died after sampling its arm but before keeping `generator_kind`
    was listed under kind `?`; its sampled arm (or the study's only arm) says which it is."""
    from optuna.distributions import CategoricalDistribution
    from optuna.trial import create_trial

    from hpo.group import load_group
    from hpo.storage import open_storage

    storage = open_storage(str(tmp_path / "hpo.journal"))
    arms = CategoricalDistribution(["classical", "quantum"])
    two = optuna.create_study(study_name="two", storage=storage)
    two.set_user_attr("study_file", {"name": "two", "search": {"generators": {
        "classical": {}, "quantum": {}}}})
    two.add_trial(create_trial(state=TrialState.FAIL, params={"generator": "quantum"},
                               distributions={"generator": arms}))
    two.add_trial(create_trial(state=TrialState.FAIL))  # cut off before it sampled
    assert {k: len(ts) for k, ts in load_group(storage, "two").search.items()} == {
        "quantum": 1, "?": 1}
    one = optuna.create_study(study_name="one", storage=storage)
    one.set_user_attr("study_file", {"name": "one", "search": {"generators": {"hybrid": {}}}})
    one.add_trial(create_trial(state=TrialState.FAIL))
    assert list(load_group(storage, "one").search) == ["hybrid"]


def test_a_budget_grown_after_the_validation_was_enqueued_is_refused(tmp_path) -> None:
    """The validation is enqueued once: growing budget.trials afterwards ran the new search
    trials and validated none, so the report compared the old winners (one found 1.58 in the
    new trials beside a validated 31.9) and `hpo validate` did nothing."""
    from hpo.errors import UsageError
    from hpo.init_lock import ensure_group_studies
    from hpo.schedule import ENQUEUED_ATTR, PLAN_ATTR
    from hpo.storage import open_storage

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    spec = load_spec(SMOKE)
    spec = spec.model_copy(update={"budget": spec.budget.model_copy(update={"trials": 4}),
                                   "layout": "per-kind"})
    url = str(tmp_path / "hpo.journal")
    assert _run(open_storage(url), spec)[-1] == "done"
    ensure_group_studies(url, spec)  # the same file again: fine
    grown = spec.model_copy(update={"budget": spec.budget.model_copy(update={"trials": 8})})
    with pytest.raises(UsageError, match="enqueued for budget.trials 4, not 8"):
        ensure_group_studies(url, grown)
    more_seeds = spec.model_copy(update={"validation": spec.validation.model_copy(
        update={"seeds": spec.validation.seeds + 2})})
    with pytest.raises(UsageError, match="validation.seeds"):
        ensure_group_studies(url, more_seeds)
    # a group enqueued before the plan was kept: read from the study file it stores
    vstudy = optuna.load_study(study_name=f"{spec.name}.validation", storage=open_storage(url))
    plan = vstudy.user_attrs[PLAN_ATTR]
    assert plan["budget.trials"] == 4 and ENQUEUED_ATTR in vstudy.user_attrs
    vstudy.set_user_attr(PLAN_ATTR, None)
    with pytest.raises(UsageError, match="enqueued for budget.trials 4, not 8"):
        ensure_group_studies(url, grown)
    vstudy.set_user_attr(PLAN_ATTR, plan)
    # a worker that opened the group before the validation was enqueued: refused when it
    # next decides, under the budget lock (it went on searching the grown budget)
    with pytest.raises(UsageError, match="enqueued for budget.trials 4, not 8"):
        decide(ensure_group(open_storage(url), grown), grown)


def test_a_failure_awaiting_its_retry_holds_the_group_open(finished_group) -> None:
    """A failed trial the retry policy runs again, its retry not yet queued (its worker was
    stopped, or could not take the budget lock, and left it to the next worker's recovery),
    counted as a spent slot: on the last slot the workers said "done" and the study ended with
    the failure. They wait for the recovery instead, then run the retry."""
    from optuna.trial import create_trial

    from hpo.requeue import recover_lost_trials
    from hpo.trials import OUTCOME, RetryPolicy

    spec, storage, _ = finished_group
    policy = RetryPolicy.from_study_file(spec.retry)
    studies = ensure_group(storage, spec)
    vstudy = studies[validation_study_name(spec.name)]
    assert decide(studies, spec).action == "done"
    for outcome, action in (("failed", "done"), ("stopped", "wait")):  # the default policy
        vstudy.add_trial(create_trial(state=TrialState.FAIL, user_attrs={OUTCOME: outcome}))
        assert decide(studies, spec).action == action, outcome
    assert recover_lost_trials(vstudy, policy, older_than_s=-1) == [31]
    assert decide(studies, spec).action == "validate"
    # in the search: its last slot's failure (told by another process: lost) would have ended
    # the search and enqueued the validation without it
    two = spec.model_copy(update={"budget": spec.budget.model_copy(update={"trials": 2})})
    fresh = ensure_group(optuna.storages.InMemoryStorage(), two)
    classical, quantum = (fresh[search_study_name(spec.name, k)] for k in ("classical", "quantum"))
    classical.add_trial(create_trial(value=1.0))
    quantum.tell(quantum.ask().number, state=TrialState.FAIL)
    assert decide(fresh, two).action == "wait"
    assert recover_lost_trials(quantum, policy, older_than_s=-1) == [0]
    assert decide(fresh, two) == Work("search", quantum.study_name)
