"""`hpo report`: write index.html and report.json, copy the artifacts they rest on
(hpo/published_artifacts.py), and put the verdict on the dashboard.

The dashboard gets the same content: every study of the group is named
``D_s KL(Q||P) [nats], s = ...`` (``Study.set_metric_names``, so plots and tables say what the
objective is), carries the verdict as its study note (``optuna_dashboard.save_note``), and the
figures are uploaded as study artifacts of the group's first study, which the notes show.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import optuna
from optuna.artifacts import upload_artifact

from hpo.errors import UsageError, os_error_line
from hpo.group import StudyGroup, load_group, member_of, set_objective_name
from hpo.report_content import build_report
from hpo.report_html import parameter_split, render_html
from hpo.verdict import seeds_phrase

if TYPE_CHECKING:  # imported where it runs: score_details brings torch, `hpo status` must not
    from hpo.published_artifacts import CopiedArtifacts

FIGURE_CAPTIONS = {
    "validation": "Seed validation: seed values, mean and 95% CI per configuration",
    "profile": "Resolution profile of the difference",
    "anytime": "Best D_s so far per kind (search trials, training seconds)",
    "intermediate": "Intermediate D_s per kind (log scale, pruned faded)",
    "samples": "Final samples of each kind's validated best",
    "expected_best": "Expected best D_s after n search trials per arm (95% bootstrap band)",
}


@dataclass(frozen=True)
class Published:
    html: Path
    json: Path
    report: dict[str, Any]
    noted_studies: list[str]
    artifacts: CopiedArtifacts | None  # what export and the figures need, beside the page
    note_error: str | None = None  # why the notes could not be written (a read-only journal)


def load_group_or_explain(storage: Any, name: str, where: str) -> StudyGroup:
    try:
        return load_group(storage, name)
    except KeyError:
        names = [s.study_name for s in optuna.get_all_study_summaries(storage)]
        known = ", ".join(names) if names else "none"
        raise UsageError(f"no study named {name!r} in {where}; studies there: {known}") from None


def load_named_group(storage: Any, name: str, where: str) -> tuple[StudyGroup, str | None]:
    """The group ``name`` names, and what ``name`` is in it: ``None`` for the group's own name,
    a generator kind for its search study (``gaussgan.quantum``), ``validation`` for its
    validation study (:func:`hpo.group.member_of`)."""
    member = member_of(storage, name)
    if member is not None:
        return load_group_or_explain(storage, member[0], where), member[1]
    return load_group_or_explain(storage, name, where), None


def member_line(name: str, group: StudyGroup, role: str) -> str:
    """One line saying which group a member study's name stands for."""
    what = "seed validation" if role == "validation" else f"{role} search"
    return f"{name} is the {what} of study group {group.name}; showing the group"


def render_figures(group: StudyGroup, report: dict[str, Any], artifact_store: Any
                   ) -> dict[str, bytes | None]:
    from hpo import report_figures as figs  # matplotlib: not for `hpo status` and `export`

    return {
        "validation": (figs.validation_png(report)
                       if any(k["validated"] for k in report["kinds"].values()) else None),
        "profile": figs.profile_png(report),
        "anytime": figs.anytime_png(report),
        "expected_best": figs.expected_best_png(report),
        "intermediate": figs.intermediate_png(group, report["metric"]["name"]),
        "samples": figs.sample_grid_png(group, report, artifact_store),
    }


def write_report(storage: Any, name: str, out_dir: str | Path, *, artifact_store: Any = None,
                 storage_label: str = "", note: bool = True) -> Published:
    """Build the report of study group ``name``, write ``out_dir/index.html`` and
    ``out_dir/report.json``, and (``note``) update the dashboard's notes and metric names."""
    group = load_group_or_explain(storage, name, storage_label or "the storage")
    report = build_report(group, storage=storage_label)
    figures = render_figures(group, report, artifact_store)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    html_path, json_path = out / "index.html", out / "report.json"
    html_path.write_text(render_html(report, figures))
    json_path.write_text(json.dumps(report, indent=1, allow_nan=False) + "\n")
    copied = None
    if artifact_store is not None:  # before the notes add their figures to the run's store
        # here, not at the top: score_details imports torch, which `hpo status` never loads
        from hpo.published_artifacts import copy_published_artifacts, published_artifact_ids
        from hpo.report_figures import sample_grid_rows

        sample_trials = [t for _, ts in sample_grid_rows(group, report) for t in ts]
        copied = copy_published_artifacts(
            artifact_store, published_artifact_ids(group, sample_trials), out)
    noted: list[str] = []
    try:
        if note:
            noted = annotate_dashboard(storage, group, report, figures, artifact_store)
    except (OSError, optuna.exceptions.StorageInternalError) as err:  # the page is written
        reason = (os_error_line(err) if isinstance(err, OSError)
                  else str(err).splitlines()[0][:200])
        return Published(html_path, json_path, report, [], copied, note_error=reason)
    return Published(html_path, json_path, report, noted, copied)


def name_objective(storage: Any, study_names: list[str], metric: str) -> None:
    """Name the objective of each study (what the dashboard's plots and tables show)."""
    for study_name in study_names:
        set_objective_name(optuna.load_study(study_name=study_name, storage=storage), metric)


def annotate_dashboard(storage: Any, group: StudyGroup, report: dict[str, Any],
                       figures: dict[str, bytes | None], artifact_store: Any) -> list[str]:
    """Metric names, the verdict note on every study of the group, figures as artifacts."""
    from optuna_dashboard import save_note

    name_objective(storage, group.study_names, report["metric"]["name"])
    links: dict[str, str] = {}
    if artifact_store is not None:
        host = group.study_names[-1]  # the validation study when there is one
        study = optuna.load_study(study_name=host, storage=storage)
        study_id = storage.get_study_id_from_name(host)
        with tempfile.TemporaryDirectory() as tmp:
            for key, png in figures.items():
                if png is None:
                    continue
                path = Path(tmp) / f"report-{key}.png"
                path.write_bytes(png)
                artifact_id = upload_artifact(artifact_store=artifact_store, file_path=str(path),
                                              study_or_trial=study, mimetype="image/png")
                links[key] = f"/artifacts/{study_id}/{artifact_id}"
    body = note_markdown(report, links)
    for study_name in group.study_names:
        save_note(optuna.load_study(study_name=study_name, storage=storage), body)
    return group.study_names


def note_markdown(report: dict[str, Any], links: dict[str, str]) -> str:
    """The study note: the verdict, the validated best of each kind, the profile, figures."""
    v = report["verdict"]
    m = report["metric"]
    lines = [f"## Verdict: {report['study']}", "", f"**{v['sentence']}**", ""]
    if v.get("profile_sentence"):
        lines += [v["profile_sentence"], ""]
    if v.get("control"):  # the hybrid against its control: what the circuit adds
        lines += [v["control"]["sentence"], ""]
    if v.get("arms"):  # the kinds over searches (or why there is no such interval)
        lines += [f"Over searches: {v['arms']['sentence']}", ""]
    lines += [f"Objective: {m['name']} (m = {m['m']}, n = {m['n']}); intervals 95% over seeds.",
              "", "Each kind's validated winner, ranked by seed mean:", "",
              "| kind | configuration | ranked by | seed mean D_s | 95% CI | seed sd | "
              "parameters (circuit + classical) |",
              "|---|---|---|---|---|---|---|"]
    demoted = []
    for kind, k in report["kinds"].items():
        if not k["validated"]:
            s = k["search"]
            lines.append(f"| {kind} | not validated (best search value "
                         f"{_num(s['best_search_value'])}) | search: one seed | - | - | - | - |")
            continue
        c = k["validated"][0]
        ci = c["ci"]
        lines.append(f"| {kind} | {c['source_study']} #{c['source_trial']} | validated: mean "
                     f"of {seeds_phrase(c['n_seeds'])} (search rank {c['rank']}) | "
                     f"{_num(c['mean'])} | [{_num(ci[0])}, {_num(ci[1])}] | {_num(c['sd'])} | "
                     f"{parameter_split(c.get('n_params'), c.get('n_params_circuit'))} |")
        first = next((f for f in k["validated"] if f["rank"] == 1), None)
        if first is not None and first is not c:
            demoted.append(f"{kind}'s search winner, {first['source_study']} "
                           f"#{first['source_trial']} (search value "
                           f"{_num(first['search_value'])}), has a seed mean of "
                           f"{_num(first['mean'])}")
    validation = report["provenance"].get("validation_study")
    if validation:
        lines += ["", f"The dashboard's Best Trial of {validation} is one seed of one "
                  "configuration, and each search study's Best Trial is its search winner (one "
                  "seed); the winners above are ranked by seed mean."
                  + (" The validation demoted: " + "; ".join(demoted) + "." if demoted else "")]
    if report["comparisons"]:
        pair = report["comparisons"][0]
        lines += ["", "| resolution | difference | 95% CI | Welch p |", "|---|---|---|---|"]
        rows = [("s", pair["at_s"])] + [(f"{p['factor']:g} x s", p) for p in pair["profile"]]
        for label, d in rows:
            p = f"{d['p_value']:.3g}" if d["p_value"] is not None else "-"
            lines.append(f"| {label} | {_num(d['difference'])} | [{_num(d['ci'][0])}, "
                         f"{_num(d['ci'][1])}] | {p} |")
    lines += ["", f"Generated {report['generated_at']} by `hpo report {report['study']}`; "
              "report.json holds every number."]
    for key, url in links.items():
        lines += ["", f"**{FIGURE_CAPTIONS[key]}**", "", f"![{key}]({url})"]
    return "\n".join(lines) + "\n"


def _num(value: Any) -> str:
    return f"{value:.3f}" if isinstance(value, int | float) else "-"
