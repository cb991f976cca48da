"""Where studies live: Postgres (or any SQLAlchemy URL), or an embedded journal file by default.

The URL comes from ``--storage``, else ``HPO_STORAGE``, else :data:`DEFAULT_STORAGE`, an Optuna
journal file under ``runs/`` that many local processes append to safely and optuna-dashboard opens
as a plain path. (``bench/embedded_storage.py`` measures it against SQLite; see docs/storage.md.)

Postgres gets pre-ping, a small pool, a connect timeout (an unreachable server is reported in
seconds, not hung on), heartbeats and retry of trials whose worker died. Two advisory locks
(Postgres ``pg_advisory_lock``, or ``flock`` beside a journal file) serialise what must not race:
creating schema and study, and claiming a slot of the trial budget.
"""

from __future__ import annotations

import fcntl
import os
import zlib
from pathlib import Path
from typing import Any

import optuna
import sqlalchemy
from optuna.artifacts import FileSystemArtifactStore
from optuna.storages import BaseStorage, RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.storages.journal import JournalFileBackend, JournalStorage

from hpo.errors import StorageError, UsageError
from hpo.quiet import quiet_experimental

DEFAULT_STORAGE = "runs/hpo.journal"
DEFAULT_ARTIFACTS = "runs/artifacts"
CONNECT_TIMEOUT_S = 5


def storage_url(flag: str | None = None) -> str:
    """``--storage``, else ``HPO_STORAGE``, else the embedded journal file."""
    return flag or os.environ.get("HPO_STORAGE") or DEFAULT_STORAGE


def artifacts_dir(flag: str | None = None) -> Path:
    """``--artifacts``, else ``HPO_ARTIFACTS``, else ``runs/artifacts``."""
    return Path(flag or os.environ.get("HPO_ARTIFACTS") or DEFAULT_ARTIFACTS)


def artifact_store(flag: str | None = None) -> FileSystemArtifactStore:
    path = artifacts_dir(flag)
    path.mkdir(parents=True, exist_ok=True)
    return FileSystemArtifactStore(str(path))


def is_database_url(url: str) -> bool:
    return "://" in url


def display_url(url: str) -> str:
    """The URL with its password hidden, for messages."""
    if not is_database_url(url):
        return str(Path(url).resolve())
    try:
        return sqlalchemy.engine.make_url(url).render_as_string(hide_password=True)
    except sqlalchemy.exc.ArgumentError:
        return url


def _engine_kwargs(url: str) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"pool_pre_ping": True}
    if url.startswith("postgresql"):
        kwargs.update(pool_size=2, max_overflow=2, pool_recycle=1800,
                      connect_args={"connect_timeout": CONNECT_TIMEOUT_S})
    return kwargs


def open_storage(url: str, heartbeat: Any | None = None) -> BaseStorage:
    """An Optuna storage for ``url``; ``heartbeat`` (a study's settings) enables dead-worker retry.

    Raises :class:`StorageError` when the database cannot be reached, :class:`UsageError` for a
    URL that is not understood.
    """
    if not is_database_url(url):
        path = Path(url)
        path.parent.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(str(path)))
    try:
        with quiet_experimental():
            kwargs: dict[str, Any] = {}
            if heartbeat is not None:
                kwargs = dict(heartbeat_interval=heartbeat.interval,
                              grace_period=heartbeat.grace_period,
                              heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(
                                  max_retry=heartbeat.max_retry))
            return RDBStorage(url, engine_kwargs=_engine_kwargs(url), **kwargs)
    except (sqlalchemy.exc.ArgumentError, ImportError) as err:
        raise UsageError(f"storage URL {display_url(url)} is not understood: {err}") from None
    except sqlalchemy.exc.SQLAlchemyError as err:
        raise StorageError(unreachable_message(url, err)) from None


def unreachable_message(url: str, err: Exception) -> str:
    reason = str(getattr(err, "orig", None) or err).strip().splitlines()[0]
    return f"cannot reach the study database {display_url(url)}: {reason}"


class ProcessLock:
    """A lock shared by every process that uses the same storage, named by ``purpose``.

    Postgres: a session-level advisory lock on a connection of its own. Journal file: ``flock``
    on a file beside it. ``acquire``/``release`` may be called repeatedly; ``release`` when not
    held does nothing.
    """

    def __init__(self, url: str, purpose: str) -> None:
        self._url, self._held = url, False
        self._key = zlib.crc32(purpose.encode()) & 0x7FFFFFFF
        self._conn: Any = None
        self._file: Any = None
        if is_database_url(url) and url.startswith("postgresql"):
            engine = sqlalchemy.create_engine(
                url, poolclass=sqlalchemy.pool.NullPool,
                connect_args={"connect_timeout": CONNECT_TIMEOUT_S})
            try:
                self._conn = engine.connect().execution_options(isolation_level="AUTOCOMMIT")
            except sqlalchemy.exc.SQLAlchemyError as err:
                raise StorageError(unreachable_message(url, err)) from None
        elif is_database_url(url):
            # SQLite: a lock file beside the database file (in-memory: beside the runs).
            database = sqlalchemy.engine.make_url(url).database or ""
            base = Path(database) if database and database != ":memory:" else Path("runs/db")
            self._path = Path(f"{base}.lock-{self._key}")
        else:
            self._path = Path(f"{url}.lock-{self._key}")

    def acquire(self) -> None:
        if self._held:
            return
        if self._conn is not None:
            self._conn.execute(sqlalchemy.text("SELECT pg_advisory_lock(:k)"), {"k": self._key})
        else:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(self._path, "a")  # noqa: SIM115 - held across calls
            fcntl.flock(self._file, fcntl.LOCK_EX)
        self._held = True

    def release(self) -> None:
        if not self._held:
            return
        self._held = False
        if self._conn is not None:
            self._conn.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:k)"), {"k": self._key})
        else:
            fcntl.flock(self._file, fcntl.LOCK_UN)
            self._file.close()

    def close(self) -> None:
        self.release()
        if self._conn is not None:
            self._conn.close()

    def __enter__(self) -> ProcessLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def ensure_study(url: str, spec: Any, *, sampler: optuna.samplers.BaseSampler | None = None,
                 pruner: optuna.pruners.BasePruner | None = None) -> optuna.Study:
    """Create schema and study once, or load them: safe with many processes starting together."""
    lock = ProcessLock(url, "hpo:init")
    try:
        with lock:
            storage = open_storage(url, spec.heartbeat)
            try:
                study = optuna.create_study(study_name=spec.name, storage=storage,
                                            direction="minimize", sampler=sampler, pruner=pruner,
                                            load_if_exists=True)
            except sqlalchemy.exc.SQLAlchemyError as err:
                raise StorageError(unreachable_message(url, err)) from None
            if "study_file" not in study.user_attrs:
                study.set_user_attr("study_file", spec.model_dump(mode="json"))
                study.set_user_attr("metric", "KL(Q||P), bias-corrected kNN estimator (nats)")
    finally:
        lock.close()
    return study


def load_study(url: str, name: str) -> optuna.Study:
    """An existing study by name, or :class:`UsageError` listing the studies there are."""
    storage = open_storage(url, None)
    try:
        return optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        names = [s.study_name for s in optuna.get_all_study_summaries(storage)]
        known = ", ".join(names) if names else "none"
        raise UsageError(f"no study named {name!r} in {display_url(url)}; studies there: {known}"
                         ) from None
