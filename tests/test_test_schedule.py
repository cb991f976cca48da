"""bench/test_schedule.py: pytest-xdist's work-stealing scheduler replayed on known durations."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.test_schedule import module_order, read_timeline, replay

pytestmark = pytest.mark.unit


def test_contiguous_shares_and_no_steal_from_a_queue_of_two() -> None:
    # Six tests on three workers: shares [a, b], [c, d], [e, f]. The workers of the short
    # shares find nothing to steal (a queue of two keeps both), so the long test's worker ends
    # alone at 10 + 1.
    duration = {"a": 10.0, "b": 1.0, "c": 1.0, "d": 1.0, "e": 1.0, "f": 1.0}
    assert replay(list("abcdef"), duration, 3) == [11.0, 2.0, 2.0]


def test_an_idle_worker_steals_the_back_half_of_the_longest_queue() -> None:
    # Two workers, shares [a, b, c, d] (2 s each) and [e, f, g, h] (0.5 s, h 0.6 s). At 1.5 s the
    # second holds only h and takes the back half of the first's queue, [c, d] (a runs). At
    # 2.0 s the first holds only b and takes d back (the second's queue h, c, d keeps two). At
    # 2.1 s the second has c left and the first's queue (b, d) cannot be split: each ends on
    # its own. The first runs a, b, d: 6 s; the second e, f, g, h, c: 4.1 s.
    duration = {"a": 2.0, "b": 2.0, "c": 2.0, "d": 2.0, "e": 0.5, "f": 0.5, "g": 0.5, "h": 0.6}
    assert replay(list("abcdefgh"), duration, 2) == [6.0, pytest.approx(4.1)]


def test_a_replayed_run_never_beats_a_perfect_split() -> None:
    duration = {f"t{i}": float(1 + (7 * i) % 5) for i in range(40)}
    order = sorted(duration)
    ends = replay(order, duration, 3)
    assert max(ends) >= sum(duration.values()) / 3
    assert max(ends) <= sum(duration.values()) / 3 + max(duration.values())


def test_the_timeline_gives_durations_and_each_workers_last_end(tmp_path: Path) -> None:
    log = tmp_path / "timeline.log"
    log.write_text("100.0 start gw0 tests/x.py::a[p q]\n"
                   "100.5 start gw1 tests/y.py::b\n"
                   "103.0 end gw0 tests/x.py::a[p q]\n"
                   "104.5 end gw1 tests/y.py::b\n"
                   "100.2 start main tests/z.py::compose\n"
                   "300.0 end main tests/z.py::compose\n")
    duration, ends = read_timeline(log)
    assert duration == {"tests/x.py::a[p q]": 3.0, "tests/y.py::b": 4.0,
                        "tests/z.py::compose": pytest.approx(199.8)}
    assert ends == {"gw0": 3.0, "gw1": 4.5}  # make test's compose test ("main") left out


def test_module_order_keeps_each_modules_tests_together() -> None:
    order = ["b.py::e2e", "a.py::e2e", "b.py::unit", "a.py::unit"]
    assert module_order(order) == ["a.py::e2e", "a.py::unit", "b.py::e2e", "b.py::unit"]
