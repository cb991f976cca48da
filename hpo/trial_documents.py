"""Text documents attached to a trial as artifacts (its config, its full scores), so that its
user attributes stay one short line each on the dashboard's trial page."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import optuna
from optuna.artifacts import download_artifact, upload_artifact
from optuna.artifacts.exceptions import ArtifactNotFound

from hpo.errors import UsageError


def upload_document(trial: optuna.Trial, artifact_store: Any, file_name: str, text: str,
                    mimetype: str) -> str:
    """Upload ``text`` as ``file_name`` of ``trial``; returns the artifact id."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / file_name
        path.write_text(text)
        return upload_artifact(artifact_store=artifact_store, file_path=str(path),
                               study_or_trial=trial, mimetype=mimetype)


def download_document(trial: optuna.trial.FrozenTrial, artifact_store: Any, attr: str,
                      what: str) -> str:
    """The text of the artifact whose id ``trial`` keeps in user attribute ``attr``.

    A :class:`UsageError` in one line when the trial has none, when no store was given, or when
    the artifact is not in it (the reader names ``--artifacts``)."""
    artifact_id = trial.user_attrs.get(attr)
    if not artifact_id:
        raise UsageError(f"trial {trial.number} stored no {what}")
    if artifact_store is None:
        raise UsageError(f"trial {trial.number}'s {what} is an artifact; give --artifacts DIR "
                         "(or HPO_ARTIFACTS) where the workers stored it")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "document"
        try:
            download_artifact(artifact_store=artifact_store, file_path=str(path),
                              artifact_id=artifact_id)
        except (ArtifactNotFound, OSError):
            raise UsageError(f"trial {trial.number}'s {what} artifact {artifact_id} is not in "
                             "the artifact store; give --artifacts DIR where the workers stored "
                             "it") from None
        return path.read_text()
