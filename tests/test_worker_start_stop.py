"""A worker stopped while it still starts exits 0 with one line (issue 19: a container that
compose restarted was stopped by `docker-compose stop` while it imported torch, and exited 143)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time

import pytest
from conftest import SMOKE, hpo_cmd, hpo_env, study_variant

SIGTERM_BIT = 1 << (signal.SIGTERM - 1)


def _catches_sigterm(pid: int) -> bool:
    for line in open(f"/proc/{pid}/status").read().splitlines():
        if line.startswith("SigCgt:"):
            return bool(int(line.split()[1], 16) & SIGTERM_BIT)
    return False


@pytest.mark.e2e
def test_sigterm_during_start_up_is_a_clean_stop(tmp_path):
    worker = subprocess.Popen(hpo_cmd("worker", str(SMOKE)), cwd=tmp_path, env=hpo_env(),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        # The first moment the process handles SIGTERM at all: its start-up, before torch.
        deadline = time.monotonic() + 120
        while not _catches_sigterm(worker.pid):
            assert worker.poll() is None and time.monotonic() < deadline
            time.sleep(0.005)
        # Caught before the heavy imports, the window a stop used to kill the process in.
        assert "libtorch" not in open(f"/proc/{worker.pid}/maps").read()
        os.kill(worker.pid, signal.SIGTERM)
        out, err = worker.communicate(timeout=120)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    assert worker.returncode == 0, err
    assert "Traceback" not in err and len(err.strip().splitlines()) <= 3, err
    assert "ran 0 trial(s)" in err, err


@pytest.mark.e2e
def test_sigterm_while_a_finished_worker_exits_is_a_clean_stop(tmp_path):
    """`docker compose stop` racing a worker's own end (the budget met): a SIGTERM at any moment
    after its last line must leave status 0. Python resets its handlers to the default while it
    finalizes, so without the worker ignoring stops by then, this ended 143 (CI, 2026-12-03)."""
    one_trial = study_variant(tmp_path, "one_trial", budget={"trials": 1, "steps": 20,
                                                              "eval_every": 10})
    worker = subprocess.Popen(hpo_cmd("worker", str(one_trial), "--storage",
                                      str(tmp_path / "hpo.journal")), cwd=tmp_path,
                              env=hpo_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              text=True)
    try:
        lines = []
        for line in worker.stderr:
            lines.append(line)
            if "done: ran 1 trial(s)" in line:
                break
        assert lines and "done:" in lines[-1], "".join(lines)
        sent = 0
        while worker.poll() is None:  # a stop every millisecond until the process is gone
            with contextlib.suppress(ProcessLookupError):
                os.kill(worker.pid, signal.SIGTERM)
                sent += 1
            time.sleep(0.001)
        rest = worker.stderr.read()
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    assert sent > 0
    assert worker.returncode == 0, (worker.returncode, sent, "".join(lines) + rest)
    assert "Traceback" not in rest, rest


@pytest.mark.e2e
def test_a_reader_that_stops_reading_ends_status_quietly(tmp_path) -> None:
    """`hpo status | head`: the reader closes the pipe, and status ended "hpo status: Broken
    pipe", exit 1. It ends as a command ended by SIGPIPE does: 141, nothing on stderr."""
    import optuna
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    journal = str(tmp_path / "many.journal")
    storage = JournalStorage(JournalFileBackend(journal))
    for i in range(3000):  # a listing longer than a pipe's buffer (64 KiB)
        optuna.create_study(study_name=f"s{i}", storage=storage)
    status = subprocess.Popen(hpo_cmd("status", "--storage", journal), cwd=tmp_path,
                              env=hpo_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert status.stdout.readline().startswith(b"3000 studies")
    status.stdout.close()
    _, err = status.communicate(timeout=120)
    assert (status.returncode, err) == (141, b"")
