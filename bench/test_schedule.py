"""Replay a test run's durations through pytest-xdist's work-stealing scheduler.

`make test` runs the suite on three pytest-xdist workers with ``--dist worksteal``: each worker is
handed a contiguous share of the collected tests, and a worker left with its last test steals
the back half of the longest queue. Once no queue can be split, the workers end one by one, and
the run lasts until the last one ends. This bench says how far that end is from a perfect split
of the same work, for the order the suite is collected in now (tests/conftest.py: the e2e tests
first) and for the module order (each module's tests together, as pytest collects them by
default), so a change to the order can be judged without a dozen CI runs.

Record a timeline (each test's start and end in the process that ran it), then replay it:

    .venv/bin/pytest -q -n 3 --dist worksteal -m "not docker" --timeline /tmp/timeline.log
    .venv/bin/python bench/test_schedule.py /tmp/timeline.log

(`make test` passes pytest's options through PYTEST_ADDOPTS: ``PYTEST_ADDOPTS=--timeline=PATH``.)
The replay takes each test's logged wall time as its length whatever runs beside it, which it is
not on a CPU-bound machine: the figures compare orders, they do not predict a run. The noisy
replays scale every duration by a random factor (0.7 to 1.4, seeded) to show how the tail
behaves when tests run longer or shorter than in the one logged run.
"""

from __future__ import annotations

import argparse
import random
import shlex
import statistics
import subprocess
import sys
from collections import defaultdict
from pathlib import Path
from types import SimpleNamespace

from xdist.scheduler.worksteal import WorkStealingScheduling

REPO = Path(__file__).resolve().parents[1]


def read_timeline(path: Path) -> tuple[dict[str, float], dict[str, float]]:
    """Each test's logged duration, and each worker's last end, in seconds from the first start."""
    starts: dict[str, float] = {}
    durations: dict[str, float] = {}
    ends: dict[str, float] = {}
    first = None
    for line in path.read_text().splitlines():
        stamp, event, worker, nodeid = line.split(" ", 3)
        t = float(stamp)
        first = t if first is None else min(first, t)
        if event == "start":
            starts[nodeid] = t
        elif nodeid in starts:
            durations[nodeid] = t - starts[nodeid]
            ends[worker] = max(ends.get(worker, t), t)
    if not durations:
        sys.exit(f"{path}: no test's start and end (record one with --timeline PATH)")
    if any(w.startswith("gw") for w in ends):  # make test's compose test runs beside, as "main"
        ends = {w: t for w, t in ends.items() if w.startswith("gw")}
    return durations, {w: t - first for w, t in sorted(ends.items())}


def collected(marker: str) -> list[str]:
    """Node ids in the order pytest collects them now, for the marker expression."""
    out = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q",
                          "-p", "no:cacheprovider", "-m", marker],
                         cwd=REPO, capture_output=True, text=True, check=False).stdout
    tests = [line for line in out.splitlines() if "::" in line]
    if not tests:
        sys.exit(f"pytest collected no test for -m {marker!r}:\n" + out[-500:])
    return tests


class _Worker:
    """A pytest-xdist worker as the scheduler sees it, running its tests one after another."""

    def __init__(self, name: str) -> None:
        self.gateway = SimpleNamespace(id=name)
        self.queue: list[int] = []  # the tests sent to it, the running one first
        self.shutting_down = False
        self.asked: list[int] | None = None

    def send_runtest_some(self, indices: list[int]) -> None:
        self.queue += indices

    def send_steal(self, indices: list[int]) -> None:
        self.asked = indices  # answered once the scheduler's call returns, as over the wire

    def answer_steal(self, scheduler: WorkStealingScheduling) -> bool:
        """Give back those of the asked tests not started yet; False if nothing was asked."""
        if self.asked is None:
            return False
        given = [i for i in self.asked if i in self.queue[1:]]
        if not given:  # xdist never asks for a running test: the replay is out of step with it
            raise RuntimeError(f"{self.gateway.id} was asked for tests it does not hold")
        self.queue = [i for i in self.queue if i not in given]
        self.asked = None
        scheduler.remove_pending_tests_from_node(self, given)
        return True

    def shutdown(self) -> None:
        self.shutting_down = True


def replay(order: list[str], duration: dict[str, float], workers: int) -> list[float]:
    """Each worker's end, when pytest-xdist's own WorkStealingScheduling hands out ``order`` to
    ``workers`` workers whose tests take ``duration`` seconds each (a worker answers a steal at
    once; a test missing from ``duration`` takes 0 s)."""
    config = SimpleNamespace(getvalue=lambda name: [f"{workers}*popen"])
    scheduler = WorkStealingScheduling(config)
    nodes = [_Worker(f"gw{i}") for i in range(workers)]
    for node in nodes:
        scheduler.add_node(node)
    for node in nodes:
        scheduler.add_node_collection(node, order)
    scheduler.schedule()
    busy_until: dict[_Worker, float] = {}  # each worker's end of its running test

    def start_the_idle(clock: float) -> None:
        for n in nodes:
            if n.queue and n not in busy_until:
                busy_until[n] = clock + duration.get(order[n.queue[0]], 0.0)

    ends: dict[_Worker, float] = {}
    start_the_idle(0.0)
    while busy_until:
        node = min(busy_until, key=busy_until.__getitem__)
        clock = busy_until.pop(node)
        done = node.queue.pop(0)
        scheduler.mark_test_complete(node, done)
        while any(n.answer_steal(scheduler) for n in nodes):
            pass
        start_the_idle(clock)  # the test just done may have sent tests to a worker that had none
        if not node.queue:
            ends[node] = clock  # its last test, unless it is sent more later
    return [ends.get(node, 0.0) for node in nodes]


def module_order(order: list[str]) -> list[str]:
    """Each module's tests together, modules in path order (pytest's default order, up to the
    order of a module's e2e and unit tests)."""
    by_module: dict[str, list[str]] = defaultdict(list)
    for nodeid in order:
        by_module[nodeid.split("::")[0]].append(nodeid)
    return [t for module in sorted(by_module) for t in by_module[module]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("timeline", type=Path, help="a file written by pytest --timeline PATH")
    parser.add_argument("--workers", type=int, default=3, help="pytest-xdist workers (3)")
    parser.add_argument("-m", dest="marker", default="not docker",
                        help='the marker expression of the run ("not docker", as make test)')
    parser.add_argument("--draws", type=int, default=200, help="noisy replays (200)")
    args = parser.parse_args()

    duration, logged_ends = read_timeline(args.timeline)
    now = collected(args.marker)
    missing = [t for t in now if t not in duration]
    orders = {"as collected now (e2e first)": now, "module order": module_order(now)}
    total = sum(duration.get(t, 0.0) for t in now)
    print(f"`.venv/bin/python bench/test_schedule.py {shlex.join(sys.argv[1:])}`: {len(now)} tests "
          f"collected ({len(missing)} not in the timeline, replayed as 0 s), "
          f"{total:.0f} worker-seconds logged")
    print("logged ends: " + ", ".join(f"{w} {t:.0f} s" for w, t in logged_ends.items()))
    bound = total / args.workers
    print(f"a perfect split over {args.workers} workers: {bound:.0f} s")
    for name, order in orders.items():
        ends = replay(order, duration, args.workers)
        print(f"replay, {name}: workers end at "
              + ", ".join(f"{t:.0f}" for t in sorted(ends)) + f" s, {max(ends) - bound:.0f} s "
              "after a perfect split")
    rng = random.Random(0)
    gaps: dict[str, list[float]] = defaultdict(list)
    for _ in range(args.draws):
        scaled = {t: d * rng.uniform(0.7, 1.4) for t, d in duration.items()}
        split = sum(scaled.get(t, 0.0) for t in now) / args.workers
        for name, order in orders.items():
            gaps[name].append(max(replay(order, scaled, args.workers)) - split)
    for name, values in gaps.items():
        values.sort()
        print(f"{args.draws} noisy replays, {name}: the last worker ends "
              f"{statistics.median(values):.0f} s after a perfect split (median), "
              f"{values[int(0.9 * len(values))]:.0f} s (90th percentile), "
              f"{values[-1]:.0f} s (worst)")


if __name__ == "__main__":
    main()
