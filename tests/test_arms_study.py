"""Arms in study files: any named branch with ``generator:`` naming the model kind it trains.

The published studies (gaussgan, ring8) hold four arms: classical, quantum (linear head), hybrid
(circuit + MLP head) and the hybrid's control (its head on classical noise). A tiny four-arm
study is run in process, validated and reported: one search study per arm, equal budgets, the
parameter split of each arm (the control's head count is the hybrid's, with 0 in a circuit).
"""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
import yaml

import models
from hpo.errors import StudyFileError
from hpo.group import group_study_names, search_studies
from hpo.schedule import study_budgets
from hpo.space import load_spec, suggest_arm, training_config
from hpo.study_file import arm_kind
from tests._study_runs import publish, run_study, write_study
from tests.conftest import LIGHT_METRIC, SMOKE

pytestmark = pytest.mark.unit

ARMS = ["classical", "quantum", "hybrid", "control"]
KINDS = {"classical": "classical", "quantum": "quantum", "hybrid": "quantum",
         "control": "control"}


@pytest.mark.parametrize("path", ["studies/gaussgan.yaml", "studies/ring8.yaml"])
def test_published_studies_search_four_arms_then_validate(path: str) -> None:
    spec = load_spec(path)
    name = spec.name
    assert spec.layout == "per-kind"
    assert spec.searches >= 3  # issue 21: each arm searched 3 times independently
    searches = [f"{name}.{arm}.s{r}" for arm in ARMS for r in range(1, spec.searches + 1)]
    assert group_study_names(spec) == searches + [f"{name}.validation"]
    assert {arm: arm_kind(arm, b) for arm, b in spec.search.generators.items()} == KINDS
    budgets = study_budgets(spec)
    assert sorted(budgets) == sorted(searches)
    assert len(set(budgets.values())) == 1  # equal budgets, exactly
    assert sum(budgets.values()) == spec.budget.trials
    assert spec.validation.top_k >= 1 and spec.validation.seeds >= 5

    arms = spec.search.generators
    assert arms["quantum"].fixed["head"] == "linear" and arms["hybrid"].fixed["head"] == "mlp"
    # the circuit spaces reach 8 qubits, and the control's noise spans the hybrid's widths
    assert arms["quantum"].search["n_qubits"].high == arms["hybrid"].search["n_qubits"].high == 8
    assert arms["control"].search["n_qubits"] == arms["hybrid"].search["n_qubits"]
    # the same head search: every head parameter the hybrid searches, the control searches alike
    head = {k: v for k, v in arms["hybrid"].search.items() if k.startswith("head")}
    assert head and {k: v for k, v in arms["control"].search.items() if k != "n_qubits"} == head


@pytest.mark.parametrize("path", ["studies/gaussgan.yaml", "studies/ring8.yaml"])
def test_the_control_has_the_hybrids_head_at_every_corner(path: str) -> None:
    """At each end of the head and width ranges, the control's parameter count is the hybrid's
    head count (what models promise), and its circuit count is 0."""
    spec = load_spec(path)
    control = spec.search.generators["control"].search
    for n_qubits in control["n_qubits"].ends():
        for width in control["head_width"].ends():
            branch = {"n_qubits": n_qubits, "head_width": width}
            hybrid = models.build_generator(
                training_config(spec, "hybrid", {}, {**branch, "n_layers": 1,
                                                     "ansatz": "gaussgan"}))
            ctrl = models.build_generator(training_config(spec, "control", {}, branch))
            assert ctrl.n_circuit_parameters() == 0 < hybrid.n_circuit_parameters()
            assert ctrl.n_parameters() == hybrid.n_parameters() - hybrid.n_circuit_parameters()


def test_ring8_scores_at_its_own_resolution() -> None:
    from hpo.target import build_target
    from metrics import default_sigma

    spec = load_spec("studies/ring8.yaml")
    assert spec.target.preset == "ring8" and spec.metric.sigma is None
    assert default_sigma(build_target(spec.target)) == pytest.approx(0.2, abs=0.005)


def test_a_file_without_generator_fields_names_parameters_as_before() -> None:
    spec = load_spec(SMOKE)  # single layout, arms classical and quantum, no generator: fields
    for arm, prefix in (("classical", "classical.width"), ("quantum", "quantum.n_layers")):
        study = optuna.create_study(sampler=optuna.samplers.RandomSampler(0))
        study.enqueue_trial({"generator": arm})
        trial = study.ask()
        got, config = suggest_arm(trial, spec, seed=5)
        assert got == arm and config["generator"]["kind"] == arm and config["seed"] == 5
        assert sorted(trial.params) == sorted(["generator", "lr_critic", "lr_generator", prefix])


def test_an_arm_names_its_parameters_and_trains_its_generator_kind(tmp_path: Path) -> None:
    spec = load_spec(write_study(tmp_path, _four_arms()))
    assert list(spec.search.generators) == ARMS  # the file's order
    names = {}
    for arm in ARMS:
        study = optuna.create_study()
        trial = study.ask()
        got, config = suggest_arm(trial, spec.model_copy(update={"search": spec.search.model_copy(
            update={"generators": {arm: spec.search.generators[arm]}})}), seed=1)
        assert got == arm and config["generator"]["kind"] == KINDS[arm]
        names[arm] = sorted(trial.params)
    assert names["hybrid"] == ["hybrid.n_layers", "lr_critic", "lr_generator"]
    assert names["quantum"] == ["lr_critic", "lr_generator", "quantum.n_layers"]
    assert names["control"] == ["control.head_activation", "lr_critic", "lr_generator"]


@pytest.mark.parametrize(("change", "key", "words"), [
    ({"hybrid": {}}, "search.generators.hybrid", "generator: classical | quantum | control"),
    ({"hybrid": {"generator": "photonic"}}, "search.generators.hybrid.generator",
     "'classical', 'quantum' or 'control'"),
    ({"a.b": {"generator": "quantum"}}, "search.generators.a.b", "part of the study name"),
    ({"validation": {"generator": "quantum"}}, "search.generators.validation", "reserved"),
    ({"control": {"generator": "control", "search": {"n_layers": {"low": 1, "high": 2}}}},
     "search.generators.control.search.n_layers", "unknown control parameter"),
    ({"control": {"generator": "control", "fixed": {"head_depth": 0}}},
     "search.generators.control", "at least one hidden layer"),
    ({"control": {"generator": "control", "search": {"n_qubits": {"low": 2, "high": 13}}}},
     "search.generators.control.search.n_qubits", "1..12"),
])
def test_bad_arms_are_one_line_naming_the_key(tmp_path: Path, change, key, words) -> None:
    data = _four_arms()
    data["search"]["generators"].update(change)
    path = write_study(tmp_path, data)
    with pytest.raises(StudyFileError) as err:
        load_spec(path)
    message = str(err.value)
    assert message.startswith(f"{path}: {key}:") and words in message, message
    assert "\n" not in message


def _four_arms(**changes) -> dict:
    """studies/smoke.yaml with four arms, per-kind, tiny: 2 search trials per arm, the best of
    each validated on 2 seeds, scored as cheaply as a study file allows."""
    data = yaml.safe_load(SMOKE.read_text())
    data.update(name="arms", layout="per-kind", validation={"top_k": 1, "seeds": 2},
                budget={"trials": 8, "steps": 20, "eval_every": 10}, pruner={"kind": "none"},
                metric=LIGHT_METRIC)
    data["search"]["generators"] = {
        "classical": {"search": {"width": {"low": 8, "high": 16, "step": 8}},
                      "fixed": {"depth": 1}},
        "quantum": {"search": {"n_layers": {"low": 1, "high": 2}},
                    "fixed": {"n_qubits": 3, "ansatz": "gaussgan", "head": "linear"}},
        "hybrid": {"generator": "quantum", "search": {"n_layers": {"low": 1, "high": 2}},
                   "fixed": {"n_qubits": 3, "ansatz": "gaussgan", "head": "mlp",
                             "head_width": 8}},
        "control": {"generator": "control",
                    "search": {"head_activation": {"choices": ["relu", "tanh"]}},
                    "fixed": {"n_qubits": 3, "head_width": 8}},
    }
    data.update(changes)
    return data


@pytest.mark.slow
def test_a_four_arm_study_searches_validates_and_reports(tmp_path: Path) -> None:
    from hpo.export import dump_documents, export_documents
    from hpo.publish import note_markdown
    from hpo.report import group_summary
    from hpo.trial_config import config_summary

    run = run_study(tmp_path, _four_arms())
    spec, group, log = run.spec, run.group, run.log

    assert group.kinds == ARMS
    assert group.search_studies == {arm: f"arms.{arm}" for arm in ARMS}
    assert list(search_studies(spec).values()) == ARMS
    # head counts: (3 + 1) * 8 + (8 + 1) * 2 = 50 for hybrid and control; linear head 8
    classical_head = {"quantum": 8, "hybrid": 50, "control": 50}
    for arm, trials in group.search.items():
        done = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
        assert len(trials) == 2 and len(done) == 2, (arm, log.getvalue())
        for t in done:
            assert t.user_attrs["generator_kind"] == arm
            assert all(p.startswith((f"{arm}.", "lr_")) for p in t.params), t.params
            circuit = t.user_attrs["n_params_circuit"]
            assert (circuit > 0) == (KINDS[arm] == "quantum"), (arm, circuit)
            if arm in classical_head:
                assert t.user_attrs["n_params"] - circuit == classical_head[arm]
    # the validation covers each arm's top_k = 1 configuration on 2 fresh seeds
    validated = {}
    for t in group.validation:
        assert t.state == optuna.trial.TrialState.COMPLETE, log.getvalue()
        validated.setdefault(t.user_attrs["generator_kind"], []).append(t.user_attrs["seed"])
    assert sorted(validated) == sorted(ARMS) and all(len(s) == 2 for s in validated.values())

    published, report, store = publish(run, tmp_path / "report")
    assert list(report["kinds"]) == ARMS
    assert len(report["comparisons"]) == 6  # every pair of four arms
    assert report["comparisons"][0]["kinds"] == ["classical", "quantum"]
    assert report["comparisons"][1]["kinds"] == ["hybrid", "control"]
    assert report["verdict"]["sentence"] == report["comparisons"][0]["at_s"]["sentence"]
    control = report["verdict"]["control"]
    assert control["kinds"] == ["hybrid", "control"]
    assert control["sentence"] == report["comparisons"][1]["at_s"]["sentence"]
    assert "hybrid" in control["sentence"] and "control" in control["sentence"]
    best = {arm: k["validated"][0] for arm, k in report["kinds"].items()}
    assert (best["control"]["n_params"], best["control"]["n_params_circuit"]) == (50, 0)
    assert best["hybrid"]["n_params"] - best["hybrid"]["n_params_circuit"] == 50

    page = published.html.read_text()
    assert "id='control-sentence'" in page and "50 (0 + 50)" in page
    hybrid_split = f"{best['hybrid']['n_params']} ({best['hybrid']['n_params_circuit']} + 50)"
    assert hybrid_split in page
    for arm in ARMS:
        assert f"arms.{arm}" in page
    note = note_markdown(report, {})  # the dashboard's note on every study of the group
    assert control["sentence"] in note
    assert next(line for line in note.splitlines() if line.startswith("| control |")) \
        .endswith("| 50 (0 + 50) |")
    summary = group_summary(group)
    control_row = next(line for line in summary.splitlines() if line.startswith("control "))
    assert "50 (0 + 50)" in control_row, summary

    # export: every arm, and one arm by name; each document says its arm and its model kind
    docs = export_documents(group, 4, artifact_store=store, validated=None)
    assert sorted(d["source"]["arm"] for d in docs) == sorted(ARMS)
    assert all(d["source"]["ranking"] == "validated" for d in docs)
    (hybrid,) = export_documents(group, 1, kind="hybrid", artifact_store=store, validated=None)
    assert hybrid["source"]["study"] == "arms.hybrid"
    assert hybrid["train"]["generator"]["kind"] == "quantum"
    assert "# rank 1: hybrid (quantum), trial" in dump_documents([hybrid], "arms")
    assert config_summary(hybrid["train"]).startswith("quantum 3q x ")
    assert "gaussgan/mlp 8 |" in config_summary(hybrid["train"])
    (control,) = export_documents(group, 1, kind="control", artifact_store=store, validated=None)
    assert config_summary(control["train"]).startswith("control 3d noise/mlp 8 ")

    # the published folder stands alone: with the run's store gone, its own artifacts export the
    # same configurations and redraw the same page, sample images included
    import shutil

    from hpo.publish import write_report
    from hpo.storage import artifact_store

    assert published.artifacts is not None and published.artifacts.missing == 0
    own = artifact_store(str(tmp_path / "report" / "artifacts"))
    shutil.rmtree(run.artifacts)
    assert export_documents(group, 4, artifact_store=own, validated=None) == docs
    again = write_report(run.storage, spec.name, tmp_path / "again", artifact_store=own,
                         note=False)
    images = page.count("data:image/png;base64")
    assert images >= 6 and again.html.read_text().count("data:image/png;base64") == images
    assert "<figure id='fig-samples'>" in page and "<figure id='fig-samples'>" in \
        again.html.read_text()
