"""`hpo worker` that freezes itself (SIGSTOP) inside its Nth trial creation: a test stand-in
for a worker paused by `docker compose pause` at the worst moment, chosen deterministically.

    FREEZE_AT=row:3 python tests/_freeze_worker.py worker STUDY.yaml ...

``row``: just after Optuna's trial creation has locked the study's row (``SELECT ... FROM
studies ... FOR UPDATE``), idle inside that transaction; ``create``: as the creation begins,
before any statement, holding only the budget lock. Prints ``frozen`` first.

``drop`` does not freeze: once the Nth trial is created (RUNNING, committed), the server ends
the worker's connection (``pg_terminate_backend``) just before each of its next
:data:`hpo.transient.TRIES` statements on the trial tables, as a database restart would in the
middle of ``study.ask()``, which reads the trial back after creating it and before its heartbeat
starts: every try of that read is cut off (:mod:`hpo.riding_storage`). Prints ``dropped``.
``kill`` (any storage): the worker SIGKILLs itself as ``ask`` builds its Nth trial object,
after the trial was created or taken from the queue, before the heartbeat starts (prints
``killed`` first).
"""

from __future__ import annotations

import os
import signal
import sys

import optuna
import sqlalchemy
from optuna.storages import RDBStorage

from hpo.cli import main
from hpo.transient import TRIES

WHERE, NTH = os.environ.pop("FREEZE_AT").split(":")
_calls = {"n": 0, "armed": False}
_create = RDBStorage._create_new_trial  # what Optuna's cached storage calls


def _freeze() -> None:
    print("frozen", flush=True)
    os.kill(os.getpid(), signal.SIGSTOP)


def create_new_trial(self, study_id, template_trial=None):  # noqa: ANN001, ANN201
    _calls["n"] += 1
    nth = _calls["n"] == int(NTH)
    if nth and WHERE == "create":
        _freeze()
    elif nth and WHERE == "row":
        _calls["armed"] = True
    created = _create(self, study_id, template_trial)
    if nth and WHERE == "drop":
        _calls["drop"] = TRIES
    return created


def _after_statement(conn, cursor, statement, *args) -> None:  # noqa: ANN001
    if _calls["armed"] and "FOR UPDATE" in statement and "studies" in statement:
        _calls["armed"] = False
        _freeze()


def _before_statement(conn, cursor, statement, *args) -> None:  # noqa: ANN001
    if _calls.get("drop") and "trial" in statement:
        _calls["drop"] -= 1
        pid = conn.connection.dbapi_connection.get_backend_pid()
        admin = sqlalchemy.create_engine(os.environ["HPO_STORAGE"],
                                         poolclass=sqlalchemy.pool.NullPool)
        with admin.connect() as other:
            other.execute(sqlalchemy.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        admin.dispose()
        if not _calls["drop"]:
            print("dropped", flush=True)


_trial_init = optuna.trial.Trial.__init__
_trials = {"n": 0}


def trial_init(self, study, trial_id):  # noqa: ANN001, ANN201
    _trials["n"] += 1
    if WHERE == "kill" and _trials["n"] == int(NTH):
        print("killed", flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
    _trial_init(self, study, trial_id)


optuna.trial.Trial.__init__ = trial_init
RDBStorage._create_new_trial = create_new_trial
sqlalchemy.event.listen(sqlalchemy.engine.Engine, "after_cursor_execute", _after_statement)
sqlalchemy.event.listen(sqlalchemy.engine.Engine, "before_cursor_execute", _before_statement)
sys.exit(main(sys.argv[1:]))
