"""Rebuild the config documents of a published journal whose run's artifact store was not kept.

    .venv/bin/python docs/results/rebuild_configs.py gaussgan docs/results/gaussgan/hpo.journal \
        docs/results/gaussgan/artifacts [--check STORE]

A trial's config (what ``hpo export`` writes) is an artifact, and the gaussgan run's store was
removed when its page was published (``hpo report --out`` now copies it beside the page). The
document is a function of the study file the journal keeps, the trial's parameters and its seed,
so it is rebuilt as the worker built it (``hpo.objective.exported_config``) and written under the
artifact id the trial recorded. Each rebuilt document must give the trial's stored one-line
summary (its ``config`` attribute) or nothing is written; ``--check STORE`` also compares each
byte for byte with the original in a store that was kept (ring8's).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import optuna
import yaml
from optuna.artifacts import FileSystemArtifactStore
from optuna.artifacts.exceptions import ArtifactNotFound
from optuna.trial import FixedTrial

from hpo.group import kind_spec, load_group
from hpo.metric import resolved_metric
from hpo.objective import exported_config
from hpo.space import suggest_arm
from hpo.storage import open_storage, storage_url
from hpo.stored_study_file import study_file_of
from hpo.study_file import StudySpec
from hpo.target import build_target
from hpo.trial_config import CONFIG_ARTIFACT_ATTR, config_summary
from hpo.trials import KIND, SEED


def rebuilt_documents(storage: optuna.storages.BaseStorage, name: str) -> dict[str, str]:
    """Artifact id -> the YAML text its trial's worker wrote; exits when a summary disagrees."""
    group = load_group(storage, name)
    spec = StudySpec.model_validate(study_file_of(storage, group.study_names[0]))
    target = build_target(spec.target)
    metric = resolved_metric(spec.metric, target)
    trials = [t for ts in group.search.values() for t in ts] + list(group.validation)
    out: dict[str, str] = {}
    for t in trials:
        artifact_id = t.user_attrs.get(CONFIG_ARTIFACT_ATTR)
        if not artifact_id:
            continue
        _, config = suggest_arm(FixedTrial(t.params), kind_spec(spec, t.user_attrs[KIND]),
                                int(t.user_attrs[SEED]))
        document = exported_config(spec, target, metric, config)
        if config_summary(document["train"]) != t.user_attrs.get("config"):
            sys.exit(f"trial {t.number}: rebuilt {config_summary(document['train'])!r}, "
                     f"stored {t.user_attrs.get('config')!r}; nothing written")
        out[artifact_id] = yaml.safe_dump(document, sort_keys=False)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("study")
    p.add_argument("journal")
    p.add_argument("out", type=Path)
    p.add_argument("--check", metavar="STORE", help="compare with the originals in STORE")
    args = p.parse_args()
    documents = rebuilt_documents(open_storage(storage_url(args.journal), create=False),
                                  args.study)
    if args.check:
        store = FileSystemArtifactStore(args.check)
        differ = 0
        for artifact_id, text in documents.items():
            try:
                with store.open_reader(artifact_id) as f:
                    differ += f.read().decode() != text
            except ArtifactNotFound:
                sys.exit(f"{artifact_id} is not in {args.check}")
        print(f"{len(documents)} documents rebuilt, {differ} differ from {args.check}")
        sys.exit(1 if differ else 0)
    args.out.mkdir(parents=True, exist_ok=True)
    for artifact_id, text in documents.items():
        (args.out / artifact_id).write_text(text)
    print(f"{len(documents)} config documents rebuilt into {args.out}; each gives its trial's "
          "stored summary")


if __name__ == "__main__":
    main()
