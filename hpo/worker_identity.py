"""Who a worker is, and which sampler seed it draws with: unique per process start.

A worker's id was ``host:pid``, and its sampler seed a hash of that id. Compose replicas on the
host network share the host name, each container's worker is often PID 1, and a container that
``restart: on-failure`` brings back keeps both: such workers had one id and one seed, so they
proposed the same parameters (measured: 4 workers, 16 trials, 5 distinct parameter sets).

- :func:`new_worker_id`: ``$HPO_WORKER_ID`` when set, else ``host:pid:token`` where ``token`` is
  8 random hex digits drawn at each process start (``secrets``), so no two starts share an id.
- :func:`claim_worker_number`: the study counts its worker starts (user attribute
  :data:`WORKER_STARTS_ATTR`) under a lock every process on the storage shares; a start gets the
  next number, 0 for the first. The worker's sampler seed is the study's ``sampler.seed`` plus
  that number, so any two workers of a study draw with different seeds, and the seeds a study
  uses are the same from run to run: ``seed``, ``seed + 1``, ... in the order the workers start
  (docs/study-files.md says what that makes reproducible).
"""

from __future__ import annotations

import os
import secrets
import socket
from collections.abc import Callable
from typing import Any

from hpo.storage import ensure_group_studies, ensure_study, process_lock

WORKER_STARTS_ATTR = "worker_starts"
"""Study user attribute: how many workers have started on the study (the next worker's number)."""

TOKEN_HEX = 8
"""Hex digits of the random part of a default worker id (32 bits)."""


def _never() -> bool:
    return False


def new_worker_id() -> str:
    """``$HPO_WORKER_ID`` if set, else ``host:pid:token`` with a fresh random ``token``."""
    return (os.environ.get("HPO_WORKER_ID")
            or f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(TOKEN_HEX // 2)}")


def claim_worker_number(url: str, spec: Any, *, patience_s: float = 0.0,
                        stop: Callable[[], bool] | None = None) -> int:
    """The number of this worker start on ``spec``'s study: 0, 1, 2, ... never given twice.

    Creates the study (or the per-kind group's studies) if it does not exist yet, then, under
    the lock ``hpo:workers:NAME`` on the storage, reads and increments the counter kept on the
    study (for a per-kind file, on the group's first study). ``patience_s`` and ``stop`` are
    :func:`hpo.storage.open_storage`'s.
    """
    if spec.layout == "per-kind":
        study = next(iter(ensure_group_studies(url, spec, patience_s=patience_s,
                                               stop=stop).values()))
    else:
        study = ensure_study(url, spec, patience_s=patience_s, stop=stop)
    lock = process_lock(url, f"hpo:workers:{spec.name}", patience_s=patience_s, stop=stop)
    try:
        if not lock.acquire(stop or _never):
            return 0  # stopping before it began: the worker runs no trial with this number
        try:
            number = int(study.user_attrs.get(WORKER_STARTS_ATTR, 0))
            study.set_user_attr(WORKER_STARTS_ATTR, number + 1)
        finally:
            lock.release()
    finally:
        lock.close()
    return number
