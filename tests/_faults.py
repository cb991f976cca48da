"""Helpers of the fault-injection suite: processes killed by group whatever happens, a private
PostgreSQL cluster that may be stopped and restarted, and the checks every fault test makes."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import optuna
import yaml
from optuna.trial import FrozenTrial, TrialState

from tests.conftest import LIGHT_METRIC, REPO, SMOKE, hpo_cmd, hpo_env, reading_storage

# How long a test waits for workers to get a trial under way: on a shared 2-core machine under
# heavy load (two copies of the suite and others' work) importing torch alone can take minutes.
STARTUP_S = 300.0

# Fault tests run on heartbeats this short so that a stale trial is noticed in seconds.
FAST_HEARTBEAT = {"interval": 1, "grace_period": 4}


def freeze_worker_cmd(study: Path, worker_id: str) -> list[str]:
    """``hpo worker STUDY --worker-id ID`` through tests/_freeze_worker.py, which freezes, drops
    its connection or kills itself where its ``FREEZE_AT`` environment variable says."""
    return [sys.executable, str(REPO / "tests" / "_freeze_worker.py"), "worker", str(study),
            "--worker-id", worker_id]


def fault_study(tmp_path: Path, name: str, trials: int, steps: int = 30,
                heartbeat: dict | None = None, metric: dict | None = None) -> Path:
    """Classical only, no pruning, tiny trials (``steps`` generator steps, KL every 10), scored
    cheaply (``LIGHT_METRIC`` unless ``metric`` says otherwise): a fault test checks a trial's
    life, not its score, and the smoke study's fuller scoring cost about 0.65 s of CPU more per
    trial, over some 130 trials here."""
    spec = yaml.safe_load(SMOKE.read_text())
    spec.update(name=name, budget={"trials": trials, "steps": steps, "eval_every": 10},
                metric=metric or LIGHT_METRIC,
                pruner={"kind": "none"}, heartbeat=heartbeat or FAST_HEARTBEAT,
                search={"shared": spec["search"]["shared"],
                        "generators": {"classical": spec["search"]["generators"]["classical"]}})
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


class Processes:
    """Processes started in sessions of their own, so that each is killed with its whole
    group at teardown even when the test failed half-way."""

    def __init__(self) -> None:
        self.started: list[subprocess.Popen] = []
        self.folders: set[Path] = set()

    def start(self, *args: str, cwd: Path, log: Path, **env: str) -> subprocess.Popen:
        out = open(log, "w")  # noqa: SIM115 - closed with the process
        proc = subprocess.Popen(hpo_cmd(*args), cwd=cwd, env=hpo_env(**env), text=True,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        proc.log_path = log  # type: ignore[attr-defined]
        out.close()
        self.started.append(proc)
        self.folders.add(Path(cwd).resolve())
        return proc

    def kill_all(self) -> None:
        """Kill the group of every process started, and of any process they started that runs
        in one of their folders (a launcher's workers live in sessions of their own)."""
        groups = {proc.pid for proc in self.started}
        groups |= {os.getpgid(pid) for pid in _pids_in(self.folders) if _exists(pid)}
        for group in groups:
            for sig in (signal.SIGCONT, signal.SIGKILL):  # a stopped group must wake to die
                try:
                    os.killpg(group, sig)
                except (ProcessLookupError, PermissionError):
                    pass
        for proc in self.started:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass


def _pids_in(folders: set[Path]) -> list[int]:
    """Processes whose working directory is one of ``folders`` (not this one)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cwd = Path(os.readlink(entry / "cwd"))
        except OSError:
            continue
        if cwd in folders:
            pids.append(int(entry.name))
    return pids


def _exists(pid: int) -> bool:
    try:
        os.getpgid(pid)
        return True
    except ProcessLookupError:
        return False


def wait_for(what: str, check: Callable[[], Any], timeout: float, every: float = 0.2) -> Any:
    """Poll ``check()`` until it returns something truthy; fail naming ``what`` on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = check()
        except (KeyError, ValueError, OSError, optuna.exceptions.StorageInternalError):
            value = None  # storage not there yet, or down on purpose
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def trials_of(storage: Any, name: str) -> list[FrozenTrial]:
    return optuna.load_study(study_name=name, storage=reading_storage(storage)).get_trials(
        deepcopy=False)


def running_with_report(storage: Any, name: str) -> list[FrozenTrial]:
    return [t for t in trials_of(storage, name)
            if t.state == TrialState.RUNNING and t.intermediate_values]


def assert_exact_study(trials: list[FrozenTrial], budget: int) -> list[FrozenTrial]:
    """The checks every fault test makes; returns the failed trials that were retried.

    Exactly ``budget`` trials finished (a retried FAIL does not count, nor an untrained
    surplus one), nothing RUNNING or WAITING, every trial number once, every retry of one
    original (its params, and seed) and never two retries of one trial trained: a second one,
    queued across a lock a database restart took, ends surplus (hpo.trials.duplicate_retry).
    """
    assert sorted(t.number for t in trials) == list(range(len(trials)))
    assert not [t.number for t in trials
                if t.state in (TrialState.RUNNING, TrialState.WAITING)], \
        [(t.number, t.state.name) for t in trials]
    by_number = {t.number: t for t in trials}
    retried: dict[int, FrozenTrial] = {}
    for t in trials:
        history = t.system_attrs.get("retry_history", [])
        if not history or t.user_attrs.get("outcome") == "surplus":  # checked untrained below
            continue
        parent = by_number[history[-1]]
        assert parent.number not in retried, f"trial {parent.number} was re-queued twice"
        retried[parent.number] = t
        assert parent.state == TrialState.FAIL
        # A parent that reported trained its whole configuration, which its retry runs again;
        # one cut off inside its suggestions never trained, and its retry draws what it lacks.
        kept = t.params == parent.params if parent.intermediate_values else \
            parent.params.items() <= t.params.items()
        assert kept, (t.number, parent.number, t.params, parent.params)
        if t.state != TrialState.WAITING and "seed" in t.user_attrs:
            # fault studies have seed 0: a trial's seed is its first attempt's number
            assert t.user_attrs["seed"] == history[0], (t.number, history)
    # A surplus trial (created past the budget by a worker that woke from a freeze) holds no
    # slot, and must never have been trained.
    surplus = [t for t in trials if t.user_attrs.get("outcome") == "surplus"]
    assert all(t.state == TrialState.FAIL and not t.intermediate_values for t in surplus)
    finished = [t for t in trials if t.number not in retried and t not in surplus]
    assert len(finished) == budget, (len(finished), budget,
                                     [(t.number, t.state.name) for t in trials])
    assert all(t.state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
               for t in finished)
    return [by_number[n] for n in retried]


def wait_all(workers: list[subprocess.Popen], timeout: float = 400) -> list[int]:
    """Exit codes of ``workers``, all within ``timeout`` s; else kill them and fail, naming the
    first still running (and its log, when :class:`Processes` started it)."""
    deadline = time.monotonic() + timeout
    codes = []
    for w in workers:
        try:
            codes.append(w.wait(timeout=max(1.0, deadline - time.monotonic())))
        except subprocess.TimeoutExpired:
            for other in workers:
                other.kill()
            log = getattr(w, "log_path", None)
            raise AssertionError(f"worker {w.args} still running after {timeout:.0f} s"
                                 + (f"; log:\n{log.read_text()}" if log else "")) from None
    return codes


@contextmanager
def processes() -> Iterator[Processes]:
    """A :class:`Processes` whose every process is killed at the end, pass or fail."""
    started = Processes()
    try:
        yield started
    finally:
        started.kill_all()


def retried_numbers(trials: list[FrozenTrial]) -> set[int]:
    """Numbers of the failed trials that some trial retries, from Optuna's retry_history (every
    trial of a series: "failed_trial" names only the first, and misses a retry that failed in
    turn)."""
    return {n for t in trials for n in t.system_attrs.get("retry_history", [])}


def retries_and_proposals(trials: list[FrozenTrial]
                          ) -> tuple[list[FrozenTrial], list[FrozenTrial]]:
    """Retries, each checked to repeat its failed trial's parameters, and the trials whose
    parameters a sampler proposed. A trial that failed before it had parameters (its worker died
    as it began) is retried without any: that retry's sampler proposes them."""
    by_number = {t.number: t for t in trials}
    retries, proposals = [], []
    for t in trials:
        # Optuna's retry_history lists the series oldest first; its "failed_trial" names the
        # series' first trial, not the one this retries (a retry inherits its parent's attrs)
        original = by_number.get((t.system_attrs.get("retry_history") or [-1])[-1])
        if original is not None and original.params:
            # a worker frozen while it suggested leaves a partial set; its retry completes it
            assert original.params.items() <= t.params.items(), (t.number, original.number)
            retries.append(t)
        elif t.params:
            proposals.append(t)
    return retries, proposals


def assert_clean_log(log: Path) -> str:
    text = log.read_text()
    assert "Traceback" not in text, text
    return text


# --- a private PostgreSQL cluster --------------------------------------------------------------

def _free_port() -> int:
    """A free port below the ephemeral range (32768+), so that no client socket takes it while
    the server is down for a restart."""
    import random

    for port in random.sample(range(20000, 32000), 200):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port in 20000-32000 for a private PostgreSQL")


class PrivatePostgres:
    """``initdb`` into a temp dir and ``pg_ctl`` on a free port, as the postgres OS user: a
    server this suite may stop, restart and cut off without touching the shared one on 5432."""

    def __init__(self) -> None:
        self.bin = sorted(glob.glob("/usr/lib/postgresql/*/bin"),
                          key=lambda p: int(p.split("/")[-2]))[-1]
        self.root = Path(tempfile.mkdtemp(prefix="hpo-faults-pg-"))
        self.data = self.root / "data"
        self.port = _free_port()
        user = pwd.getpwnam("postgres")
        os.chown(self.root, user.pw_uid, user.pw_gid)
        self._as_postgres("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres",
                          "--no-sync", "-E", "UTF8")
        self.url = f"postgresql+psycopg2://postgres@127.0.0.1:{self.port}/postgres"

    def _as_postgres(self, tool: str, *args: str, timeout: float = 240) -> None:
        subprocess.run(["runuser", "-u", "postgres", "--", f"{self.bin}/{tool}", *args],
                       check=True, capture_output=True, timeout=timeout)

    def start(self) -> None:
        options = (f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off "
                   "-c max_connections=60 -c shared_buffers=16MB")
        self._as_postgres("pg_ctl", "-D", str(self.data), "-o", options,
                          "-l", str(self.root / "server.log"), "-w", "-t", "180", "start")

    def stop(self, mode: str = "fast", wait: bool = True) -> None:
        """``pg_ctl stop``; ``wait=False`` returns at once (a smart stop then waits for the
        open sessions, refusing new ones: "the database system is shutting down")."""
        self._as_postgres("pg_ctl", "-D", str(self.data), "-m", mode,
                          *(("-w", "-t", "180") if wait else ("-W",)), "stop")

    def log(self) -> str:
        return (self.root / "server.log").read_text(errors="replace")

    def database(self) -> str:
        """A fresh database on this server; its URL."""
        import sqlalchemy

        name = f"faults_{os.urandom(5).hex()}"
        engine = sqlalchemy.create_engine(self.url, isolation_level="AUTOCOMMIT",
                                          poolclass=sqlalchemy.pool.NullPool)
        with engine.connect() as conn:
            conn.execute(sqlalchemy.text(f'CREATE DATABASE "{name}"'))
        return self.url.rsplit("/", 1)[0] + f"/{name}"

    def execute(self, sql: str) -> list[tuple]:
        import sqlalchemy

        engine = sqlalchemy.create_engine(self.url, isolation_level="AUTOCOMMIT",
                                          poolclass=sqlalchemy.pool.NullPool)
        with engine.connect() as conn:
            result = conn.execute(sqlalchemy.text(sql))
            return list(result) if result.returns_rows else []

    def destroy(self) -> None:
        try:
            self.stop("immediate")
        except subprocess.SubprocessError:
            pass
        shutil.rmtree(self.root, ignore_errors=True)


@contextmanager
def private_postgres() -> Iterator[PrivatePostgres]:
    server = PrivatePostgres()
    try:
        server.start()
        yield server
    finally:
        server.destroy()
