"""A tiny study file written to a test's folder and run to its end in process by one worker on
an embedded journal: what the end-to-end tests of arms and searches start from."""

from __future__ import annotations

import io
from pathlib import Path
from typing import NamedTuple

import yaml
from optuna.storages import BaseStorage

from hpo.group import StudyGroup, load_group
from hpo.space import StudySpec, load_spec


class StudyRun(NamedTuple):
    spec: StudySpec
    storage: BaseStorage
    group: StudyGroup
    log: io.StringIO   # the worker's log: what an assertion message shows
    artifacts: Path


def write_study(tmp_path: Path, data: dict) -> Path:
    """``data`` as the study file ``<name>.yaml`` in ``tmp_path``."""
    path = tmp_path / f"{data['name']}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def run_study(tmp_path: Path, data: dict) -> StudyRun:
    """``data`` written and searched, validated to the end by one worker (``w0``)."""
    from hpo.storage import open_storage
    from hpo.worker import run_worker

    spec = load_spec(write_study(tmp_path, data))
    url, artifacts, log = str(tmp_path / "hpo.journal"), tmp_path / "artifacts", io.StringIO()
    run_worker(spec, url, artifacts=str(artifacts), worker_id="w0", log=log)
    storage = open_storage(url)
    return StudyRun(spec, storage, load_group(storage, spec.name), log, artifacts)


def publish(run: StudyRun, out: Path):
    """``hpo report`` of ``run`` into ``out`` (no dashboard note): the published files, the report
    as JSON, and the artifact store it read."""
    import json

    from hpo.publish import write_report
    from hpo.storage import artifact_store

    store = artifact_store(str(run.artifacts))
    published = write_report(run.storage, run.spec.name, out, artifact_store=store, note=False)
    return published, json.loads(published.json.read_text()), store
