"""Repeated searches (issue 21): ``searches: R`` searches each arm R times independently.

Naming (``NAME.<arm>`` once, ``NAME.<arm>.s<r>`` when repeated), seed derivation (search r's
trial and sampler seeds offset by ``(r - 1) * SEARCH_SEED_STRIDE``, the first search's are the
file's), equal budgets, validation of each search's winners recording arm and search, and a
tiny study of 2 arms x 2 searches run, validated and reported in process.
"""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
import yaml
from optuna.trial import TrialState

from hpo.errors import StudyFileError
from hpo.group import (
    group_study_names,
    load_group,
    member_of,
    parse_search_part,
    search_plan,
    search_spec,
    search_studies,
    search_study_name,
)
from hpo.schedule import (
    VALIDATION_SEED_BASE,
    planned_trials,
    study_budgets,
    validation_requests,
)
from hpo.space import load_spec
from hpo.study_file import MAX_SEARCHES, MAX_TRIALS, SEARCH_SEED_STRIDE
from hpo.trials import VALIDATES
from tests._study_runs import publish, run_study, write_study
from tests.conftest import LIGHT_METRIC, SMOKE

pytestmark = pytest.mark.unit

ARMS = ["classical", "quantum"]


def _two_arms(**changes) -> dict:
    """studies/smoke.yaml per-kind with 2 arms x 2 searches, tiny: 2 search trials per search,
    each search's best validated on 2 seeds, scored as cheaply as a study file allows."""
    data = yaml.safe_load(SMOKE.read_text())
    data.update(name="reps", layout="per-kind", searches=2, seed=7,
                sampler={"seed": 3, "n_startup_trials": 1},
                validation={"top_k": 1, "seeds": 2},
                budget={"trials": 8, "steps": 20, "eval_every": 10}, pruner={"kind": "none"},
                metric=LIGHT_METRIC)
    data["search"]["generators"] = {
        "classical": {"search": {"width": {"low": 8, "high": 16, "step": 8}},
                      "fixed": {"depth": 1}},
        "quantum": {"search": {"n_layers": {"low": 1, "high": 2}},
                    "fixed": {"n_qubits": 2, "ansatz": "gaussgan", "head": "linear"}},
    }
    data.update(changes)
    return data


def test_one_search_keeps_todays_names_and_seeds(tmp_path: Path) -> None:
    spec = load_spec(write_study(tmp_path, _two_arms(searches=1, budget={
        "trials": 6, "steps": 20, "eval_every": 10})))
    assert spec.searches == 1
    assert group_study_names(spec) == ["reps.classical", "reps.quantum", "reps.validation"]
    assert search_plan(spec) == {"reps.classical": ("classical", 1),
                                 "reps.quantum": ("quantum", 1)}
    first = search_spec(spec, "quantum", 1)
    assert (first.seed, first.sampler.seed) == (7, 3)
    assert list(first.search.generators) == ["quantum"]
    # a published file without the key is searched once
    assert load_spec("studies/smoke.yaml").searches == 1


def test_repeated_searches_are_named_and_seeded_apart(tmp_path: Path) -> None:
    spec = load_spec(write_study(tmp_path, _two_arms()))
    assert group_study_names(spec) == ["reps.classical.s1", "reps.classical.s2",
                                       "reps.quantum.s1", "reps.quantum.s2", "reps.validation"]
    assert search_studies(spec) == {"reps.classical.s1": "classical",
                                    "reps.classical.s2": "classical",
                                    "reps.quantum.s1": "quantum", "reps.quantum.s2": "quantum"}
    seeds = {r: search_spec(spec, "classical", r) for r in (1, 2)}
    assert (seeds[1].seed, seeds[1].sampler.seed) == (7, 3)  # the first search: the file's
    assert (seeds[2].seed, seeds[2].sampler.seed) == (7 + SEARCH_SEED_STRIDE,
                                                      3 + SEARCH_SEED_STRIDE)
    # no two searches share a trial seed, and every search seed is below the validation's
    assert SEARCH_SEED_STRIDE >= MAX_TRIALS
    assert (MAX_SEARCHES - 1) * SEARCH_SEED_STRIDE + MAX_TRIALS <= VALIDATION_SEED_BASE
    # equal budgets: 8 trials over 2 arms x 2 searches
    assert study_budgets(spec) == dict.fromkeys(search_studies(spec), 2)
    assert planned_trials(spec, {"reps.validation": optuna.create_study()}) == 8 + 4 * 1 * 2


@pytest.mark.parametrize(("part", "parsed"), [
    ("quantum", ("quantum", 1)), ("quantum.s2", ("quantum", 2)), ("q-1.s12", ("q-1", 12)),
    ("validation", None), ("quantum.s0", None), ("quantum.s01", None), ("quantum.x2", None),
    ("quantum.s", None), ("", None),
])
def test_search_study_names_parse_back(part: str, parsed) -> None:
    assert parse_search_part(part) == parsed
    if parsed is not None:
        arm, r = parsed
        searches = 1 if "." not in part else max(r, 2)
        assert search_study_name("g", arm, r, searches) == f"g.{part}"


def test_search_study_name_checks_its_search() -> None:
    with pytest.raises(ValueError, match="search must be 1 .. 3"):
        search_study_name("g", "quantum", 4, 3)


@pytest.mark.parametrize(("changes", "key", "words"), [
    ({"searches": 0}, "searches", "greater than or equal to 1"),
    ({"searches": MAX_SEARCHES + 1}, "searches", f"less than or equal to {MAX_SEARCHES}"),
    ({"layout": "single"}, "searches", "layout: per-kind"),
    ({"budget": {"trials": 6, "steps": 20, "eval_every": 10}}, "budget.trials",
     "a multiple of 4"),
])
def test_bad_searches_are_one_line_naming_the_key(tmp_path: Path, changes, key, words) -> None:
    path = write_study(tmp_path, _two_arms(**changes))
    with pytest.raises(StudyFileError) as err:
        load_spec(path)
    message = str(err.value)
    assert message.startswith(f"{path}: {key}:") and words in message, message


def test_each_search_validates_its_own_winners_and_says_so() -> None:
    study = optuna.create_study()
    trials = {}
    for name, values in (("g.a.s1", [0.3, 0.1]), ("g.a.s2", [0.2, 0.5]), ("g.b.s1", [0.9])):
        trials[name] = []
        for i, v in enumerate(values):
            t = optuna.trial.create_trial(params={}, distributions={}, value=v,
                                          user_attrs={"seed": i})
            trials[name].append(optuna.trial.FrozenTrial(
                number=i, state=TrialState.COMPLETE, value=v, datetime_start=t.datetime_start,
                datetime_complete=t.datetime_complete, params={}, distributions={},
                user_attrs={"seed": i}, system_attrs={}, intermediate_values={}, trial_id=i))
    del study
    arms = {"g.a.s1": ("a", 1), "g.a.s2": ("a", 2), "g.b.s1": ("b", 1)}
    requests = validation_requests(trials, {n: n for n in trials}, top_k=1, seeds=2,
                                   base_seed=0, arms=arms)
    assert [(r.kind, r.search, r.source_study, r.source_trial) for r in requests] == [
        ("a", 1, "g.a.s1", 1), ("a", 1, "g.a.s1", 1), ("a", 2, "g.a.s2", 0),
        ("a", 2, "g.a.s2", 0), ("b", 1, "g.b.s1", 0), ("b", 1, "g.b.s1", 0)]
    assert len({r.seed for r in requests}) == 6
    assert all(r.seed >= VALIDATION_SEED_BASE for r in requests)
    attrs = requests[2].user_attrs()[VALIDATES]
    assert (attrs["arm"], attrs["search"], attrs["study"]) == ("a", 2, "g.a.s2")


def test_a_repeated_search_study_is_a_member_of_its_group(tmp_path: Path) -> None:
    from hpo.group import ensure_group

    spec = load_spec(write_study(tmp_path, _two_arms()))
    storage = optuna.storages.InMemoryStorage()
    ensure_group(storage, spec)
    assert member_of(storage, "reps.quantum.s2") == ("reps", "quantum.s2")
    assert member_of(storage, "reps.validation") == ("reps", "validation")
    assert member_of(storage, "reps") is None
    group = load_group(storage, "reps")
    assert group.kinds == ARMS
    assert {k: list(v) for k, v in group.searches.items()} == {
        "classical": ["reps.classical.s1", "reps.classical.s2"],
        "quantum": ["reps.quantum.s1", "reps.quantum.s2"]}


@pytest.mark.slow
def test_two_arms_searched_twice_run_validate_and_report(tmp_path: Path) -> None:
    from hpo.export import export_documents
    from hpo.publish import note_markdown
    from hpo.report import group_summary, status_data

    run = run_study(tmp_path, _two_arms())
    spec, storage, group, log = run.spec, run.storage, run.group, run.log

    studies = {s.study_name for s in storage.get_all_studies()}
    assert studies == set(group_study_names(spec))
    # budgets exact per search, and each search's trial seeds are its own
    seeds = {}
    for arm, by_study in group.searches.items():
        assert list(by_study) == [f"reps.{arm}.s1", f"reps.{arm}.s2"]
        for r, (study, trials) in enumerate(by_study.items(), start=1):
            assert len(trials) == 2, (study, log.getvalue())
            assert all(t.state == TrialState.COMPLETE for t in trials), log.getvalue()
            assert sorted(t.user_attrs["seed"] for t in trials) == [
                7 + (r - 1) * SEARCH_SEED_STRIDE + n for n in (0, 1)]
            seeds[study] = {t.user_attrs["seed"] for t in trials}
    # the validation covers each search's top_k = 1 winner on 2 fresh seeds
    covered: dict[tuple[str, int], list[int]] = {}
    for t in group.validation:
        assert t.state == TrialState.COMPLETE, log.getvalue()
        v = t.user_attrs[VALIDATES]
        assert v["arm"] == t.user_attrs["generator_kind"]
        assert v["study"] == f"reps.{v['arm']}.s{v['search']}" and v["rank"] == 1
        best = min((x for x in group.searches[v["arm"]][v["study"]]), key=lambda x: x.value)
        assert v["trial"] == best.number
        covered.setdefault((v["arm"], v["search"]), []).append(t.user_attrs["seed"])
    assert sorted(covered) == [(arm, r) for arm in ARMS for r in (1, 2)]
    assert all(len(s) == 2 for s in covered.values())
    assert not set().union(*covered.values()) & set().union(*seeds.values())

    published, report, store = publish(run, tmp_path / "report")
    for arm in ARMS:
        searches = report["arms"][arm]["searches"]
        assert [s["search"] for s in searches] == [1, 2]
        assert [s["study"] for s in searches] == [f"reps.{arm}.s1", f"reps.{arm}.s2"]
        for s in searches:
            assert len(s["values"]) == len(s["seeds"]) == 2
            assert s["winner"]["n_params"] > 0 and "params" in s["winner"]
            assert sorted(s["seeds"]) == sorted(covered[(arm, s["search"])])
        summary = report["arms"][arm]["summary"]
        assert summary["searches"] == 2 and len(summary["search_means"]) == 2
        eb = report["arms"][arm]["expected_best"]
        assert eb["n_values"] == 4 and len(eb["expected"]) == 4
    (pair,) = report["arms_comparisons"]
    assert pair["kinds"] == ARMS and pair["available"] and pair["searches"] == [2, 2]
    assert pair["at_s"]["searches"] == [2, 2]
    assert report["verdict"]["arms"]["sentence"] == pair["sentence"]
    assert report["verdict"]["sentence"] == report["comparisons"][0]["at_s"]["sentence"]
    assert report["provenance"]["searches"] == {
        arm: [f"reps.{arm}.s1", f"reps.{arm}.s2"] for arm in ARMS}
    page = published.html.read_text()
    assert "id='fig-expected_best'><img" in page and "data:image/png;base64," in page
    assert "reps.quantum.s2" in page and pair["sentence"].split(" (")[0][:30] in page
    assert pair["sentence"] in note_markdown(report, {})
    assert "2 searches" in group_summary(group)
    assert status_data(group)["kinds"]["quantum"]["studies"] == ["reps.quantum.s1",
                                                                   "reps.quantum.s2"]
    # export --top 1 after the validation: the validated winner, named by its own search study
    (doc,) = export_documents(group, 1, artifact_store=store, validated=None)
    assert doc["source"]["ranking"] == "validated"
    winners = [(s["study"], s["winner"]["source_trial"], s["winner"]["mean"])
               for arm in ARMS for s in report["arms"][arm]["searches"]]
    study, trial, _ = min(winners, key=lambda w: w[2])
    assert (doc["source"]["study"], doc["source"]["trial"]) == (study, trial)


def test_one_search_per_arm_reports_no_interval_over_searches(tmp_path: Path) -> None:
    """R = 1: each arm has one search entry and the sentence says R >= 2 is needed."""
    from hpo.group import ensure_group
    from hpo.report_content import build_report
    from hpo.schedule import decide

    spec = load_spec(write_study(tmp_path, _two_arms(searches=1, budget={
        "trials": 2, "steps": 20, "eval_every": 10})))
    storage = optuna.storages.InMemoryStorage()
    studies = ensure_group(storage, spec)
    for name in search_studies(spec):
        kind = search_studies(spec)[name]
        studies[name].add_trial(optuna.trial.create_trial(
            params={}, distributions={}, value=0.5,
            user_attrs={"seed": 7, "generator_kind": kind, "n_params": 10,
                        "n_params_circuit": 0, "config": {"search_study": name}}))
    assert decide(studies, spec).action == "validate"
    vstudy = studies["reps.validation"]
    for i, t in enumerate(vstudy.get_trials(states=(TrialState.WAITING,))):
        vstudy.add_trial(optuna.trial.create_trial(
            params={}, distributions={}, value=0.4 + 0.01 * i,
            user_attrs={**t.user_attrs, "n_params": 10, "n_params_circuit": 0}))
    report = build_report(load_group(storage, "reps"))
    for arm in ARMS:
        (only,) = report["arms"][arm]["searches"]
        assert only["study"] == f"reps.{arm}" and len(only["values"]) == 2
        assert report["arms"][arm]["summary"] is None
    (pair,) = report["arms_comparisons"]
    assert not pair["available"] and pair["at_s"] is None
    assert "needs R >= 2" in pair["sentence"] and "classical has 1" in pair["sentence"]
    assert report["verdict"]["arms"]["sentence"] == pair["sentence"]


def test_the_last_searches_of_each_arm_sample_at_random(tmp_path: Path) -> None:
    from hpo.strategy import make_sampler

    spec = load_spec(write_study(tmp_path, _two_arms(searches=3, random_searches=1, budget={
        "trials": 12, "steps": 20, "eval_every": 10})))
    kinds = {r: search_spec(spec, "quantum", r).sampler for r in (1, 2, 3)}
    assert [kinds[r].kind for r in (1, 2, 3)] == ["tpe", "tpe", "random"]
    assert [kinds[r].seed for r in (1, 2, 3)] == [3 + (r - 1) * SEARCH_SEED_STRIDE
                                                  for r in (1, 2, 3)]
    assert isinstance(make_sampler(search_spec(spec, "quantum", 3)),
                      optuna.samplers.RandomSampler)
    assert isinstance(make_sampler(search_spec(spec, "quantum", 2)), optuna.samplers.TPESampler)
    with pytest.raises(StudyFileError, match="random_searches"):
        load_spec(write_study(tmp_path, _two_arms(searches=2, random_searches=2)))


def _stored_random_baseline(tmp_path: Path, random_values: dict[str, list[float]]):
    """A 2-arm group, 3 searches of which the last is random, each search's winner validated on
    2 seeds: searched winners' seed means 0.40 and 0.50 (classical) or 0.60 and 0.70 (quantum),
    the random winners' values given."""
    from hpo.group import ensure_group
    from hpo.schedule import decide

    searches = 2 + len(next(iter(random_values.values())))
    tmp_path.mkdir(parents=True, exist_ok=True)
    spec = load_spec(write_study(tmp_path, _two_arms(
        searches=searches, random_searches=searches - 2,
        budget={"trials": 2 * searches, "steps": 20, "eval_every": 10})))
    storage = optuna.storages.InMemoryStorage()
    studies = ensure_group(storage, spec)
    for name, (kind, _) in search_plan(spec).items():
        studies[name].add_trial(optuna.trial.create_trial(
            params={}, distributions={}, value=0.5,
            user_attrs={"seed": 7, "generator_kind": kind, "n_params": 10,
                        "n_params_circuit": 0, "config": {"search_study": name}}))
    assert decide(studies, spec).action == "validate"
    base = {"classical": [0.39, 0.41, 0.49, 0.51], "quantum": [0.59, 0.61, 0.69, 0.71]}
    vstudy = studies["reps.validation"]
    for t in vstudy.get_trials(states=(TrialState.WAITING,)):
        v = t.user_attrs[VALIDATES]
        values = base[v["arm"]] + [x for x in random_values[v["arm"]] for _ in (0, 1)]
        seed_index = [w for w in vstudy.get_trials(states=(TrialState.WAITING,))
                      if w.user_attrs[VALIDATES] == v].index(t)
        vstudy.add_trial(optuna.trial.create_trial(
            params={}, distributions={}, value=values[2 * (v["search"] - 1) + seed_index],
            user_attrs={**t.user_attrs, "n_params": 10, "n_params_circuit": 0}))
    return storage


def test_the_report_compares_searched_winners_with_random_ones(tmp_path: Path) -> None:
    from scipy import stats

    from hpo.report_content import build_report

    # One random search per arm: its winner against the searched winners' t-interval.
    storage = _stored_random_baseline(tmp_path, {"classical": [2.0], "quantum": [0.65]})
    report = build_report(load_group(storage, "reps"))
    for arm, where in (("classical", "above"), ("quantum", "inside")):
        a = report["arms"][arm]
        assert [s["sampler"] for s in a["searches"]] == ["tpe", "tpe", "random"]
        assert a["summary"]["searches"] == 2  # the arm's score: its searched winners only
        b = a["random_baseline"]
        means = [0.40, 0.50] if arm == "classical" else [0.60, 0.70]
        ci = stats.ttest_1samp(means, 0.0).confidence_interval(0.95)
        assert b["searches"] == [3] and b["comparison"] is None
        assert b["random_means"] == pytest.approx([2.0 if arm == "classical" else 0.65])
        assert b["searched"]["ci"] == pytest.approx([max(ci.low, 0.0), ci.high])
        assert f"lies {where} the searched" in b["sentence"], b["sentence"]
    (pair,) = report["arms_comparisons"]
    assert pair["searches"] == [2, 2]
    assert pair["at_s"]["arms"][0]["searches"] == 2

    # Two random searches per arm: Welch over searches, searched minus random, against scipy.
    storage = _stored_random_baseline(tmp_path / "two", {"classical": [0.9, 1.1],
                                                          "quantum": [0.62, 0.68]})
    b = build_report(load_group(storage, "reps"))["arms"]["classical"]["random_baseline"]
    ref = stats.ttest_ind([0.4, 0.5], [0.9, 1.1], equal_var=False)
    assert b["comparison"]["difference"]["value"] == pytest.approx(0.45 - 1.0)
    assert b["comparison"]["difference"]["p"] == pytest.approx(ref.pvalue, rel=1e-6)
    assert b["sentence"].startswith("classical: searched winners 0.450 nats against random")


def test_the_verdicts_best_configurations_leave_the_random_baseline_out(tmp_path: Path) -> None:
    """A random search's winner better than every searched one: the verdict's best-configuration
    comparison still picks among the searched winners, as the comparison over searches does, so
    the page never states two different "best configuration" differences."""
    from hpo.report_content import build_report

    storage = _stored_random_baseline(tmp_path, {"classical": [0.1], "quantum": [0.65]})
    report = build_report(load_group(storage, "reps"))
    primary = report["comparisons"][0]
    assert primary["configs"] == [["reps.classical.s1", 0], ["reps.quantum.s1", 0]]
    assert primary["at_s"]["difference"] == pytest.approx(0.40 - 0.60)
    best = report["arms_comparisons"][0]["at_s"]["best_configuration"]
    assert best["difference"] == pytest.approx(primary["at_s"]["difference"])


def test_every_tool_names_the_searched_winner_before_the_random_baseline(tmp_path: Path) -> None:
    """A random search's winner better than every searched one is listed, labelled, after the
    searched configurations: the page's "(best)" row, its sample figure, the dashboard note,
    `hpo status` and `hpo export --top 1` name the winner the verdict compares."""
    from hpo.export import export_documents
    from hpo.publish import note_markdown
    from hpo.report import status_data
    from hpo.report_content import build_report
    from hpo.report_html import verdict_rows

    storage = _stored_random_baseline(tmp_path, {"classical": [0.1], "quantum": [0.65]})
    group = load_group(storage, "reps")
    report = build_report(group)
    classical = report["kinds"]["classical"]["validated"]
    assert [(c["source_study"], c["random_search"]) for c in classical] == [
        ("reps.classical.s1", False), ("reps.classical.s2", False), ("reps.classical.s3", True)]
    assert classical[2]["mean"] == pytest.approx(0.1)  # the best seed mean, ranked last
    labels = [row[0] for row in verdict_rows(report)]
    assert labels[:3] == ["classical (best)", "classical", "classical (random search)"]
    assert status_data(group)["kinds"]["classical"]["best"]["value"] == pytest.approx(0.40)
    (doc,) = export_documents(group, 1, validated=None)
    assert (doc["source"]["study"], doc["source"]["validated"]["random_search"]) == (
        "reps.classical.s1", False)
    assert "| classical | reps.classical.s1 #0 |" in note_markdown(report, {})
