"""Shared fixtures: a fresh PostgreSQL database per use, and running the real `hpo` CLI."""

from __future__ import annotations

import functools
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import optuna
import pytest
import sqlalchemy
import torch
import yaml

REPO = Path(__file__).resolve().parents[1]
SMOKE = REPO / "studies" / "smoke.yaml"
PG_ADMIN_URL = "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"


# Markers, so that `pytest -m "not postgres and not browser and not e2e"` is a quick inner loop;
# `make test` runs everything.
POSTGRES_FIXTURES = {"postgres", "pg_url", "module_pg_url"}
E2E_MODULES = {"test_hpo_embedded", "test_hpo_input", "test_hpo_postgres", "test_compose",
               "test_faults_journal", "test_faults_postgres", "test_dashboard_browser",
               "test_compose_engine"}
BROWSER_MODULES = {"test_dashboard_browser"}
POSTGRES_MODULES = {"test_compose", "test_dashboard_browser", "test_faults_postgres"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        module = item.module.__name__.rpartition(".")[2] if item.module else ""
        if module in POSTGRES_MODULES or POSTGRES_FIXTURES & set(getattr(item, "fixturenames",
                                                                          ())):
            item.add_marker(pytest.mark.postgres)
        if module in E2E_MODULES:
            item.add_marker(pytest.mark.e2e)
        if module in BROWSER_MODULES:
            item.add_marker(pytest.mark.browser)


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


@functools.cache
def _unpooled(url: str) -> optuna.storages.RDBStorage:
    return optuna.storages.RDBStorage(url, engine_kwargs={"poolclass": sqlalchemy.pool.NullPool})


def reading_storage(storage: Any) -> Any:
    """What a test reads a study through: for a database URL one storage per URL whose
    connections close after each use. ``load_study(storage=url)`` builds a new engine and pool
    per call, whose connection lives until garbage collection: polled in a wait loop under load,
    those filled a private server's 60 connections ("too many clients") in CI."""
    return _unpooled(storage) if isinstance(storage, str) and "://" in storage else storage


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


def study_variant(tmp_path: Path, name: str, **changes: Any) -> Path:
    """A copy of studies/smoke.yaml with top-level sections replaced, written under tmp_path."""
    data = yaml.safe_load(SMOKE.read_text())
    data["name"] = name
    data.update(changes)
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def slow_study(tmp_path: Path, name: str, trials: int) -> Path:
    """Classical only, no pruning, trials long enough (600 steps) to be caught mid-way."""
    spec = yaml.safe_load(SMOKE.read_text())
    return study_variant(
        tmp_path, name, budget={"trials": trials, "steps": 600, "eval_every": 100},
        pruner={"kind": "none"},
        search={"shared": spec["search"]["shared"],
                "generators": {"classical": spec["search"]["generators"]["classical"]}})
