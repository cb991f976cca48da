"""Faults whose handling must be the same on both storages: each test runs on the embedded
journal file and on PostgreSQL (the ``storage_url`` fixture), with real processes and signals.
"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest
from optuna.trial import TrialState

from hpo.trials import Outcome, outcome_of
from tests._faults import (
    STARTUP_S,
    Processes,
    assert_clean_log,
    assert_exact_study,
    fault_study,
    freeze_worker_cmd,
    running_with_report,
    trials_of,
    wait_all,
    wait_for,
)
from tests.conftest import hpo_env

pytestmark = pytest.mark.e2e


def test_sigterm_while_training_stops_at_the_next_step_and_requeues_once(
        storage_url: str, tmp_path: Path, procs: Processes) -> None:
    """Training polls the stop flag at every step: the trial gets at most one more report
    (every 10 steps) after SIGTERM, never its remaining hundreds of steps; the worker exits 0
    with one clean log line per trial, the trial is FAIL (stopped) with one WAITING retry of the
    same parameters, and the next worker finishes the exact budget. (Wall time from SIGTERM to
    exit is bounded here only loosely, 30 s, because a shared 2-core machine under heavy load
    stretches it; on an idle machine it is well under the 5 s compose allows.)"""
    study = fault_study(tmp_path, "sigterm", trials=2, steps=600)
    worker = procs.start("worker", str(study), "--worker-id", "stopped", cwd=tmp_path,
                         log=tmp_path / "w.log", HPO_STORAGE=storage_url)
    wait_for("a trial under way", lambda: running_with_report(storage_url, "sigterm"),
             timeout=STARTUP_S)
    # The reports at the signal, read with the worker frozen: a count read before it went stale
    # on a loaded machine (2 then, 4 at the end: two reports came before the signal did).
    os.kill(worker.pid, signal.SIGSTOP)
    (trial,) = running_with_report(storage_url, "sigterm")
    reports_then = len(trial.intermediate_values)
    os.kill(worker.pid, signal.SIGTERM)
    os.kill(worker.pid, signal.SIGCONT)
    assert worker.wait(timeout=30) == 0, (tmp_path / "w.log").read_text()
    log = assert_clean_log(tmp_path / "w.log")
    assert log.count("re-queued") == 1, log

    trials = trials_of(storage_url, "sigterm")
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.WAITING]
    stopped, retry = trials
    assert retry.params == stopped.params
    assert outcome_of(stopped) is Outcome.STOPPED and "SIGTERM" in stopped.user_attrs["ended"]
    assert len(stopped.intermediate_values) <= reports_then + 1

    again = procs.start("worker", str(study), "--worker-id", "next", cwd=tmp_path,
                        log=tmp_path / "next.log", HPO_STORAGE=storage_url)
    assert wait_all([again]) == [0], (tmp_path / "next.log").read_text()
    failed = assert_exact_study(trials_of(storage_url, "sigterm"), 2)
    assert [t.number for t in failed] == [stopped.number]


def test_a_worker_killed_between_trial_creation_and_its_heartbeat_costs_only_that_trial(
        storage_url: str, tmp_path: Path, procs: Processes) -> None:
    """A worker SIGKILLed inside Optuna's ask, after trial 1 is created and before its heartbeat
    starts: nobody marked trial 1 as taken and it has no heartbeat (Optuna never judges it
    stale), so the next worker, under the budget lock, fails and re-queues it once the grace
    period has passed: exactly the budget, nothing RUNNING."""
    study = fault_study(tmp_path, "killed-in-ask", trials=3)
    killed = subprocess.run(
        freeze_worker_cmd(study, "w0"), cwd=tmp_path, capture_output=True, text=True, timeout=300,
        env=hpo_env(HPO_STORAGE=storage_url, FREEZE_AT="kill:2"))
    assert killed.returncode == -signal.SIGKILL and "killed" in killed.stdout, killed.stderr
    assert [t.state for t in trials_of(storage_url, "killed-in-ask")] == [
        TrialState.COMPLETE, TrialState.RUNNING]
    runner = procs.start("worker", str(study), "--worker-id", "w1", cwd=tmp_path,
                         log=tmp_path / "w1.log", HPO_STORAGE=storage_url)
    assert wait_all([runner]) == [0]
    trials = trials_of(storage_url, "killed-in-ask")
    retried = assert_exact_study(trials, 3)
    assert [t.number for t in retried] == [1], [(t.number, t.state.name) for t in trials]
    assert "trial 1 of killed-in-ask was created but never begun" in assert_clean_log(
        runner.log_path)
