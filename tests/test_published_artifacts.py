"""hpo/published_artifacts.py: which artifacts a published report copies, and the copy itself
(real files in an Optuna FileSystemArtifactStore; the end-to-end use is in test_arms_study.py)."""

from __future__ import annotations

import io
from pathlib import Path
from types import SimpleNamespace

import pytest
from optuna.artifacts import FileSystemArtifactStore

from hpo.published_artifacts import copy_published_artifacts, published_artifact_ids

pytestmark = pytest.mark.unit


def _trial(**attrs):
    return SimpleNamespace(user_attrs=attrs)


def test_ids_are_every_trials_documents_and_the_sample_trials_images_only() -> None:
    search = [_trial(config_yaml="c1", kl_details_json="d1", samples_png="p1"),
              _trial(config_yaml="c2", samples_png="p2")]
    validation = [_trial(config_yaml="c3", kl_details_json="d3", samples_png="p3")]
    group = SimpleNamespace(search={"classical": search}, validation=validation)
    assert published_artifact_ids(group, [validation[0]]) == ["c1", "d1", "c2", "c3", "d3", "p3"]
    # an id that is not a plain file name (a crafted journal) is never a path of the copy
    bad = SimpleNamespace(search={"x": [_trial(config_yaml="../escape", kl_details_json=".hid",
                                               samples_png="a/b")]}, validation=[])
    assert published_artifact_ids(bad, bad.search["x"]) == []


def test_the_copy_keeps_ids_and_bytes_skips_what_is_there_and_counts_the_missing(
        tmp_path: Path) -> None:
    source = FileSystemArtifactStore(str(tmp_path / "run"))
    (tmp_path / "run").mkdir()
    for name, body in {"a": b"config", "b": b"\x89PNG..."}.items():
        source.write(name, io.BytesIO(body))
    out = tmp_path / "page"
    done = copy_published_artifacts(source, ["a", "b", "gone"], out)
    assert (done.copied, done.present, done.missing) == (2, 0, 1)
    assert (out / "artifacts" / "a").read_bytes() == b"config"
    assert (out / "artifacts" / "b").read_bytes() == b"\x89PNG..."
    # regenerating the page from its own published store: nothing read or written twice
    own = FileSystemArtifactStore(str(out / "artifacts"))
    again = copy_published_artifacts(own, ["a", "b"], out)
    assert (again.copied, again.present, again.missing) == (0, 2, 0)
    assert (out / "artifacts" / "a").read_bytes() == b"config"


def test_nothing_to_publish_leaves_no_empty_folder(tmp_path: Path) -> None:
    source = FileSystemArtifactStore(str(tmp_path))
    done = copy_published_artifacts(source, ["absent"], tmp_path / "page")
    assert (done.copied, done.missing) == (0, 1)
    assert not (tmp_path / "page" / "artifacts").exists()


def test_a_copy_cut_short_is_never_taken_for_a_published_artifact(tmp_path: Path) -> None:
    """A full disk under the page's folder cut a copy short and left the artifact's name holding
    0 bytes; the next `hpo report` took it as published and said so. A copy is now renamed into
    its name once whole, and an empty file from before is copied again."""
    import errno

    source = FileSystemArtifactStore(str(tmp_path / "run"))
    (tmp_path / "run").mkdir()
    source.write("a", io.BytesIO(b"config"))

    class FillsUp(io.BytesIO):
        def read(self, *args):
            raise OSError(errno.ENOSPC, "No space left on device")

    class Full:
        def open_reader(self, artifact_id):
            return FillsUp()

    out = tmp_path / "page"
    with pytest.raises(OSError, match="No space"):
        copy_published_artifacts(Full(), ["a"], out)
    assert list((out / "artifacts").iterdir()) == []  # no name holding a part
    (out / "artifacts" / "a").write_bytes(b"")  # cut short by an earlier version
    done = copy_published_artifacts(source, ["a"], out)
    assert (done.copied, done.present) == (1, 0)
    assert (out / "artifacts" / "a").read_bytes() == b"config"
