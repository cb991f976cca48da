"""CPU seconds per test: its own and its child processes', listed by ``--cpu-top N``; and, with
``--timeline PATH``, each test's start and end (wall clock, pytest-xdist worker), which
bench/test_schedule.py replays through xdist's scheduler.

CI on this machine is CPU-bound (two cores, three pytest processes and the compose test), so a
test's wall time says more about the load than about its cost; its CPU is what CI pays. Child
processes (workers, launchers, the processes they waited for) count once they are waited for;
a database server's or a container's CPU does not.
"""

from __future__ import annotations

import os
import resource
import time
from collections.abc import Iterator
from typing import Any

import pytest

_KEY = "cpu_s"
_START = pytest.StashKey[float]()


def _cpu_seconds() -> float:
    own, children = (resource.getrusage(who) for who in
                     (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--cpu-top", type=int, default=0, metavar="N",
                     help="list the N tests that used the most CPU (own and child processes)")
    parser.addoption("--timeline", metavar="PATH",
                     help="append each test's start and end (time, worker, node id) to PATH")


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    item.stash[_START] = _cpu_seconds()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    outcome = yield
    if call.when == "teardown" and _START in item.stash:
        outcome.get_result().user_properties.append(
            (_KEY, _cpu_seconds() - item.stash[_START]))


def pytest_terminal_summary(terminalreporter: Any) -> None:
    top = terminalreporter.config.getoption("--cpu-top")
    if top <= 0:
        return
    spent = [(seconds, report.nodeid)
             for reports in terminalreporter.stats.values() for report in reports
             for key, seconds in getattr(report, "user_properties", ()) if key == _KEY]
    if not spent:
        return
    spent.sort(reverse=True)
    terminalreporter.write_sep("=", f"most CPU: {top} of {len(spent)} tests, "
                                    f"{sum(s for s, _ in spent):.0f} CPU-s in all")
    for seconds, nodeid in spent[:top]:
        terminalreporter.write_line(f"{seconds:8.1f} CPU-s  {nodeid}")


def _timeline(config: pytest.Config, event: str, nodeid: str) -> None:
    path = config.getoption("--timeline")
    if path:  # one short line per write: the workers' lines do not interleave within one
        with open(path, "a") as log:
            log.write(f"{time.time():.3f} {event} "
                      f"{os.environ.get('PYTEST_XDIST_WORKER', 'main')} {nodeid}\n")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    """In the process that runs the test: its setup, call and teardown."""
    _timeline(item.config, "start", item.nodeid)
    yield
    _timeline(item.config, "end", item.nodeid)
