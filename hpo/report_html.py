"""The report as one self-contained HTML page: the verdict, its tables, figures inlined as
base64 PNG, and provenance. No script, no external resource: it opens from disk or an email."""

from __future__ import annotations

import base64
import html
import json
from collections.abc import Mapping
from typing import Any

import yaml

CSS = """
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em;
       color: #222; }
table { border-collapse: collapse; margin: 0.6em 0 1.2em; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
th { background: #f3f3f3; } td.l, th.l { text-align: left; }
.verdict { font-size: 1.15em; padding: 0.8em 1em; border-left: 5px solid #444;
           background: #f7f7f7; }
.verdict.established { border-color: #2a7; } .verdict.not { border-color: #c70; }
figure { margin: 1em 0; } figure img { max-width: 100%; border: 1px solid #ddd; }
pre { background: #f7f7f7; padding: 0.8em; overflow-x: auto; font-size: 0.85em; }
"""


def _f(value: Any, digits: int = 3) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return html.escape(str(value))


def _p(p: float | None) -> str:
    return "-" if p is None else f"{p:.3g}"


def _ci(ci: Any, digits: int = 3) -> str:
    if not ci or ci[0] is None:
        return "-"
    return f"[{ci[0]:.{digits}f}, {ci[1]:.{digits}f}]"


def _params(params: Mapping[str, Any]) -> str:
    return html.escape(", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
                                 for k, v in params.items()))


def _table(headers: list[str], rows: list[list[str]], cls: str = "") -> str:
    head = "".join(f"<th{' class=l' if i == 0 else ''}>{h}</th>" for i, h in enumerate(headers))
    body = "".join("<tr>" + "".join(f"<td{' class=l' if i == 0 else ''}>{c}</td>"
                                    for i, c in enumerate(r)) + "</tr>" for r in rows)
    return f"<table class='{cls}'><tr>{head}</tr>{body}</table>"


def _figure(name: str, png: bytes | None, caption: str) -> str:
    if png is None:
        return f"<p id='fig-{name}'><em>{html.escape(caption)}: nothing to draw yet.</em></p>"
    data = base64.b64encode(png).decode("ascii")
    return (f"<figure id='fig-{name}'><img alt='{html.escape(caption)}' "
            f"src='data:image/png;base64,{data}'><figcaption>{html.escape(caption)}"
            "</figcaption></figure>")


def parameter_split(total: int | None, circuit: int | None) -> str:
    """``318 (60 + 258)``: a generator's trainable parameters, those of its circuit and the
    classical rest; the total alone for trials recorded before the split was."""
    if total is None:
        return "-"
    if circuit is None:
        return str(total)
    return f"{total} ({circuit} + {total - circuit})"


def verdict_rows(report: dict[str, Any]) -> list[list[str]]:
    """One row per validated configuration (best of each kind first, a random-search baseline's
    after the searched ones and said so): the verdict table."""
    rows = []
    for kind, k in report["kinds"].items():
        for i, c in enumerate(k["validated"]):
            label = (" (random search)" if c.get("random_search")
                     else " (best)" if i == 0 else "")
            rows.append([
                html.escape(kind) + label,
                f"{html.escape(str(c['source_study']))} #{c['source_trial']}",
                str(c["n_seeds"]), _f(c["mean"]), _ci(c["ci"]), _f(c["sd"]),
                _f(c["search_value"]), _f(c["w2_mean"]), _f(c["mode_coverage_mean"], 2),
                parameter_split(c.get("n_params"), c.get("n_params_circuit")),
                _f(c["seconds_per_step"], 4),
            ])
    return rows


VERDICT_HEADERS = ["kind", "configuration (search trial)", "seeds", "seed mean D_s",
                   "95% CI over seeds", "seed sd", "search value", "W2 mean",
                   "mode coverage", "parameters (circuit + classical)", "seconds / step"]


def render_html(report: dict[str, Any], figures: Mapping[str, bytes | None]) -> str:
    """The page for ``report`` (see :func:`hpo.report_content.build_report`)."""
    metric = report["metric"]
    verdict = report["verdict"]
    e = html.escape
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>{e(report['study'])}: generator arms verdict</title>",
        f"<style>{CSS}</style></head><body>",
        f"<h1>{e(report['study'])}: which generator kind learns the target better?</h1>",
        f"<p>Objective: <b>{e(metric['name'])}</b>, the Gaussian-smoothed KL(Q||P) at resolution "
        f"s, estimated with m = {_f(metric['m'])} generator points per replicate against "
        f"n = {_f(metric['n'])} target points; lower is better. Intervals are 95%. W2: exact, "
        f"on {_f(metric.get('w2_points'))} generator and target points.</p>",
        "<h2 id='verdict'>Verdict</h2>",
        f"<p class='verdict {'established' if verdict['established'] else 'not'}' "
        f"id='verdict-sentence'>{e(verdict['sentence'])}</p>",
    ]
    if verdict.get("profile_sentence"):
        parts.append(f"<p id='profile-sentence'>{e(verdict['profile_sentence'])}</p>")
    control = verdict.get("control")
    if control:  # what a hybrid's circuit adds over its own head fed by classical noise
        parts += ["<h3>The hybrid against its control (the same head, no circuit)</h3>",
                  f"<p id='control-sentence'>{e(control['sentence'])}</p>"]
        if control.get("profile_sentence"):
            parts.append(f"<p id='control-profile-sentence'>"
                         f"{e(control['profile_sentence'])}</p>")
    parts += ["<h3>Validated configurations (seed validation)</h3>",
              "<p>Each configuration re-trained on fresh seeds the search never used; the seed "
              "mean and its Student-t interval over seeds are what a configuration is worth "
              "(the search value is one lucky seed).</p>",
              _table(VERDICT_HEADERS, verdict_rows(report), "verdict-table")]
    for pair in report["comparisons"]:
        a, b = pair["kinds"]
        rows = [[f"s (study) = {_f(metric['sigma'], 3)}", _f(pair["at_s"]["difference"]),
                 _ci(pair["at_s"]["ci"]), _p(pair["at_s"]["p_value"]),
                 e(pair["at_s"]["winner"] or "not established")]]
        rows += [[f"{p['factor']:g} x s = {p['sigma']:g}", _f(p["difference"]), _ci(p["ci"]),
                  _p(p["p_value"]), e(p["winner"] or "not established")]
                 for p in pair["profile"]]
        parts += [f"<h3>Difference of the best validated configurations: D_s({e(a)}) - "
                  f"D_s({e(b)})</h3>",
                  _table(["resolution", "difference [nats]", "95% CI (Welch)", "Welch p",
                          "conclusion"], rows, "comparison-table")]
    parts += _arms_parts(report)
    parts += [
        "<h2>Figures</h2>",
        _figure("expected_best", figures.get("expected_best"),
                "Expected best D_s after n search trials per arm (Dodge et al. 2019), 95% "
                "bootstrap band"),
        _figure("validation", figures.get("validation"), "Seed validation of each configuration"),
        _figure("profile", figures.get("profile"), "Resolution profile of the difference"),
        _figure("anytime", figures.get("anytime"),
                "Best D_s so far per kind against search trials and training seconds"),
        _figure("intermediate", figures.get("intermediate"),
                "Intermediate D_s of every search trial (log scale; pruned faded)"),
        _figure("samples", figures.get("samples"),
                "Final samples of each kind's validated best over the target's contours"),
        "<h2>Search</h2>",
        _table(["kind", "study", "finished", "complete", "pruned", "failed", "retries",
                "best search D_s", "its trial's 95% CI"],
               [[e(kind), e(", ".join(k["search"].get("studies") or [k["search"]["study"]])),
                 str(k["search"]["finished"]),
                 str(k["search"]["complete"]), str(k["search"]["pruned"]),
                 str(k["search"]["failed"]), str(k["search"]["retries"]),
                 _f(k["search"]["best_search_value"]), _ci(k["search"]["best_search_ci"])]
                for kind, k in report["kinds"].items()], "search-table"),
    ]
    parts += _provenance(report)
    parts.append("</body></html>")
    return "\n".join(parts)


def _provenance(report: dict[str, Any]) -> list[str]:
    e = html.escape
    p = report["provenance"]
    seeds = p["seeds"]
    best_params = [[e(kind), e(str(k["validated"][0]["source_trial"])),
                     _params(k["validated"][0]["params"])]
                    for kind, k in report["kinds"].items() if k["validated"]]
    return [
        "<h2 id='provenance'>Provenance</h2>",
        "<table>",
        f"<tr><th class=l>study</th><td class=l>{e(report['study'])} ({e(report['layout'])} "
        f"layout; studies {e(', '.join(_search_study_names(p)))}"
        f"{', ' + e(p['validation_study']) if p['validation_study'] else ''})</td></tr>",
        f"<tr><th class=l>storage</th><td class=l>{e(p['storage'])}</td></tr>",
        f"<tr><th class=l>code version(s)</th><td class=l>{e(', '.join(p['code_versions']))}"
        "</td></tr>",
        f"<tr><th class=l>s, m, n, replicates</th><td class=l>{_f(report['metric']['sigma'])}, "
        f"{_f(report['metric']['m'])}, {_f(report['metric']['n'])}, "
        f"{_f(report['metric']['replicates'])}</td></tr>",
        f"<tr><th class=l>search seeds</th><td class=l>{len(seeds['search'])} seeds"
        f"{_range(seeds['search'])}</td></tr>",
        f"<tr><th class=l>validation seeds</th><td class=l>{len(seeds['validation'])} seeds"
        f"{_range(seeds['validation'])}; shared with the search: {len(seeds['overlap'])}"
        "</td></tr>",
        f"<tr><th class=l>budget spent</th><td class=l><code>"
        f"{e(json.dumps(p['budget']['spent']))}</code></td></tr>",
        f"<tr><th class=l>failures</th><td class=l>{len(p['failures'])} "
        f"({sum(f['retried'] for f in p['failures'])} retried)</td></tr>",
        f"<tr><th class=l>generated</th><td class=l>{e(report['generated_at'])}</td></tr>",
        "</table>",
        "<h3>Parameters of each kind's validated best</h3>",
        _table(["kind", "search trial", "parameters"], best_params),
        "<h3>Study file</h3>",
        f"<pre>{e(yaml.safe_dump(p['study_file'], sort_keys=False))}</pre>",
    ]


def _search_study_names(provenance: dict[str, Any]) -> list[str]:
    """Every search study (each arm's searches; reports before them: one per kind)."""
    searches = provenance.get("searches")
    if searches:
        return [s for studies in searches.values() for s in studies]
    return list(provenance["search_studies"].values())


def _arms_parts(report: dict[str, Any]) -> list[str]:
    """The kinds over searches: each arm's searches and validated winners, the comparisons of
    arms with their intervals over searches (:mod:`hpo.report_arms`)."""
    e = html.escape
    arms = report.get("arms") or {}
    if not arms:
        return []
    parts = ["<h3 id='arms'>The kinds over independent searches</h3>",
             "<p>Each search of an arm is one draw of a noisy process (its sampler and trial "
             "seeds); its validated winner (lowest seed mean) re-trained on fresh seeds is one "
             "value of the arm. The interval of a kind-level difference is over searches "
             "(model: searches, configurations, seeds; docs/verdict.md).</p>"]
    for c in report.get("arms_comparisons") or []:
        parts.append(f"<p class='arms-sentence'>{e(c['sentence'])}</p>")
        for note in (c.get("verdict") or {}).get("notes", []):
            parts.append(f"<p class='arms-note'>{e(note)}</p>")
    rows = []
    for kind, a in arms.items():
        summary = a.get("summary")
        for s in a["searches"]:
            w = s["winner"] or {}
            search = str(s["search"]) + (" (random)" if s.get("sampler") == "random" else "")
            rows.append([e(kind), search, e(s["study"]),
                         f"#{w['source_trial']}" if w else "not validated",
                         parameter_split(w.get("n_params"), w.get("n_params_circuit")),
                         str(len(s["values"])), _f(w.get("mean")), _ci(w.get("ci"))])
        geo = (f"{_f(summary['geometric_mean'])} {_ci(summary['geometric_ci'])}"
               if summary else "needs R >= 2 searches")
        rows.append([e(kind) + " (arm)", "searched", "", "", "",
                     str(sum(len(s["values"]) for s in a["searches"])), "geometric mean",
                     geo])
    parts.append(_table(["arm", "search", "study", "validated winner",
                         "parameters (circuit + classical)", "seeds", "seed mean D_s",
                         "95% CI"], rows, "arms-table"))
    baselines = [a["random_baseline"]["sentence"] for a in arms.values()
                 if a.get("random_baseline")]
    if baselines:
        parts.append("<p>Does the search help? Each arm's last searches sampled at random "
                     "(<code>random_searches</code>), validated alike, against its searched "
                     "winners:</p>")
        parts += [f"<p class='random-baseline'>{e(b)}</p>" for b in baselines]
    else:
        parts.append("<p class='random-baseline'>No random-search baseline: the study file "
                     "has no <code>random_searches</code>, so this page cannot say whether the "
                     "search beat random sampling.</p>")
    return parts


def _range(seeds: list[int]) -> str:
    return f" ({seeds[0]} ... {seeds[-1]})" if seeds else ""
