"""`hpo worker` that freezes itself (SIGSTOP) inside its Nth trial creation: a test stand-in
for a worker paused by `docker compose pause` at the worst moment, chosen deterministically.

    FREEZE_AT=row:3 python tests/_freeze_worker.py worker STUDY.yaml ...

``row``: just after Optuna's trial creation has locked the study's row (``SELECT ... FROM
studies ... FOR UPDATE``), idle inside that transaction; ``create``: as the creation begins,
before any statement, holding only the budget lock. Prints ``frozen`` first.
"""

from __future__ import annotations

import os
import signal
import sys

import sqlalchemy
from optuna.storages import RDBStorage

from hpo.cli import main

WHERE, NTH = os.environ.pop("FREEZE_AT").split(":")
_calls = {"n": 0, "armed": False}
_create = RDBStorage._create_new_trial  # what Optuna's cached storage calls


def _freeze() -> None:
    print("frozen", flush=True)
    os.kill(os.getpid(), signal.SIGSTOP)


def create_new_trial(self, study_id, template_trial=None):  # noqa: ANN001, ANN201
    _calls["n"] += 1
    if _calls["n"] == int(NTH):
        if WHERE == "create":
            _freeze()
        else:
            _calls["armed"] = True
    return _create(self, study_id, template_trial)


def _after_statement(conn, cursor, statement, *args) -> None:  # noqa: ANN001
    if _calls["armed"] and "FOR UPDATE" in statement and "studies" in statement:
        _calls["armed"] = False
        _freeze()


RDBStorage._create_new_trial = create_new_trial
sqlalchemy.event.listen(sqlalchemy.engine.Engine, "after_cursor_execute", _after_statement)
sys.exit(main(sys.argv[1:]))
