"""The study file each stored study keeps: whole where every reader finds it, one line where
optuna-dashboard shows it (its study page showed the whole file as one JSON attribute before)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

import optuna
from pydantic import ValidationError

from hpo.errors import UsageError
from hpo.study_file import StudySpec

#: The study user attribute that names the study file: one short line on the dashboard's study
#: page. Studies created before kept the whole file (a mapping) here; :func:`study_file_of`
#: reads both.
STUDY_FILE_ATTR = "study_file"
#: The study system attribute holding the whole study file (JSON): every reader has it without
#: an artifact store, and optuna-dashboard does not show system attributes.
STUDY_FILE_SYSTEM_ATTR = "hpo:study_file"


def study_file_line(study_file: Mapping[str, Any]) -> str:
    """The short ``study_file`` attribute: the file's name, a hash of its content and where the
    whole file is."""
    text = json.dumps(study_file, sort_keys=True, separators=(",", ":"))
    digest = hashlib.sha256(text.encode()).hexdigest()[:12]
    return (f"{study_file.get('name', '?')} | sha256 {digest} | whole file: study system "
            f"attribute {STUDY_FILE_SYSTEM_ATTR}, report.json provenance.study_file")


def study_file_of(storage: optuna.storages.BaseStorage, study_name: str) -> dict[str, Any]:
    """The study file the stored study ``study_name`` keeps: the whole file in
    :data:`STUDY_FILE_SYSTEM_ATTR`, else (studies created before) the mapping in the
    ``study_file`` user attribute, else ``{}``."""
    study_id = storage.get_study_id_from_name(study_name)
    return stored_study_file(storage.get_study_system_attrs(study_id),
                              storage.get_study_user_attrs(study_id))


def stored_study_file(system_attrs: Mapping[str, Any], user_attrs: Mapping[str, Any]
                       ) -> dict[str, Any]:
    """:func:`study_file_of` from a study's attributes already read."""
    for whole in (system_attrs.get(STUDY_FILE_SYSTEM_ATTR), user_attrs.get(STUDY_FILE_ATTR)):
        if isinstance(whole, dict):
            return dict(whole)
    return {}


def keep_study_file(storage: optuna.storages.BaseStorage, study: optuna.Study,
                     spec: StudySpec) -> None:
    """Keep the study file whole in :data:`STUDY_FILE_SYSTEM_ATTR` and name it in the user
    attribute ``study_file`` by one line (:func:`study_file_line`), once; a whole file found in
    the user attribute (a study created before) is moved so. A file changed in what a trial
    measures is refused; one changed in what may change (a grown budget) replaces the kept one,
    so status and the report show the budget the study now runs to (they showed the first)."""
    study_id = storage.get_study_id_from_name(study.study_name)
    system_attrs, user_attrs = storage.get_study_system_attrs(study_id), study.user_attrs
    now = spec.model_dump(mode="json")
    whole = stored_study_file(system_attrs, user_attrs) or now
    replace = _refuse_a_changed_measurement(study.study_name, whole, now) and whole != now
    whole = now if replace else whole
    if replace or STUDY_FILE_SYSTEM_ATTR not in system_attrs:
        storage.set_study_system_attr(study_id, STUDY_FILE_SYSTEM_ATTR, whole)
    line = study_file_line(whole)
    if user_attrs.get(STUDY_FILE_ATTR) != line:
        study.set_user_attr(STUDY_FILE_ATTR, line)


#: What a trial's value means and where it sits: a file that changes one of these after its
#: study was created would rank trials scored differently together. The rest (budget.trials,
#: heartbeat, retry, sampler, pruner, validation, description) may change between runs
#: (budget.trials and validation only until the group's seed validation is enqueued:
#: :func:`hpo.schedule.refuse_a_changed_validation_plan`).
MEASUREMENT_KEYS = ("target", "metric", "fixed", "search", "seed", "layout", "searches",
                    "random_searches", "budget.steps", "budget.eval_every")


def _refuse_a_changed_measurement(study_name: str, stored: Mapping[str, Any],
                                  now: Mapping[str, Any]) -> bool:
    """:class:`UsageError` when ``now`` (the study file run, as its spec dumps it) differs from
    the file ``study_name`` was created with in
    one of :data:`MEASUREMENT_KEYS` (both read through today's schema, so defaults added since
    compare equal; a stored file today's schema refuses is not compared). The sections that
    may change are read from ``now``, so a rule added since to one of them (one validation
    seed is refused now) does not turn the comparison off. Returns whether it compared (a file
    it could not read stays as kept: it is the record of what the study first ran by)."""
    free = ("description", "sampler", "pruner", "heartbeat", "retry", "validation")
    try:
        before = StudySpec.model_validate({**stored, **{key: now[key] for key in free}}
                                          ).model_dump(mode="json")
    except ValidationError:
        return False
    for key in MEASUREMENT_KEYS:
        changed = _first_difference(_at(before, key), _at(now, key), key)
        if changed is not None:
            where, old, new = changed
            raise UsageError(
                f"study {study_name} was created from a study file whose {where} was "
                f"{_short(old)}, not {_short(new)}: its trials would be ranked with trials "
                "measured otherwise; give the changed file another name")
    return True


def _first_difference(old: Any, new: Any, where: str) -> tuple[str, Any, Any] | None:
    """The first dotted key at which ``old`` and ``new`` differ, with both values there."""
    if isinstance(old, Mapping) and isinstance(new, Mapping):
        for key in sorted(set(old) | set(new)):
            found = _first_difference(old.get(key), new.get(key), f"{where}.{key}")
            if found is not None:
                return found
        return None
    return None if old == new else (where, old, new)


def _at(tree: Mapping[str, Any], dotted: str) -> Any:
    for part in dotted.split("."):
        tree = tree.get(part) if isinstance(tree, Mapping) else None
    return tree


def _short(value: Any) -> str:
    text = json.dumps(value, sort_keys=True)
    return text if len(text) <= 60 else text[:57] + "..."
