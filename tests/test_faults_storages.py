"""Faults whose handling must be the same on both storages: each test runs on the embedded
journal file and on PostgreSQL (the ``storage_url`` fixture), with real processes and signals.
"""

from __future__ import annotations

import os
import signal
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
    running_with_report,
    trials_of,
    wait_all,
    wait_for,
)

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
    (trial,) = wait_for("a trial under way", lambda: running_with_report(storage_url, "sigterm"),
                        timeout=STARTUP_S)
    os.kill(worker.pid, signal.SIGTERM)
    reports_then = len(trial.intermediate_values)
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
