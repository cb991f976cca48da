"""A worker: pull trials from a study until its total budget of finished trials is met.

The budget is exact across any number of workers: a worker claims a slot under a lock shared by
all processes on the storage, and the claim becomes a RUNNING trial before the lock is released.
Finished means COMPLETE, PRUNED, or FAIL that is not being retried; a trial whose worker died (stale
heartbeat on Postgres, or reported by the local launcher) is failed and re-queued, and its retry
takes its slot. SIGTERM interrupts training at once, fails the trial, re-queues it, and exits 0.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import time
import zlib
from typing import Any

import optuna
import torch

from hpo.budget import budget_counts, retry_trial
from hpo.objective import Objective, WorkerStopped
from hpo.quiet import quiet_experimental
from hpo.storage import ProcessLock, artifact_store, ensure_study
from hpo.strategy import make_pruner, make_sampler
from hpo.study_file import StudySpec

POLL_S = 1.0


def default_worker_id() -> str:
    return os.environ.get("HPO_WORKER_ID") or f"{socket.gethostname()}:{os.getpid()}"


def run_worker(spec: StudySpec, url: str, *, artifacts: str | None = None, threads: int = 1,
               worker_seed: int | None = None, worker_id: str | None = None,
               log: Any = sys.stderr) -> int:
    """Run trials until the study's budget is met; return how many this worker ran."""
    torch.set_num_threads(threads)
    worker_id = worker_id or default_worker_id()
    if worker_seed is None:  # distinct per process, stable for a given worker id
        worker_seed = zlib.crc32(worker_id.encode()) % 1_000_000
    study = ensure_study(url, spec, sampler=make_sampler(spec, worker_seed),
                         pruner=make_pruner(spec))
    lock = ProcessLock(url, f"hpo:budget:{spec.name}")
    objective = Objective(spec, artifact_store(artifacts), worker_id, on_start=lock.release)

    def on_signal(signum: int, frame: Any) -> None:
        # Interrupt at once only inside training; elsewhere (storage writes) stop at the next
        # safe point: the objective's report, or the top of the loop.
        objective.stop_requested = True
        if objective.training:
            raise WorkerStopped(f"worker {worker_id} received {signal.Signals(signum).name}")

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    ran = 0
    try:
        while not objective.stop_requested:
            lock.acquire()
            if objective.stop_requested:
                break
            with quiet_experimental():
                optuna.storages.fail_stale_trials(study)
            counts = budget_counts(study.get_trials(deepcopy=False))
            if counts.finished >= spec.budget.trials:
                break
            if counts.waiting == 0 and (counts.finished + counts.running
                                        >= spec.budget.trials):
                lock.release()  # others hold the remaining slots; wait for them
                time.sleep(POLL_S)
                continue
            try:
                # A failing trial is recorded (FAIL, user attr "ended"); the worker goes on.
                study.optimize(objective, n_trials=1, catch=(Exception,))
                ran += 1
                _log_last(study, objective.current_trial, worker_id, log)
            except optuna.exceptions.UpdateFinishedTrialError as err:
                # Our heartbeat was judged stale (a starved CPU) and the trial re-queued; its
                # retry will run, so this result is dropped rather than the worker.
                print(f"[{worker_id}] {err}; the trial was re-queued meanwhile", file=log,
                      flush=True)
            except WorkerStopped:
                trial = objective.current_trial
                if trial is not None:
                    retry_trial(study, study._storage.get_trial(trial._trial_id),
                                spec.heartbeat.max_retry)
                    print(f"[{worker_id}] stopped: trial {trial.number} failed and re-queued",
                          file=log, flush=True)
            finally:
                lock.release()
    finally:
        lock.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    print(f"[{worker_id}] done: ran {ran} trial(s)", file=log, flush=True)
    return ran


def _log_last(study: optuna.Study, trial: optuna.Trial | None, worker_id: str, log: Any) -> None:
    if trial is None:
        return
    t = study._storage.get_trial(trial._trial_id)
    value = f" KL {t.value:.4f}" if t.value is not None else ""
    print(f"[{worker_id}] trial {t.number} {t.user_attrs.get('generator_kind', '?')}: "
          f"{t.user_attrs.get('ended', t.state.name.lower())}{value}", file=log, flush=True)
