"""`hpo status` without a study: trials counted as the budget counts them; and the read-only
commands on a journal file with a torn or corrupt line: read, reported, never written."""

from __future__ import annotations

import io
import json
from pathlib import Path

import optuna
import pytest
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState

from hpo.cli import main
from hpo.journal import RepairingJournalBackend
from hpo.requeue import requeue
from hpo.storage import open_storage
from hpo.trials import RetryPolicy, budget_counts

pytestmark = pytest.mark.unit

SPACE = {"x": FloatDistribution(0, 1)}
TORN = b'{"op_code": 5, "worker_id": "w", "trial_'  # a write cut short by a crash


def _study(path: Path, name: str, values: tuple[float, ...]) -> optuna.Study:
    study = optuna.create_study(study_name=name, storage=open_storage(str(path)))
    for value in values:
        study.tell(study.ask(SPACE), value)
    return study


def test_status_without_a_study_counts_trials_as_the_budget_does(tmp_path: Path, capsys) -> None:
    """A lost trial and its retry are one slot: the listing said 2 + 1 before."""
    path = tmp_path / "hpo.journal"
    study = _study(path, "counted", ())
    lost = study.ask(SPACE)
    study.tell(lost, state=TrialState.FAIL)  # no outcome recorded: lost, which retries
    assert requeue(study, study.get_trials()[0], RetryPolicy.from_study_file())
    study.tell(study.ask(), 0.5)  # the retry, taken from the queue
    study.tell(study.ask(SPACE), 0.7)
    trials = study.get_trials()
    assert len(trials) == 3 and budget_counts(trials).claimed == 2

    assert main(["status", "--storage", str(path)]) == 0
    out = capsys.readouterr().out
    assert "counted: 2 trials (2 finished, 0 running, 0 waiting)" in out, out
    assert "1 failed and retried, not counted" in out, out
    assert main(["status", "--storage", str(path), "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)["studies"]
    assert row["n_trials"] == budget_counts(trials).claimed == 2
    assert (row["finished"], row["retried_failures"]) == (2, 1)


def test_status_reads_a_torn_journal_and_writes_nothing(tmp_path: Path, capsys) -> None:
    path = tmp_path / "hpo.journal"
    _study(path, "torn", (0.5, 0.7))
    intact = path.read_bytes()
    path.write_bytes(intact + TORN)
    files = sorted(tmp_path.iterdir())

    assert main(["status", "--storage", str(path)]) == 0
    out, err = capsys.readouterr()
    assert path.read_bytes() == intact + TORN  # a read-only command wrote nothing
    assert sorted(tmp_path.iterdir()) == files  # no file moved aside, no lock left
    assert "torn: 2 trials (2 finished" in out, out
    (line,) = err.strip().splitlines()
    torn_line = intact.count(b"\n") + 1
    assert f"line {torn_line} is torn" in line and "left the file as it is" in line, line
    assert "hpo worker, hpo run or hpo init" in line, line  # where it will be repaired

    # a writer still repairs it on opening, as before
    study = optuna.load_study(study_name="torn", storage=open_storage(str(path)))
    err = capsys.readouterr().err
    assert f"line {torn_line} was torn" in err and "moved it to" in err, err
    assert path.read_bytes() == intact
    assert [p.read_bytes() for p in tmp_path.glob("hpo.journal.bad-*")] == [TORN + b"\n"]
    assert [t.value for t in study.get_trials()] == [0.5, 0.7]


def test_a_read_only_backend_skips_a_corrupt_line_and_repairs_before_it_appends(
        tmp_path: Path) -> None:
    path = tmp_path / "hpo.journal"
    _study(path, "corrupt", (0.5, 0.7, 0.9))
    lines = path.read_bytes().splitlines(keepends=True)
    bad = len(lines) - 2  # the last trial's parameter: a complete line, not JSON
    lines[bad] = b"\x00\x01 not json\n"
    path.write_bytes(b"".join(lines))
    damaged = path.read_bytes()

    log = io.StringIO()
    storage = optuna.storages.JournalStorage(RepairingJournalBackend(path, log, repair=False))
    study = optuna.load_study(study_name="corrupt", storage=storage)
    assert len(study.get_trials()) == 3 and study.get_trials()[0].value == 0.5
    assert path.read_bytes() == damaged
    (line,) = log.getvalue().strip().splitlines()
    assert f"line {bad + 1} is not valid JSON" in line and "left the file as it is" in line

    study.set_user_attr("note", "written by a read-only command after all")  # hpo report's notes
    assert path.read_bytes().startswith(b"".join(lines[:bad] + lines[bad + 1:]))
    assert all(json.loads(x) for x in path.read_bytes().splitlines())
    assert "moved it to" in log.getvalue()
    assert len(list(tmp_path.glob("hpo.journal.bad-*"))) == 1
    again = optuna.load_study(study_name="corrupt", storage=open_storage(str(path)))
    assert again.user_attrs["note"].startswith("written") and len(again.get_trials()) == 3
    assert study.user_attrs["note"].startswith("written")  # the reader reads on after repair
    assert [t.number for t in study.get_trials()] == [0, 1, 2]
    with pytest.raises(FileNotFoundError):
        RepairingJournalBackend(tmp_path / "absent.journal", log, repair=False)
    assert not (tmp_path / "absent.journal").exists()
