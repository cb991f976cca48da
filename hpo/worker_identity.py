"""Who a worker is, and which sampler seed it draws with: unique per process start.

A worker's id was ``host:pid``, and its sampler seed a hash of that id. Compose replicas on the
host network share the host name, each container's worker is often PID 1, and a container that
``restart: on-failure`` brings back keeps both: such workers had one id and one seed, so they
proposed the same parameters (measured: 4 workers, 16 trials, 5 distinct parameter sets).

- :func:`new_worker_id`: ``$HPO_WORKER_ID`` when set, else ``host:pid:token`` where ``token`` is
  8 random hex digits drawn at each process start (``secrets``), so no two starts share an id.
- :func:`claim_worker_number`: the study counts its worker starts (user attribute
  :data:`WORKER_STARTS_ATTR`) under the init lock every process on the storage shares; a start
  gets the next number, 0 for the first. The worker's sampler seed is the study's ``sampler.seed``
  plus that number, so any two workers of a study draw with different seeds, and the seeds a study
  uses are the same from run to run: ``seed``, ``seed + 1``, ... in the order the workers start
  (docs/study-files.md says what that makes reproducible).
"""

from __future__ import annotations

import os
import secrets
import socket
from collections.abc import Callable
from typing import Any

from hpo.group import ensure_group
from hpo.init_lock import under_init_lock
from hpo.storage import close_storage
from hpo.study_file import StudySpec

WORKER_STARTS_ATTR = "worker_starts"
"""Study user attribute: how many workers have started on the study (the next worker's number)."""

TOKEN_HEX = 8
"""Hex digits of the random part of a default worker id (32 bits)."""


def new_worker_id() -> str:
    """``$HPO_WORKER_ID`` if set, else ``host:pid:token`` with a fresh random ``token``."""
    return (os.environ.get("HPO_WORKER_ID")
            or f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(TOKEN_HEX // 2)}")


def claim_worker_number(url: str, spec: StudySpec, *, patience_s: float = 0.0,
                        stop: Callable[[], bool] | None = None) -> int:
    """The number of this worker start on ``spec``'s study: 0, 1, 2, ... never given twice.

    Under the init lock (:func:`hpo.init_lock.ensure_group_studies`'s, shared by every process on
    the storage) it creates the study (or the per-kind group's studies) if need be, then reads and
    increments the counter kept on the study (for a per-kind file, on the group's first study).
    The storage it opens is closed before it returns, so a worker still holds at most two
    connections. ``patience_s`` and ``stop`` are :func:`hpo.storage.open_storage`'s.
    """
    def claim(storage: Any) -> int:
        try:
            study = next(iter(ensure_group(storage, spec).values()))  # the group's first study
            number = int(study.user_attrs.get(WORKER_STARTS_ATTR, 0))
            study.set_user_attr(WORKER_STARTS_ATTR, number + 1)
            return number
        finally:
            close_storage(storage)

    return under_init_lock(url, spec, claim, patience_s, stop)
