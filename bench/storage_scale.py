"""How many workers one PostgreSQL holds: N simulated workers against a private server.

Each simulated worker does towards the storage what ``hpo worker`` does for a trial of
studies/gaussgan.yaml: its own storage object (hpo.storage.open_storage, so its pool and heartbeat
settings) and its own budget lock (hpo.storage.ProcessLock); claim a budget slot under the lock
(stale-trial check, budget count over all trials, new RUNNING trial with the study's TPE sampler),
the trial's user attributes, 30 intermediate reports each followed by the pruner's question,
Optuna's heartbeat thread, a small artifact, completion. Training is a sleep, so a trial lasts
``--trial-seconds`` instead of minutes: N simulated workers put the load of many more real ones
on the server, and the projection below scales it back.

Workers are threads spread over a few processes (a real worker imports torch, about 0.5 GB):
what is measured is what the database sees. The server is a private cluster (initdb into a temp
directory, pg_ctl on a free port, max_connections set for the largest N), never the shared one,
and it is removed afterwards even on failure.

    .venv/bin/python bench/storage_scale.py           # N = 8, 32, 128, 256 -> docs/scaling.md
    .venv/bin/python bench/storage_scale.py --workers 8 --seconds 10 --out /tmp/s.md
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

STUDY_FILE = REPO / "studies" / "gaussgan.yaml"
REPORTS = 30            # gaussgan: 3000 steps, a report every 100
HEARTBEAT_S = 1         # Optuna's smallest interval; gaussgan's is 10 s (scaled in the projection)
CONNECTIONS_PER_WORKER = 2
BUDGET = 1_000_000      # never met: workers run until the window closes
PG_BIN = sorted(Path("/usr/lib/postgresql").glob("*/bin"))[-1] if Path(
    "/usr/lib/postgresql").exists() else None


# ---------------------------------------------------------------------------------------------
# A private PostgreSQL cluster
# ---------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _as_postgres(*argv: str) -> subprocess.CompletedProcess:
    prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    return subprocess.run([*prefix, *argv], capture_output=True, text=True, timeout=120,
                          check=True)


@dataclass
class Cluster:
    port: int
    data: Path
    url_base: str

    def url(self, database: str) -> str:
        return f"{self.url_base}/{database}"

    def postmaster_pid(self) -> int:
        return int((self.data / "postmaster.pid").read_text().split()[0])


@contextlib.contextmanager
def private_cluster(max_connections: int) -> Iterator[Cluster]:
    """initdb + pg_ctl start on a free port as the postgres user; stopped and deleted on exit."""
    if PG_BIN is None:
        raise SystemExit("no PostgreSQL binaries under /usr/lib/postgresql/*/bin")
    root = Path(tempfile.mkdtemp(prefix="hpo-scale-"))
    data, port = root / "data", free_port()
    started = False
    try:
        if os.geteuid() == 0:
            shutil.chown(root, "postgres", "postgres")
        _as_postgres(str(PG_BIN / "initdb"), "-D", str(data), "-U", "postgres",
                     "--auth=trust", "--no-sync", "-E", "UTF8")
        options = (f"-p {port} -c listen_addresses=127.0.0.1 -k {root} "
                   f"-c max_connections={max_connections} -c fsync=off "
                   f"-c synchronous_commit=off")
        _as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(data), "-o", options,
                     "-l", str(root / "server.log"), "-w", "-t", "60", "start")
        started = True
        yield Cluster(port, data, f"postgresql+psycopg2://postgres@127.0.0.1:{port}")
    finally:
        if started:
            with contextlib.suppress(subprocess.SubprocessError):
                _as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "immediate",
                             "-w", "stop")
        shutil.rmtree(root, ignore_errors=True)


def server_memory_mb(postmaster: int) -> float:
    """Proportional set size (MB) of the postmaster and its backends: shared buffers counted once,
    each backend's private memory in full (/proc/PID/smaps_rollup)."""
    total_kb = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError, IndexError):
            stat = (entry / "stat").read_text()
            ppid = int(stat[stat.rindex(")") + 2:].split()[1])
            if int(entry.name) != postmaster and ppid != postmaster:
                continue
            for line in (entry / "smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total_kb += int(line.split()[1])
    return total_kb / 1024


def server_cpu_seconds(postmaster: int) -> float:
    """CPU seconds used so far by the postmaster and every backend, live or exited (/proc)."""
    tick = os.sysconf("SC_CLK_TCK")

    def fields(pid: int) -> list[str]:
        text = Path(f"/proc/{pid}/stat").read_text()
        return text[text.rindex(")") + 2:].split()  # after "pid (comm) "

    own = fields(postmaster)
    # utime, stime, and cutime + cstime: exited backends the postmaster has reaped.
    total = sum(int(own[i]) for i in (11, 12, 13, 14))
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError, IndexError):
            f = fields(int(entry.name))
            if int(f[1]) == postmaster:  # ppid
                total += int(f[11]) + int(f[12])
    return total / tick


# ---------------------------------------------------------------------------------------------
# A simulated worker (runs in a thread of a child process)
# ---------------------------------------------------------------------------------------------


@dataclass
class Timings:
    claim: list[float] = field(default_factory=list)     # lock wait + hold, until RUNNING
    hold: list[float] = field(default_factory=list)      # lock held (what serialises claims)
    queued: int = 0                                      # still waiting as the window closed
    report: list[float] = field(default_factory=list)    # trial.report + should_prune
    heartbeat: list[float] = field(default_factory=list)
    completed: int = 0
    errors: Counter = field(default_factory=Counter)

    def merge(self, other: Timings) -> None:
        for name in ("claim", "hold", "report", "heartbeat"):
            getattr(self, name).extend(getattr(other, name))
        self.completed += other.completed
        self.queued += other.queued
        self.errors.update(other.errors)


class TimedLock:
    """The worker's budget lock, timing how long each claim waited for it and held it."""

    def __init__(self, lock, out: Timings, in_window) -> None:
        self.lock, self.out, self.in_window = lock, out, in_window
        self.asked = self.acquired = 0.0

    def acquire(self, stop) -> bool:
        self.asked = time.perf_counter()
        got = self.lock.acquire(stop)
        self.acquired = time.perf_counter()
        if not got:
            self.out.queued += 1  # still waiting when the window closed
        return got

    def release(self) -> None:
        if self.lock.held and self.in_window():
            now = time.perf_counter()
            self.out.hold.append(now - self.acquired)
            self.out.claim.append(now - self.asked)
        self.lock.release()

    def close(self) -> None:
        self.lock.close()


def _simulated_worker(url: str, worker: int, trial_seconds: float, sync: Sync, artifacts: str,
                      out: Timings) -> None:
    import optuna
    from optuna.artifacts import FileSystemArtifactStore, upload_artifact

    from hpo.space import load_spec
    from hpo.storage import close_storage, open_storage, process_lock
    from hpo.strategy import make_pruner, make_sampler
    from hpo.worker import _claim_slot, _run_one  # the worker's own steps: the bench follows it

    spec = load_spec(str(STUDY_FILE))
    spec = spec.model_copy(update={
        "budget": spec.budget.model_copy(update={"trials": BUDGET}),
        "heartbeat": spec.heartbeat.model_copy(update={"interval": HEARTBEAT_S})})
    start_at, stop_at = float("inf"), float("-inf")  # the window, once every worker is ready

    def in_window() -> bool:
        return start_at <= time.time() <= stop_at

    storage = open_storage(url, spec)
    beat = storage.record_heartbeat  # timed where Optuna's heartbeat thread calls it

    def timed_beat(trial_id: int) -> None:
        t0 = time.perf_counter()
        beat(trial_id)
        if in_window():
            out.heartbeat.append(time.perf_counter() - t0)

    storage.record_heartbeat = timed_beat
    study = optuna.load_study(study_name="scale", storage=storage,
                              sampler=make_sampler(spec, worker), pruner=make_pruner(spec))
    lock = TimedLock(process_lock(url, "hpo:budget:scale"), out, in_window)
    store = FileSystemArtifactStore(artifacts)
    png = Path(artifacts) / f"sample-{worker}.png"
    png.write_bytes(os.urandom(30_000))  # about the size of a trial's sample plot
    rng = random.Random(worker)

    def objective(trial: optuna.Trial) -> float:
        kind = trial.suggest_categorical("generator", ["classical", "quantum"])
        trial.suggest_float("lr_generator", 1e-4, 1e-2, log=True)
        trial.suggest_float("lr_critic", 1e-4, 1e-2, log=True)
        trial.suggest_categorical("n_critic", [3, 5])
        trial.suggest_categorical("batch_size", [128, 256])
        for key in ("worker", "worker_process", "config", "seed", "code_version",
                    "generator_kind"):
            trial.set_user_attr(key, f"{kind}-{worker}-{key}")
        value = rng.uniform(0.3, 3.0)
        for step in range(1, REPORTS + 1):
            time.sleep(trial_seconds / REPORTS)
            value *= rng.uniform(0.95, 1.0)
            t0 = time.perf_counter()
            trial.report(value, step * 100)
            trial.should_prune()  # the pruner reads the study; the trial carries on regardless
            if in_window():
                out.report.append(time.perf_counter() - t0)
        for key in ("kl_stderr", "kl_ci", "w2", "mode_coverage", "n_params", "steps", "seconds",
                    "kl_correction", "kl_details_json"):
            trial.set_user_attr(key, value)
        trial.set_user_attr("ended", "complete")
        upload_artifact(artifact_store=store, file_path=str(png), study_or_trial=trial,
                        mimetype="image/png")
        if in_window():
            out.completed += 1
        return value

    def stop() -> bool:
        return time.time() >= stop_at

    def say(line: str) -> None:
        if ": complete" not in line and in_window():  # a trial that failed, or a storage fault
            out.errors[line.split(": ", 1)[-1][:300]] += 1

    sync.ready.put(worker)
    sync.go.wait()
    start_at = time.time()
    stop_at = start_at + sync.seconds
    while not stop():
        try:
            claimed = _claim_slot(study, spec, lock, stop)
            if claimed is None:
                break
            _run_one(study, spec, objective, lock, stop, say)
        except Exception as err:  # counted and shown; the worker goes on
            if in_window():
                first = (str(getattr(err, "orig", None) or err).strip().splitlines() or [""])[0]
                out.errors[f"{type(err).__name__}: {first[:300]}"] += 1
                time.sleep(1.0)
        finally:
            lock.release()
    lock.close()
    close_storage(storage)


@dataclass
class Sync:
    """Every simulated worker sets up, says so on ``ready``, and starts its window on ``go``."""

    ready: object
    go: object
    seconds: float


def run_group(url: str, workers: list[int], trial_seconds: float, sync: Sync,
              artifacts: str) -> Timings:
    """One child process: ``workers`` simulated workers as threads; their merged timings."""
    import optuna

    from hpo.storage import open_storage

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    # Import every lazily imported module (SQLAlchemy's ORM, alembic) before the threads start:
    # threads importing the same module at once can see it half initialised.
    open_storage(url).engine.dispose()
    results = [Timings() for _ in workers]
    threads = [threading.Thread(target=_guarded, args=(url, w, trial_seconds, sync, artifacts, r),
                                daemon=True)
               for w, r in zip(workers, results, strict=True)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    merged = Timings()
    for r in results:
        merged.merge(r)
    return merged


def _guarded(*args) -> None:
    out: Timings = args[-1]
    try:
        _simulated_worker(*args)
    except Exception as err:  # a worker that could not even start is an error, not a crash
        first = (str(getattr(err, "orig", None) or err).strip().splitlines() or [""])[0]
        out.errors[f"start: {type(err).__name__}: {first[:300]}"] += 1
        args[3].ready.put(-1)


# ---------------------------------------------------------------------------------------------
# One N, measured
# ---------------------------------------------------------------------------------------------


@dataclass
class Row:
    n: int
    seconds: float
    completed: int
    timings: Timings
    peak_connections: int
    server_cpu: float     # cores (CPU-seconds per wall second) over the window
    setup_s: float        # seconds until every simulated worker had opened its storage
    trial_seconds: float  # the simulated trial's length
    server_mb: float      # the server's memory (PSS, MB) as the window closed

    @property
    def trials_per_s(self) -> float:
        return self.completed / self.seconds

    @property
    def claims_per_s(self) -> float:
        return len(self.timings.claim) / self.seconds

    @property
    def server_cpu_per_trial(self) -> float:
        return self.server_cpu * self.seconds / max(self.completed, 1)


def _create_study(url: str) -> None:
    import optuna

    from hpo.space import load_spec
    from hpo.storage import open_storage

    spec = load_spec(str(STUDY_FILE))
    storage = open_storage(url, spec)
    optuna.create_study(study_name="scale", storage=storage, direction="minimize")
    storage.engine.dispose()


def _admin(url: str):
    import sqlalchemy

    return sqlalchemy.create_engine(url, isolation_level="AUTOCOMMIT",
                                    poolclass=sqlalchemy.pool.NullPool)


def measure(cluster: Cluster, n: int, seconds: float, trial_seconds: float,
            processes: int, tmp: Path) -> Row:
    import sqlalchemy

    database = f"scale_{n}"
    with _admin(cluster.url("postgres")).connect() as conn:
        conn.execute(sqlalchemy.text(f'CREATE DATABASE "{database}"'))
    url = cluster.url(database)
    _create_study(url)
    artifacts = tmp / f"artifacts-{n}"
    artifacts.mkdir()

    groups = [list(range(i, n, processes)) for i in range(min(processes, n))]

    peak = [0]
    done, window = threading.Event(), threading.Event()
    engine = _admin(url)

    def watch() -> None:
        with engine.connect() as conn:
            query = sqlalchemy.text("SELECT count(*) FROM pg_stat_activity WHERE datname = :d "
                                    "AND pid <> pg_backend_pid()")
            while not done.is_set():
                count = conn.execute(query, {"d": database}).scalar_one()
                if window.is_set():  # setup opens and closes extra connections: not counted
                    peak[0] = max(peak[0], count)
                done.wait(0.25)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    timings = Timings()
    context = get_context("spawn")
    t0 = time.time()
    with context.Manager() as manager, \
            ProcessPoolExecutor(len(groups), mp_context=context) as pool:
        sync = Sync(manager.Queue(), manager.Event(), seconds)
        futures = [pool.submit(run_group, url, g, trial_seconds, sync, str(artifacts))
                   for g in groups]
        for _ in range(n):  # each worker has opened its storage and lock (or failed to)
            sync.ready.get(timeout=600)
        setup = time.time() - t0
        cpu0 = server_cpu_seconds(cluster.postmaster_pid())
        sync.go.set()
        window.set()
        time.sleep(seconds)
        cpu1 = server_cpu_seconds(cluster.postmaster_pid())
        memory = server_memory_mb(cluster.postmaster_pid())
        window.clear()
        for f in futures:
            timings.merge(f.result())
    done.set()
    watcher.join()
    engine.dispose()
    return Row(n=n, seconds=seconds, completed=timings.completed, timings=timings,
               peak_connections=peak[0], server_cpu=(cpu1 - cpu0) / seconds, setup_s=setup,
               server_mb=memory, trial_seconds=trial_seconds)


# ---------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------


def _ms(values: list[float], q: float) -> str:
    return f"{1000 * np.quantile(values, q):.0f}" if values else "-"


def table(rows: list[Row]) -> str:
    head = ("| N | trials/s | claims/s | report p50 / p99 ms | heartbeat p50 / p99 ms | "
            "claim p50 / p99 ms | queued at end | lock held p50 / p99 ms | "
            "peak connections (per worker) | "
            "server CPU (cores) | server CPU-s per trial | server memory MB | errors |")
    lines = [head, "|" + "|".join(["---"] * (head.count("|") - 1)) + "|"]
    for r in rows:
        t = r.timings
        errors = sum(t.errors.values())
        lines.append(
            f"| {r.n} | {r.trials_per_s:.2f} | {r.claims_per_s:.2f} | "
            f"{_ms(t.report, .5)} / {_ms(t.report, .99)} | "
            f"{_ms(t.heartbeat, .5)} / {_ms(t.heartbeat, .99)} | "
            f"{_ms(t.claim, .5)} / {_ms(t.claim, .99)} | {t.queued} | "
            f"{_ms(t.hold, .5)} / {_ms(t.hold, .99)} | "
            f"{r.peak_connections} ({r.peak_connections / r.n:.2f}) | {r.server_cpu:.2f} | "
            f"{r.server_cpu_per_trial:.3f} | {r.server_mb:.0f} | {errors} |")
    return "\n".join(lines)


def projection(rows: list[Row], cores: int, max_connections: int) -> list[str]:
    """Workers per server for real trials of a few lengths, from the measured costs.

    Server CPU per trial is taken at the largest N (the study holds the most trials there, and
    every claim and pruning question reads them all); the lock's hold time at the N where it was
    shortest (the simulated workers' own CPU, shared here with everything else, inflates it).
    """
    big = max(rows, key=lambda r: r.n)
    cpu = big.server_cpu_per_trial
    holds = [(float(np.median(r.timings.hold)), r.n) for r in rows if r.timings.hold]
    hold, hold_n = min(holds) if holds else (float("nan"), 0)
    lines = [
        f"Server CPU per trial at N = {big.n}: {cpu:.3f} CPU-seconds. Budget lock held "
        f"{1000 * hold:.0f} ms per claim (median at N = {hold_n}, the shortest measured). "
        f"Connections: {CONNECTIONS_PER_WORKER} per worker.",
        "",
        "| trial length | workers at 100% of the budget lock | workers at 100% of the "
        f"server's {cores} cores | workers within max_connections = 100 / "
        f"{max_connections} |",
        "|---|---|---|---|",
    ]
    for t in (15, 30, 60, 300):
        lines.append(f"| {t} s | {t / hold:,.0f} | {cores * t / cpu:,.0f} | "
                     f"{(100 - 3) // CONNECTIONS_PER_WORKER} / "
                     f"{(max_connections - 3) // CONNECTIONS_PER_WORKER} |")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", default="8,32,128,256",
                        help="simulated worker counts (default: 8,32,128,256)")
    parser.add_argument("--seconds", type=float, default=30.0,
                        help="measured window per N (default: 30)")
    parser.add_argument("--trial-seconds", type=float, default=6.0,
                        help="simulated trial length (default: 6; real gaussgan trials are "
                             "minutes)")
    parser.add_argument("--processes", type=int, default=4,
                        help="processes the simulated workers are spread over (default: 4)")
    parser.add_argument("--out", default=str(REPO / "docs" / "scaling.md"),
                        help="markdown file to write (default: docs/scaling.md)")
    args = parser.parse_args()
    ns = [int(x) for x in args.workers.split(",")]
    if not ns or min(ns) < 1 or args.seconds <= 0 or args.trial_seconds <= 0 \
            or args.processes < 1:
        parser.error("--workers, --seconds, --trial-seconds and --processes must be positive")
    max_connections = CONNECTIONS_PER_WORKER * max(ns) + 20
    # SIGTERM (a CI timeout, kill) unwinds like Ctrl-C, so the private server is always removed.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    command = " ".join(["python bench/storage_scale.py", *sys.argv[1:]])

    wall0 = time.time()
    rows: list[Row] = []
    load0 = os.getloadavg()
    with private_cluster(max_connections) as cluster, \
            tempfile.TemporaryDirectory(prefix="hpo-scale-art-") as tmp:
        print(f"private PostgreSQL on 127.0.0.1:{cluster.port} (max_connections "
              f"{max_connections}), {args.seconds:.0f} s per N", flush=True)
        for n in ns:
            row = measure(cluster, n, args.seconds, args.trial_seconds, args.processes,
                          Path(tmp))
            rows.append(row)
            print(table([row]).splitlines()[-1], flush=True)
            for message, count in row.timings.errors.most_common(3):
                print(f"    {count} x {message}", flush=True)
    load1 = os.getloadavg()
    cores = os.cpu_count() or 1
    lines = projection(rows, cores, max_connections)
    print()
    print(table(rows))
    print("\n".join(lines))
    write_doc(Path(args.out), rows, lines, args, command, max_connections, cores,
              (load0[0], load1[0]), time.time() - wall0)
    return 0


def verdict(rows: list[Row], max_connections: int) -> str:
    """What limits first, what to do past it, and whether PgBouncer pays: from the rows."""
    small, big = min(rows, key=lambda r: r.n), max(rows, key=lambda r: r.n)
    extra = big.peak_connections - small.peak_connections
    per_connection = (big.server_mb - small.server_mb) / extra if extra > 0 else float("nan")
    hold = min(float(np.median(r.timings.hold)) for r in rows if r.timings.hold)
    claims = max(r.claims_per_s for r in rows)
    connection_errors = sum(c for r in rows for m, c in r.timings.errors.items()
                            if "connect" in m or "too many clients" in m)
    return f"""### What limits first, and what to do past it

1. **The budget lock** (a property of the worker's loop, not of PostgreSQL). Every claim holds
   the study's lock while it checks for stale trials, counts the budget over all trials and
   creates the trial with TPE's parameters (waiting workers poll it every 50-250 ms); here that
   took {1000 * hold:.0f} ms at best, so the whole study got at most {claims:.2f} claims per
   second however many workers waited ({big.timings.queued} of {big.n} were still queued when
   N = {big.n}'s window closed). A study of T-second trials keeps about T / {hold:.2f} workers
   busy (the first column above); on hosts whose workers do not share two cores the hold time
   is shorter, so the figures are a floor.
   Past it: run several studies (each has its own lock; one per generator kind is natural), make
   each trial longer (more steps per claim), or move work out of the locked section.
2. **Connections.** {big.peak_connections / big.n:.2f} per worker measured at N = {big.n}
   ({big.peak_connections} in all; {connection_errors} connection errors over all N):
   PostgreSQL's default max_connections = 100 holds 48 workers, docker-compose.yml's 300 holds
   128 with the dashboard, and {max_connections} held {big.n} here.
3. **The server's CPU** comes last: {big.server_cpu:.2f} cores at N = {big.n}, whose simulated
   workers each claim, report and beat as often as a real worker would with
   {big.trial_seconds:g}-second trials (gaussgan's are longer) and 1-second heartbeats.

### Connection pooling (PgBouncer): it does not pay

The number of connections is not what limits, and it costs little: going from
{small.peak_connections} to {big.peak_connections} connections moved the server's memory from
{small.server_mb:.0f} MB to {big.server_mb:.0f} MB (about {per_connection:.1f} MB per
connection) and its CPU from {small.server_cpu:.2f} to {big.server_cpu:.2f} cores. Raising
`max_connections` is all `--scale worker=128` needs (docker-compose.yml: 300). PgBouncer in
transaction mode would fold the 2 x N connections into a few dozen (the budget lock is already
transaction-scoped, `pg_try_advisory_xact_lock`, polled), but it would not touch the first
limit (the lock) nor the CPU that queued workers' polls cost, and it does not pass on the lock
connection's startup options: the lease (`idle_in_transaction_session_timeout`) that frees the
lock of a frozen holder would be lost. So docker-compose.yml runs no PgBouncer; it starts to pay
past about a thousand connections per server, where their memory adds up.
"""


def write_doc(path: Path, rows: list[Row], lines: list[str], args, command: str,
              max_connections: int, cores: int, load: tuple[float, float], wall: float) -> None:
    errors: Counter = Counter()
    for r in rows:
        errors.update(r.timings.errors)
    error_text = "\n".join(f"- {c} x `{m}`" for m, c in errors.most_common(5)) or "- none"
    path.write_text(f"""# Scaling: workers per PostgreSQL

Written by `bench/storage_scale.py` (`.venv/bin/{command}`), {wall / 60:.1f} min wall, on a
{cores}-core machine shared with other engineers' work (load average {load[0]:.1f} before,
{load[1]:.1f} after). The simulated workers, the server and everyone else share those cores, so
the latencies and the lock's hold time are upper bounds; the server's CPU is its own.
{platform.python_implementation()} {platform.python_version()}, PostgreSQL from {PG_BIN}.

## What was measured

A private PostgreSQL cluster (initdb into a temp directory, `max_connections = {max_connections}`,
fsync off: the bench measures the server's CPU and connections, not the disk), one fresh database
per N. N simulated workers, threads spread over {args.processes} processes, each with its own
storage object (`hpo.storage.open_storage`: a pool of one connection) and its own budget lock
(`hpo.storage.ProcessLock`: one connection). Each runs `hpo worker`'s loop with a stub objective
that does to the storage what a studies/gaussgan.yaml trial does: claim a slot under the budget
lock (stale-trial check, budget count over all trials, a new RUNNING trial with TPE's
parameters), 15 user attributes, {REPORTS} intermediate reports each followed by the median
pruner's question, Optuna's heartbeat every {HEARTBEAT_S} s (gaussgan: 10 s), a 30 KB artifact,
completion. Training is a sleep of {args.trial_seconds:g} s per trial, so each simulated worker
claims and reports far more often than a real one. Every N ran for {args.seconds:g} s after all
its workers had opened their storage; latencies are from inside that window.

- trials/s, claims/s: trials completed and claims granted in the window, per second.
- report: `trial.report` plus `trial.should_prune` (the pruner reads the study's trials).
- claim: from asking for the budget lock to the trial being RUNNING (waiting included); queued
  at end: workers still waiting for the lock when the window closed (their wait is not in the
  claim percentiles). Lock held: the part under the lock, which every claim queues for; in
  brackets its stale-trial check and its budget count.
- peak connections: `pg_stat_activity` for the bench's database, sampled every 0.25 s.
- server CPU: CPU-seconds of the postmaster and all its backends (from /proc) per second of the
  window, in cores. Server memory: their proportional set size (shared buffers once, each
  backend's own memory in full) as the window closed.

## Results

{table(rows)}

Errors by kind (all N together):

{error_text}

## Projected ceiling

{chr(10).join(lines)}

{verdict(rows, max_connections)}
""")
    print(f"wrote {path}")


if __name__ == "__main__":
    raise SystemExit(main())
