"""A systematic error stops a study early instead of spending its budget on failures.

The rule on stored trials (``hpo.systematic``), then for real: a study whose quantum generator
runs on a PennyLane device that cannot apply its gates (default.qutrit: "Gate RY not supported")
fails every trial the same way; `hpo run` and `hpo worker` must stop after the first 3 failures
(plus at most one trial per other worker already running), with one line naming the error.
"""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
import yaml
from optuna.trial import TrialState, create_trial

from hpo.systematic import systematic_failure
from tests.conftest import SMOKE, journal_trials, run_hpo


def _trial(number: int, state: TrialState, kind: str = "quantum", ended: str | None = None,
           retry_of: list[int] | None = None) -> optuna.trial.FrozenTrial:
    attrs = {"generator_kind": kind}
    if ended is not None:
        attrs["ended"] = ended
    t = create_trial(state=state, value=1.0 if state == TrialState.COMPLETE else None,
                     user_attrs=attrs,
                     system_attrs={"retry_history": retry_of} if retry_of else None)
    t.number = number
    return t


OOM = "failed: MemoryError: Unable to allocate 7.28 TiB"


@pytest.mark.unit
def test_three_alike_failures_first_of_their_kind_stop_the_study() -> None:
    trials = [_trial(i, TrialState.FAIL, ended=OOM) for i in range(3)]
    line = systematic_failure(trials)
    assert line is not None and "first 3 quantum trials (0, 1, 2)" in line
    assert "MemoryError: Unable to allocate 7.28 TiB" in line


@pytest.mark.parametrize("case,trials", [
    ("only two so far", [_trial(i, TrialState.FAIL, ended=OOM) for i in range(2)]),
    ("a success among the first three", [_trial(0, TrialState.FAIL, ended=OOM),
                                         _trial(1, TrialState.COMPLETE),
                                         _trial(2, TrialState.FAIL, ended=OOM),
                                         _trial(3, TrialState.FAIL, ended=OOM)]),
    ("different errors", [_trial(0, TrialState.FAIL, ended=OOM),
                          _trial(1, TrialState.FAIL, ended="failed: ValueError: x"),
                          _trial(2, TrialState.FAIL, ended=OOM)]),
    ("divergence is a result, not an error", [
        _trial(i, TrialState.FAIL, ended="diverged: non-finite loss at step 3")
        for i in range(3)]),
    ("kinds are counted apart", [_trial(0, TrialState.FAIL, ended=OOM),
                                 _trial(1, TrialState.FAIL, "classical", ended=OOM),
                                 _trial(2, TrialState.FAIL, ended=OOM),
                                 _trial(3, TrialState.COMPLETE, "classical")]),
    ("later failures after a success", [_trial(0, TrialState.PRUNED)] +
     [_trial(i, TrialState.FAIL, ended=OOM) for i in range(1, 6)]),
])
@pytest.mark.unit
def test_no_stop_without_a_systematic_error(case: str, trials: list) -> None:
    assert systematic_failure(trials) is None, case


@pytest.mark.unit
def test_interrupted_and_retried_trials_do_not_count() -> None:
    trials = [_trial(0, TrialState.FAIL, ended="interrupted: worker stopped (SIGTERM)"),
              _trial(1, TrialState.FAIL, ended=OOM),
              _trial(2, TrialState.FAIL, ended=OOM),
              _trial(3, TrialState.COMPLETE, retry_of=[2])]
    assert systematic_failure(trials) is None
    trials.append(_trial(4, TrialState.FAIL, ended=OOM))
    assert systematic_failure(trials) is None  # 1, 4 and the retry of 2, which completed


def _broken_study(tmp_path: Path, trials: int = 12) -> Path:
    spec = yaml.safe_load(SMOKE.read_text())
    spec["name"] = "broken"
    spec["budget"]["trials"] = trials
    spec["pruner"] = {"kind": "none"}
    quantum = spec["search"]["generators"]["quantum"]
    quantum["fixed"]["backend"] = "default.qutrit"  # cannot apply RY: every trial fails alike
    spec["search"]["generators"] = {"quantum": quantum}
    path = tmp_path / "broken.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


@pytest.mark.slow
@pytest.mark.e2e
def test_run_and_worker_stop_on_a_systematic_error(tmp_path: Path) -> None:
    study = _broken_study(tmp_path)
    result = run_hpo("run", str(study), "--workers", "2", cwd=tmp_path, timeout=400)
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "Traceback" not in output
    stopped = [line for line in output.splitlines() if line.startswith("study stopped:")]
    assert len(stopped) == 1, output
    assert "first 3 quantum trials" in stopped[0]
    assert "DeviceError: Gate RY not supported on device default.qutrit" in stopped[0]

    trials = journal_trials(tmp_path, "broken")
    states = [t.state for t in trials]
    assert TrialState.RUNNING not in states and TrialState.WAITING not in states
    failed = states.count(TrialState.FAIL)
    # 3 failures decide it; the other worker may have one more trial under way at that moment.
    assert 3 <= failed <= 4, states
    assert len(trials) == failed, "no other trial was started"

    # A worker started later stops at once: its start, one line, exit 1, no new trial.
    late = run_hpo("worker", str(study), cwd=tmp_path, timeout=120)
    assert late.returncode == 1, late.stderr
    lines = late.stderr.strip().splitlines()
    assert len(lines) == 2 and "started on broken as worker number" in lines[0], late.stderr
    assert lines[1].startswith("hpo worker: study stopped:") and "DeviceError" in lines[1]
    assert len(journal_trials(tmp_path, "broken")) == len(trials)
