"""Malformed input, table-driven: every row is refused the documented way and harms nothing.

Each row is an `hpo` command line with the files and environment it needs. It must end with the
documented exit status (2: bad input; 1: a storage that does not exist or cannot be reached), in
at most 3 lines of output, with no traceback; and afterwards the stored trials (a hash over every
study's trials, on the journal file and on PostgreSQL), the journal file's bytes and the working
folder's listing must be exactly as before: nothing written, nothing created.

Most rows call ``hpo.cli.main`` in this process (fast); the rows in ``SUBPROCESS_ROWS`` run the
real command as a process too, to prove the exit status and the absence of a traceback end to end.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
import pytest
import sqlalchemy
import yaml

from hpo.storage import close_storage
from tests.conftest import SMOKE, _drop_database, _new_database, run_hpo

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]

SMOKE_DATA = yaml.safe_load(SMOKE.read_text())
PASSWORD = "Tbl-s3cret-4d9e"  # must never appear in any output


# ---------------------------------------------------------------------------------------------
# Inputs
# ---------------------------------------------------------------------------------------------

def study(**changes: Any) -> bytes:
    """smoke.yaml with dotted keys set (``None`` deletes the key), as YAML bytes."""
    data = json.loads(json.dumps(SMOKE_DATA))
    for dotted, value in changes.items():
        *parents, last = dotted.split("__")
        node = data
        for p in parents:
            node = node.setdefault(p, {})
        if value is _DELETE:
            node.pop(last, None)
        else:
            node[last] = value
    return yaml.safe_dump(data, sort_keys=False).encode()


_DELETE = object()
SMOKE_TEXT = SMOKE.read_text()


def smoke_with(old: str, new: str) -> bytes:
    """smoke.yaml with one literal text replacement (for what a dict cannot express)."""
    assert old in SMOKE_TEXT, old
    return SMOKE_TEXT.replace(old, new, 1).encode()


def exported(**changes: Any) -> bytes:
    """A valid exported config (what `hpo export` writes) with top-level keys replaced."""
    doc = {
        "study": "smoke",
        "target": {"preset": "gaussgan"},
        "metric": {"n_target": 10000, "eval_samples": 500, "replicates": 3},
        "train": {"steps": 10, "eval_every": 10, "eval_samples": 500, "batch_size": 64,
                  "generator": {"kind": "classical"}},
        "source": {"study": "smoke", "trial": 0, "rank": 1, "kl": 0.5},
    }
    for key, value in changes.items():
        if value is _DELETE:
            doc.pop(key)
        else:
            doc[key] = value
    return yaml.safe_dump(doc, sort_keys=False).encode()


def billion_laughs() -> bytes:
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for i in range(1, 10):
        refs = ", ".join([f"*a{i - 1}"] * 10)
        lines.append(f"a{i}: &a{i} [{refs}]")
    return ("\n".join(lines) + "\n").encode()


# ---------------------------------------------------------------------------------------------
# The table
# ---------------------------------------------------------------------------------------------

@dataclass
class Row:
    argv: list[str]              # {f} = the row's input file, {pg} = PostgreSQL with trials
    status: int                  # documented exit status
    says: str = ""               # words the output must contain
    data: bytes | None = None    # content of {f}
    env: dict[str, str] = field(default_factory=dict)
    make: Callable[[Path], None] | None = None  # builds {f} some other way
    cwd: str = ""                # run in this folder under the world's (created beforehand)


def init(data: bytes, says: str = "", status: int = 2) -> Row:
    return Row(["init", "{f}"], status, says, data)


def train(data: bytes, says: str = "", *extra: str) -> Row:
    return Row(["train", "{f}", *extra], 2, says, data)


def _plain_optuna_journal(path: Path) -> None:
    """A journal holding studies hpo did not write: one multi-objective, one whose trial keeps a
    list where hpo keeps a generator kind."""
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    storage = JournalStorage(JournalFileBackend(str(path)))
    mo = optuna.create_study(study_name="mo", storage=storage, directions=["minimize"] * 2)
    mo.add_trial(optuna.trial.create_trial(values=[0.1, 0.2]))
    odd = optuna.create_study(study_name="odd", storage=storage)
    odd.add_trial(optuna.trial.create_trial(value=0.1, user_attrs={"generator_kind": [1, 2]}))


Q = "search__generators__quantum__"
C = "search__generators__classical__"
ROWS: dict[str, Row] = {
    # --- study files: bytes and YAML ----------------------------------------------------------
    "binary file": init(bytes(range(256)) * 4, "not UTF-8"),
    "latin-1 file": init("name: café\n".encode("latin-1"), "not UTF-8"),
    "UTF-16 file": init(SMOKE_TEXT.encode("utf-16"), "not UTF-8"),
    "NUL bytes in UTF-8": init(b"name: sm\x00oke\n", "not valid YAML"),
    "empty file": init(b"", "mapping"),
    "only comments": init(b"# nothing\n# here\n", "mapping"),
    "top level is a list": init(b"- name: smoke\n", "mapping"),
    "top level is a scalar": init(b"smoke\n", "mapping"),
    "two YAML documents": init(SMOKE_TEXT.encode() + b"---\n" + SMOKE_TEXT.encode(), "documents"),
    "unclosed bracket": init(b"name: [unclosed\n", "not valid YAML"),
    "tab indentation": init(b"budget:\n\ttrials: 3\n", "not valid YAML"),
    "duplicate top-level key": init(smoke_with("budget:\n", "budget: {trials: 1}\nbudget:\n"),
                                    "duplicate key 'budget'"),
    "duplicate nested key": init(smoke_with("  trials: 6", "  trials: 6\n  trials: 600"),
                                 "duplicate key 'trials'"),
    "duplicate key in a flow mapping": init(smoke_with("{preset: gaussgan}",
                                                       "{preset: gaussgan, preset: ring8}"),
                                            "duplicate key 'preset'"),
    "recursive alias": init(b"name: &a [*a]\n", "alias"),
    "alias bomb (billion laughs)": init(billion_laughs(), "aliases are expanded"),
    "file larger than 1 MiB": init(b"# " + b"x" * (1 << 20) + b"\n", "larger than"),
    "nested 100000 deep": init(b"[" * 100_000, "nested too deeply"),
    "python object tag": init(b"name: !!python/object:os.system x\n", "not valid YAML"),
    "unhashable key": init(b"? [a, b]\n: 1\n", "plain value"),
    "missing file": Row(["init", "inputs/nowhere.yaml"], 2, "no such file"),
    "a folder as study file": Row(["init", "inputs"], 2, "not a regular file"),
    "a FIFO as study file": Row(["init", "{f}"], 2, "not a regular file",
                                make=lambda p: os.mkfifo(p)),
    # --- study files: schema, names and size bounds ---------------------------------------------
    "unknown top-level key": init(study(budgt=3), "allowed: name"),
    "unknown nested key": init(study(budget__trails=3), "allowed: trials"),
    "wrong type": init(study(budget__trials="many"), "integer"),
    "trials 0": init(study(budget__trials=0), "budget.trials"),
    "trials -1": init(study(budget__trials=-1), "budget.trials"),
    "trials 1.0e+12": init(smoke_with("trials: 6", "trials: 1.0e+12"), "100000"),
    "trials 100001": init(study(budget__trials=100_001), "100000"),
    "trials 2.5": init(study(budget__trials=2.5), "budget.trials"),
    "steps 0": init(study(budget__steps=0), "budget.steps"),
    "steps 10 million": init(study(budget__steps=10_000_000), "1000000"),
    "eval_every above steps": init(study(budget__eval_every=31), "larger than steps"),
    "eval_every 0": init(study(budget__eval_every=0), "budget.eval_every"),
    "n_target 1e12": init(study(metric__n_target=10**12), "1000000"),
    "n_target 5": init(study(metric__n_target=5), "10000"),
    "n_target 1000 rqmc": init(study(metric__n_target=1000, metric__points="rqmc"), "2048"),
    "points sobol": init(study(metric__points="sobol"), "metric.points"),
    "rqmc, 3 replicates": init(study(metric__points="rqmc", metric__replicates=3),
                               "replicates >= 4"),
    "rqmc, a point per component": init(study(
        metric__points="rqmc", metric__n_report=500, metric__replicates=4,
        target={"weights": [1 / 501] * 501, "means": [[float(i), 0.0] for i in range(501)],
                "covariances": [[[1.0, 0.0], [0.0, 1.0]]] * 501}), "metric.n_report: 500"),
    "eval_samples 10 million": init(study(metric__eval_samples=10**7), "200000"),
    "eval_samples 10": init(study(metric__eval_samples=10), "metric.eval_samples"),
    "replicates 1": init(study(metric__replicates=1), "metric.replicates"),
    "replicates 1000": init(study(metric__replicates=1000), "50"),
    "w2_points 99": init(study(metric__w2_points=99), "metric.w2_points"),
    "w2_points 4001": init(study(metric__w2_points=4001), "4000"),
    "k 0": init(study(metric__k=0), "metric.k"),
    "metric seed -1": init(study(metric__seed=-1), "metric.seed"),
    "metric seed 2**40": init(study(metric__seed=2**40), "metric.seed"),
    "sampler seed 2**40": init(study(sampler__seed=2**40), "sampler.seed"),
    "sampler seed -1": init(study(sampler__seed=-1), "sampler.seed"),
    "study seed -5": init(study(seed=-5), "seed"),
    "unknown pruner": init(study(pruner__kind="mean"), "median"),
    "percentile 100": init(study(pruner__kind="percentile", pruner__percentile=100),
                           "pruner.percentile"),
    "reduction factor 1": init(study(pruner__reduction_factor=1), "pruner.reduction_factor"),
    "first rung at the last step": init(study(pruner__kind="successive_halving",
                                              pruner__min_resource=30), "pruner.min_resource"),
    "heartbeat interval 0": init(study(heartbeat__interval=0), "heartbeat.interval"),
    "heartbeat interval 1e9": init(study(heartbeat__interval=10**9,
                                         heartbeat__grace_period=10**9 + 1), "3600"),
    "grace period not above interval": init(study(heartbeat__grace_period=2), "grace_period"),
    "max_retries 1000": init(study(retry__max_retries=1000), "retry.max_retries"),
    "retry of an unknown outcome": init(study(retry__outcomes=["pruned"]), "retry.outcomes.0"),
    "name starting with -": init(study(name="-smoke"), "name"),
    "name of 300 characters": init(study(name="s" * 300), "64"),
    "name of 65 characters": init(study(name="s" * 65), "64"),
    "name with a space": init(study(name="my study"), "name"),
    "name with a slash": init(study(name="a/b"), "name"),
    "name with non-ASCII": init(study(name="café"), "name"),
    "empty name": init(study(name=""), "name"),
    "name is a number": init(study(name=12), "name"),
    "missing name": init(study(name=_DELETE), "required key is missing"),
    "missing budget": init(study(budget=_DELETE), "budget"),
    "missing target": init(study(target=_DELETE), "target"),
    "missing search": init(study(search=_DELETE), "search"),
    "description of 20000 characters": init(study(description="d" * 20_000), "description"),
    "unknown preset": init(study(target={"preset": "ring9"}), "gaussgan"),
    "preset and weights": init(study(target={"preset": "gaussgan", "weights": [1.0]}), "either"),
    "weights without means": init(study(target={"weights": [1.0]}), "target"),
    "no generators": init(study(search__generators={}), "at least one"),
    "unknown generator kind": init(study(search__generators__photonic={}), "classical"),
    "empty search space": init(study(search={"generators": {"classical": {}}}), "empty"),
    "impossible range": init(study(search__shared__lr_critic={"low": 0.1, "high": 0.01}),
                             "impossible range"),
    "log range from 0": init(study(search__shared__lr_critic={"low": 0, "high": 0.1,
                                                               "log": True}), "log"),
    "log and step": init(study(search__shared__lr_critic={"low": 0.1, "high": 1, "log": True,
                                                          "step": 0.1}), "log and step"),
    "step 0": init(study(**{C + "search": {"width": {"low": 8, "high": 32, "step": 0}}}),
                   "step"),
    "negative step": init(study(**{C + "search": {"width": {"low": 8, "high": 32, "step": -8}}}),
                          "step"),
    "low .nan": init(smoke_with("{low: 1.0e-3, high: 1.0e-2, log: true}",
                                "{low: .nan, high: 1.0e-2}"), "finite"),
    "high .inf": init(smoke_with("{low: 1.0e-3, high: 1.0e-2, log: true}",
                                 "{low: 1.0e-3, high: .inf}"), "finite"),
    "empty choices": init(study(search__shared__lr_critic={"choices": []}), "empty"),
    "choices of mappings": init(study(search__shared__lr_critic={"choices": [{"a": 1}]}),
                                "choices"),
    "2000 choices": init(study(search__shared__lr_critic={"choices": list(range(2000))}),
                         "1000"),
    "choices and a range": init(study(search__shared__lr_critic={"choices": [1], "low": 0}),
                                "either"),
    "range without high": init(study(search__shared__lr_critic={"low": 0.1}), "low and high"),
    "unknown quantum parameter": init(study(**{Q + "search__n_qubit": {"low": 1, "high": 2}}),
                                      "allowed:"),
    "unknown classical parameter": init(study(**{C + "fixed__widht": 3}), "allowed:"),
    "steps set in fixed": init(study(fixed__steps=10), "budget.steps"),
    "n_qubits 13": init(study(**{Q + "fixed__n_qubits": 13}), "1..12"),
    "n_qubits x batch too large": init(study(**{Q + "fixed__n_qubits": 12},
                                             fixed__batch_size=65_536), "2**25"),
    "n_qubits x eval_samples too large": init(study(**{Q + "fixed__n_qubits": 12},
                                                   metric__eval_samples=100_000), "2**25"),
    "batch_size 1 million": init(study(fixed__batch_size=10**6), "batch_size"),
    "hidden width 1 million": init(study(**{C + "search": {"width": {"low": 8,
                                                                     "high": 10**6}}}),
                                   "4096"),
    "n_critic 1 million": init(study(fixed__n_critic=10**6), "n_critic"),
    "negative gradient-penalty weight": init(study(fixed__gp_weight=-1.0), "gp_weight"),
    "parameter both fixed and searched": init(study(fixed__lr_generator=-1.0),
                                              "both fixed and searched"),
    "branch parameter both fixed and searched": init(study(**{C + "fixed__width": 8}),
                                                     "both fixed and searched"),
    "betas out of range": init(study(fixed__beta1=1.5), "beta"),
    # a convenience name beside the key it sets: one of the two was silently overridden
    "beta1 beside betas": init(study(fixed__beta1=0.3, fixed__betas=[0.5, 0.99]),
                               "beta1 and betas both given"),
    "critic_width beside critic.hidden": init(study(fixed__critic={"hidden": [64]}),
                                              "critic_width and critic.hidden both given"),
    "width beside hidden": init(study(**{C + "fixed__hidden": [32, 32]}),
                                "width and hidden both given"),
    "head_width beside head_hidden": init(study(**{Q + "fixed__head_hidden": [8],
                                                   Q + "fixed__head_width": 8}),
                                          "head_width and head_hidden both given"),
    "critic a list": init(study(fixed__critic=[64, 64]), "expected a mapping"),
    "critic searched": init(study(search__shared__critic={"choices": [1, 2]}),
                            "search critic_width"),
    "per-kind budget leaving an arm none": init(study(layout="per-kind", budget__trials=1),
                                                "give at least 2"),
    "one validation seed": init(study(validation__seeds=1), "no interval"),
    "unknown study file key given to worker": Row(["worker", "{f}"], 2, "allowed: name",
                                                  study(budgt=3)),
    "bad study file given to run": Row(["run", "{f}"], 2, "budget.trials",
                                       study(budget__trials=-1)),
    # --- exported configs (hpo train) -------------------------------------------------------------
    "train is a list": train(exported(train=[1, 2]), "train: expected a mapping"),
    "train is a string": train(exported(train="fast"), "train: expected a mapping"),
    "source is a string": train(exported(source="the study"), "source: expected a mapping"),
    "source is a list": train(exported(source=[1]), "source: expected a mapping"),
    "source.kl is a string": train(exported(source={"kl": "0.5 nats"}), "source.kl"),
    "source.kl is .nan": train(exported(source={"kl": float("nan")}), "source.kl"),
    "target missing": train(exported(target=_DELETE), "target"),
    "metric missing": train(exported(metric=_DELETE), "metric"),
    "train missing": train(exported(train=_DELETE), "train"),
    "target is a list": train(exported(target=[1]), "target: expected a mapping"),
    "metric is a number": train(exported(metric=3), "metric: expected a mapping"),
    "unknown target preset": train(exported(target={"preset": "nope"}), "target"),
    "export n_target 5": train(exported(metric={"n_target": 5}), "metric.n_target"),
    "export n_target 1e12": train(exported(metric={"n_target": 10**12}), "metric.n_target"),
    "train steps -1": train(exported(train={"steps": -1}), "steps"),
    "train steps 1e9": train(exported(train={"steps": 10**9}), "steps"),
    "train unknown key": train(exported(train={"stepz": 3}), "stepz"),
    "train generator kind": train(exported(train={"generator": {"kind": "photonic"}}), "kind"),
    "train batch 1e9": train(exported(train={"batch_size": 10**9}), "batch_size"),
    "export is a list": train(b"- 1\n- 2\n", "mapping"),
    "export is binary": train(bytes(range(128, 256)), "not UTF-8"),
    "export is empty": train(b"", "out of range"),
    "export duplicate key": train(exported() + b"train: {steps: 5}\n", "duplicate key"),
    "--rank 0": train(exported(), "--rank", "--rank", "0"),
    "--rank beyond the file": train(exported(), "out of range", "--rank", "5"),
    "--rank -1": train(exported(), "--rank", "--rank", "-1"),
    "--rank abc": train(exported(), "--rank", "--rank", "abc"),
    # --- command-line numbers and names -----------------------------------------------------------
    "dashboard --port 99999": Row(["dashboard", "--port", "99999"], 2, "1..65535"),
    "dashboard --port -5": Row(["dashboard", "--port", "-5"], 2, "1..65535"),
    "dashboard --port 0": Row(["dashboard", "--port", "0"], 2, "1..65535"),
    "dashboard --port abc": Row(["dashboard", "--port", "abc"], 2, "whole number"),
    "dashboard --port 1e3": Row(["dashboard", "--port", "1e3"], 2, "whole number"),
    "dashboard --host ''": Row(["dashboard", "--host", ""], 2, "give an address"),
    "dashboard --host not a name": Row(["dashboard", "--host", "nosuchhost.invalid"], 2,
                                       "not an address"),
    "dashboard --allowed-host with a space": Row(["dashboard", "--allowed-host", "a b"], 2,
                                                 "not a host name"),
    "HPO_DASHBOARD_HOSTS with a slash": Row(["dashboard"], 2, "HPO_DASHBOARD_HOSTS entry 'a/b'",
                                            env={"HPO_DASHBOARD_HOSTS": "lab.example, a/b"}),
    "run --workers 0": Row(["run", str(SMOKE), "--workers", "0"], 2, "--workers"),
    "validate --workers 100000": Row(["validate", str(SMOKE), "--workers", "100000"], 2,
                                     "per CPU"),
    "HPO_LOCK_LEASE_S=nan": Row(["worker", str(SMOKE)], 2, "HPO_LOCK_LEASE_S",
                                env={"HPO_LOCK_LEASE_S": "nan"}),
    "HPO_STORAGE_PATIENCE_S=1e400": Row(["worker", str(SMOKE)], 2, "HPO_STORAGE_PATIENCE_S",
                                        env={"HPO_STORAGE_PATIENCE_S": "1e400"}),
    "metric.sigma 1e300": init(study(metric__sigma=1e300), "metric.sigma"),
    "run --workers -1": Row(["run", str(SMOKE), "--workers", "-1"], 2, "--workers"),
    "run --workers 100000": Row(["run", str(SMOKE), "--workers", "100000"], 2, "per CPU"),
    "run --threads 0": Row(["run", str(SMOKE), "--threads", "0"], 2, "--threads"),
    "worker --threads 100000": Row(["worker", str(SMOKE), "--threads", "100000"], 2, "--threads"),
    "worker --worker-seed -1": Row(["worker", str(SMOKE), "--worker-seed", "-1"], 2, "seed"),
    "worker --worker-seed 2**40": Row(["worker", str(SMOKE), "--worker-seed", str(2**40)], 2,
                                      "seed"),
    "worker --worker-id with a space": Row(["worker", str(SMOKE), "--worker-id", "a b"], 2,
                                           "--worker-id"),
    "HPO_TORCH_THREADS=abc": Row(["worker", str(SMOKE)], 2, "HPO_TORCH_THREADS",
                                 env={"HPO_TORCH_THREADS": "abc"}),
    "HPO_TORCH_THREADS=0": Row(["worker", str(SMOKE)], 2, "--threads",
                               env={"HPO_TORCH_THREADS": "0"}),
    "train --threads 0": train(exported(), "--threads", "--threads", "0"),
    "export --top 0": Row(["export", "smoke", "--top", "0"], 2, "--top"),
    "export --top -1": Row(["export", "smoke", "--top", "-1"], 2, "--top"),
    "export --top 10**9": Row(["export", "smoke", "--top", str(10**9)], 2, "--top"),
    "export --top abc": Row(["export", "smoke", "--top", "abc"], 2, "whole number"),
    "unknown command": Row(["bogus"], 2, "invalid choice"),
    "no command": Row([], 2, "required"),
    "unknown option": Row(["status", "--verbose"], 2, "unrecognized"),
    "init without a file": Row(["init"], 2, "required"),
    "status of a name starting with -": Row(["status", "--", "-smoke"], 2, "not a study name"),
    "export of a 300-character name": Row(["export", "s" * 300], 2, "not a study name"),
    "status of an unknown study": Row(["status", "nosuch"], 2, "no study named"),
    "export of an unknown study": Row(["export", "nosuch"], 2, "no study named"),
    # --- storage URLs ---------------------------------------------------------------------------
    "postgres URL without a database": Row(["status", "--storage", "postgresql+psycopg2://"], 2,
                                           "names no database"),
    "postgres URL with host but no database": Row(
        ["status", "--storage", "postgresql+psycopg2://postgres@127.0.0.1:5432"], 2,
        "names no database"),
    "init on a URL without a database": Row(
        ["init", str(SMOKE), "--storage", "postgresql+psycopg2://postgres@127.0.0.1:5432/"], 2,
        "names no database"),
    "non-numeric port": Row(["status", "--storage",
                             f"postgresql+psycopg2://u:{PASSWORD}@127.0.0.1:abc/db"], 2,
                            "not understood"),
    "non-numeric port given to init": Row(
        ["init", str(SMOKE), "--storage", f"postgresql+psycopg2://u:{PASSWORD}@h:x5/db"], 2,
        "not understood"),
    "unknown scheme": Row(["status", "--storage", "nosuchdb://x/y"], 2, "not understood"),
    "driver not installed": Row(["status", "--storage", f"mysql://u:{PASSWORD}@h/db"], 2,
                                "not understood"),
    "in-memory SQLite": Row(["status", "--storage", "sqlite://"], 2, "names no database"),
    "HPO_STORAGE=::::": Row(["status"], 2, "not understood", env={"HPO_STORAGE": "::::"}),
    "scheme without //": Row(["status", "--storage", "postgresql:/db"], 2, "not understood"),
    "mistyped journal path": Row(["status", "--storage", "runs/hpo.jurnal"], 1,
                                 "no study storage"),
    "mistyped journal path in HPO_STORAGE": Row(["export", "smoke"], 1, "no study storage",
                                                env={"HPO_STORAGE": "run/hpo.journal"}),
    "missing SQLite file": Row(["status", "--storage", "sqlite:///inputs/none.db"], 1,
                               "no study storage"),
    "a folder as journal": Row(["status", "--storage", "inputs"], 1, "no study storage"),
    "status from a folder without runs/": Row(["status"], 1, "no study storage",
                                               cwd="inputs/elsewhere"),
    "export from a folder without runs/": Row(["export", "smoke", "--top", "2"], 1,
                                              "no study storage", cwd="inputs/elsewhere"),
    "dashboard from a folder without runs/": Row(["dashboard"], 1, "no study storage",
                                                 cwd="inputs/elsewhere"),
    "dashboard on a missing storage": Row(["dashboard", "--storage", "elsewhere/hpo.journal"], 1,
                                          "no study storage"),
    "postgres database without Optuna tables": Row(["status", "--storage", "{pg_empty}"], 1,
                                                   "no Optuna tables"),
    "export from a database without tables": Row(["export", "smoke", "--storage", "{pg_empty}"],
                                                 1, "no Optuna tables"),
    "unreachable server": Row(["status", "--storage",
                               f"postgresql+psycopg2://u:{PASSWORD}@127.0.0.1:1/db"], 1,
                              "cannot reach"),
    "unknown study on PostgreSQL": Row(["export", "nosuch", "--storage", "{pg}"], 2,
                                       "no study named"),
    # --- export --out ---------------------------------------------------------------------------
    "--out is the storage": Row(["export", "smoke", "--out", "runs/hpo.journal"], 2,
                                "is the study storage"),
    "--out is the storage, with --force": Row(
        ["export", "smoke", "--out", "runs/hpo.journal", "--force"], 2, "is the study storage"),
    "--out is the storage by another path": Row(
        ["export", "smoke", "--out", "runs/../runs/hpo.journal"], 2, "is the study storage"),
    "--out is a file beside the storage": Row(
        ["export", "smoke", "--out", "runs/hpo.journal.lock-x"], 2, "is the study storage",
        make=lambda p: (p.parent.parent / "runs" / "hpo.journal.lock-x").touch()),
    "--out is a file export did not write": Row(["export", "smoke", "--out", "{f}"], 2,
                                                "--force", b"name: my notes\n"),
    "--out is another journal": Row(["export", "smoke", "--out", "{f}"], 2, "journal",
                                    b'{"op_code": 0, "worker_id": "x"}\n'),
    "--out is a SQLite file": Row(["export", "smoke", "--out", "{f}"], 2, "SQLite",
                                  b"SQLite format 3\x00" + b"\x00" * 100),
    "--out is a folder": Row(["export", "smoke", "--out", "inputs"], 2, "not a regular file"),
    "--out in a missing folder": Row(["export", "smoke", "--out", "nofolder/best.yaml"], 2,
                                     "does not exist"),
    "a study file as the journal": Row(["init", str(SMOKE), "--storage", "{f}"], 2,
                                       "not an Optuna journal", SMOKE.read_bytes()),
    "JSON lines that are not journal entries": Row(["status", "--storage", "{f}"], 2,
                                                   "not an Optuna journal", b'[]\n{"a": 1}\n'),
    "a journal entry Optuna cannot replay": Row(["status", "--storage", "{f}"], 2,
                                                "could not replay",
                                                b'{"op_code": 99, "worker_id": "x"}\n'),
    "budget.trials: true": init(study(budget__trials=True), "budget.trials: expected a number"),
    "metric.replicates: false": init(study(metric__replicates=False), "expected a number"),
    "a true among a mixture's weights": init(study(target={
        "weights": [True, 0.5], "means": [[0, 0], [1, 1]],
        "covariances": [[[1, 0], [0, 1]], [[1, 0], [0, 1]]]}), "target.weights: expected numbers"),
    "study name with a dot": init(smoke_with("name: smoke", "name: smoke.quantum"), "name"),
    "study name ..": init(smoke_with("name: smoke", "name: '..'"), "name"),
    "report of a study named ..": Row(["report", ".."], 2, "not a study name"),
    "s3 artifacts without credentials, before a worker number is taken": Row(
        ["worker", str(SMOKE)], 2, "no credentials",
        env={"HPO_ARTIFACTS": "s3://bucket/p", "AWS_EC2_METADATA_DISABLED": "true",
             "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent", "AWS_CONFIG_FILE": "/nonexistent"}),
    "HPO_WORKER_ID with a space": Row(["worker", str(SMOKE)], 2, "HPO_WORKER_ID",
                                      env={"HPO_WORKER_ID": "a b"}),
    "HPO_WORKER_ID with a newline and an escape": Row(
        ["worker", str(SMOKE)], 2, "HPO_WORKER_ID", env={"HPO_WORKER_ID": "w\n\x1b[31m"}),
    "status of a multi-objective study made outside hpo": Row(
        ["status", "mo", "--storage", "{f}"], 1, "cannot read the stored study",
        make=_plain_optuna_journal),
    "export of a study keeping a list as its generator kind": Row(
        ["export", "odd", "--storage", "{f}"], 1, "cannot read the stored study",
        make=_plain_optuna_journal),
    "report --out holds the storage": Row(["report", "smoke", "--out", "runs"], 2,
                                          "holds the study storage"),
    "report --out is a file": Row(["report", "smoke", "--out", "{f}"], 2, "is a file", b"x\n"),
    "URL port 99999": Row(["status", "--storage", "postgresql+psycopg2://u@127.0.0.1:99999/db"],
                          2, "1..65535"),
    "a password in the URL's query": Row(
        ["status", "--storage", f"postgresql+psycopg2://postgres@127.0.0.1:1/db?password={PASSWORD}"],
        1, "password=***"),
    "--out is a study file (PostgreSQL storage)": Row(
        ["export", "smoke", "--storage", "{pg}", "--out", "{f}"], 2, "--force", SMOKE.read_bytes()),
}

# Rows also run as a real process: exit status and no traceback, end to end.
SUBPROCESS_ROWS = [
    "binary file", "duplicate top-level key", "name starting with -", "train is a list",
    "source.kl is a string", "dashboard --port 99999", "non-numeric port",
    "postgres URL without a database", "HPO_STORAGE=::::", "--out is the storage",
    "mistyped journal path", "status from a folder without runs/", "a study file as the journal",
    "a journal entry Optuna cannot replay",
]


# ---------------------------------------------------------------------------------------------
# The storage with trials that every row must leave alone
# ---------------------------------------------------------------------------------------------

def _add_trials(url: str) -> None:
    """Init smoke on ``url`` and store five real trials of every state a study holds."""
    import models
    from hpo.cli import main
    from hpo.metric import resolved_metric
    from hpo.objective import exported_config
    from hpo.space import load_spec
    from hpo.target import build_target

    assert main(["init", str(SMOKE), "--storage", url]) == 0
    spec = load_spec(SMOKE)
    target = build_target(spec.target)
    study = optuna.load_study(study_name="smoke", storage=url if "://" in url else
                              optuna.storages.JournalStorage(
                                  optuna.storages.journal.JournalFileBackend(url)))
    dist = optuna.distributions.FloatDistribution(1e-3, 1e-2, log=True)
    for i, state in enumerate([optuna.trial.TrialState.COMPLETE] * 3
                              + [optuna.trial.TrialState.PRUNED, optuna.trial.TrialState.FAIL]):
        config = models.resolve_config({"steps": 30, "eval_every": 10, "eval_samples": 500,
                                        "seed": i, "batch_size": 64})
        study.add_trial(optuna.trial.create_trial(
            state=state, value=0.3 + 0.1 * i if state.name == "COMPLETE" else None,
            params={"lr_critic": 2e-3 + 1e-3 * i}, distributions={"lr_critic": dist},
            intermediate_values={10: 1.0 + i, 20: 0.8 + i},
            user_attrs={"config": exported_config(spec, target,
                                                   resolved_metric(spec.metric, target), config),
                        "seed": i,
                        "generator_kind": "classical", "kl_ci": [0.2, 0.6]}))


def trials_digest(storage: Any) -> str:
    """A hash of every stored trial of every study (state, values, params, attributes)."""
    rows = []
    for summary in optuna.get_all_study_summaries(storage):
        s = optuna.load_study(study_name=summary.study_name, storage=storage)
        for t in s.get_trials(deepcopy=False):
            rows.append([summary.study_name, t.number, t.state.name, t.values, t.params,
                         sorted(t.intermediate_values.items()), t.user_attrs,
                         str(t.datetime_complete)])
    return hashlib.sha256(json.dumps(rows, sort_keys=True, default=str).encode()).hexdigest()


def tree(root: Path) -> dict[str, str]:
    """Every path under ``root`` with a digest of its bytes (folders: "dir")."""
    out = {}
    for p in sorted(root.rglob("*")):
        rel = str(p.relative_to(root))
        if p.is_file() and not p.is_symlink():
            out[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
        else:
            out[rel] = "dir" if p.is_dir() else "other"
    return out


@pytest.fixture(scope="module")
def world(tmp_path_factory, postgres):
    """A folder whose default journal holds smoke with 5 trials, and two PostgreSQL databases:
    one with the same trials (``{pg}``), one empty (``{pg_empty}``, must stay without tables)."""
    root = tmp_path_factory.mktemp("bad_input")
    (root / "inputs").mkdir()
    old = Path.cwd()
    os.chdir(root)
    pg_name, pg = _new_database(postgres)
    empty_name, pg_empty = _new_database(postgres)
    try:
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        _add_trials("runs/hpo.journal")  # the default storage of every row
        _add_trials(pg)
        pg_storage = optuna.storages.RDBStorage(pg)
        empty_engine = sqlalchemy.create_engine(pg_empty, poolclass=sqlalchemy.pool.NullPool)
        journal = root / "runs" / "hpo.journal"
        yield {"root": root, "pg": pg, "pg_empty": pg_empty, "journal": journal,
               "pg_storage": pg_storage, "empty_engine": empty_engine,
               "journal_storage": optuna.storages.JournalStorage(
                   optuna.storages.journal.JournalFileBackend(str(journal)))}
        close_storage(pg_storage)
    finally:
        os.chdir(old)
        _drop_database(postgres, pg_name)
        _drop_database(postgres, empty_name)


def _prepare(name: str, row: Row, world: dict) -> tuple[list[str], dict[str, str]]:
    root = world["root"]
    slug = "".join(c if c.isalnum() else "_" for c in name)[:60]
    f = root / "inputs" / f"{slug}.yaml"
    if row.data is not None and not f.exists():
        f.write_bytes(row.data)
    if row.make is not None and not f.exists():
        row.make(f)
    if row.cwd:
        (root / row.cwd).mkdir(parents=True, exist_ok=True)
    argv = [a.replace("{f}", str(f)).replace("{pg_empty}", world["pg_empty"])
            .replace("{pg}", world["pg"]) for a in row.argv]
    return argv, dict(row.env)


def _check(name: str, row: Row, status: int, output: str) -> None:
    lines = output.strip().splitlines()
    assert status == row.status, f"{name}: exit {status}, expected {row.status}:\n{output}"
    assert "Traceback" not in output, f"{name}:\n{output}"
    assert 1 <= len(lines) <= 3, f"{name}: {len(lines)} lines:\n{output}"
    assert row.says in output, f"{name}: {row.says!r} not in:\n{output}"
    assert PASSWORD not in output, f"{name}: the password was printed:\n{output}"


def _no_harm(world: dict, before: dict[str, Any]) -> None:
    after = _state(world)
    assert after["tree"] == before["tree"], "files or folders were created or changed"
    assert after == before


def _state(world: dict) -> dict[str, Any]:
    return {"tree": tree(world["root"]), "journal": trials_digest(world["journal_storage"]),
            "pg": trials_digest(world["pg_storage"]),
            "pg_empty_tables": sqlalchemy.inspect(world["empty_engine"]).get_table_names()}


def test_the_table_is_large_enough():
    assert len(ROWS) >= 100, len(ROWS)
    assert set(SUBPROCESS_ROWS) <= set(ROWS)


@pytest.mark.parametrize("name", list(ROWS))
def test_malformed_input_in_process(name: str, world: dict, monkeypatch, capsys) -> None:
    from hpo.cli import main

    row = ROWS[name]
    argv, env = _prepare(name, row, world)
    monkeypatch.chdir(world["root"] / row.cwd)
    for key in [k for k in os.environ if k.startswith("HPO_")]:
        monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    before = _state(world)
    try:
        status = main(argv)
    except SystemExit as stop:  # argparse
        status = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
    captured = capsys.readouterr()
    _check(name, row, status, captured.out + captured.err)
    _no_harm(world, before)
    if name == "--out is a file beside the storage":
        (world["root"] / "runs" / "hpo.journal.lock-x").unlink()


@pytest.mark.e2e
@pytest.mark.parametrize("name", SUBPROCESS_ROWS)
def test_malformed_input_as_a_process(name: str, world: dict) -> None:
    row = ROWS[name]
    argv, env = _prepare(name, row, world)
    before = _state(world)
    result = run_hpo(*argv, cwd=world["root"] / row.cwd, timeout=120, **env)
    _check(name, row, result.returncode, result.stdout + result.stderr)
    _no_harm(world, before)


def test_export_out_replaces_its_own_file_and_forced_others(world: dict, tmp_path: Path) -> None:
    """The positive side of the --out rule: re-exporting over an export works, --force works."""
    from hpo.cli import main

    out = tmp_path / "best.yaml"
    assert main(["export", "smoke", "--top", "2", "--out", str(out),
                 "--storage", str(world["journal"])]) == 0
    first = out.read_text()
    assert first.startswith("# hpo export") and len(list(yaml.safe_load_all(first))) == 2
    assert main(["export", "smoke", "--top", "1", "--out", str(out),
                 "--storage", str(world["journal"])]) == 0
    assert len(list(yaml.safe_load_all(out.read_text()))) == 1
    notes = tmp_path / "notes.yaml"
    notes.write_text("mine\n")
    assert main(["export", "smoke", "--out", str(notes), "--storage",
                 str(world["journal"])]) == 2
    assert notes.read_text() == "mine\n"
    assert main(["export", "smoke", "--out", str(notes), "--force", "--storage",
                 str(world["journal"])]) == 0
    assert notes.read_text().startswith("# hpo export")


@pytest.mark.e2e
def test_unreadable_study_file_is_exit_2(tmp_path: Path) -> None:
    """A file the user may not read: one line, exit 2, as documented (it used to be exit 1).

    As root, mode 000 is still readable; the command then runs without the capabilities that
    let root ignore file modes (util-linux ``setpriv``), so the read really fails.
    """
    from tests.conftest import hpo_cmd, hpo_env

    secret = tmp_path / "locked.yaml"
    secret.write_bytes(SMOKE.read_bytes())
    secret.chmod(0)
    prefix: list[str] = []
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        assert setpriv, "running as root without util-linux setpriv: cannot make a file unreadable"
        prefix = [setpriv, "--bounding-set=-dac_override,-dac_read_search"]
    result = subprocess.run([*prefix, *hpo_cmd("init", str(secret))], cwd=tmp_path,
                            env=hpo_env(), capture_output=True, text=True, timeout=120)
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    assert "Traceback" not in output and len(output.strip().splitlines()) == 1, output
    assert f"{secret}: cannot be read (Permission denied)" in output, output
    assert not (tmp_path / "runs").exists()
