"""Where studies live: Postgres (or any SQLAlchemy URL), or an embedded journal file by default.

The URL comes from ``--storage``, else ``HPO_STORAGE``, else :data:`DEFAULT_STORAGE`, an Optuna
journal file under ``runs/`` that many local processes append to safely and optuna-dashboard opens
as a plain path. (``bench/embedded_storage.py`` measures it against SQLite; see docs/storage.md.)

Postgres gets pre-ping, a pool of one connection (a worker holds at most two, with its budget
lock's), a connect timeout (an unreachable server is reported in seconds, not hung on), heartbeats,
retry of trials whose worker died, and of a running trial's calls a dropped connection cut off
(:mod:`hpo.riding_storage`). Workers open it with patience: a call retries an unreachable server
with backoff and jitter, so a database restart costs at most the trials that were running. Two
locks (:mod:`hpo.locks`) serialise what must not race: schema and study, and the trial budget.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy
from optuna.storages import BaseStorage, RDBStorage
from optuna.storages.journal import JournalStorage

from hpo.artifacts import DEFAULT_ARTIFACTS, artifact_store  # noqa: F401 (re-exported)
from hpo.errors import StorageError, UsageError
from hpo.journal import RepairingJournalBackend
from hpo.locks import LEASE_S, ProcessLock, lease_option
from hpo.quiet import quiet_experimental
from hpo.riding_storage import RidingRDBStorage
from hpo.storage_url import (  # noqa: F401 (re-exported)
    DEFAULT_STORAGE,
    check_url,
    display_url,
    is_database_url,
    storage_url,
)
from hpo.study_file import StudySpec
from hpo.trials import RetryPolicy

CONNECT_TIMEOUT_S = 5
LOCK_APP = "hpo-lock"
"""``application_name`` of the lock connections, as ``pg_stat_activity`` shows them."""
PATIENCE_S = 75.0
"""Seconds a worker's storage calls retry an unreachable database: rides through a 60 s outage."""


MAX_ENV_SECONDS = 86_400.0
"""A day: the most a patience or a lease may be (a lease is a server timeout in milliseconds)."""


def seconds_from_env(name: str, default: float) -> float:
    """A number of seconds from environment variable ``name`` (0 to a day), else ``default``.
    Workers read ``HPO_STORAGE_PATIENCE_S`` and ``HPO_LOCK_LEASE_S`` this way."""
    value = os.environ.get(name)
    try:
        seconds = float(value) if value else default
    except ValueError:
        raise UsageError(f"{name} must be a number of seconds, got {value!r}") from None
    if not 0 <= seconds <= MAX_ENV_SECONDS:  # nan too; PostgreSQL takes a lease in ms (int32)
        raise UsageError(f"{name} must be 0 to {MAX_ENV_SECONDS:.0f} seconds, got {value}")
    return seconds


def lease_seconds() -> float:
    """The lease (``HPO_LOCK_LEASE_S``, default :data:`~hpo.locks.LEASE_S`): how long a frozen
    process may sit inside a transaction, its budget lock's or its storage's, before the server
    ends its session."""
    return seconds_from_env("HPO_LOCK_LEASE_S", LEASE_S)


_REACHED: set[str] = set()  # URLs this process has connected to once
#: What PostgreSQL answers a connection while it stops or starts (SQLSTATE 57P03): the server is
#: there, so the URL is right. psycopg2 gives a refused connection no SQLSTATE, hence its words
#: (English unless the server's lc_messages says otherwise: then reported at once, as before).
_RESTARTING = ("the database system is starting up", "the database system is shutting down",
               "the database system is in recovery mode",
               "the database system is not yet accepting connections")
_GAVE_UP: dict[str, float] = {}  # URL -> seconds waited, when an outage outlasted patience


def was_reached(url: str) -> bool:
    """Whether this process has connected to ``url``'s server once: a failure after that is an
    outage or a dropped connection, worth retrying; before, a wrong URL, reported at once."""
    return url in _REACHED


def patient_connect(url: str, patience_s: float, stop: Callable[[], bool] | None = None,
                    options: str | None = None) -> Callable[[], Any]:
    """A DBAPI ``connect`` that retries an unreachable server for up to ``patience_s`` seconds,
    with exponential backoff (0.25 s doubling to 5 s) and jitter (x0.5-1.5), so that many workers
    do not reconnect in step. A server this process has never reached is reported at once (a
    wrong URL is not an outage), unless it answered that it is stopping or starting (a worker
    compose restarted into the database's restart). Then, or when ``stop()`` answers True, it raises
    :class:`StorageError` (which no storage layer wraps or retries: the worker ends with one
    line). ``options`` are libpq session options."""
    parsed = sqlalchemy.engine.make_url(url)
    dialect = parsed.get_dialect()
    cargs, cparams = dialect().create_connect_args(parsed)
    cparams.setdefault("connect_timeout", CONNECT_TIMEOUT_S)
    if options:
        cparams["options"] = options
    dbapi = dialect.import_dbapi()

    def connect() -> Any:
        started, delay = time.monotonic(), 0.25
        while True:
            try:
                connection = dbapi.connect(*cargs, **cparams)
                _REACHED.add(url)
                return connection
            except dbapi.OperationalError as err:
                if patience_s > 0 and any(m in str(err) for m in _RESTARTING):
                    _REACHED.add(url)  # it answered: what follows, down or up, is an outage
                if url not in _REACHED:
                    raise
                if url in _GAVE_UP:  # patience is spent once per process, not once per call
                    raise StorageError(f"gave up after {_GAVE_UP[url]:.0f} s: "
                                       f"{unreachable_message(url, err)}") from None
                waited = time.monotonic() - started
                if stop is not None and stop():
                    raise StorageError(f"stopped while waiting {waited:.0f} s for "
                                       f"{unreachable_message(url, err)}") from None
                if waited + delay > patience_s:
                    _GAVE_UP[url] = waited
                    raise StorageError(f"gave up after {waited:.0f} s: "
                                       f"{unreachable_message(url, err)}") from None
                time.sleep(delay * random.uniform(0.5, 1.5))
                delay = min(delay * 2, 5.0)

    return connect


def _engine_kwargs(url: str, patience_s: float = 0.0,
                   stop: Callable[[], bool] | None = None) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"pool_pre_ping": True}
    if url.startswith("postgresql"):
        # One pooled connection (the heartbeat thread waits its turn, as long as an outage may
        # last) and the budget lock's: at most 2 per worker, hundreds per server (docs/scaling.md).
        # The lease covers this connection too: a process frozen inside one of Optuna's
        # transactions (trial creation holds the study's row FOR UPDATE) has its session ended,
        # and the row freed, as its budget lock is (docs/design.md, "Locks and leases").
        options = lease_option(lease_seconds())
        kwargs.update(pool_size=1, max_overflow=0, pool_recycle=1800,
                      connect_args={"connect_timeout": CONNECT_TIMEOUT_S, "options": options})
        if patience_s > 0:
            kwargs.update(creator=patient_connect(url, patience_s, stop, options=options),
                          pool_timeout=patience_s + 2 * CONNECT_TIMEOUT_S)  # not SQLAlchemy's 30
    return kwargs


def _rdb_storage(url: str, patience_s: float = 0.0, stop: Callable[[], bool] | None = None,
                 **kwargs: Any) -> RDBStorage:
    """A PostgreSQL storage whose pool of one connection serves every step, schema checks too.

    Optuna creates a new schema, and checks an existing one's version, holding one connection
    while it opens a second: a pool of one would wait on itself. So the schema is probed on the
    pool's own connection; a new database gets its schema on one connection shared by both
    (``StaticPool``, closed at once), and an existing one has its version checked here.
    """
    engine = sqlalchemy.create_engine(url, **_engine_kwargs(url, patience_s, stop))
    with engine.connect() as conn:
        ready = schema_stamped(conn)
    if not ready:
        RDBStorage(url, engine_kwargs={"poolclass": sqlalchemy.pool.StaticPool, "connect_args": {
            "connect_timeout": CONNECT_TIMEOUT_S}}).engine.dispose()
    storage = RidingRDBStorage(url, engine_kwargs={"pool": engine.pool},
                               skip_table_creation=True, skip_compatibility_check=True, **kwargs)
    current, head = storage.get_current_version(), storage.get_head_version()
    if current != head:
        raise StorageError(f"the study database {display_url(url)} has Optuna schema {current}, "
                           f"this Optuna needs {head}: run `optuna storage upgrade --storage "
                           "URL` with the newer of the two Optunas")
    return storage


def schema_stamped(conn: sqlalchemy.Connection) -> bool:
    """Whether ``conn``'s database holds Optuna's whole schema (its last step, the stamp)."""
    return sqlalchemy.inspect(conn).has_table("alembic_version") and bool(
        conn.execute(sqlalchemy.text("SELECT count(*) FROM alembic_version")).scalar_one())


def require_storage(url: str) -> None:
    """:class:`StorageError` unless a storage exists at ``url``; creates nothing."""
    check_url(url)
    if not is_database_url(url):
        if not Path(url).is_file():
            raise StorageError(f"no study storage at {display_url(url)} (no such file); create "
                               "one with hpo init STUDY.yaml, or pass --storage / HPO_STORAGE")
    else:
        _require_schema(url)


def open_storage(url: str, spec: StudySpec | None = None, *, patience_s: float = 0.0,
                 stop: Callable[[], bool] | None = None, create: bool = True) -> BaseStorage:
    """An Optuna storage for ``url``; a study file ``spec`` turns on its heartbeat and its retry
    of trials whose heartbeat went stale (``retry.outcomes`` holds ``lost``).

    ``patience_s`` (default 0: report at once) is how long a call retries an unreachable
    database before it fails; workers ride through outages with it. A journal file is opened
    with a lock that breaks when stale and with torn lines repaired (:mod:`hpo.journal`).
    ``create=False`` (the read-only commands) never creates a file, a folder or a schema: a
    storage that does not exist yet is a :class:`StorageError` saying so; nor does it repair a
    journal file: it reads it as it is, torn last line left out, until it appends. Raises
    :class:`StorageError` when the database cannot be reached, :class:`UsageError` for a URL that
    is not understood.
    """
    if create:
        check_url(url)
    else:
        require_storage(url)
    with reported(url):
        return open_storage_unreported(url, spec, patience_s=patience_s, stop=stop,
                                       create=create)


def close_storage(storage: BaseStorage | None) -> None:
    """Give back a database storage's pooled connection now, not when it is collected: a worker
    holds at most two (docs/scaling.md). Nothing to do for a journal file."""
    if isinstance(storage, RDBStorage):
        storage.remove_session()
        storage.engine.dispose()


def open_storage_unreported(url: str, spec: StudySpec | None = None, *, patience_s: float = 0.0,
                            stop: Callable[[], bool] | None = None, create: bool = True
                            ) -> BaseStorage:
    """:func:`open_storage` without its checks of ``url`` and with SQLAlchemy's errors as they
    are: for a caller that retries a dropped connection (:mod:`hpo.init_lock`)."""
    if not is_database_url(url):
        return _journal_storage(url, create)
    with quiet_experimental():
        kwargs: dict[str, Any] = {"skip_table_creation": not create}
        if spec is not None:
            kwargs.update(heartbeat_interval=spec.heartbeat.interval,
                          grace_period=spec.heartbeat.grace_period,
                          heartbeat_stale_trial_callback=RetryPolicy.from_study_file(
                              spec.retry).stale_trial_callback())
        if url.startswith("postgresql"):  # it creates the schema itself; never when reading
            kwargs.pop("skip_table_creation")
            return _rdb_storage(url, patience_s, stop, **kwargs)
        return RDBStorage(url, engine_kwargs=_engine_kwargs(url, patience_s, stop), **kwargs)


def _journal_storage(path: str, create: bool) -> JournalStorage:
    """Optuna's storage on the journal file, whose entries it replays now: an entry of the right
    shape that Optuna cannot apply (a key missing, an unknown operation) is bad input, one line."""
    backend = RepairingJournalBackend(path, repair=create)
    try:
        return JournalStorage(backend)
    except (KeyError, TypeError, ValueError, AssertionError, AttributeError) as err:
        raise UsageError(f"{backend.path} is not a readable Optuna journal: Optuna could not "
                         f"replay it ({type(err).__name__}: {str(err)[:80]})") from None


@contextmanager
def reported(url: str) -> Iterator[None]:
    """SQLAlchemy's errors about ``url`` as one line: :class:`UsageError` for a URL that is not
    understood, :class:`StorageError` for a database that cannot be reached."""
    try:
        yield
    except (sqlalchemy.exc.ArgumentError, ImportError) as err:
        raise UsageError(f"storage URL {display_url(url)} is not understood: {err}") from None
    except sqlalchemy.exc.SQLAlchemyError as err:
        raise StorageError(database_error_message(url, err)) from None


def process_lock(url: str, purpose: str, *, lease_s: float = LEASE_S, patience_s: float = 0.0,
                 stop: Callable[[], bool] | None = None) -> ProcessLock:
    """The :class:`ProcessLock` named ``purpose`` on ``url``'s storage; on Postgres its one
    connection's session is ended by the server when it sits ``lease_s`` s inside the lock."""
    if not url.startswith("postgresql"):
        return ProcessLock(url, purpose)
    engine = sqlalchemy.create_engine(
        url, poolclass=sqlalchemy.pool.NullPool,
        creator=patient_connect(url, patience_s, stop,
                                options=f"{lease_option(lease_s)} -c application_name={LOCK_APP}"))
    return ProcessLock(url, purpose, engine=engine, lease_s=lease_s)


def _require_schema(url: str) -> None:
    """:class:`StorageError` unless the database already holds Optuna's tables."""
    database = sqlalchemy.engine.make_url(url).database
    if url.startswith("sqlite") and not Path(database).is_file():  # connecting would create it
        raise StorageError(f"no study storage at {display_url(url)} (no such file); create one "
                           "with hpo init STUDY.yaml")
    connect_args = {"connect_timeout": CONNECT_TIMEOUT_S} if url.startswith("postgresql") else {}
    engine = sqlalchemy.create_engine(url, poolclass=sqlalchemy.pool.NullPool,
                                      connect_args=connect_args)
    try:
        with reported(url), engine.connect() as conn:
            present = sqlalchemy.inspect(conn).has_table("studies")
    finally:
        engine.dispose()
    if not present:
        raise StorageError(f"no study storage in {display_url(url)} (the database has no Optuna "
                           "tables); create one with hpo init STUDY.yaml")


def unreachable_message(url: str, err: Exception) -> str:
    return f"cannot reach the study database {display_url(url)}: {_first_line(err)}"


def database_error_message(url: str, err: Exception) -> str:
    """One line for ``err`` from the database at ``url``: "cannot reach" where the connection
    failed, else the statement the server refused (a permission, a constraint)."""
    if isinstance(err, sqlalchemy.exc.DBAPIError) and not isinstance(  # the server answered
            err, sqlalchemy.exc.OperationalError | sqlalchemy.exc.InterfaceError):
        return f"the study database {display_url(url)} refused a statement: {_first_line(err)}"
    return unreachable_message(url, err)


def _first_line(err: Exception) -> str:
    return str(getattr(err, "orig", None) or err).strip().splitlines()[0]
