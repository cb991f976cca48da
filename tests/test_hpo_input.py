"""Bad input gets one line naming file, key and what is allowed, exit status 2, no traceback;
an unreachable database gets a clear message quickly; and no stored trial is ever lost."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.conftest import SMOKE, journal_trials, run_hpo

pytestmark = pytest.mark.e2e

COMMANDS = ["init", "worker", "run", "status", "dashboard", "export", "train"]


def _bad_study(tmp_path: Path, mutate) -> Path:
    data = yaml.safe_load(SMOKE.read_text())
    mutate(data)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _set(path: str, value):
    def mutate(data):
        *parents, last = path.split(".")
        node = data
        for p in parents:
            node = node[p]
        node[last] = value
    return mutate


BAD_FILES = {
    # case: (mutation, key the message must name, words the message must contain)
    "unknown top-level key": (_set("budgt", 3), "budgt", "allowed: name"),
    "unknown nested key": (_set("budget.trails", 3), "budget.trails", "allowed: trials"),
    "unknown generator parameter": (_set("search.generators.quantum.search.n_qubit",
                                         {"low": 1, "high": 2}),
                                    "search.generators.quantum.search.n_qubit",
                                    "allowed:"),
    "wrong type": (_set("budget.trials", "many"), "budget.trials", "integer"),
    "empty space": (_set("search", {"generators": {"classical": {}}}), "search",
                    "search space is empty"),
    "no generators": (_set("search.generators", {}), "search", "at least one"),
    "impossible range": (_set("search.shared.lr_critic", {"low": 0.1, "high": 0.01}),
                         "search.shared.lr_critic", "impossible range"),
    "unknown preset": (_set("target", {"preset": "ring9"}), "target.preset", "gaussgan"),
    "unknown generator kind": (_set("search.generators.photonic", {}),
                               "search.generators.photonic", "classical"),
    "unknown pruner": (_set("pruner", {"kind": "mean"}), "pruner.kind", "median"),
}


BAD_FILES["range outside the model's limits"] = (
    _set("search.generators.quantum.search", {"n_qubits": {"low": 2, "high": 13}}),
    "search.generators.quantum.search.n_qubits", "1..12")


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_bad_study_file_is_one_line_exit_2(tmp_path: Path, case: str) -> None:
    mutate, key, words = BAD_FILES[case]
    path = _bad_study(tmp_path, mutate)
    result = run_hpo("init", str(path), cwd=tmp_path, timeout=120)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert str(path) in lines[0] and f": {key}:" in lines[0], lines[0]
    assert words in lines[0], lines[0]
    assert not (tmp_path / "runs").exists(), "a rejected study file must not touch storage"


def test_not_yaml_and_missing_file(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("name: [unclosed\n")
    for path in (broken, tmp_path / "nowhere.yaml"):
        result = run_hpo("init", str(path), cwd=tmp_path, timeout=120)
        assert result.returncode == 2 and "Traceback" not in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1 and str(path) in result.stderr


def test_bad_input_never_loses_stored_trials(tmp_path: Path) -> None:
    """A good run, then every kind of bad call on the same storage: the trials are all there."""
    ok = run_hpo("run", str(SMOKE), "--workers", "1", cwd=tmp_path, timeout=300)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    before = journal_trials(tmp_path, "smoke")
    assert len(before) == 6

    bad = _bad_study(tmp_path, _set("budget.trials", -1))
    for args in (["init", str(bad)], ["worker", str(bad)], ["run", str(bad)],
                 ["export", "nosuchstudy"], ["export", "smoke", "--top", "0"],
                 ["train", str(bad)], ["run", str(SMOKE), "--workers", "0"]):
        result = run_hpo(*args, cwd=tmp_path, timeout=120)
        assert result.returncode == 2, (args, result.stderr)
        assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1

    after = journal_trials(tmp_path, "smoke")
    assert [(t.number, t.state, t.value) for t in after] == \
        [(t.number, t.state, t.value) for t in before]


@pytest.mark.postgres
@pytest.mark.parametrize("url", [
    "postgresql+psycopg2://postgres@127.0.0.1:1/hpo",            # nothing listens there
    "postgresql+psycopg2://postgres@127.0.0.1:5432/no_such_db_x",  # server up, no database
])
def test_unreachable_database_is_clear_and_quick(tmp_path: Path, url: str) -> None:
    # "Quick" means: a database never reached is reported at once, not retried for the
    # storage patience. The patience is set far beyond the subprocess timeout, so a command
    # that waited it out fails here by TimeoutExpired; no wall-clock bound that a loaded
    # machine (torch's import alone took 20-40 s there) could break.
    for command in (["init", str(SMOKE)], ["worker", str(SMOKE)], ["status"]):
        result = run_hpo(*command, "--storage", url, cwd=tmp_path, timeout=300,
                         HPO_STORAGE_PATIENCE_S="86400")  # a day: the most it may be
        assert result.returncode == 1, result.stderr
        assert "Traceback" not in result.stderr
        assert "cannot reach the study database" in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.postgres
def test_traceback_behind_a_one_line_failure_on_request(tmp_path: Path) -> None:
    # HPO_TRACEBACK=1 (what the compose test sets) adds where the failure struck; the last line
    # and the exit status are the same as without it.
    url = "postgresql+psycopg2://postgres@127.0.0.1:1/hpo"
    plain = run_hpo("status", "--storage", url, cwd=tmp_path, timeout=120)
    traced = run_hpo("status", "--storage", url, cwd=tmp_path, timeout=120, HPO_TRACEBACK="1")
    assert plain.returncode == traced.returncode == 1
    assert "Traceback" not in plain.stderr and "Traceback" in traced.stderr
    assert traced.stderr.strip().splitlines()[-1] == plain.stderr.strip()


def test_unknown_storage_scheme(tmp_path: Path) -> None:
    result = run_hpo("status", "--storage", "nosuchdb://x/y", cwd=tmp_path, timeout=60)
    assert result.returncode == 2 and "not understood" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(tmp_path: Path, command: str) -> None:
    result = run_hpo(command, "--help", cwd=tmp_path, timeout=60)
    assert result.returncode == 0
    assert "usage: hpo " + command in result.stdout
    assert "--storage" in result.stdout or command == "train"


def test_train_names_the_bad_metric_key_of_an_exported_config(tmp_path: Path) -> None:
    config = tmp_path / "best.yaml"
    config.write_text(yaml.safe_dump({
        "target": {"preset": "gaussgan"},
        "metric": {"n_target": 5, "eval_samples": 2000, "replicates": 5},
        "train": {"generator": {"kind": "classical"}, "steps": 10},
    }))
    result = run_hpo("train", str(config), cwd=tmp_path, timeout=120)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and f"{config}: metric.n_target: " in lines[0], lines
    assert "10000" in lines[0] and "(got 5)" in lines[0], lines


def test_train_takes_an_exported_config_whose_source_is_null(tmp_path: Path, capsys) -> None:
    """`source: null` passes the exported config's check; it used to end in an AttributeError
    after training, where the expected D_s is looked up."""
    from hpo.cli import main

    config = tmp_path / "best.yaml"
    config.write_text(yaml.safe_dump({
        "target": {"preset": "gaussgan"},
        "metric": {"n_target": 10_000, "eval_samples": 200, "replicates": 2, "knn": False},
        "train": {"generator": {"kind": "classical"}, "steps": 10, "eval_every": 10,
                  "eval_samples": 200, "batch_size": 32},
        "source": None,
    }))
    assert main(["train", str(config), "--json"]) == 0
    assert '"expected_kl": null' in capsys.readouterr().out
