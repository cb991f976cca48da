"""A worker stopped while it still starts exits 0 with one line (issue 19: a container that
compose restarted was stopped by `docker-compose stop` while it imported torch, and exited 143)."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest
from conftest import SMOKE, hpo_cmd, hpo_env

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
