"""The artifacts a published report needs beside its journal.

A journal alone does not reproduce a published answer: a trial's config (what ``hpo export``
writes) and its full scores are artifacts (hpo/trial_documents.py), and so are the sample images
the page draws. ``hpo report --out DIR`` copies them into ``DIR/artifacts``, an Optuna
``FileSystemArtifactStore`` under the same artifact ids, so that ``--storage DIR/hpo.journal
--artifacts DIR/artifacts`` exports the configurations and regenerates the page, figures
included. The other sample images stay in the run's store (about 190 KB each, one per trial).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from optuna.artifacts import FileSystemArtifactStore
from optuna.artifacts.exceptions import ArtifactNotFound
from optuna.trial import FrozenTrial

from hpo.group import StudyGroup
from hpo.score_details import DETAILS_ARTIFACT_ATTR
from hpo.trial_config import CONFIG_ARTIFACT_ATTR
from hpo.trials import SAMPLES_PNG

#: Every trial's documents: what export and the score details read.
DOCUMENT_ATTRS = (CONFIG_ARTIFACT_ATTR, DETAILS_ARTIFACT_ATTR)


@dataclass(frozen=True)
class CopiedArtifacts:
    store: Path
    copied: int  # artifacts written this time
    present: int  # already there (a page regenerated from its own published store)
    missing: int  # named by a trial but not in the source store


def published_artifact_ids(group: StudyGroup, sample_trials: Iterable[FrozenTrial]
                           ) -> list[str]:
    """The artifact ids to publish: each trial's documents, the sample figure's images."""
    trials = [t for ts in group.search.values() for t in ts] + list(group.validation)
    ids = [t.user_attrs.get(attr) for t in trials for attr in DOCUMENT_ATTRS]
    ids += [t.user_attrs.get(SAMPLES_PNG) for t in sample_trials]
    # an id is a file name in the copy: a journal's id that is not a plain name is skipped
    return list(dict.fromkeys(i for i in ids if isinstance(i, str) and i
                              and Path(i).name == i and not i.startswith(".")))


def copy_published_artifacts(source: Any, artifact_ids: Iterable[str], out_dir: Path
                             ) -> CopiedArtifacts:
    """Copy ``artifact_ids`` from the ``source`` store into ``out_dir/artifacts``.

    An id already there is left alone, so a page regenerated with ``--artifacts`` pointing at
    its own published store reads and writes nothing twice. Each copy is written beside its
    name and renamed into it, so a copy cut short (a full disk, Ctrl-C) is never taken for a
    published artifact; an empty file (one cut short before) is copied again."""
    path = out_dir / "artifacts"
    path.mkdir(parents=True, exist_ok=True)
    target = FileSystemArtifactStore(str(path))
    copied = present = missing = 0
    for artifact_id in artifact_ids:
        if (path / artifact_id).is_file() and (path / artifact_id).stat().st_size > 0:
            present += 1
            continue
        try:
            reader = source.open_reader(artifact_id)
        except (ArtifactNotFound, FileNotFoundError):
            missing += 1
            continue
        partial = f".{artifact_id}.{os.getpid()}.partial"  # a dot: never a published id
        try:
            with reader:
                target.write(partial, reader)
            os.replace(path / partial, path / artifact_id)
        finally:
            (path / partial).unlink(missing_ok=True)
        copied += 1
    if not any(path.iterdir()):  # nothing to publish: no empty folder beside the page
        path.rmdir()
    return CopiedArtifacts(path, copied, present, missing)
