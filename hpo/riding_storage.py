"""Optuna's PostgreSQL storage, whose calls from a running trial ride through a dropped connection.

A session the server ends (a restart, ``pg_terminate_backend``, a proxy's idle cut) fails the
statement under way; the pool's ping replaces the connection on the next call, but Optuna does not
call again. A heartbeat cut off ended the heartbeat's thread, and the trial, still training, was
then judged stale and run twice; a report cut off ended a trained trial. The calls below, each a
read or an upsert, are tried again (:func:`hpo.transient.retrying`). They are the ones Optuna's
cache (``_CachedStorage``, which wraps every RDBStorage a study uses) passes on by their public
names; a cut-off suggestion or read of the study's trials still ends its trial, which the objective
records as lost and the retry policy runs again (docs/design.md, "Storage faults"). Creating a
trial and telling its state are never tried again: a worker handles a fault there itself.
"""

from __future__ import annotations

from typing import Any

from optuna.storages import RDBStorage

from hpo.transient import is_connection_error, retrying


class RidingRDBStorage(RDBStorage):
    """:class:`~optuna.storages.RDBStorage` whose heartbeat, reports, attributes and reads of
    one trial are tried again when a dropped connection cuts them off."""

    def record_heartbeat(self, trial_id: int) -> None:
        _ride(lambda: super(RidingRDBStorage, self).record_heartbeat(trial_id))

    def set_trial_intermediate_value(self, trial_id: int, step: int,
                                     intermediate_value: float) -> None:
        _ride(lambda: super(RidingRDBStorage, self).set_trial_intermediate_value(
            trial_id, step, intermediate_value))

    def set_trial_user_attr(self, trial_id: int, key: str, value: Any) -> None:
        _ride(lambda: super(RidingRDBStorage, self).set_trial_user_attr(trial_id, key, value))

    def set_trial_system_attr(self, trial_id: int, key: str, value: Any) -> None:
        _ride(lambda: super(RidingRDBStorage, self).set_trial_system_attr(trial_id, key, value))

    def get_trial(self, trial_id: int) -> Any:
        return _ride(lambda: super(RidingRDBStorage, self).get_trial(trial_id))


def _ride(call: Any) -> Any:
    return retrying(call, retry_if=is_connection_error)
