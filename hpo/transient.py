"""A storage call cut off by a dropped connection, and the retry that rides through it.

A database restart, or a session the server ends, cuts off whatever call was under way; the next
call re-connects (patiently: :func:`hpo.storage.patient_connect`). An unreachable server is
waited for by the connection itself, which raises :class:`~hpo.errors.StorageError` when its
patience is spent; that is not transient and never retried here.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import TypeVar

import optuna
import sqlalchemy

from hpo.errors import find_cause
from hpo.locks import LockLost

T = TypeVar("T")

TRANSIENT = (optuna.exceptions.StorageInternalError, sqlalchemy.exc.OperationalError, LockLost)
"""What a dropped connection raises (SQLAlchemy's error, or Optuna's wrapping of it), and a lock
found lost with its connection."""

TRIES = 5
"""Calls in all; the pauses between them (jittered) add up to about 10 s."""


def is_connection_error(err: BaseException) -> bool:
    """A dropped connection, or a lock lost with it; not any error Optuna wraps (it wraps every
    SQLAlchemy error, a denied permission too, in ``StorageInternalError``)."""
    return dropped_connection_line(err) is not None


def dropped_connection_line(err: BaseException) -> str | None:
    """The connection error behind ``err`` in a few words (Optuna's wrapping says only that a
    commit failed, and blames the data), or None when ``err`` is not one
    (:func:`is_connection_error`). A connection SQLAlchemy found closed is "a dropped database
    connection"; the rest of what the server's driver calls operational (a statement timeout,
    too many clients) is "a database fault"."""
    cause = find_cause(err, (sqlalchemy.exc.OperationalError, LockLost))
    if cause is None:
        return None
    dropped = isinstance(cause, LockLost) or getattr(cause, "connection_invalidated", False)
    text = str(getattr(cause, "orig", None) or cause).strip() or type(cause).__name__
    return (f"a dropped database connection ({text.splitlines()[0]})" if dropped
            else f"a database fault ({text.splitlines()[0]})")


# PostgreSQL's codes for an object another session created first: unique_violation (two
# CREATE TABLEs of one name collide on the catalogue's index), duplicate_table, duplicate_object.
_CREATED_BESIDE = frozenset({"23505", "42P07", "42710"})

SCHEMA_RACE = (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.ProgrammingError)
"""What SQLAlchemy raises when another session created the same schema object first."""


def is_schema_race(err: BaseException) -> bool:
    """Another session created a table or type this one was creating: a process outside the
    init lock (optuna-dashboard, Optuna's CLI, a script) opened Optuna's storage on a new database
    and Optuna created the schema there as well. Trying again finds it made."""
    cause = find_cause(err, SCHEMA_RACE)
    return getattr(getattr(cause, "orig", None), "pgcode", None) in _CREATED_BESIDE


def retrying(call: Callable[[], T], tries: int = TRIES,
             retry_if: Callable[[BaseException], bool] = lambda err: True,
             errors: tuple[type[BaseException], ...] = TRANSIENT) -> T:
    """``call()``, again after a jittered pause (0.5-1.5 s times the attempt) when a transient
    error (one of ``errors``) cut it off and ``retry_if(err)`` agrees; the last attempt's error
    is raised."""
    for attempt in range(tries):
        try:
            return call()
        except errors as err:
            if attempt == tries - 1 or not retry_if(err):
                raise
            time.sleep(random.uniform(0.5, 1.5) * (attempt + 1))
    raise AssertionError("unreachable: tries >= 1")
