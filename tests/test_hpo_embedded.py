"""The one-machine path: `hpo run` on the embedded journal file, with no server at all."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import optuna
import pytest
import yaml
from optuna.trial import TrialState
from optuna_dashboard._storage_url import get_storage as dashboard_get_storage

from tests.conftest import SMOKE, hpo_cmd, hpo_env, study_variant

BUDGET = yaml.safe_load(SMOKE.read_text())["budget"]["trials"]


def test_hpo_run_smoke_completes_and_opens_in_optuna_dashboard(tmp_path: Path) -> None:
    result = subprocess.run(hpo_cmd("run", str(SMOKE), "--workers", "2"), cwd=tmp_path,
                            env=hpo_env(), text=True, capture_output=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{BUDGET}/{BUDGET} finished" in result.stdout
    assert "KL(Q||P) nats" in result.stdout and "hpo dashboard" in result.stdout

    journal = tmp_path / "runs" / "hpo.journal"
    storage = dashboard_get_storage(str(journal))  # optuna-dashboard's own loader
    study = optuna.load_study(study_name="smoke", storage=storage)
    trials = study.get_trials()
    assert len(trials) == BUDGET
    assert all(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials)
    workers = {t.user_attrs["worker"] for t in trials}
    assert workers and all(w.endswith(("-w0", "-w1")) for w in workers), workers

    artifacts = tmp_path / "runs" / "artifacts"
    for t in trials:
        png = artifacts / t.user_attrs["samples_png"]
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", t.number


def _worker_pids(marker: str) -> list[int]:
    """Worker processes whose command line carries ``marker`` (the launcher's worker ids)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"worker" in cmdline and any(marker.encode() in part for part in cmdline):
            pids.append(int(entry.name))
    return pids


def test_launcher_requeues_the_trial_of_a_killed_worker(tmp_path: Path) -> None:
    spec = yaml.safe_load(SMOKE.read_text())
    study_path = study_variant(
        tmp_path, "launcher-kill", budget={"trials": 3, "steps": 600, "eval_every": 100},
        pruner={"kind": "none"},
        search={"shared": spec["search"]["shared"],
                "generators": {"classical": spec["search"]["generators"]["classical"]}})
    launcher = subprocess.Popen(hpo_cmd("run", str(study_path), "--workers", "2"), cwd=tmp_path,
                                env=hpo_env(), text=True, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT)
    journal = tmp_path / "runs" / "hpo.journal"
    victim_id = None
    deadline = time.monotonic() + 180
    while victim_id is None and time.monotonic() < deadline:
        time.sleep(0.3)
        if not journal.exists():
            continue
        try:
            trials = optuna.load_study(study_name="launcher-kill",
                                       storage=dashboard_get_storage(str(journal))).get_trials()
        except KeyError:
            continue
        running = [t for t in trials if t.state == TrialState.RUNNING and t.intermediate_values]
        if running:
            victim_id = running[0].user_attrs["worker"]
    assert victim_id is not None, "no trial got under way"
    pids = _worker_pids(victim_id)
    assert len(pids) == 1
    os.kill(pids[0], signal.SIGKILL)

    try:
        out, _ = launcher.communicate(timeout=400)
    except subprocess.TimeoutExpired:
        launcher.kill()
        pytest.fail("hpo run did not finish after a worker was killed")
    assert launcher.returncode == 0, out
    assert "re-queued" in out

    trials = optuna.load_study(study_name="launcher-kill",
                               storage=dashboard_get_storage(str(journal))).get_trials()
    failed = [t for t in trials if t.state == TrialState.FAIL]
    assert len(failed) == 1 and failed[0].user_attrs["worker"] == victim_id
    retry = [t for t in trials if t.system_attrs.get("failed_trial") == failed[0].number]
    assert len(retry) == 1 and retry[0].state == TrialState.COMPLETE
    assert retry[0].params == failed[0].params
    assert sum(t.state == TrialState.COMPLETE for t in trials) == 3
    assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]


def test_diverged_trials_are_recorded_and_the_worker_goes_on(tmp_path: Path) -> None:
    """A learning rate of 1e100 makes every trial diverge: each is a visible FAIL with the step
    and quantity that blew up, and the one worker still finishes the budget and exits 0."""
    spec = yaml.safe_load(SMOKE.read_text())
    study_path = study_variant(
        tmp_path, "diverge", budget={"trials": 3, "steps": 30, "eval_every": 10},
        fixed={**spec["fixed"], "lr_critic": 1e100},
        search={"shared": {"lr_generator": spec["search"]["shared"]["lr_generator"]},
                "generators": spec["search"]["generators"]})
    result = subprocess.run(hpo_cmd("worker", str(study_path)), cwd=tmp_path, env=hpo_env(),
                            text=True, capture_output=True, timeout=300)
    assert result.returncode == 0, result.stderr
    trials = optuna.load_study(study_name="diverge", storage=dashboard_get_storage(
        str(tmp_path / "runs" / "hpo.journal"))).get_trials()
    assert len(trials) == 3
    for t in trials:
        assert t.state == TrialState.FAIL
        assert t.user_attrs["ended"].startswith("diverged: training diverged at generator step")
        assert "not finite" in t.user_attrs["ended"]
