"""`hpo export --kind/--validated` and `hpo status --json` on a hand-built study group."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from optuna.storages.journal import JournalFileBackend, JournalStorage

from tests._verdict_fixtures import build_group
from tests.conftest import run_hpo


@pytest.fixture
def group_dir(tmp_path: Path) -> tuple[Path, dict]:
    path = tmp_path / "runs" / "hpo.journal"
    path.parent.mkdir(parents=True)
    stored = build_group(JournalStorage(JournalFileBackend(str(path))))
    return tmp_path, stored


def _export(cwd: Path, *args: str) -> list[dict]:
    done = run_hpo("export", "verdict", *args, cwd=cwd)
    assert done.returncode == 0, done.stderr
    return list(yaml.safe_load_all(done.stdout))


@pytest.mark.e2e
def test_export_by_kind_and_validated(group_dir) -> None:
    cwd, stored = group_dir
    # search values: classical 0.9 0.5 0.7; quantum 1.3 1.0 1.1
    best = _export(cwd, "--top", "3", "--search")
    assert [d["source"]["kl"] for d in best] == [0.5, 0.7, 0.9]
    quantum = _export(cwd, "--top", "3", "--kind", "quantum", "--search")
    assert [d["source"]["kl"] for d in quantum] == [1.0, 1.1, 1.3]
    assert {d["train"]["generator"]["kind"] for d in quantum} == {"quantum"}
    assert all(d["source"]["study"] == "verdict.quantum" for d in quantum)

    validated = _export(cwd, "--top", "4", "--validated")
    means = {(k, n): float(np.mean(v)) for k, c in stored["validation_values"].items()
             for n, v in c.items()}
    expected = sorted(means, key=means.get)
    assert [(d["train"]["generator"]["kind"], d["source"]["trial"]) for d in validated] == expected
    for d in validated:
        key = (d["train"]["generator"]["kind"], d["source"]["trial"])
        assert d["source"]["validated"]["mean"] == pytest.approx(means[key])
        assert d["source"]["validated"]["n_seeds"] == 5
    only_q = _export(cwd, "--validated", "--kind", "quantum")
    assert [d["source"]["trial"] for d in only_q] == [1]
    assert _export(cwd, "--top", "4") == validated  # a validation exists: the default


@pytest.mark.e2e
def test_export_refuses_an_unknown_kind(group_dir) -> None:
    cwd, _ = group_dir
    done = run_hpo("export", "verdict", "--kind", "photonic", cwd=cwd)
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1
    assert "no generator kind 'photonic'" in done.stderr


@pytest.mark.e2e
def test_status_json(group_dir) -> None:
    cwd, _ = group_dir
    done = run_hpo("status", "verdict", "--json", cwd=cwd)
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["layout"] == "per-kind" and data["metric"] == "D_s KL(Q||P) [nats], s = 0.5"
    assert data["kinds"]["classical"]["budget"] == 4 == data["kinds"]["quantum"]["budget"]
    assert data["kinds"]["classical"]["search_best"]["value"] == 0.5
    best = data["kinds"]["classical"]["best"]  # the validated winner, by seed mean
    assert (best["trial"], best["ranked_by"], best["n_seeds"]) == (1, "validated", 5)
    assert best["value"] == pytest.approx(np.mean([0.61, 0.70, 0.55, 0.66, 0.72]))
    assert (data["kinds"]["quantum"]["finished"], data["kinds"]["quantum"]["pruned"]) == (4, 1)
    assert data["validation"]["complete"] == 20
    assert [c["n_seeds"] for c in data["validation"]["configurations"]["classical"]] == [5, 5]
    listing = json.loads(run_hpo("status", "--json", cwd=cwd).stdout)
    assert {s["name"] for s in listing["studies"]} == {
        "verdict.classical", "verdict.quantum", "verdict.validation"}
    text = run_hpo("status", "verdict", cwd=cwd)
    assert text.returncode == 0 and "validation (verdict.validation): 20 complete" in text.stdout


@pytest.mark.unit
def test_config_is_an_artifact_with_a_short_summary(tmp_path: Path) -> None:
    import optuna

    from hpo.errors import UsageError
    from hpo.trial_config import CONFIG_ARTIFACT_ATTR, load_config, store_config

    store = optuna.artifacts.FileSystemArtifactStore(str(tmp_path))
    study = optuna.create_study()
    document = {"study": "s", "target": {"preset": "gaussgan"}, "metric": {"n_target": 20000},
                "train": {"generator": {"kind": "quantum", "n_qubits": 6, "n_layers": 2,
                                        "ansatz": "gaussgan", "head": "linear"},
                          "lr_generator": 0.003, "lr_critic": 0.001, "batch_size": 128,
                          "n_critic": 5, "seed": 4, "critic": {"hidden": [64, 64]}}}
    trial = study.ask()
    store_config(trial, store, document)
    study.tell(trial, 1.0)
    frozen = study.trials[0]
    assert frozen.user_attrs["config"] == ("quantum 6q x 2L gaussgan/linear | lr_g 0.003 "
                                           "lr_c 0.001 | batch 128 n_critic 5 | seed 4")
    assert load_config(frozen, store) == document
    with pytest.raises(UsageError, match="give --artifacts"):
        load_config(frozen, None)
    (tmp_path / frozen.user_attrs[CONFIG_ARTIFACT_ATTR]).unlink()
    with pytest.raises(UsageError, match="not in the artifact store"):
        load_config(frozen, store)
