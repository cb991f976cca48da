"""Where trial artifacts (sample PNGs) live: a local directory, or an S3-compatible object store.

The location comes from ``--artifacts``, else ``HPO_ARTIFACTS``, else :data:`DEFAULT_ARTIFACTS`.
``s3://bucket/prefix`` selects Optuna's :class:`~optuna.artifacts.Boto3ArtifactStore`, so workers
on several hosts and the dashboard share one store. boto3 reads the endpoint and credentials from
its usual environment (``AWS_ENDPOINT_URL`` for a non-AWS server such as MinIO,
``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``, ``AWS_DEFAULT_REGION``); none of them is taken
as an argument, so none appears in a process's command line.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import BinaryIO
from urllib.parse import urlsplit

from optuna.artifacts import Boto3ArtifactStore, FileSystemArtifactStore

from hpo.errors import UsageError

DEFAULT_ARTIFACTS = "runs/artifacts"
S3_SCHEME = "s3://"


def artifacts_location(flag: str | None = None) -> str:
    """``--artifacts``, else ``HPO_ARTIFACTS``, else ``runs/artifacts``: a directory or URL."""
    return flag or os.environ.get("HPO_ARTIFACTS") or DEFAULT_ARTIFACTS


def is_object_store(location: str) -> bool:
    return location.startswith(S3_SCHEME)


def display_location(location: str) -> str:
    """For messages: an s3:// URL as given, a directory as its absolute path."""
    return location if is_object_store(location) else str(Path(location).resolve())


class PrefixedArtifactStore:
    """An artifact store that keeps every artifact under ``prefix/`` of another store.

    Optuna's :class:`~optuna.artifacts.Boto3ArtifactStore` writes artifact ids at the bucket's
    root; this lets several studies or deployments share one bucket. Implements Optuna's
    ``ArtifactStore`` protocol (``open_reader``, ``write``, ``remove``).
    """

    def __init__(self, store: Boto3ArtifactStore, prefix: str) -> None:
        self.store = store
        self.prefix = prefix.strip("/")

    def key(self, artifact_id: str) -> str:
        """The object key of ``artifact_id``."""
        return f"{self.prefix}/{artifact_id}" if self.prefix else artifact_id

    def open_reader(self, artifact_id: str) -> BinaryIO:
        return self.store.open_reader(self.key(artifact_id))

    def write(self, artifact_id: str, content_body: BinaryIO) -> None:
        self.store.write(self.key(artifact_id), content_body)

    def remove(self, artifact_id: str) -> None:
        self.store.remove(self.key(artifact_id))


def parse_s3_url(location: str) -> tuple[str, str]:
    """``s3://bucket/prefix`` -> (bucket, prefix); the prefix may be empty."""
    parts = urlsplit(location)
    if parts.scheme != "s3" or not parts.netloc or parts.query or parts.fragment:
        raise UsageError(f"artifact location {location!r} is not understood: "
                         "expected s3://bucket or s3://bucket/prefix")
    return parts.netloc, parts.path.strip("/")


def existing_artifact_store(flag: str | None = None
                            ) -> FileSystemArtifactStore | PrefixedArtifactStore | None:
    """For readers: the store at ``--artifacts``/``HPO_ARTIFACTS``, or None when it is a directory
    that does not exist (a reader creates no folder). A malformed s3:// location is a
    :class:`UsageError` before anything is opened."""
    location = artifacts_location(flag)
    if is_object_store(location) or Path(location).is_dir():
        return artifact_store(flag)
    return None


def checked_location(flag: str | None = None) -> str:
    """The artifact location, with an s3:// URL's form and boto3's credentials checked (a
    :class:`UsageError` if bad)."""
    location = artifacts_location(flag)
    if is_object_store(location):
        parse_s3_url(location)
        _require_credentials(location)
    return location


def artifact_store(flag: str | None = None) -> FileSystemArtifactStore | PrefixedArtifactStore:
    """The artifact store at ``--artifacts``/``HPO_ARTIFACTS`` (a directory is created)."""
    location = artifacts_location(flag)
    if is_object_store(location):
        bucket, prefix = parse_s3_url(location)
        _require_credentials(location)
        return PrefixedArtifactStore(Boto3ArtifactStore(bucket), prefix)
    path = Path(location)
    path.mkdir(parents=True, exist_ok=True)
    return FileSystemArtifactStore(str(path))


def _require_credentials(location: str) -> None:
    """A :class:`UsageError` when boto3 finds no credentials: every upload would fail, every
    trial with it, and the budget would be spent on failures (a reader would end in a traceback)."""
    import boto3  # Optuna's Boto3ArtifactStore needs it; only object stores load it

    if boto3.session.Session().get_credentials() is None:
        raise UsageError(f"artifacts {location}: boto3 finds no credentials for the object store "
                         "(set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or a profile)")
