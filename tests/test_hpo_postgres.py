"""The service on a real PostgreSQL: concurrent init, exact budgets with many workers, pruning,
export -> train reproduction, and dead or stopped workers whose trials are retried."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import optuna
import pytest
import yaml
from optuna.artifacts import FileSystemArtifactStore
from optuna.trial import TrialState

from hpo.score_details import load_score_details
from hpo.trial_config import load_config
from hpo.trials import counted
from metrics import GaussianMixture, default_sigma
from tests._faults import wait_all
from tests.conftest import (
    LIGHT_METRIC,
    SMOKE,
    reading_storage,
    run_hpo,
    slow_study,
    start_hpo,
    study_variant,
)

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]

SMOKE_SPEC = yaml.safe_load(SMOKE.read_text())
BUDGET = SMOKE_SPEC["budget"]["trials"]
EVAL_EVERY = SMOKE_SPEC["budget"]["eval_every"]
STEPS = SMOKE_SPEC["budget"]["steps"]


def _trials(url: str, name: str) -> list[optuna.trial.FrozenTrial]:
    return optuna.load_study(study_name=name, storage=reading_storage(url)).get_trials()


def _finished_ok(trials: list[optuna.trial.FrozenTrial]) -> list[optuna.trial.FrozenTrial]:
    return [t for t in counted(trials) if t.state.is_finished()]


def test_eight_concurrent_inits_make_one_study(pg_url: str, tmp_path: Path) -> None:
    procs = [start_hpo("init", str(SMOKE), "--storage", pg_url, cwd=tmp_path,
                       log=tmp_path / f"init{i}.log") for i in range(8)]
    codes = wait_all(procs, timeout=180)
    logs = [(tmp_path / f"init{i}.log").read_text() for i in range(8)]
    assert codes == [0] * 8, logs
    assert not any("Traceback" in log or "rror" in log for log in logs), logs
    studies = optuna.get_all_study_summaries(storage=pg_url)
    assert [s.study_name for s in studies] == ["smoke"]


@pytest.fixture(scope="module")
def smoke_run(module_pg_url: str, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    """studies/smoke.yaml finished by 4 concurrent `hpo worker` processes: (url, their folder).
    Scored as cheaply as a study file allows, the k-NN diagnostic kept (checked below)."""
    cwd = tmp_path_factory.mktemp("four-workers")
    smoke = str(study_variant(cwd, "smoke", metric={**LIGHT_METRIC, "knn": True}))
    assert run_hpo("init", smoke, "--storage", module_pg_url, cwd=cwd).returncode == 0
    procs = [start_hpo("worker", smoke, "--storage", module_pg_url, cwd=cwd,
                       log=cwd / f"worker{i}.log") for i in range(4)]
    codes = wait_all(procs, timeout=300)
    assert codes == [0] * 4, [(cwd / f"worker{i}.log").read_text() for i in range(4)]
    return module_pg_url, cwd


@pytest.fixture(scope="module")
def smoke_on_postgres(smoke_run: tuple[str, Path]) -> str:
    return smoke_run[0]


def test_four_workers_finish_exactly_the_budget(smoke_on_postgres: str) -> None:
    trials = _trials(smoke_on_postgres, "smoke")
    assert len(trials) == BUDGET, "no worker may start a trial beyond the budget"
    assert all(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials), \
        [(t.number, t.state, t.user_attrs.get("ended")) for t in trials]
    assert {t.user_attrs["generator_kind"] for t in trials} <= {"classical", "quantum"}
    assert len({t.user_attrs["worker"] for t in trials}) >= 2, "the work was shared"


def test_trials_report_at_the_same_steps_and_record_their_details(smoke_run: tuple[str, Path]
                                                                   ) -> None:
    url, cwd = smoke_run
    store = FileSystemArtifactStore(str(cwd / "runs" / "artifacts"))
    steps = set(range(EVAL_EVERY, STEPS + 1, EVAL_EVERY))
    for t in _trials(url, "smoke"):
        assert set(t.intermediate_values) <= steps
        if t.state == TrialState.COMPLETE:
            assert set(t.intermediate_values) == steps
            a = t.user_attrs
            assert a["ended"] == "complete"
            lo, hi = a["kl_ci"]
            assert lo <= t.value <= hi and a["kl_stderr"] > 0
            assert a["w2"] >= 0 and 0 <= a["mode_coverage"] <= 1 and a["n_params"] > 0
            # D_s at the study's s (the target's default), its profile and the k-NN diagnostic.
            assert a["sigma"] == default_sigma(GaussianMixture.preset("gaussgan"))
            details = load_score_details(t, store)  # the JSON artifact; one short line here
            assert details["kl"]["sigma"] == a["sigma"] and details["kl"]["value"] == t.value
            assert len(details["kl"]["values"]) == details["kl"]["replicates"] > 1
            assert [p["value"] for p in details["profile"]] == [p["value"]
                                                                 for p in a["kl_profile"]]
            assert a["kl_correction"].startswith("jackknife ") and "delta" in a["kl_correction"]
            assert "kl_details" not in a
            assert max(len(json.dumps(v)) for k, v in a.items() if k != "kl_profile") < 200, a
            assert [p["factor"] for p in a["kl_profile"]] == [0.5, 1.0, 2.0]
            assert [p["sigma"] for p in a["kl_profile"]] == [f * a["sigma"] for f in (0.5, 1, 2)]
            assert a["kl_profile"][1]["value"] == t.value
            assert all(p["ci_low"] <= p["value"] <= p["ci_high"] for p in a["kl_profile"])
            assert isinstance(a["kl_knn"], float)
            assert load_config(t, store)["train"]["seed"] == a["seed"] and a["code_version"]
            assert len(a["config"]) < 200  # one short line; the config itself is an artifact
            assert a["samples_png"]
        else:
            last = max(t.intermediate_values)
            assert t.user_attrs["ended"] == f"pruned at step {last}"


def test_pruner_prunes_at_reported_steps(pg_url: str, tmp_path: Path) -> None:
    """An aggressive percentile pruner on one worker: trials worse than the best are stopped
    at a reported step, before the end."""
    study = study_variant(tmp_path, "prune", budget={"trials": 6, "steps": 30, "eval_every": 10},
                          pruner={"kind": "percentile", "percentile": 5.0,
                                  "n_startup_trials": 1, "n_warmup_steps": 0})
    result = run_hpo("worker", str(study), "--storage", pg_url, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    trials = _trials(pg_url, "prune")
    pruned = [t for t in trials if t.state == TrialState.PRUNED]
    assert pruned, [(t.number, t.state, dict(t.intermediate_values)) for t in trials]
    for t in pruned:
        last = max(t.intermediate_values)
        assert last % 10 == 0 and last < 30
        assert t.user_attrs["ended"] == f"pruned at step {last}"


def test_export_then_train_reproduces_the_trial(smoke_run: tuple[str, Path], tmp_path: Path
                                                ) -> None:
    smoke_on_postgres, workers_dir = smoke_run
    out = tmp_path / "best.yaml"
    # From another folder the configs (YAML artifacts of the trials) need the workers' store.
    lost = run_hpo("export", "smoke", "--top", "2", "--storage", smoke_on_postgres, cwd=tmp_path)
    assert lost.returncode == 2 and "--artifacts" in lost.stderr, lost.stderr
    assert lost.stderr.count("\n") == 1, lost.stderr
    result = run_hpo("export", "smoke", "--top", "2", "--out", str(out),
                     "--storage", smoke_on_postgres,
                     "--artifacts", str(workers_dir / "runs" / "artifacts"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    docs = list(yaml.safe_load_all(out.read_text()))
    best = min((t for t in _trials(smoke_on_postgres, "smoke") if t.value is not None),
               key=lambda t: t.value)
    assert docs[0]["source"]["trial"] == best.number
    assert len(docs) == 2 and docs[0]["source"]["kl"] <= docs[1]["source"]["kl"]

    trained = run_hpo("train", str(out), "--json", cwd=tmp_path)
    assert trained.returncode == 0, trained.stderr
    got = json.loads(trained.stdout)
    assert {"kl", "kl_stderr", "kl_ci", "w2", "seconds"} <= set(got)
    assert got["kl"] == pytest.approx(best.value, rel=1e-9, abs=1e-9)
    assert got["kl_ci"] == pytest.approx(best.user_attrs["kl_ci"], rel=1e-9, abs=1e-9)
    assert got["sigma"] == best.user_attrs["sigma"]
    for mine, theirs in zip(got["kl_profile"], best.user_attrs["kl_profile"], strict=True):
        assert mine["value"] == pytest.approx(theirs["value"], rel=1e-9, abs=1e-9)


def _wait_for_running(url: str, name: str, worker_id: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            running = [t for t in _trials(url, name) if t.state == TrialState.RUNNING
                       and t.user_attrs.get("worker") == worker_id and t.intermediate_values]
        except KeyError:
            running = []
        if running:
            return
        time.sleep(0.2)
    pytest.fail(f"{worker_id} never got a trial under way")


def test_killed_worker_trial_is_retried_and_budget_completes(pg_url: str, tmp_path: Path
                                                             ) -> None:
    study = slow_study(tmp_path, "sigkill", trials=3)
    assert run_hpo("init", str(study), "--storage", pg_url, cwd=tmp_path).returncode == 0
    victim = start_hpo("worker", str(study), "--storage", pg_url, "--worker-id", "victim",
                       cwd=tmp_path, log=tmp_path / "victim.log")
    _wait_for_running(pg_url, "sigkill", "victim")
    survivor = start_hpo("worker", str(study), "--storage", pg_url, "--worker-id", "survivor",
                         cwd=tmp_path, log=tmp_path / "survivor.log")
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    assert wait_all([survivor], timeout=400) == [0], (tmp_path / "survivor.log").read_text()

    trials = _trials(pg_url, "sigkill")
    assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    killed = [t for t in trials if t.user_attrs.get("worker") == "victim"
              and t.state == TrialState.FAIL]
    assert len(killed) == 1
    retries = [t for t in trials if t.system_attrs.get("failed_trial") == killed[0].number]
    assert len(retries) == 1 and retries[0].state == TrialState.COMPLETE
    assert retries[0].user_attrs["worker"] == "survivor"
    assert retries[0].params == killed[0].params
    assert retries[0].user_attrs["seed"] == killed[0].user_attrs["seed"]
    assert len(_finished_ok(trials)) == 3
    assert sum(t.state == TrialState.COMPLETE for t in trials) == 3
