"""The one-machine path: `hpo run` on the embedded journal file, with no server at all."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from optuna.trial import TrialState

from tests.conftest import (
    LIGHT_METRIC,
    SMOKE,
    hpo_cmd,
    hpo_env,
    journal_study,
    journal_trials,
    run_hpo,
    slow_study,
    study_variant,
)

pytestmark = pytest.mark.e2e

BUDGET = yaml.safe_load(SMOKE.read_text())["budget"]["trials"]


def test_hpo_run_smoke_completes_and_opens_in_optuna_dashboard(tmp_path: Path) -> None:
    smoke = study_variant(tmp_path, "smoke", metric=LIGHT_METRIC)  # scored cheaply
    result = run_hpo("run", str(smoke), "--workers", "2", cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{BUDGET}/{BUDGET} finished" in result.stdout
    objective = "D_s KL(Q||P) [nats], s = 0.5"  # gaussgan's default s
    assert f"objective {objective}" in result.stdout and "D_s nats" in result.stdout
    assert "hpo dashboard" in result.stdout

    study = journal_study(tmp_path, "smoke")  # through optuna-dashboard's own loader
    assert study.metric_names == [objective]  # what the dashboard's plots are labelled
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


def _start_run(tmp_path: Path, study_path: Path, workers: int) -> subprocess.Popen:
    return subprocess.Popen(hpo_cmd("run", str(study_path), "--workers", str(workers)),
                            cwd=tmp_path, env=hpo_env(), text=True, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)


def _running_worker(tmp_path: Path, name: str, timeout: float = 180) -> str:
    """The worker id of a trial that has reported at least once."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        time.sleep(0.3)
        try:
            trials = journal_trials(tmp_path, name)
        except (KeyError, ValueError):  # no journal file yet, or no study in it yet
            continue
        running = [t for t in trials if t.state == TrialState.RUNNING and t.intermediate_values]
        if running:
            return running[0].user_attrs["worker"]
    pytest.fail("no trial got under way")


def test_launcher_requeues_the_trial_of_a_killed_worker(tmp_path: Path) -> None:
    study_path = slow_study(tmp_path, "launcher-kill", trials=3)
    launcher = _start_run(tmp_path, study_path, workers=2)
    victim_id = _running_worker(tmp_path, "launcher-kill")
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

    trials = journal_trials(tmp_path, "launcher-kill")
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
    result = run_hpo("worker", str(study_path), cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stderr
    trials = journal_trials(tmp_path, "diverge")
    assert len(trials) == 3
    for t in trials:
        assert t.state == TrialState.FAIL
        assert t.user_attrs["ended"].startswith("diverged: training diverged at generator step")
        assert "not finite" in t.user_attrs["ended"]


def test_ctrl_c_on_hpo_run_stops_workers_and_requeues(tmp_path: Path) -> None:
    study_path = slow_study(tmp_path, "ctrl-c", trials=2)
    launcher = _start_run(tmp_path, study_path, workers=1)
    _running_worker(tmp_path, "ctrl-c")
    launcher.send_signal(signal.SIGINT)
    out, _ = launcher.communicate(timeout=90)
    assert launcher.returncode == 130, out
    trials = journal_trials(tmp_path, "ctrl-c")
    assert not [t for t in trials if t.state == TrialState.RUNNING]
    stopped = [t for t in trials if t.state == TrialState.FAIL]
    assert len(stopped) == 1 and stopped[0].user_attrs["ended"].startswith("interrupted")
    assert [t.state for t in trials if t.system_attrs.get("failed_trial") == stopped[0].number] \
        == [TrialState.WAITING]


def test_next_run_recovers_trials_of_a_run_killed_outright(tmp_path: Path) -> None:
    """Launcher and worker both SIGKILLed: the trial is stuck RUNNING until the next `hpo run`,
    which sees its process is gone, re-queues it and completes the budget."""
    study_path = slow_study(tmp_path, "killed-run", trials=2)
    launcher = _start_run(tmp_path, study_path, workers=1)
    victim_id = _running_worker(tmp_path, "killed-run")
    # the worker first: a worker whose launcher is gone stops and re-queues by itself
    for pid in _worker_pids(victim_id):
        os.kill(pid, signal.SIGKILL)
    launcher.kill()
    launcher.wait()
    deadline = time.monotonic() + 30
    while _worker_pids(victim_id) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert [t.state for t in journal_trials(tmp_path, "killed-run")] == [TrialState.RUNNING]

    again = run_hpo("run", str(study_path), "--workers", "1", cwd=tmp_path, timeout=400)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "left RUNNING by a dead process; re-queued" in again.stdout
    trials = journal_trials(tmp_path, "killed-run")
    assert sum(t.state == TrialState.COMPLETE for t in trials) == 2
    assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]


def _imported(result: subprocess.CompletedProcess) -> set[str]:
    """The modules a process run with PYTHONPROFILEIMPORTTIME=1 imported (from its stderr)."""
    return {line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines()
            if line.startswith("import time:")}


def test_commands_that_train_nothing_never_import_torch(tmp_path: Path) -> None:
    """init, status and export load no torch (seconds of CPU a process here; the suite and
    every `docker compose up` start many): the objective's name comes from hpo.metric."""
    journal = str(tmp_path / "hpo.journal")
    for argv in (["init", str(SMOKE), "--storage", journal], ["status", "--storage", journal],
                 ["export", "smoke", "--storage", journal]):
        result = run_hpo(*argv, cwd=tmp_path, PYTHONPROFILEIMPORTTIME="1")
        imported = _imported(result)
        assert "hpo" in imported, (argv, result.stderr[-500:])
        assert "torch" not in imported, (argv[0], "imported torch")


def test_a_worker_that_finds_the_budget_taken_never_imports_torch(tmp_path: Path) -> None:
    """torch is imported at a worker's first trial (hpo.worker._torch_threads): replicas or
    restarted containers that find nothing left to run stay small."""
    journal = str(tmp_path / "hpo.journal")
    study = study_variant(tmp_path, "smoke", metric=LIGHT_METRIC,
                          budget={"trials": 1, "steps": 10, "eval_every": 10})
    first = run_hpo("worker", str(study), "--storage", journal, cwd=tmp_path,
                    PYTHONPROFILEIMPORTTIME="1")
    late = run_hpo("worker", str(study), "--storage", journal, cwd=tmp_path,
                   PYTHONPROFILEIMPORTTIME="1")
    imported = [_imported(result) for result in (first, late)]
    assert first.returncode == 0 and "done: ran 1 trial(s)" in first.stderr, first.stderr[-800:]
    assert late.returncode == 0 and "done: ran 0 trial(s)" in late.stderr, late.stderr[-800:]
    assert "torch" in imported[0]
    assert "hpo.worker" in imported[1] and "torch" not in imported[1]


def test_classical_training_never_imports_pennylane(tmp_path: Path) -> None:
    """A worker that trains classical or control generators does not pay for PennyLane (about
    1.4 CPU-s a process here), nor one that builds a quantum generator on the fast backend (the
    default: PennyLane defines its circuits but never runs them); the pennylane backend does
    (models.generator imports each kind's class on first use). Training imports no compiler
    (``torch._dynamo``, which torch.optim's optimizers import: 1 CPU-s, 66 MB; models/adam.py)."""
    import sys

    code = ("import sys, models\n"
            "from metrics import GaussianMixture\n"
            "for kind in ('classical', 'control'):\n"
            "    models.train({'steps': 2, 'eval_every': 2, 'seed': 0, 'generator': {'kind': "
            "kind}}, GaussianMixture.preset('gaussgan').sample, lambda *a, **k: None)\n"
            "print('pennylane' in sys.modules, 'torch._dynamo' in sys.modules)\n"
            "models.build_generator({'kind': 'quantum', 'n_qubits': 2})\n"
            "print('pennylane' in sys.modules)\n"
            "models.build_generator({'kind': 'quantum', 'n_qubits': 2, 'backend': 'pennylane'})\n"
            "print('pennylane' in sys.modules)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=300, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["False", "False", "False", "True"], result.stdout
