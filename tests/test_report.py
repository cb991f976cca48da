"""`hpo report`: report.json recomputed from the stored trials by an independent path (scipy),
the HTML page self-contained, the dashboard note and metric names read back through
optuna-dashboard's own API, and the CLI on an embedded journal file."""

from __future__ import annotations

import io
import json
import re
from collections import defaultdict
from pathlib import Path

import numpy as np
import optuna
import pytest
from optuna.storages.journal import JournalFileBackend, JournalStorage
from optuna.trial import TrialState
from scipy import stats

from hpo.group import load_group, validation_study_name
from hpo.publish import write_report
from hpo.report_content import build_report, metric_name
from hpo.report_figures import anytime_figure
from tests._verdict_fixtures import SIGMA, build_group, welch_reference
from tests.conftest import run_hpo


def _journal_in(directory: Path) -> tuple[str, JournalStorage]:
    path = directory / "runs" / "hpo.journal"
    path.parent.mkdir(parents=True)
    return str(path), JournalStorage(JournalFileBackend(str(path)))


@pytest.fixture
def journal(tmp_path: Path) -> tuple[str, JournalStorage]:
    return _journal_in(tmp_path)


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory):
    """One published report for the module's read-only tests (building it is ~3 s of CPU)."""
    tmp_path = tmp_path_factory.mktemp("published")
    url, storage = _journal_in(tmp_path)
    stored = build_group(storage)
    store = optuna.artifacts.FileSystemArtifactStore(str(_mkdir(tmp_path / "artifacts")))
    result = write_report(storage, "verdict", tmp_path / "report", artifact_store=store,
                          storage_label=url)
    return storage, stored, result, store


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def _recomputed(storage) -> dict[str, dict[int, list[float]]]:
    """Seed values per kind and search trial, read straight from the validation study."""
    trials = optuna.load_study(study_name=validation_study_name("verdict"),
                               storage=storage).get_trials()
    out: dict[str, dict[int, list[float]]] = defaultdict(dict)
    for t in trials:
        if t.state == TrialState.COMPLETE:
            out[t.user_attrs["generator_kind"]].setdefault(
                t.user_attrs["validates"]["trial"], []).append(t.value)
    return out


@pytest.mark.unit
def test_report_json_equals_a_recomputation_from_stored_trials(published) -> None:
    storage, stored, result, _ = published
    report = json.loads(result.json.read_text())
    again = _recomputed(storage)
    assert set(report["kinds"]) == {"classical", "quantum"}
    for kind, configs in again.items():
        validated = report["kinds"][kind]["validated"]
        assert {c["source_trial"] for c in validated} == set(configs)
        for c in validated:
            values = np.array(configs[c["source_trial"]])
            ci = stats.ttest_1samp(values, 0.0).confidence_interval(0.95)
            assert c["n_seeds"] == len(values) == 5
            assert c["mean"] == pytest.approx(values.mean(), rel=1e-12)
            assert c["sd"] == pytest.approx(values.std(ddof=1), rel=1e-12)
            assert c["ci"] == pytest.approx([ci.low, ci.high], rel=1e-12)
        means = [c["mean"] for c in validated]
        assert means == sorted(means), "best validated configuration first"
    best_c = again["classical"][1]  # hand-chosen: classical #1 and quantum #1 are the best
    best_q = again["quantum"][1]
    diff, low, high = welch_reference(best_c, best_q)
    at_s = report["comparisons"][0]["at_s"]
    assert at_s["difference"] == pytest.approx(diff) and at_s["ci"] == pytest.approx([low, high])
    assert report["verdict"]["established"] and report["verdict"]["winner"] == "classical"
    assert report["verdict"]["sentence"].startswith(f"At s = {SIGMA:g}, classical is better")


@pytest.mark.unit
def test_profile_comparison_at_each_multiple_of_s(published) -> None:
    storage, _, result, _ = published
    report = result.report
    trials = optuna.load_study(study_name=validation_study_name("verdict"),
                               storage=storage).get_trials()

    def at(kind, factor):
        return [p["value"] for t in trials if t.user_attrs["generator_kind"] == kind
                and t.user_attrs["validates"]["trial"] == 1
                for p in t.user_attrs["kl_profile"] if p["factor"] == factor]

    profile = report["comparisons"][0]["profile"]
    assert [p["factor"] for p in profile] == [0.5, 1.0, 2.0]
    for p in profile:
        diff, low, high = welch_reference(at("classical", p["factor"]),
                                          at("quantum", p["factor"]))
        assert p["sigma"] == pytest.approx(p["factor"] * SIGMA)
        assert p["difference"] == pytest.approx(diff) and p["ci"] == pytest.approx([low, high])
    assert report["verdict"]["profile_holds"] is True


@pytest.mark.unit
def test_overlapping_seeds_say_not_established(journal, tmp_path: Path) -> None:
    _, storage = journal
    build_group(storage, "close", validation_values={
        "classical": {1: [0.46, 0.70, 0.55, 0.80, 0.62]},
        "quantum": {1: [1.01, 0.50, 1.60, 1.20, 0.90]}})
    report = build_report(load_group(storage, "close"))
    at_s = report["comparisons"][0]["at_s"]
    assert at_s["ci"][0] < 0 < at_s["ci"][1]
    assert not report["verdict"]["established"] and report["verdict"]["winner"] is None
    assert "not established" in report["verdict"]["sentence"]


@pytest.mark.unit
def test_a_single_layout_study_is_not_told_to_run_validate(journal) -> None:
    """A single-layout study has no seed validation, and `hpo validate` refuses it: the report's
    verdict and `hpo export --validated` said "run hpo validate" all the same."""
    from optuna.trial import create_trial

    from hpo.errors import UsageError
    from hpo.export import export_documents
    from tests._verdict_fixtures import DISTS, STUDY_FILE, _attrs, _params

    _, storage = journal
    study = optuna.create_study(study_name="one", storage=storage)
    study.set_user_attr("study_file", {**STUDY_FILE, "name": "one"})
    for i, kind in enumerate(("classical", "quantum")):
        study.add_trial(create_trial(value=0.5 + i, params=_params(kind, i),
                                     distributions=DISTS[kind],
                                     user_attrs=_attrs(kind, i, 0.5 + i, 10.0)))
    group = load_group(storage, "one")
    assert group.layout == "single"
    sentence = build_report(group)["verdict"]["sentence"]
    assert "single-layout" in sentence and "hpo validate" not in sentence, sentence
    with pytest.raises(UsageError, match="single-layout") as err:
        export_documents(group, top=1, validated=True)
    assert "hpo validate" not in str(err.value)
    # a per-kind study whose file turns the validation off: nothing to run either
    for kind in ("classical", "quantum"):
        arm = optuna.create_study(study_name=f"off.{kind}", storage=storage)
        arm.set_user_attr("study_file", {**STUDY_FILE, "name": "off",
                                         "validation": {"top_k": 0, "seeds": 5}})
        arm.add_trial(create_trial(value=0.5, params=_params(kind, 0), distributions=DISTS[kind],
                                   user_attrs=_attrs(kind, 0, 0.5, 10.0)))
    group = load_group(storage, "off")
    assert group.layout == "per-kind"
    sentence = build_report(group)["verdict"]["sentence"]
    assert "turns seed validation off" in sentence and "hpo validate" not in sentence, sentence
    with pytest.raises(UsageError, match="turns seed validation off"):
        export_documents(group, top=1, validated=True)


@pytest.mark.unit
def test_a_mean_over_one_seed_says_one_seed() -> None:
    """A configuration with one validation seed finished so far read "mean of 1 seeds"."""
    from hpo.export import dump_documents
    from hpo.report import ranked_by

    assert ranked_by({"ranked_by": "validated", "n_seeds": 1, "search_rank": 2}) == (
        "validated: mean of 1 seed (search rank 2)")
    assert "mean of 5 seeds" in ranked_by({"ranked_by": "validated", "n_seeds": 5})
    doc = {"train": {"generator": {"kind": "classical"}},
           "source": {"study": "s.classical", "trial": 3, "rank": 1,
                      "validated": {"mean": 0.5, "n_seeds": 1, "search_rank": 1}}}
    assert "validated: mean of 1 seed 0.5000" in dump_documents([doc], "s")
    from hpo.verdict import compare_kinds

    assert "; 1 seed each)" in compare_kinds([0.5], [0.7], "classical", "quantum").sentence


@pytest.mark.unit
def test_a_report_whose_notes_cannot_be_written_says_the_page_is(journal, tmp_path: Path,
                                                                  monkeypatch, capsys) -> None:
    """On a read-only journal the page was written, then `hpo report` ended on the note's
    write with one bare line and no verdict: the verdict and the page's path are printed, then
    one line saying the notes are not written, exit 1. (The OSError is the one a journal on a
    read-only mount raises; mounting one needs more than a test should.)"""
    import errno

    import hpo.publish
    from hpo.cli import main

    url, storage = journal
    build_group(storage, "ro")

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system", "/mnt/ro/hpo.journal")

    monkeypatch.setattr(hpo.publish, "annotate_dashboard", read_only)
    status = main(["report", "ro", "--storage", url, "--out", str(tmp_path / "page")])
    out, err = capsys.readouterr()
    assert status == 1
    assert "is better than" in out and f"wrote {tmp_path / 'page' / 'index.html'}" in out, out
    assert err.strip().splitlines() == [
        "hpo report: the page is written, the dashboard notes are not (Read-only file system: "
        "/mnt/ro/hpo.journal); --no-note leaves them out"]
    assert json.loads((tmp_path / "page" / "report.json").read_text())["verdict"]


@pytest.mark.unit
def test_provenance_budget_seeds_and_anytime(published) -> None:
    _, stored, result, _ = published
    r = result.report
    seeds = r["provenance"]["seeds"]
    assert seeds["search"] == sorted(set(stored["search_seeds"]))
    assert seeds["validation"] == sorted(stored["validation_seeds"])
    assert seeds["overlap"] == []
    assert r["provenance"]["budget"]["per_kind"] == {"classical": 4, "quantum": 4}
    spent = r["provenance"]["budget"]["spent"]
    assert (spent["classical"]["complete"], spent["classical"]["pruned"]) == (3, 1)
    assert spent["validation"]["complete"] == 20
    assert r["metric"]["sigma"] == SIGMA and r["metric"]["name"] == metric_name(SIGMA)
    assert r["metric"]["w2_points"] == 2000  # the file names none: the size it ran at
    curve = r["anytime"]["classical"]  # search values 0.9, 0.5, 0.7, pruned
    assert curve["trials"] == [1, 2, 3, 4]
    assert curve["best_so_far"] == [0.9, 0.5, 0.5, 0.5]
    assert curve["cumulative_seconds"] == [10.0, 21.0, 33.0, 46.0]


@pytest.mark.unit
def test_the_anytime_plot_has_a_log_axis_that_shows_both_ends(published) -> None:
    """One early trial of tens of nats must not flatten the later improvements."""
    _, _, result, _ = published
    report = json.loads(json.dumps(result.report))
    report["anytime"]["classical"]["best_so_far"][0] = 33.7
    fig = anytime_figure(report)
    for ax in fig.axes:
        assert ax.get_yscale() == "log"
        low, high = ax.get_ylim()
        assert low <= 0.5 and high >= 33.7


@pytest.mark.unit
def test_the_anytime_plot_of_a_study_with_no_finished_trial_warns_of_nothing(published) -> None:
    """It used to print matplotlib's "No artists with labels" warning under `hpo report`."""
    import warnings

    _, _, result, _ = published
    report = json.loads(json.dumps(result.report))
    for curve in report["anytime"].values():
        curve["best_so_far"] = [None] * len(curve["best_so_far"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fig = anytime_figure(report)
    assert all("no finished search trial yet" in [t.get_text() for t in ax.texts]
               for ax in fig.axes)


@pytest.mark.unit
def test_html_is_one_self_contained_file(published) -> None:
    _, _, result, _ = published
    page = result.html.read_text()
    assert "verdict-table" in page and "classical is better than quantum" in page
    assert "parameters (circuit + classical)" in page
    assert "<td>40 (28 + 12)</td>" in page and "<td>100 (0 + 100)</td>" in page
    images = re.findall(r"<img[^>]*src='([^']*)'", page)
    assert len(images) >= 4 and all(src.startswith("data:image/png;base64,") for src in images)
    assert not re.search(r"(src|href)=['\"]https?://", page), "nothing loads from elsewhere"
    assert "<script" not in page


def _dashboard_get(storage, store, path: str) -> dict:
    """GET through optuna-dashboard's own WSGI application (what the browser would receive)."""
    from wsgiref.util import setup_testing_defaults

    from optuna_dashboard import wsgi

    app = wsgi(storage, artifact_store=store)
    environ: dict = {"PATH_INFO": path, "REQUEST_METHOD": "GET", "QUERY_STRING": "after=0"}
    setup_testing_defaults(environ)
    status: list[str] = []
    body = b"".join(app(environ, lambda s, h, exc=None: status.append(s) or io.BytesIO().write))
    assert status[0].startswith("200"), status
    return json.loads(body)


@pytest.mark.unit
def test_dashboard_note_carries_the_verdict_and_plots_name_the_metric(published) -> None:
    storage, _, result, store = published
    assert result.noted_studies == ["verdict.classical", "verdict.quantum", "verdict.validation"]
    summaries = _dashboard_get(storage, store, "/api/studies")["study_summaries"]
    ids = {s["study_name"]: s["study_id"] for s in summaries}
    for name in result.noted_studies:
        detail = _dashboard_get(storage, store, f"/api/studies/{ids[name]}")
        assert detail["objective_names"] == [f"D_s KL(Q||P) [nats], s = {SIGMA:g}"]
        assert result.report["verdict"]["sentence"] in detail["note"]["body"]
    validation = _dashboard_get(storage, store, f"/api/studies/{ids['verdict.validation']}")
    figures = [a for a in validation["artifacts"] if a["mimetype"] == "image/png"]
    assert len(figures) >= 4
    for a in figures:
        assert f"/artifacts/{ids['verdict.validation']}/{a['artifact_id']}" in \
            validation["note"]["body"]


@pytest.mark.unit
def test_single_study_layout_is_split_by_kind(journal) -> None:
    _, storage = journal
    study = optuna.create_study(study_name="old", storage=storage)
    for i, (kind, v) in enumerate([("classical", 0.5), ("quantum", 0.9), ("quantum", 0.8)]):
        study.add_trial(optuna.trial.create_trial(
            value=v, params={}, distributions={},
            user_attrs={"generator_kind": kind, "seed": i}))
    group = load_group(storage, "old")
    assert group.layout == "single" and {k: len(v) for k, v in group.search.items()} == {
        "classical": 1, "quantum": 2}
    report = build_report(group)
    assert report["kinds"]["quantum"]["search"]["best_search_value"] == 0.8
    assert not report["verdict"]["established"]
    assert "no seed validation" in report["verdict"]["sentence"]


@pytest.mark.e2e
def test_cli_report_on_the_embedded_journal(journal, tmp_path: Path) -> None:
    _, storage = journal
    build_group(storage)
    done = run_hpo("report", "verdict", "--out", "out", cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "out" / "index.html").is_file()
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["verdict"]["winner"] == "classical"
    assert "classical is better" in done.stdout
    bad = run_hpo("report", "nosuch", cwd=tmp_path)
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1, bad.stderr
    assert "no study named 'nosuch'" in bad.stderr and "verdict.classical" in bad.stderr


@pytest.mark.e2e
def test_report_has_help(tmp_path: Path) -> None:
    done = run_hpo("report", "--help", cwd=tmp_path, timeout=60)
    assert done.returncode == 0 and "usage: hpo report" in done.stdout
    assert "--out DIR" in done.stdout and "--storage" in done.stdout
    assert not (tmp_path / "runs").exists(), "help creates nothing"
