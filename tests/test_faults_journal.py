"""Faults of the embedded journal file, with real files, processes and signals: a stale lock,
torn and corrupt lines, SIGTERM, two launchers on one study, a launcher that dies."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import optuna
import pytest
from optuna.storages.journal import JournalFileBackend, JournalStorage
from optuna.trial import FrozenTrial, TrialState

from hpo.journal import LOCK_GRACE_S
from hpo.worker_identity import WORKER_STARTS_ATTR
from tests._faults import (
    STARTUP_S,
    Processes,
    assert_clean_log,
    assert_exact_study,
    fault_study,
    running_with_report,
    trials_of,
    wait_for,
)
from tests.conftest import hpo_cmd, hpo_env, journal_study, run_hpo

pytestmark = pytest.mark.e2e


def _journal(cwd: Path) -> JournalStorage:
    return JournalStorage(JournalFileBackend(str(cwd / "runs" / "hpo.journal")))


def test_a_stale_journal_lock_is_broken_within_its_grace_period(tmp_path: Path) -> None:
    """What a process killed while writing leaves: a lock link whose (relative) target does not
    resolve from the lock's folder. Optuna's own check never fires on it; ours breaks it."""
    study = fault_study(tmp_path, "stale-lock", trials=2)
    assert run_hpo("init", str(study), cwd=tmp_path).returncode == 0
    os.symlink("runs/hpo.journal", tmp_path / "runs" / "hpo.journal.lock")
    other = fault_study(tmp_path, "stale-lock-2", trials=2)

    started = time.monotonic()
    result = run_hpo("init", str(other), cwd=tmp_path, timeout=LOCK_GRACE_S + 60)
    took = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    assert took < LOCK_GRACE_S + 20, took
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "broke a stale journal lock" in lines[0], result.stderr
    assert not (tmp_path / "runs" / "hpo.journal.lock").is_symlink()
    assert {s.study_name for s in _journal(tmp_path).get_all_studies()} == {
        "stale-lock", "stale-lock-2"}


def test_a_torn_last_line_is_repaired_and_never_appended_to(tmp_path: Path) -> None:
    study = fault_study(tmp_path, "torn", trials=3)
    first = run_hpo("run", str(study), "--workers", "1", cwd=tmp_path)
    assert first.returncode == 0, first.stdout + first.stderr
    journal = tmp_path / "runs" / "hpo.journal"
    lines = journal.read_bytes().splitlines(keepends=True)
    cut = len(lines[-1]) // 2
    with open(journal, "r+b") as f:  # a crash half-way through writing the last line
        f.truncate(journal.stat().st_size - cut)

    torn = journal.read_bytes()
    status = run_hpo("status", "torn", cwd=tmp_path)  # reads; writes nothing
    assert status.returncode == 0, status.stderr
    report = status.stderr.strip().splitlines()
    assert len(report) == 1, status.stderr
    assert str(journal) in report[0] and f"line {len(lines)} is torn" in report[0]
    assert "left the file as it is" in report[0] and "hpo run" in report[0]
    assert journal.read_bytes() == torn
    assert not list(journal.parent.glob("hpo.journal.bad-*"))

    # the torn line may have been a trial's last word: the next run moves it aside, re-queues
    # what it left RUNNING and finishes the budget exactly; every complete trial is kept
    before = [t for t in trials_of(_journal(tmp_path), "torn") if t.state == TrialState.COMPLETE]
    again = run_hpo("run", str(study), "--workers", "1", cwd=tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr
    assert f"line {len(lines)} was torn" in again.stderr, again.stderr
    aside = list(journal.parent.glob("hpo.journal.bad-*"))
    assert len(aside) == 1 and aside[0].read_bytes() == lines[-1][:-cut] + b"\n"
    assert journal.read_bytes().startswith(torn[:-len(lines[-1][:-cut])])
    trials = trials_of(_journal(tmp_path), "torn")
    assert_exact_study(trials, 3)
    kept = {t.number: t.value for t in trials if t.state == TrialState.COMPLETE}
    assert all(kept[t.number] == t.value for t in before)


def test_a_corrupt_line_is_read_around_and_the_study_stays_readable(tmp_path: Path) -> None:
    study = fault_study(tmp_path, "corrupt", trials=2)
    assert run_hpo("run", str(study), "--workers", "1", cwd=tmp_path).returncode == 0
    journal = tmp_path / "runs" / "hpo.journal"
    lines = journal.read_bytes().splitlines(keepends=True)
    # the last user attribute written (a whole line, complete but garbled)
    target = max(i for i, line in enumerate(lines) if b'"user_attr"' in line)
    lines[target] = b'{"op_code": 8, "worker_id": ' + b"\x00garbage\n"
    journal.write_bytes(b"".join(lines))

    damaged = journal.read_bytes()
    status = run_hpo("status", "corrupt", cwd=tmp_path)
    assert status.returncode == 0, status.stderr
    report = status.stderr.strip().splitlines()
    assert len(report) == 1 and f"line {target + 1} is not valid JSON" in report[0], report
    assert "Traceback" not in status.stderr
    assert "2 finished (2 complete" in status.stdout, status.stdout
    assert journal.read_bytes() == damaged  # read without it; a writer moves it aside


def _worker_under_way(procs: Processes, study: Path, tmp_path: Path, name: str, log: Path
                      ) -> tuple[subprocess.Popen, FrozenTrial]:
    """A worker started on ``study`` and its trial, once that trial has reported."""
    worker = procs.start("worker", str(study), cwd=tmp_path, log=log)
    (trial,) = wait_for("a trial under way",
                        lambda: running_with_report(_journal(tmp_path), name), timeout=STARTUP_S)
    return worker, trial


def _stopped_and_requeued_once(worker: subprocess.Popen, tmp_path: Path, name: str,
                               exit_s: float) -> FrozenTrial:
    """The worker exits 0 within ``exit_s`` with a clean log that re-queued once; its trial is
    FAIL ('interrupted') with one WAITING retry of the same parameters. Returns the FAIL one."""
    assert worker.wait(timeout=exit_s) == 0
    log = assert_clean_log(tmp_path / "w.log")
    assert log.count("re-queued") == 1, log
    trials = trials_of(_journal(tmp_path), name)
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.WAITING]
    assert trials[1].params == trials[0].params
    assert trials[0].user_attrs["ended"].startswith("interrupted"), trials[0].user_attrs
    return trials[0]


def test_sigterm_during_final_scoring_abandons_the_score_and_requeues_once(
        tmp_path: Path, procs: Processes) -> None:
    """The final score is polled for the stop flag between its stages: a worker told to stop
    after its last training step leaves the trial unscored and re-queued. This study's 200,000
    evaluation points make each stage 1 to 3 s on an idle machine (0.2 to 0.3 s at the default
    20,000), so the whole score outlasts the test's reaction; the exit bound is loose, 120 s,
    because a stage stretches tenfold beside the 16-worker compose test."""
    scoring = {"n_target": 200_000, "eval_samples": 2000, "replicates": 2}
    study = fault_study(tmp_path, "scoring", trials=2, steps=30, metric=scoring)
    worker = procs.start("worker", str(study), cwd=tmp_path, log=tmp_path / "w.log")
    wait_for("a trial past its last training step", lambda: [
        t for t in running_with_report(_journal(tmp_path), "scoring")
        if 30 in t.intermediate_values], timeout=STARTUP_S, every=0.05)
    os.kill(worker.pid, signal.SIGTERM)
    stopped = _stopped_and_requeued_once(worker, tmp_path, "scoring", exit_s=120)
    assert "kl_ci" not in stopped.user_attrs  # the score was abandoned, not recorded


def test_two_launchers_on_one_study_share_no_ids_logs_or_seeds(
        tmp_path: Path, procs: Processes) -> None:
    study = fault_study(tmp_path, "two-launchers", trials=4)
    runs = [procs.start("run", str(study), "--workers", "1", cwd=tmp_path,
                        log=tmp_path / f"launcher{i}.log") for i in range(2)]
    for run in runs:
        assert run.wait(timeout=240) == 0, run.log_path.read_text()
    trials = trials_of(_journal(tmp_path), "two-launchers")
    assert_exact_study(trials, 4)
    logs = sorted((tmp_path / "runs" / "logs").glob("*.log"))
    assert len(logs) == 2
    # Each worker start claimed its own number, hence sampler seed (hpo.worker_identity).
    assert journal_study(tmp_path, "two-launchers").user_attrs[WORKER_STARTS_ATTR] == 2
    ids = {t.user_attrs["worker"] for t in trials}
    assert ids <= {p.stem for p in logs}


def test_a_worker_whose_launcher_died_stops_and_requeues(tmp_path: Path,
                                                         procs: Processes) -> None:
    study = fault_study(tmp_path, "orphan", trials=2, steps=3000)
    launcher = procs.start("run", str(study), "--workers", "1", cwd=tmp_path,
                           log=tmp_path / "launcher.log")
    wait_for("a trial under way", lambda: running_with_report(_journal(tmp_path), "orphan"),
             timeout=STARTUP_S)
    launcher.kill()  # the launcher alone: its worker lives in a session of its own
    launcher.wait()
    trials = wait_for("the orphaned worker to re-queue its trial", lambda: [
        t for t in trials_of(_journal(tmp_path), "orphan")
        if t.state == TrialState.WAITING], timeout=10)
    assert len(trials) == 1
    log = next((tmp_path / "runs" / "logs").glob("*.log"))
    wait_for("the worker's last line", lambda: "its launcher" in log.read_text(), timeout=10)
    assert_clean_log(log)


def test_hpo_run_interrupted_twice_leaves_nothing_running(tmp_path: Path) -> None:
    """Two interrupted runs then a full one: each re-queue happens once, the budget is exact."""
    study = fault_study(tmp_path, "twice", trials=2, steps=400)
    for _ in range(2):
        run = subprocess.Popen(run_cmd(study), cwd=tmp_path, env=hpo_env(), text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               start_new_session=True)
        try:
            wait_for("a trial under way",
                     lambda: running_with_report(_journal(tmp_path), "twice"), timeout=STARTUP_S)
            run.send_signal(signal.SIGINT)
            out, _ = run.communicate(timeout=60)
            assert run.returncode == 130, out
        finally:
            if run.poll() is None:
                os.killpg(run.pid, signal.SIGKILL)
    final = run_hpo("run", str(study), "--workers", "1", cwd=tmp_path)
    assert final.returncode == 0, final.stdout + final.stderr
    failed = assert_exact_study(trials_of(_journal(tmp_path), "twice"), 2)
    assert len(failed) == 2


def test_a_failure_whose_retry_was_lost_is_requeued_by_the_next_worker(
        tmp_path: Path, procs: Processes) -> None:
    """A trial's FAIL and its re-queue are two storage calls: a worker killed between them (or
    a heartbeat check cut off there) leaves a FAIL with no retry. Made here for real: SIGKILL of
    a worker mid-trial, then the FAIL that a stale check would write. The next worker re-queues
    it once the heartbeat's grace period has passed, and the budget is still exact."""
    study = fault_study(tmp_path, "lostretry", trials=2, steps=400)
    worker, trial = _worker_under_way(procs, study, tmp_path, "lostretry", tmp_path / "w0.log")
    os.killpg(worker.pid, signal.SIGKILL)
    worker.wait()
    optuna.load_study(study_name="lostretry", storage=_journal(tmp_path)).tell(
        trial.number, state=TrialState.FAIL)
    final = run_hpo("worker", str(study), cwd=tmp_path)
    assert final.returncode == 0, final.stdout + final.stderr
    assert f"trial {trial.number} of lostretry failed without its retry" in final.stderr, \
        final.stderr
    failed = assert_exact_study(trials_of(_journal(tmp_path), "lostretry"), 2)
    assert [t.number for t in failed] == [trial.number]


def run_cmd(study: Path) -> list[str]:
    return hpo_cmd("run", str(study), "--workers", "1")
