"""A lock shared by every process on one storage, that no process can hold on to for ever.

Postgres: a transaction-level advisory lock (``pg_try_advisory_xact_lock``) on ONE connection of
the lock's own, whose session has ``idle_in_transaction_session_timeout`` set to the lease: a
holder that freezes (SIGSTOP, a cut network) has its session ended by the server and the lock
released after ``lease_s`` seconds. A dropped or ended connection is re-opened on the next
acquire. Journal file or SQLite: ``flock`` on a file beside it (a dead holder's lock goes with its
process).

Waits are polls, never a blocking call: ``acquire`` gives up when ``stop()`` answers True (a
worker asked to stop by SIGTERM), and raises :class:`~hpo.errors.StorageError` after
``wait_s`` seconds.
"""

from __future__ import annotations

import fcntl
import random
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import sqlalchemy

from hpo.errors import StorageError

LEASE_S = 30.0
"""Seconds a Postgres lock holder may sit idle before the server ends its session."""
WAIT_S = 600.0
"""Seconds ``acquire`` waits before it gives up with :class:`StorageError`."""
LOCK_RETRY_S = (0.05, 0.25)
"""Range of the jittered pause between two tries."""


class LockLost(Exception):
    """A lock's connection was gone when it was released: what it guarded may have raced."""


def _never() -> bool:
    return False


class ProcessLock:
    """A lock named by ``purpose`` on the storage at ``url``.

    Parameters
    ----------
    url : str
        The storage URL (a journal path, or a SQLAlchemy URL).
    purpose : str
        What the lock guards; locks of different purposes are independent.
    engine : sqlalchemy.Engine, optional
        For Postgres: the engine the lock's connection comes from (``hpo.storage.process_lock``
        makes it); required there.
    lease_s : float, default :data:`LEASE_S`
        Recorded for messages; the server enforces it through ``engine``'s session settings.
    """

    def __init__(self, url: str, purpose: str, engine: sqlalchemy.Engine | None = None,
                 lease_s: float = LEASE_S) -> None:
        self.purpose, self.lease_s = purpose, lease_s
        self._key = zlib.crc32(purpose.encode()) & 0x7FFFFFFF
        self._engine = engine
        self._conn: sqlalchemy.Connection | None = None
        self._txn: Any = None
        self._file: Any = None
        if url.startswith("postgresql"):
            if engine is None:
                raise ValueError("a Postgres lock needs the engine of its connection")
            self._path = None
        elif "://" in url:
            # SQLite: a lock file beside the database file (in-memory: beside the runs).
            database = sqlalchemy.engine.make_url(url).database or ""
            base = Path(database) if database and database != ":memory:" else Path("runs/db")
            self._path = Path(f"{base}.lock-{self._key}")
        else:
            self._path = Path(f"{Path(url).resolve()}.lock-{self._key}")

    @property
    def held(self) -> bool:
        return self._txn is not None or self._file is not None

    def acquire(self, stop: Callable[[], bool] | None = None, wait_s: float = WAIT_S) -> bool:
        """Take the lock; False when ``stop()`` (if given) became True first. Raises
        StorageError after ``wait_s`` seconds of waiting (a storage that stays unreachable
        raises from the engine's connect instead)."""
        if self.held:
            return True
        deadline = time.monotonic() + wait_s
        stop = stop or _never
        while not stop():
            if self._try():
                return True
            if time.monotonic() > deadline:
                raise StorageError(f"waited {wait_s:.0f} s for the lock {self.purpose!r}; "
                                   "another process holds it")
            time.sleep(random.uniform(*LOCK_RETRY_S))
        return False

    def release(self) -> bool:
        """Give the lock back; does nothing when not held. False when the lock was lost while
        held: its connection was gone (the server ended a frozen session, or restarted), so
        another process may have held it meanwhile; the connection is dropped."""
        if self._file is not None:
            fcntl.flock(self._file, fcntl.LOCK_UN)
            self._file.close()
            self._file = None
        if self._txn is not None:
            txn, self._txn = self._txn, None
            try:
                txn.commit()
            except sqlalchemy.exc.SQLAlchemyError:
                self._drop_connection()
                return False
        return True

    def close(self) -> None:
        self.release()
        self._drop_connection()

    def __enter__(self) -> ProcessLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def _try(self) -> bool:
        if self._path is not None:
            return self._try_file()
        if self._conn is None:
            try:  # an unreachable server raises StorageError here, after the engine's patience
                self._conn = self._engine.connect()
            except sqlalchemy.exc.DBAPIError as err:
                if not err.connection_invalidated:
                    raise  # never reached (a wrong URL is not an outage): said at once
                return False  # ended while SQLAlchemy read a first connection's settings
        try:  # the rollback too: a restart between it and the try cut it off in CI
            txn = self._conn.begin()
            got = self._conn.execute(sqlalchemy.text("SELECT pg_try_advisory_xact_lock(:k)"),
                                     {"k": self._key}).scalar()
            if not got:
                txn.rollback()
        except sqlalchemy.exc.DBAPIError as err:
            if not err.connection_invalidated and not isinstance(
                    err, sqlalchemy.exc.OperationalError):
                raise
            self._drop_connection()  # re-opened on the next try
            return False
        if got:
            self._txn = txn
        return bool(got)

    def _try_file(self) -> bool:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(self._path, "a")  # noqa: SIM115 - held until release
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            return False
        self._file = handle
        return True

    def _drop_connection(self) -> None:
        conn, self._conn, self._txn = self._conn, None, None
        if conn is not None:
            try:
                conn.invalidate()
                conn.close()
            except sqlalchemy.exc.SQLAlchemyError:
                pass


def lease_option(lease_s: float) -> str:
    """libpq ``options`` that end a session idle inside a transaction for ``lease_s`` s."""
    return f"-c idle_in_transaction_session_timeout={int(lease_s * 1000)}"
