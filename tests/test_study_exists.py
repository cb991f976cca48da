"""An existing study is loaded, never inserted again (issue 19: on PostgreSQL each such insert left
``ERROR: duplicate key value violates unique constraint "ix_studies_study_name"`` in the server's
log, once per process). tests/test_compose_engine.py reads the real server's log for it."""

from __future__ import annotations

import optuna
import pytest
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend

from hpo.study_exists import create_or_load_study


class CountingStorage(JournalStorage):
    """A journal storage that counts the attempts to create a study."""

    creates = 0

    def create_new_study(self, *args, **kwargs):
        CountingStorage.creates += 1
        return super().create_new_study(*args, **kwargs)


@pytest.mark.unit
def test_an_existing_study_is_loaded_without_an_attempt_to_create_it(tmp_path):
    storage = CountingStorage(JournalFileBackend(str(tmp_path / "j.journal")))
    sampler = optuna.samplers.RandomSampler(seed=3)
    first = create_or_load_study(study_name="s", storage=storage, direction="minimize")
    assert CountingStorage.creates == 1
    again = create_or_load_study(study_name="s", storage=storage, direction="minimize",
                                 sampler=sampler, pruner=optuna.pruners.NopPruner())
    assert CountingStorage.creates == 1
    assert optuna.get_all_study_names(storage) == [first.study_name]
    assert again.sampler is sampler and isinstance(again.pruner, optuna.pruners.NopPruner)
