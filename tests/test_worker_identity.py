"""Workers that look alike (one host name, PID 1 each) still have their own id and sampler seed.

Issue 19: compose replicas on the host network share the host name, each is often PID 1, and a
container restarted by ``restart: on-failure`` keeps both. With ids ``host:pid`` and seeds derived
from them, 4 such workers on a 16-trial study ran 5 distinct parameter sets. Here real ``hpo
worker`` processes run in PID and UTS namespaces of their own (``unshare``: each is PID 1 on a host
named alike) on one embedded journal study, and every trial that is not a deliberate retry must
have parameters of its own.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import optuna
import pytest
from _faults import retried_numbers, retries_and_proposals
from conftest import LIGHT_METRIC, SMOKE, hpo_cmd, hpo_env, journal_trials, study_variant

from hpo.worker_identity import WORKER_STARTS_ATTR, claim_worker_number, new_worker_id

LOOKALIKES = 4
TRIALS = 12
HOSTNAME = "lookalike"


@pytest.mark.unit
def test_default_worker_ids_differ_at_every_start(monkeypatch):
    monkeypatch.delenv("HPO_WORKER_ID", raising=False)
    ids = {new_worker_id() for _ in range(50)}
    assert len(ids) == 50
    host = re.escape(socket.gethostname())
    assert all(re.fullmatch(rf"{host}:{os.getpid()}:[0-9a-f]{{8}}", i) for i in ids), ids
    monkeypatch.setenv("HPO_WORKER_ID", "chosen-by-the-user")
    assert new_worker_id() == "chosen-by-the-user"


def _claim(journal: str) -> int:
    from hpo.space import load_spec

    return claim_worker_number(journal, load_spec(str(SMOKE)))


@pytest.mark.e2e
def test_worker_numbers_are_claimed_once_each_by_concurrent_processes(tmp_path):
    """Six processes claim together on one journal: the numbers are 0..5, none twice, and the
    study counts six starts; the next claim is 6."""
    journal = str(tmp_path / "hpo.journal")
    with ProcessPoolExecutor(6, mp_context=get_context("spawn")) as pool:
        numbers = sorted(pool.map(_claim, [journal] * 6))
    assert numbers == list(range(6))
    assert _claim(journal) == 6
    study = optuna.load_study(study_name="smoke",
                              storage=optuna.storages.JournalStorage(
                                  optuna.storages.journal.JournalFileBackend(journal)))
    assert study.user_attrs[WORKER_STARTS_ATTR] == 7


def _lookalike_worker(study: Path, cwd: Path, log: Path) -> subprocess.Popen:
    """``hpo worker`` as PID 1 of a PID namespace of its own, on a host named ``lookalike``."""
    argv = " ".join(hpo_cmd("worker", str(study)))
    return subprocess.Popen(
        ["unshare", "--pid", "--fork", "--uts", "--mount-proc",
         "sh", "-c", f"hostname {HOSTNAME} && exec {argv}"],
        cwd=cwd, env=hpo_env(), stdout=open(log, "w"), stderr=subprocess.STDOUT)  # noqa: SIM115


@pytest.mark.e2e
@pytest.mark.timeout(600)
@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("unshare"),
                    reason="PID and UTS namespaces need root and util-linux's unshare")
def test_lookalike_workers_run_distinct_parameter_sets(tmp_path):
    study = study_variant(tmp_path, "lookalike",
                          budget={"trials": TRIALS, "steps": 10, "eval_every": 10},
                          metric=LIGHT_METRIC)
    logs = [tmp_path / f"w{i}.log" for i in range(LOOKALIKES)]
    workers = [_lookalike_worker(study, tmp_path, log) for log in logs]
    try:
        for w, log in zip(workers, logs, strict=True):
            assert w.wait(timeout=540) == 0, log.read_text()[-3000:]
    finally:
        for w in workers:
            if w.poll() is None:
                w.kill()
                w.wait()
    trials = journal_trials(tmp_path, "lookalike")
    # Each really was PID 1 on the look-alike host.
    recorded = {t.user_attrs["worker_process"] for t in trials}  # host:pid-namespace:pid
    assert {(r.split(":")[0], r.split(":")[-1]) for r in recorded} == {(HOSTNAME, "1")}, recorded
    states = [t.state for t in trials]
    finished = [s for s in states if s.is_finished()]
    retried = retried_numbers(trials)
    failed_and_retried = [t for t in trials if t.number in retried]
    assert len(finished) - len(failed_and_retried) == TRIALS, states
    assert optuna.trial.TrialState.RUNNING not in states
    assert optuna.trial.TrialState.WAITING not in states

    _, proposals = retries_and_proposals(trials)
    distinct = {tuple(sorted(t.params.items())) for t in proposals}
    print(f"look-alike workers: {len(distinct)} distinct parameter sets in {len(proposals)} "
          f"trials (not counting retries)", file=sys.stderr)
    assert len(distinct) == len(proposals), \
        f"{len(proposals)} trials, {len(distinct)} distinct parameter sets"

    # Each told itself apart by its token; every trial names one of them.
    text = "".join(log.read_text() for log in logs)
    ids = set(re.findall(rf"^\[({HOSTNAME}:1:[0-9a-f]{{8}})\]", text, re.MULTILINE))
    assert len(ids) == LOOKALIKES, text[-3000:]
    assert {t.user_attrs["worker"] for t in trials} <= ids
