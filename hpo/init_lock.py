"""Creating a study file's studies, or counting a worker's start, once: under the init lock that
every process on a storage shares, so that many workers starting together never race.

A connection dropped while a process starts (a database restarting as compose brings a worker
back) is ridden through as a running worker rides through it: the whole locked step is tried
again (:mod:`hpo.transient`), at most :data:`hpo.transient.TRIES` times, and only on a server
this process has reached before (a wrong URL is reported at once); so is a step whose lock was
lost under it (its connection gone at release: another process may have run beside it), and one
that lost a race to create Optuna's schema with a process outside the lock (optuna-dashboard or
Optuna's CLI opened a new database at the same moment: Optuna creates what it finds missing). A
worker asked to stop while it waits for the lock stops (:class:`~hpo.errors.Stopped`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import optuna
from optuna.storages import BaseStorage

from hpo.errors import Stopped, StorageError
from hpo.group import ensure_group, validation_study_name
from hpo.locks import LockLost
from hpo.schedule import refuse_a_changed_validation_plan
from hpo.storage import (
    close_storage,
    display_url,
    open_storage_unreported,
    process_lock,
    reported,
    was_reached,
)
from hpo.stored_study_file import study_file_of
from hpo.study_file import StudySpec
from hpo.transient import (
    SCHEMA_RACE,
    TRANSIENT,
    TRIES,
    is_connection_error,
    is_schema_race,
    retrying,
)

INIT_LOCK = "hpo:init"


def ensure_group_studies(url: str, spec: StudySpec, *,
                         sampler: Callable[[], optuna.samplers.BaseSampler] | None = None,
                         pruner: Callable[[], optuna.pruners.BasePruner] | None = None,
                         metric: str | None = None, patience_s: float = 0.0,
                         stop: Callable[[], bool] | None = None) -> dict[str, optuna.Study]:
    """Create schema and the study file's studies once, or load them: safe with many processes
    starting together (:func:`hpo.group.ensure_group`, under the init lock).

    Given ``metric`` (:func:`hpo.metric.objective_name`), each study names its objective so
    (what the dashboard's plots show). ``patience_s`` and ``stop`` are
    :func:`hpo.storage.open_storage`'s, for the studies returned too.
    """
    def create(storage: BaseStorage) -> dict[str, optuna.Study]:
        validation = validation_study_name(spec.name)
        try:  # before any write
            attrs = storage.get_study_user_attrs(storage.get_study_id_from_name(validation))
        except KeyError:  # a new group, or one that validates nothing
            attrs = {}
        refuse_a_changed_validation_plan(spec, attrs,
                                         study_file_of(storage, validation) if attrs else {})
        return ensure_group(storage, spec, sampler=sampler, pruner=pruner, metric=metric)

    return under_init_lock(url, spec, create, patience_s, stop)


def under_init_lock(url: str, spec: StudySpec, create: Callable[[BaseStorage], Any],
                    patience_s: float, stop: Callable[[], bool] | None) -> Any:
    """``create(storage)`` under the init lock, tried again from the start when a dropped
    connection cuts it off; SQLAlchemy's errors as one line (:func:`hpo.storage.reported`).
    ``create`` must be safe to repeat: it may have run in part, or whole, before the drop."""
    def once() -> Any:
        lock, storage = process_lock(url, INIT_LOCK, patience_s=patience_s, stop=stop), None
        try:
            if not lock.acquire(stop):
                raise Stopped("while waiting for the init lock")
            storage = open_storage_unreported(url, spec, patience_s=patience_s, stop=stop)
            result = create(storage)
            if not lock.release():  # another process may have run `create` beside this one
                raise LockLost(INIT_LOCK)
            return result
        except BaseException:
            close_storage(storage)  # this try's connection, not left to the garbage collector
            raise
        finally:
            lock.close()  # releases the lock if an error left it held

    try:
        with reported(url):
            return retrying(once, errors=TRANSIENT + SCHEMA_RACE, retry_if=lambda err: was_reached(
                url) and (is_connection_error(err) or is_schema_race(err)))
    except LockLost:
        raise StorageError(f"lost the init lock on {display_url(url)} {TRIES} times: the "
                           "database keeps ending connections") from None

