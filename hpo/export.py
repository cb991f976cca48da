"""`hpo export` and `hpo train`: best trials out as self-contained YAML, and trained again.

An exported document holds everything a trial's value depends on: target mixture, metric settings
and the full training config (seed included), plus the study's value for comparison. Training it
with ``hpo train`` on the same machine gives the same KL.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import optuna
import yaml
from optuna.trial import TrialState
from pydantic import ValidationError

from hpo.errors import StudyFileError, UsageError
from hpo.study_file import Metric, one_line_error

if TYPE_CHECKING:
    from hpo.evaluate import Score


def best_trials(study: optuna.Study, top: int) -> list[optuna.trial.FrozenTrial]:
    done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    return sorted(done, key=lambda t: t.value)[:top]


def export_documents(study: optuna.Study, top: int) -> list[dict[str, Any]]:
    """One document per trial, best first; raises :class:`UsageError` if none is complete."""
    if top < 1:
        raise UsageError(f"--top must be at least 1, got {top}")
    trials = best_trials(study, top)
    if not trials:
        raise UsageError(f"study {study.study_name!r} has no complete trial to export yet")
    docs = []
    for rank, t in enumerate(trials, start=1):
        doc = dict(t.user_attrs["config"])
        doc["source"] = {
            "study": study.study_name, "trial": t.number, "rank": rank,
            "kl": t.value, "kl_ci": t.user_attrs.get("kl_ci"),
            "code_version": t.user_attrs.get("code_version"),
            "params": dict(t.params),
        }
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
