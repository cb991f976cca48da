"""Create a study only when it does not exist: no failed INSERT in the database's log.

``optuna.create_study(load_if_exists=True)`` inserts first and loads on the unique-key error, so
on PostgreSQL every process that finds its study already there left ``ERROR: duplicate key value
violates unique constraint "ix_studies_study_name"`` (with its DETAIL and STATEMENT) in the
server's log. Callers hold the init lock (:func:`hpo.init_lock.under_init_lock`), so looking
first, through Optuna's public API, is not a race between our processes; ``load_if_exists``
stays as the fallback for anyone else's.
"""

from __future__ import annotations

from typing import Any

import optuna
from optuna.storages import BaseStorage


def create_or_load_study(*, study_name: str, storage: BaseStorage, **kwargs: Any) -> optuna.Study:
    """:func:`optuna.load_study` if ``study_name`` exists on ``storage``, else
    :func:`optuna.create_study` with ``kwargs`` (``direction``, ``sampler``, ``pruner``)."""
    if study_name in optuna.get_all_study_names(storage):
        return optuna.load_study(study_name=study_name, storage=storage,
                                 sampler=kwargs.get("sampler"), pruner=kwargs.get("pruner"))
    return optuna.create_study(study_name=study_name, storage=storage, load_if_exists=True,
                               **kwargs)
