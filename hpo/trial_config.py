"""A trial's exportable config: stored as a YAML artifact, summarised in one short attribute.

The full config (target, metric settings, training config) made the dashboard's trial pages
6,000 px wide when it was one JSON user attribute. It is now a YAML artifact of the trial (its id
in the user attribute ``config_yaml``) and the attribute ``config`` is one short line. Trials
stored before keep their config as a mapping in ``config``; :func:`load_config` reads both.
"""

from __future__ import annotations

from typing import Any

import optuna
import yaml

from hpo.trial_documents import download_document, upload_document

#: User attribute holding the config artifact's id.
CONFIG_ARTIFACT_ATTR = "config_yaml"


def config_summary(train: dict[str, Any]) -> str:
    """One line naming what a config trains, e.g.
    ``quantum 6q x 2L gaussgan/linear | lr_g 0.003 lr_c 0.001 | batch 128 n_critic 5 | seed 4``
    (an MLP head adds its widths, ``gaussgan/mlp 32``; a control reads
    ``control 6d noise/mlp 32 relu``).
    """
    g = train.get("generator", {})
    kind = g.get("kind", "?")
    head = "x".join(str(h) for h in g.get("head_hidden") or [])
    if kind == "quantum":
        what = (f"quantum {g.get('n_qubits')}q x {g.get('n_layers')}L {g.get('ansatz')}/"
                f"{g.get('head')}" + (f" {head}" if g.get("head") == "mlp" and head else ""))
    elif kind == "control":  # the hybrid's head on U(-1, 1)^n noise, no circuit
        what = f"control {g.get('n_qubits')}d noise/mlp {head} {g.get('head_activation', '')}"
    else:
        hidden = "x".join(str(h) for h in g.get("hidden") or []) or "linear"
        what = f"{kind} {hidden} {g.get('activation', '')} {g.get('latent', '')}".strip()
    lr_g, lr_c = train.get("lr_generator"), train.get("lr_critic")
    rates = " ".join(f"{name} {value:.3g}" for name, value in (("lr_g", lr_g), ("lr_c", lr_c))
                     if isinstance(value, int | float))
    return (f"{what} | {rates} | batch {train.get('batch_size')} n_critic "
            f"{train.get('n_critic')} | seed {train.get('seed')}")


def store_config(trial: optuna.Trial, artifact_store: Any, document: dict[str, Any]) -> str:
    """Upload ``document`` as ``config.yaml`` of ``trial``; set ``config_yaml`` (its id) and the
    short ``config`` summary. Returns the artifact id."""
    artifact_id = upload_document(trial, artifact_store, f"trial-{trial.number}-config.yaml",
                                  yaml.safe_dump(document, sort_keys=False), "application/x-yaml")
    trial.set_user_attr(CONFIG_ARTIFACT_ATTR, artifact_id)
    trial.set_user_attr("config", config_summary(document.get("train", {})))
    return artifact_id


def load_config(trial: optuna.trial.FrozenTrial, artifact_store: Any) -> dict[str, Any]:
    """The exportable config of a stored trial: its YAML artifact, or (older trials) the mapping
    in ``config``. :class:`UsageError` names the artifact directory when the artifact is missing.
    """
    legacy = trial.user_attrs.get("config")
    if isinstance(legacy, dict):
        return dict(legacy)
    return yaml.safe_load(download_document(trial, artifact_store, CONFIG_ARTIFACT_ATTR,
                                            "config"))
