"""Shared fixtures: a fresh PostgreSQL database per use, and running the real `hpo` CLI."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

# One BLAS/OpenMP thread per test process, set before numpy, scipy, scikit-learn, POT or torch
# first load their thread pools (each reads the setting once). With two pytest workers, each
# library's default of one thread per core put 4+ spinning threads on 2 cores: the smoothed
# coverage test took 417 s in the suite against 57 s alone. A setting in the environment wins;
# the `hpo` processes tests start inherit it, as workers run with one thread anyway.
for _variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")

import optuna  # noqa: E402
import pytest  # noqa: E402
import sqlalchemy  # noqa: E402
import torch  # noqa: E402
import yaml  # noqa: E402

from hpo.storage import schema_stamped  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SMOKE = REPO / "studies" / "smoke.yaml"
PG_ADMIN_URL = "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"

pytest_plugins = ("tests._cpu_accounting",)  # --cpu-top N: where CI's CPU goes


# Every test declares its tier where it is written (a module's ``pytestmark`` or the test's own
# decorator): ``unit`` runs in this process (``make test-quick``: ``-m "unit and not slow"``),
# ``e2e`` starts processes or servers. ``postgres``, ``browser`` and ``docker`` say which server a
# test needs. Collection refuses a test that declares no tier, two, or uses the PostgreSQL
# fixtures without ``postgres``; a unit test that starts the hpo CLI, a Python process, a
# browser or a server fails (see ``unit_tests_stay_in_process``).
TIERS = ("unit", "e2e")
POSTGRES_FIXTURES = {"postgres", "pg_url", "module_pg_url"}
SERVER_PROGRAMS = {"hpo", "chromium", "docker", "docker-compose", "dockerd", "pg_ctl", "postgres",
                   "initdb", "gunicorn", "optuna-dashboard", "moto_server"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    problems = []
    for item in items:
        tiers = {m.name for m in item.iter_markers() if m.name in TIERS}
        if len(tiers) != 1:
            problems.append(f"{item.nodeid}: declares {sorted(tiers) or 'no tier'}; declare "
                            "exactly one of pytest.mark.unit (in process) or pytest.mark.e2e")
        uses_server = POSTGRES_FIXTURES & set(getattr(item, "fixturenames", ()))
        if uses_server and item.get_closest_marker("postgres") is None:
            problems.append(f"{item.nodeid}: uses {sorted(uses_server)}; declare "
                            "pytest.mark.postgres")
    if problems:
        raise pytest.UsageError("test markers:\n" + "\n".join(problems))
    # The e2e tests first, each tier in its collection order. pytest-xdist's work stealing gives
    # each worker a contiguous share and steals from the ends of the queues, so a run then ends
    # on in-process tests (seconds each), not on a fault test (up to a minute) that one worker
    # finishes while the others wait. bench/test_schedule.py, replaying a CI run's logged test
    # durations through that scheduler (README, "Where a run's wall time goes"): the last worker
    # ends 6 s after a perfect split at the median, 14 s at the 90th percentile, against 13 and
    # 27 s in module order.
    items.sort(key=lambda item: item.get_closest_marker("unit") is not None)


@pytest.fixture(autouse=True)
def unit_tests_stay_in_process(request: pytest.FixtureRequest,
                               monkeypatch: pytest.MonkeyPatch) -> None:
    """A ``unit`` test may not start the hpo CLI, a Python process, a browser or a server."""
    if request.node.get_closest_marker("unit") is None:
        return
    original = subprocess.Popen.__init__

    def guarded(self: subprocess.Popen, args: Any, *rest: Any, **kwargs: Any) -> None:
        argv = [args] if isinstance(args, str | os.PathLike) else list(args)
        program = os.path.basename(str(argv[0])) if argv else ""
        if str(argv[0]) == sys.executable or program in SERVER_PROGRAMS or "python" in program:
            raise AssertionError(f"a unit test started {program!r}: mark it pytest.mark.e2e")
        original(self, args, *rest, **kwargs)

    monkeypatch.setattr(subprocess.Popen, "__init__", guarded)


@pytest.fixture(autouse=True)
def one_torch_thread():
    """One torch thread, as workers run: on a shared 2-core machine more threads thrash."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _admin() -> sqlalchemy.Engine:
    return sqlalchemy.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT",
                                    poolclass=sqlalchemy.pool.NullPool)


@pytest.fixture(scope="session")
def postgres() -> sqlalchemy.Engine:
    """The real server on 127.0.0.1:5432 (.ci/run starts it); fail loudly if it is down."""
    engine = _admin()
    try:
        with engine.connect() as conn:
            conn.execute(sqlalchemy.text("SELECT 1"))
    except sqlalchemy.exc.OperationalError as err:
        pytest.fail(f"PostgreSQL is not reachable on 127.0.0.1:5432 ({err.orig}); "
                    "start it as .ci/run does")
    return engine


def _new_database(engine: sqlalchemy.Engine) -> tuple[str, str]:
    name = f"hpo_test_{uuid.uuid4().hex[:12]}"
    with engine.connect() as conn:
        conn.execute(sqlalchemy.text(f'CREATE DATABASE "{name}"'))
    return name, f"postgresql+psycopg2://postgres@127.0.0.1:5432/{name}"


def _drop_database(engine: sqlalchemy.Engine, name: str) -> None:
    with engine.connect() as conn:
        conn.execute(sqlalchemy.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def pg_url(postgres: sqlalchemy.Engine) -> Iterator[str]:
    """A URL to a brand-new database, dropped afterwards."""
    name, url = _new_database(postgres)
    yield url
    _drop_database(postgres, name)


@pytest.fixture(scope="module")
def module_pg_url(postgres: sqlalchemy.Engine) -> Iterator[str]:
    """Like ``pg_url``, shared by the tests of one module."""
    name, url = _new_database(postgres)
    yield url
    _drop_database(postgres, name)


@pytest.fixture
def procs() -> Iterator[Any]:
    """Processes started by a test (``procs.start("worker", ...)``), killed with their groups at
    the end, pass or fail (tests/_faults.py)."""
    from tests._faults import processes

    with processes() as started:
        yield started


@pytest.fixture(params=["journal", pytest.param("postgres", marks=pytest.mark.postgres)])
def storage_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A behaviour that must hold on both storages runs on each: the embedded journal file in
    ``tmp_path``, and a brand-new PostgreSQL database."""
    if request.param == "journal":
        return str(tmp_path / "runs" / "hpo.journal")
    return request.getfixturevalue("pg_url")


def hpo_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HPO_")}
    env.update(extra)
    return env


def journal_study(cwd: Path, name: str) -> optuna.Study:
    """Study ``name`` in the default embedded storage under ``cwd``, read with optuna-dashboard's
    own loader (what a user's dashboard would see)."""
    from optuna_dashboard._storage_url import get_storage

    storage = get_storage(str(cwd / "runs" / "hpo.journal"))
    return optuna.load_study(study_name=name, storage=storage)


def journal_trials(cwd: Path, name: str) -> list[optuna.trial.FrozenTrial]:
    """The trials of study ``name``, as :func:`journal_study` reads it."""
    return journal_study(cwd, name).get_trials()


_READERS: dict[str, optuna.storages.RDBStorage] = {}


def _unpooled(url: str) -> optuna.storages.RDBStorage:
    """A storage that reads ``url``, built once its schema is complete: Optuna's RDBStorage
    creates whatever schema it finds missing, so one built while workers create theirs would
    race them, a race a worker lost once in CI (the worker now rides it through; a test must
    not provoke it). Before then, KeyError: what ``wait_for`` reads as "not there yet"."""
    if url not in _READERS:
        engine = sqlalchemy.create_engine(url, poolclass=sqlalchemy.pool.NullPool)
        try:
            with engine.connect() as conn:
                stamped = schema_stamped(conn)
        finally:
            engine.dispose()
        if not stamped:
            raise KeyError(f"no complete Optuna schema at {url} yet")
        _READERS[url] = optuna.storages.RDBStorage(
            url, engine_kwargs={"poolclass": sqlalchemy.pool.NullPool}, skip_table_creation=True)
    return _READERS[url]


def reading_storage(storage: Any) -> Any:
    """What a test reads a study through: for a database URL one storage per URL whose
    connections close after each use. ``load_study(storage=url)`` builds a new engine and pool
    per call, whose connection lives until garbage collection: polled in a wait loop under load,
    those filled a private server's 60 connections ("too many clients") in CI. A journal
    file's path is read as a journal."""
    if isinstance(storage, str) and "://" in storage:
        return _unpooled(storage)
    if isinstance(storage, str | Path):
        return optuna.storages.JournalStorage(
            optuna.storages.journal.JournalFileBackend(str(storage)))
    return storage


def hpo_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "hpo", *args]


def run_hpo(*args: str, cwd: Path, timeout: float = 300, **env: str
            ) -> subprocess.CompletedProcess:
    """Run the real CLI in ``cwd`` (so its default ``runs/`` lands there)."""
    return subprocess.run(hpo_cmd(*args), cwd=cwd, env=hpo_env(**env), text=True,
                          capture_output=True, timeout=timeout)


def start_hpo(*args: str, cwd: Path, log: Path | None = None, **env: str) -> subprocess.Popen:
    out: Any = open(log, "w") if log is not None else subprocess.DEVNULL  # noqa: SIM115
    return subprocess.Popen(hpo_cmd(*args), cwd=cwd, env=hpo_env(**env), text=True,
                            stdout=out, stderr=subprocess.STDOUT)


# The cheapest scoring a study file allows (each key at its lower bound, no k-NN diagnostic), for
# tests that check the path a trial takes rather than the value it gets: the final D_s, its
# profile at 0.5 s and 2 s and the pruning reports cost time linear in eval_samples x n_target,
# so studies/smoke.yaml's scoring (500 points x 3 replicates, 2000 report points) was most of
# a tiny trial's time.
LIGHT_METRIC: dict[str, Any] = {"n_target": 10_000, "n_report": 500, "eval_samples": 100,
                                "replicates": 2, "knn": False}


def study_variant(tmp_path: Path, name: str, **changes: Any) -> Path:
    """A copy of studies/smoke.yaml with top-level sections replaced, written under tmp_path."""
    data = yaml.safe_load(SMOKE.read_text())
    data["name"] = name
    data.update(changes)
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def slow_study(tmp_path: Path, name: str, trials: int) -> Path:
    """Classical only, no pruning, trials long enough (600 steps) to be caught mid-way; the
    final score, which comes after the steps, as cheap as a study file allows."""
    spec = yaml.safe_load(SMOKE.read_text())
    return study_variant(
        tmp_path, name, budget={"trials": trials, "steps": 600, "eval_every": 100},
        pruner={"kind": "none"}, metric=LIGHT_METRIC,
        search={"shared": spec["search"]["shared"],
                "generators": {"classical": spec["search"]["generators"]["classical"]}})
