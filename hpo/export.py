"""`hpo export` and `hpo train`: best trials out as self-contained YAML, and trained again.

An exported document holds everything a trial's value depends on: target mixture, metric settings
and the full training config (seed included), plus the study's value for comparison. Training it
with ``hpo train`` on the same machine gives the same KL.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import optuna
import yaml
from optuna.trial import TrialState
from pydantic import ValidationError

from hpo.errors import StudyFileError, UsageError
from hpo.group import StudyGroup
from hpo.storage_url import is_storage_file
from hpo.study_file import Metric, one_line_error
from hpo.trial_config import load_config
from hpo.trials import KIND

if TYPE_CHECKING:
    from hpo.evaluate import Score


def best_trials(trials: Sequence[optuna.trial.FrozenTrial], top: int
                ) -> list[optuna.trial.FrozenTrial]:
    done = [t for t in trials if t.state == TrialState.COMPLETE]
    return sorted(done, key=lambda t: (t.value, t.number))[:top]


def validated_by_kind(group: StudyGroup, kinds: list[str]) -> dict[str, list[dict[str, Any]]]:
    """Each of ``kinds``' validated configurations that have a seed mean, best first."""
    from hpo.report_content import validated_configurations

    return {k: [c for c in cs if c["mean"] is not None]
            for k, cs in validated_configurations(group).items() if k in kinds}


def export_ranking(group: StudyGroup, kinds: list[str], validated: bool | None
                   ) -> tuple[bool, str | None]:
    """Whether to rank by the validated seed mean, and the one line that says which ranking.

    ``validated`` is ``--validated`` (True), ``--search`` (False) or neither (None): then the
    validated ranking once every kind asked for has a validated configuration, else the search
    ranking (with a line when the validation has begun but misses a kind)."""
    by_kind = validated_by_kind(group, kinds)
    have = {k for k, cs in by_kind.items() if cs}
    if validated is None:
        validated = bool(kinds) and have >= set(kinds)
        if validated:
            return True, (f"ranked by validated seed mean ({_seeds_of(by_kind)} from "
                          f"{group.validation_study}); --search exports the search ranking "
                          "(one seed each)")
        if have:
            missing = ", ".join(k for k in kinds if k not in have)
            return False, (f"ranked by search value (one seed each): kind {missing} has no "
                           "validated configuration yet; --validated ranks the validated ones")
        return False, None
    if not validated and have:
        return False, ("ranked by search value (one seed each), as --search asks; the default "
                       "is the validated ranking by seed mean")
    return validated, None


def _seeds_of(by_kind: dict[str, list[dict[str, Any]]]) -> str:
    counts = sorted({c["n_seeds"] for cs in by_kind.values() for c in cs})
    if len(counts) == 1:
        from hpo.verdict import seeds_phrase

        return f"{seeds_phrase(counts[0])} per configuration"
    return f"{counts[0]} to {counts[-1]} seeds per configuration"


def export_kinds(group: StudyGroup, kind: str | None) -> list[str]:
    """The kinds an export covers: ``kind`` (checked against the group), else all of them."""
    if kind is not None and kind not in group.search:
        raise UsageError(f"study {group.name!r} has no generator kind {kind!r}; it has "
                         f"{', '.join(group.kinds) or 'none'}")
    return [kind] if kind is not None else group.kinds


def export_documents(group: StudyGroup, top: int, *, kind: str | None = None,
                     validated: bool | None = False, artifact_store: Any = None
                     ) -> list[dict[str, Any]]:
    """One document per configuration, best first; raises :class:`UsageError` if there is none.

    ``kind`` keeps one generator kind. ``validated`` ranks the seed-validated configurations by
    their seed mean (``source`` then carries that mean, its 95% interval and the seeds) instead
    of the search trials by their single-seed value; ``None`` chooses as
    :func:`export_ranking` does. ``source.ranking`` says which (``validated`` or ``search``).
    ``artifact_store`` holds the trials' config artifacts (:mod:`hpo.trial_config`).
    """
    if top < 1:
        raise UsageError(f"--top must be at least 1, got {top}")
    kinds = export_kinds(group, kind)
    if validated is None:
        validated, _ = export_ranking(group, kinds, None)
    if validated:
        return _validated_documents(group, top, kinds, artifact_store)
    trials = best_trials([t for k in kinds for t in group.search[k]], top)
    if not trials:
        which = f" of kind {kind!r}" if kind else ""
        raise UsageError(f"study {group.name!r} has no complete trial{which} to export yet")
    docs = []
    for rank, t in enumerate(trials, start=1):
        docs.append(_document(group, t, rank, artifact_store, "search"))
    return docs


def _document(group: StudyGroup, t: optuna.trial.FrozenTrial, rank: int,
              artifact_store: Any, ranking: str) -> dict[str, Any]:
    doc = load_config(t, artifact_store)
    kind = t.user_attrs.get(KIND, "?")
    doc["source"] = {
        "study": group.study_of(t, kind), "arm": t.user_attrs.get(KIND),
        "trial": t.number, "rank": rank,
        "ranking": ranking, "kl": t.value, "kl_ci": t.user_attrs.get("kl_ci"),
        "code_version": t.user_attrs.get("code_version"),
        "params": dict(t.params),
    }
    return doc


def _validated_documents(group: StudyGroup, top: int, kinds: list[str],
                         artifact_store: Any) -> list[dict[str, Any]]:
    configs = [c for cs in validated_by_kind(group, kinds).values() for c in cs]
    # As the report ranks them: a random-search baseline's after the searched configurations.
    configs.sort(key=lambda c: (c["n_seeds"] < 2, bool(c.get("random_search")), c["mean"]))
    from hpo.report_content import no_validation_reason

    if not configs and no_validation_reason(group):
        raise UsageError(f"study {group.name!r} has no validated configuration: "
                         f"{no_validation_reason(group)}; hpo export --search ranks its trials")
    if not configs:
        raise UsageError(f"study {group.name!r} has no validated configuration"
                         f"{' of kind ' + repr(kinds[0]) if len(kinds) == 1 else ''} yet; "
                         "run: hpo validate")
    by_study = {}
    for k in kinds:
        for study, trials in group.searches.get(k, {}).items():
            for t in trials:
                by_study[(study, t.number)] = t
    docs = []
    for rank, c in enumerate(configs[:top], start=1):
        doc = _document(group, by_study[(c["source_study"], c["source_trial"])], rank,
                        artifact_store, "validated")
        doc["source"]["validated"] = {"n_seeds": c["n_seeds"], "mean": c["mean"],
                                      "ci": c["ci"], "sd": c["sd"], "seeds": c["seeds"],
                                      "search_rank": c["rank"],
                                      "random_search": bool(c.get("random_search"))}
        docs.append(doc)
    return docs


EXPORT_MARK = "# hpo export"  # the first line of every export: --out may replace such a file
_SQLITE_MAGIC = b"SQLite format 3\x00"


def dump_documents(docs: list[dict[str, Any]], group: str | None = None) -> str:
    """The documents as YAML, after a comment line that marks the text as an ``hpo export``
    and names the study (group) and the ranking; each document opens with a comment naming its
    own rank, kind and study."""
    sources = [doc.get("source") or {} for doc in docs]
    study = group or (sources[0].get("study", "?") if sources else "?")
    ranking = {s.get("ranking") for s in sources}
    by = (" ranked by validated seed mean" if ranking == {"validated"}
          else " ranked by search value (one seed each)" if ranking == {"search"} else "")
    what = "study group" if any(s.get("study") not in (None, study) for s in sources) else "study"
    text = (f"{EXPORT_MARK}: {len(docs)} training config(s) of {what} {study}{by}, best first; "
            "train one with: hpo train FILE --rank N\n")
    for i, (doc, source) in enumerate(zip(docs, sources, strict=True)):
        text += ("---\n" if i else "") + _document_line(doc, source, i + 1) + "\n"
        text += yaml.safe_dump(doc, sort_keys=False, default_flow_style=None)
    return text


def _document_line(doc: dict[str, Any], source: dict[str, Any], rank: int) -> str:
    kind = ((doc.get("train") or {}).get("generator") or {}).get("kind", "?")
    arm = source.get("arm")
    if arm not in (None, kind):  # an arm of another name: hybrid (quantum)
        kind = f"{arm} ({kind})"
    line = (f"# rank {source.get('rank', rank)}: {kind}, trial {source.get('trial', '?')} of "
            f"study {source.get('study', '?')}")
    v = source.get("validated")
    if isinstance(v, dict) and isinstance(v.get("mean"), int | float):
        from hpo.verdict import seeds_phrase

        return line + (f", validated: mean of {seeds_phrase(v.get('n_seeds'))} {v['mean']:.4f}"
                       f" (search rank {v.get('search_rank', '?')})")
    if isinstance(source.get("kl"), int | float):
        return line + f", search value {source['kl']:.4f} (one seed)"
    return line


def write_export(out: str | Path, text: str, *, storage: str, force: bool = False) -> None:
    """Write ``text`` to ``out`` atomically, refusing to replace what it should not.

    Never the study storage (a journal or SQLite file, or a lock beside it), even with
    ``force``; without ``force``, only a file whose first line is :data:`EXPORT_MARK`. The folder
    must exist: export creates no folders. Raises :class:`UsageError`.
    """
    path = Path(out)
    if not path.parent.is_dir():
        raise UsageError(f"--out {out}: folder {path.parent} does not exist")
    if path.exists() or path.is_symlink():
        if not path.is_file():
            raise UsageError(f"--out {out} exists and is not a regular file")
        if is_storage_file(path, storage):
            raise UsageError(f"--out {out} is the study storage; choose another file")
        kind = _what_file(path)
        if kind != "export" and not force:
            raise UsageError(f"--out {out} exists and was not written by hpo export ({kind}); "
                             "pass --force to replace it")
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _what_file(path: Path) -> str:
    """``export`` for a file hpo export wrote, else a few words on what it seems to be."""
    with open(path, "rb") as f:
        head = f.read(256)
    if head.startswith(EXPORT_MARK.encode()):
        return "export"
    if head.startswith(_SQLITE_MAGIC):
        return "it is a SQLite database"
    if head.startswith(b'{"op_code"') or b'"op_code"' in head.split(b"\n", 1)[0]:
        return "it is an Optuna journal storage"
    return "empty" if not head else "its first line is not the hpo export mark"


def load_exported(path: str | Path, rank: int = 1) -> dict[str, Any]:
    """Document ``rank`` (1-based) of an exported file, fully checked before anything trains.

    Raises :class:`StudyFileError` naming the file and the key for anything that would fail
    later (a ``train`` that is not a training config, a ``source`` that is not a mapping, a
    ``source.kl`` that is not a number), so no result is lost at the end of a training run.
    """
    from hpo.yaml_input import read_yaml_documents

    path = Path(path)
    if rank < 1:
        raise UsageError(f"--rank must be at least 1, got {rank}")
    docs = read_yaml_documents(path)
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
    _check_exported(doc, path)
    return doc


def _check_exported(doc: dict[str, Any], path: Path) -> None:
    import models
    from hpo.target import build_target

    for key in ("target", "metric", "train"):
        if not isinstance(doc[key], dict):
            raise StudyFileError(str(path), key,
                                 f"expected a mapping, got {type(doc[key]).__name__}")
    try:
        build_target(doc["target"])
    except (ValueError, KeyError, TypeError, IndexError) as err:
        raise StudyFileError(str(path), "target", str(err) or type(err).__name__) from None
    _exported_metric(doc, path)
    try:
        models.resolve_config(doc["train"])
    except ValueError as err:
        raise StudyFileError(str(path), "train", str(err)) from None
    source = doc.get("source")
    if source is None:
        return
    if not isinstance(source, dict):
        raise StudyFileError(str(path), "source", "expected a mapping (study, trial, kl, ...), "
                             f"got {type(source).__name__}")
    kl = source.get("kl")
    if kl is not None and (isinstance(kl, bool) or not isinstance(kl, int | float)
                           or not math.isfinite(kl)):
        raise StudyFileError(str(path), "source.kl", f"expected a number or null, got {kl!r:.60}")


def _exported_metric(doc: dict[str, Any], path: str | Path) -> Metric:
    try:
        return Metric.model_validate(doc["metric"])
    except ValidationError as err:  # the study file's own one-line message, under "metric."
        line = one_line_error(path, Metric, err)
        raise StudyFileError(line.path, f"metric.{line.key}", line.problem) from None


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
    metric = _exported_metric(doc, path)
    try:
        config = models.resolve_config(doc["train"])
    except ValueError as err:
        raise StudyFileError(str(path), "train", str(err)) from None
    return train_and_score(config, target, metric, report)
