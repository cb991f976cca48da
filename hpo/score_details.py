"""A completed trial's full scores as a JSON artifact, and one short line that summarises them.

Every replicate's value, both bias corrections, the noise sources of the interval, each point of
the resolution profile and the k-NN estimate: what a researcher checks when a number is
questioned, but 600+ characters that widened the dashboard's trial page as one JSON attribute
(``kl_details`` of earlier trials). The artifact's id is the user attribute ``kl_details_json``;
``kl_correction`` is the short line.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import optuna

from hpo.trial_documents import download_document, upload_document
from metrics import KLEstimate

if TYPE_CHECKING:
    from hpo.evaluate import Score  # torch: only a worker that trains imports it

#: User attribute holding the details artifact's id.
DETAILS_ARTIFACT_ATTR = "kl_details_json"


def score_details(score: Score) -> dict[str, Any]:
    """Every estimate of a final score as plain JSON: D_s, each profile point, the k-NN one."""
    return {
        "kl": score.kl.as_dict(),
        "profile": [{"factor": factor, **estimate.as_dict()} for factor, estimate in score.profile],
        "knn": None if score.knn is None else score.knn.as_dict(),
    }


def correction_summary(kl: KLEstimate) -> str:
    """One line, e.g. ``jackknife -0.0123 (delta -0.0119) | 5 x m 2000, n 20000``: a gap between
    the two corrections larger than the stderr says s or m is too small to trust the number."""
    delta = "" if kl.delta_correction is None else f" (delta {kl.delta_correction:+.4f})"
    return (f"{kl.correction_method} {kl.correction:+.4f}{delta} | {kl.replicates} x m {kl.m}, "
            f"n {kl.n_target}{' rqmc' if kl.points == 'rqmc' else ''}")


def store_score_details(trial: optuna.Trial, artifact_store: Any, score: Score) -> str:
    """Upload :func:`score_details` as ``trial-N-kl.json``; set ``kl_details_json`` (its id) and
    ``kl_correction``. Returns the artifact id."""
    artifact_id = upload_document(trial, artifact_store, f"trial-{trial.number}-kl.json",
                                  json.dumps(score_details(score), indent=1), "application/json")
    trial.set_user_attr(DETAILS_ARTIFACT_ATTR, artifact_id)
    trial.set_user_attr("kl_correction", correction_summary(score.kl))
    return artifact_id


def load_score_details(trial: optuna.trial.FrozenTrial, artifact_store: Any) -> dict[str, Any]:
    """The details of a stored trial: its JSON artifact, or (older trials) ``kl_details`` as
    ``{"kl": ...}`` only."""
    legacy = trial.user_attrs.get("kl_details")
    if isinstance(legacy, dict):
        return {"kl": legacy}
    return json.loads(download_document(trial, artifact_store, DETAILS_ARTIFACT_ATTR,
                                        "score details"))
