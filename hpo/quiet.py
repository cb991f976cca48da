"""Silence Optuna's ExperimentalWarning for the features we use on purpose (heartbeat, retry,
PatientPruner): a worker's log should show trials, not the same warning every trial."""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator

import optuna


@contextlib.contextmanager
def quiet_experimental() -> Iterator[None]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        yield
