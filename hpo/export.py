"""`hpo export` and `hpo train`: best trials out as self-contained YAML, and trained again.

An exported document holds everything a trial's value depends on: target mixture, metric settings
and the full training config (seed included), plus the study's value for comparison. Training it
with ``hpo train`` on the same machine gives the same KL.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import optuna
import yaml
from optuna.trial import TrialState
from pydantic import ValidationError

from hpo.errors import StudyFileError, UsageError
from hpo.study_file import Metric, one_line_error
from hpo.study_group import StudyGroup
from hpo.trial_config import load_config

if TYPE_CHECKING:
    from hpo.evaluate import Score


def best_trials(trials: Sequence[optuna.trial.FrozenTrial], top: int
                ) -> list[optuna.trial.FrozenTrial]:
    done = [t for t in trials if t.state == TrialState.COMPLETE]
    return sorted(done, key=lambda t: (t.value, t.number))[:top]


def export_documents(group: StudyGroup, top: int, *, kind: str | None = None,
                     validated: bool = False, artifact_store: Any = None
                     ) -> list[dict[str, Any]]:
    """One document per configuration, best first; raises :class:`UsageError` if there is none.

    ``kind`` keeps one generator kind. ``validated`` ranks the seed-validated configurations by
    their seed mean (``source`` then carries that mean, its 95% interval and the seeds) instead
    of the search trials by their single-seed value. ``artifact_store`` holds the trials'
    config artifacts (:mod:`hpo.trial_config`).
    """
    if top < 1:
        raise UsageError(f"--top must be at least 1, got {top}")
    if kind is not None and kind not in group.search:
        raise UsageError(f"study {group.name!r} has no generator kind {kind!r}; it has "
                         f"{', '.join(group.kinds) or 'none'}")
    kinds = [kind] if kind is not None else group.kinds
    if validated:
        return _validated_documents(group, top, kinds, artifact_store)
    trials = best_trials([t for k in kinds for t in group.search[k]], top)
    if not trials:
        which = f" of kind {kind!r}" if kind else ""
        raise UsageError(f"study {group.name!r} has no complete trial{which} to export yet")
    docs = []
    for rank, t in enumerate(trials, start=1):
        docs.append(_document(group, t, rank, artifact_store))
    return docs


def _document(group: StudyGroup, t: optuna.trial.FrozenTrial, rank: int,
              artifact_store: Any) -> dict[str, Any]:
    doc = load_config(t, artifact_store)
    kind = t.user_attrs.get("generator_kind", "?")
    doc["source"] = {
        "study": group.search_studies.get(kind, group.name), "trial": t.number, "rank": rank,
        "kl": t.value, "kl_ci": t.user_attrs.get("kl_ci"),
        "code_version": t.user_attrs.get("code_version"),
        "params": dict(t.params),
    }
    return doc


def _validated_documents(group: StudyGroup, top: int, kinds: list[str],
                         artifact_store: Any) -> list[dict[str, Any]]:
    from hpo.report_content import validated_configurations

    configs = [c for k, cs in validated_configurations(group).items() if k in kinds for c in cs
               if c["mean"] is not None]
    configs.sort(key=lambda c: c["mean"])
    if not configs:
        raise UsageError(f"study {group.name!r} has no validated configuration"
                         f"{' of kind ' + repr(kinds[0]) if len(kinds) == 1 else ''} yet; "
                         "run: hpo validate")
    by_study = {}
    for k in kinds:
        for t in group.search[k]:
            by_study[(group.search_studies[k], t.number)] = t
    docs = []
    for rank, c in enumerate(configs[:top], start=1):
        doc = _document(group, by_study[(c["source_study"], c["source_trial"])], rank,
                        artifact_store)
        doc["source"]["validated"] = {"n_seeds": c["n_seeds"], "mean": c["mean"],
                                      "ci": c["ci"], "sd": c["sd"], "seeds": c["seeds"]}
        docs.append(doc)
    return docs


def dump_documents(docs: list[dict[str, Any]]) -> str:
    return yaml.safe_dump_all(docs, sort_keys=False, default_flow_style=None)


def load_exported(path: str | Path, rank: int = 1) -> dict[str, Any]:
    """Document ``rank`` (1-based) of an exported file, checked enough to train it."""
    path = Path(path)
    if not path.is_file():
        raise StudyFileError(str(path), "", "no such file")
    try:
        docs = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    except yaml.YAMLError as err:
        raise StudyFileError(str(path), "", f"not valid YAML ({err})") from None
    if not 1 <= rank <= len(docs):
        raise UsageError(f"{path}: --rank {rank} out of range; the file holds {len(docs)} "
                         "config(s)")
    doc = docs[rank - 1]
    if not isinstance(doc, dict):
        raise StudyFileError(str(path), "", "expected a mapping with target, metric, train")
    missing = [k for k in ("target", "metric", "train") if k not in doc]
    if missing:
        raise StudyFileError(str(path), missing[0],
                             "required key is missing (an exported config has target, metric, "
                             "train)")
    return doc


def train_exported(doc: dict[str, Any], path: str | Path = "config",
                   report: Any = None) -> Score:
    """Train an exported document and score it exactly as its trial was scored.

    ``report(step, kl, samples)`` sees each evaluation, as a trial's pruner would.
    """
    import models
    from hpo.evaluate import train_and_score  # torch and metrics: only when training
    from hpo.target import build_target

    try:
        target = build_target(doc["target"])
    except (ValueError, KeyError, TypeError) as err:
        raise StudyFileError(str(path), "target", str(err)) from None
    try:
        metric = Metric.model_validate(doc["metric"]).model_dump()
    except ValidationError as err:  # the study file's own one-line message, under "metric."
        line = one_line_error(path, Metric, err)
        raise StudyFileError(line.path, f"metric.{line.key}", line.problem) from None
    try:
        config = models.resolve_config(doc["train"])
    except ValueError as err:
        raise StudyFileError(str(path), "train", str(err)) from None
    return train_and_score(config, target, metric, report)
