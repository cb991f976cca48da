"""A running trial's storage calls ride through a session PostgreSQL ends under them.

The server really ends the session (``pg_terminate_backend``) just before the statement is sent,
so the statement meets a closed connection, as in a database restart; the pool's ping cannot
catch that one. A plain ``RDBStorage`` call fails on it (the control); the storage a worker opens
calls again and the value is stored.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import optuna
import pytest
import sqlalchemy
from optuna.storages import RDBStorage

from hpo.locks import ProcessLock
from hpo.riding_storage import RidingRDBStorage
from hpo.schedule import study_budgets
from hpo.space import load_spec
from hpo.storage import close_storage, open_storage
from hpo.worker import _run_one
from tests.conftest import PG_ADMIN_URL, SMOKE

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]

ROLLBACK = "ROLLBACK"


class SessionCutter:
    """Ends the storage's session just before its next statement that mentions ``table``, or
    its next rollback (``ROLLBACK``)."""

    def __init__(self, engine: sqlalchemy.Engine) -> None:
        self.admin = sqlalchemy.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT",
                                              poolclass=sqlalchemy.pool.NullPool)
        self.table: str | None = None
        self.cut = 0
        sqlalchemy.event.listen(engine, "before_cursor_execute", self._before)
        sqlalchemy.event.listen(engine, "rollback", self._before_rollback)

    def arm(self, table: str) -> None:
        self.table = table

    def _before(self, conn: sqlalchemy.Connection, cursor: object, statement: str,
                *args: object) -> None:
        if self.table is not None and self.table != ROLLBACK and self.table in statement:
            self._cut(conn)

    def _before_rollback(self, conn: sqlalchemy.Connection) -> None:
        if self.table == ROLLBACK:
            self._cut(conn)

    def _cut(self, conn: sqlalchemy.Connection) -> None:
        self.table = None
        end_session(self.admin, conn.connection.dbapi_connection.get_backend_pid())  # type: ignore[union-attr]
        self.cut += 1


def end_session(admin: sqlalchemy.Engine, pid: int) -> None:
    """The server ends session ``pid``; returns once it is gone (a test whose cut did not
    happen would test nothing)."""
    with admin.connect() as conn:
        conn.execute(sqlalchemy.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        deadline = time.monotonic() + 60
        while conn.execute(sqlalchemy.text(
                "SELECT count(*) FROM pg_stat_activity WHERE pid = :pid"),
                {"pid": pid}).scalar_one():
            assert time.monotonic() < deadline, f"session {pid} still there 60 s after its end"
            time.sleep(0.02)


@pytest.fixture
def storage(pg_url: str) -> Iterator[RidingRDBStorage]:
    opened = open_storage(pg_url)
    assert isinstance(opened, RidingRDBStorage)
    yield opened
    close_storage(opened)


@pytest.mark.parametrize("table, call", [
    ("trial_intermediate_values", lambda trial, _: trial.report(0.25, 1)),
    ("trial_user_attributes", lambda trial, _: trial.set_user_attr("k", 1)),
    ("trial_heartbeats", lambda trial, storage: storage.record_heartbeat(trial._trial_id)),
], ids=["report", "user-attribute", "heartbeat"])
def test_a_trial_call_cut_off_by_a_dropped_session_is_stored(
        storage: RidingRDBStorage, table: str,
        call: Callable[[optuna.Trial, RidingRDBStorage], None]) -> None:
    study = optuna.create_study(storage=storage)
    trial = study.ask()
    cutter = SessionCutter(storage.engine)
    cutter.arm(table)
    call(trial, storage)
    assert cutter.cut == 1
    stored = storage.get_trial(trial._trial_id)
    if table == "trial_intermediate_values":
        assert stored.intermediate_values == {1: 0.25}
    elif table == "trial_user_attributes":
        assert stored.user_attrs == {"k": 1}
    else:
        with storage.engine.connect() as conn:
            assert conn.execute(sqlalchemy.text(
                "SELECT count(*) FROM trial_heartbeats WHERE trial_id = :t"),
                {"t": trial._trial_id}).scalar_one() == 1
    # the control: Optuna's own call, on the same storage, is not tried again
    cutter.arm("trial_heartbeats")
    with pytest.raises(optuna.exceptions.StorageInternalError):
        RDBStorage.record_heartbeat(storage, trial._trial_id)
    assert cutter.cut == 2


def test_a_trial_whose_end_is_cut_off_is_told_again_with_its_result(
        storage: RidingRDBStorage) -> None:
    """Optuna's tell is never tried again by the storage (it is not an upsert): the worker, which
    knows how its objective ended, tells it again. Before, the trained trial was re-queued."""
    spec = load_spec(SMOKE)
    study = optuna.create_study(storage=storage, study_name=next(iter(study_budgets(spec))))
    cutter = SessionCutter(storage.engine)

    def objective(trial: optuna.Trial) -> float:
        trial.report(0.5, 1)
        cutter.arm("UPDATE trials SET state")  # Optuna's tell
        return 0.5

    class HeldLock:
        lease_s = 30.0

        def acquire(self, stop: object = None, wait_s: float = 0.0) -> bool:
            return True

        def release(self) -> None:
            pass

    said: list[str] = []
    assert _run_one(study, spec, objective, HeldLock(), lambda: False, said.append) == 1
    (trial,) = study.get_trials()
    assert cutter.cut == 1
    assert trial.state == optuna.trial.TrialState.COMPLETE and trial.value == 0.5
    assert said[-1].startswith("trial 0: a dropped database connection (") and said[-1].endswith(
        "cut off the record of its end; told again: complete"), said


def test_a_lock_poll_whose_session_ends_before_its_rollback_tries_again(pg_url: str) -> None:
    """A poll that finds the budget lock held rolls its transaction back. In CI a database
    restart fell between the two (a worker throttled to 5% of a core waits 95 ms between its
    slices): the rollback's error left the worker's claim, and the worker ended with status 1.
    The poll drops the connection and tries again, on a new one."""
    holder = ProcessLock(pg_url, "hpo:budget:s", engine=_lock_engine(pg_url))
    waiter_engine = _lock_engine(pg_url)
    waiter = ProcessLock(pg_url, "hpo:budget:s", engine=waiter_engine)
    try:
        assert holder.acquire(wait_s=10)
        cutter = SessionCutter(waiter_engine)
        cutter.arm(ROLLBACK)
        assert not waiter.acquire(stop=lambda: cutter.cut == 1, wait_s=60)  # cut, not raised
        holder.release()
        assert waiter.acquire(wait_s=60)  # on a new connection
        assert not holder.acquire(stop=lambda: True)
    finally:
        waiter.close()
        holder.close()
        assert cutter.cut == 1


def _lock_engine(url: str) -> sqlalchemy.Engine:
    return sqlalchemy.create_engine(url, poolclass=sqlalchemy.pool.NullPool)


def test_a_lock_whose_first_connection_is_cut_off_tries_again(
        pg_url: str, postgres: sqlalchemy.Engine) -> None:
    """SQLAlchemy reads the server's settings on an engine's first connection, after the
    connect itself (which waits out an unreachable server): a session ended there (a database
    restart as compose restarts a worker) raised out of the worker's first claim, status 1."""
    engine = _lock_engine(pg_url)
    cut = []

    def end_first_session(dbapi_connection: object, record: object) -> None:
        if not cut:
            cut.append(dbapi_connection.get_backend_pid())  # type: ignore[attr-defined]
            end_session(postgres, cut[0])

    sqlalchemy.event.listen(engine, "first_connect", end_first_session, insert=True)
    lock = ProcessLock(pg_url, "hpo:budget:s", engine=engine)
    try:
        assert lock.acquire(wait_s=60)
    finally:
        lock.close()
    assert len(cut) == 1
