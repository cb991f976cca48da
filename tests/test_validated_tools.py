"""The tools that follow a seed validation (issue 21, part 5): `hpo status`, `hpo export` and the
dashboard note rank by the validated seed mean once a validation exists, and say so; a kind's
study name means that kind of its group; every exported document names its own study; the
study file is no longer one long attribute on the dashboard's study page.

The group mirrors the published gaussgan run: the validation demotes each kind's search winner.
"""

from __future__ import annotations

import json
from pathlib import Path

import optuna
import pytest
import yaml

from hpo.cli import main
from hpo.storage import open_storage
from tests._verdict_fixtures import build_group

pytestmark = pytest.mark.unit

# Search: classical #1 0.5 (rank 1), #2 0.7 (rank 2); quantum #1 1.0 (rank 1), #3 1.1 (rank 2).
# Validation demotes classical #1 (seed mean 0.9) below #2 (0.6), and quantum #3 (1.2) below
# #1 (0.7): by seed mean the ranking is classical #2, quantum #1, classical #1, quantum #3.
DEMOTING = {
    "classical": {1: [0.85, 0.95, 0.90, 0.88, 0.92], 2: [0.58, 0.62, 0.60, 0.59, 0.61]},
    "quantum": {1: [0.68, 0.72, 0.70, 0.69, 0.71], 3: [1.18, 1.22, 1.20, 1.19, 1.21]},
}


@pytest.fixture
def journal(tmp_path: Path) -> str:
    path = tmp_path / "hpo.journal"
    build_group(open_storage(str(path)), "gg", validation_values=DEMOTING)
    return str(path)


def _export(capsys, journal: str, *args: str) -> tuple[int, str, str]:
    status = main(["export", *args, "--storage", journal])
    out = capsys.readouterr()
    return status, out.out, out.err


def _docs(text: str) -> list[dict]:
    return list(yaml.safe_load_all(text))


def test_export_after_a_validation_exports_the_validated_winner(journal, capsys) -> None:
    """`hpo export gaussgan --top 1` exported the demoted search winner, with no hint."""
    status, out, err = _export(capsys, journal, "gg")
    assert status == 0, err
    (doc,) = _docs(out)
    assert (doc["source"]["study"], doc["source"]["trial"]) == ("gg.classical", 2)
    assert doc["source"]["validated"]["mean"] == pytest.approx(0.6)
    assert doc["source"]["ranking"] == "validated"
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "seed mean" in lines[0] and "--search" in lines[0], err

    status, out, err = _export(capsys, journal, "gg", "--search", "--top", "2")
    assert status == 0, err
    assert [(d["source"]["study"], d["source"]["trial"]) for d in _docs(out)] == [
        ("gg.classical", 1), ("gg.classical", 2)]
    assert all(d["source"]["ranking"] == "search" and "validated" not in d["source"]
               for d in _docs(out))
    assert "search" in err and len(err.strip().splitlines()) == 1, err

    with pytest.raises(SystemExit) as both:  # argparse: a usage error, one line, status 2
        main(["export", "gg", "--search", "--validated", "--storage", journal])
    assert both.value.code == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_a_kind_study_name_means_that_kind_of_the_group(journal, capsys) -> None:
    """`hpo export gaussgan.quantum --validated` said there was no validated configuration."""
    status, out, err = _export(capsys, journal, "gg.quantum", "--validated", "--top", "5")
    assert status == 0, err
    assert [(d["source"]["study"], d["source"]["trial"]) for d in _docs(out)] == [
        ("gg.quantum", 1), ("gg.quantum", 3)]
    status, out, err = _export(capsys, journal, "gg.quantum")  # the default: validated too
    assert status == 0 and _docs(out)[0]["source"]["trial"] == 1, err
    status, out, err = _export(capsys, journal, "gg.validation", "--top", "2")
    assert status == 0, err
    assert [d["source"]["study"] for d in _docs(out)] == ["gg.classical", "gg.quantum"]

    status, out, err = _export(capsys, journal, "gg.quantum", "--kind", "classical")
    assert status == 2 and out == "" and len(err.strip().splitlines()) == 1, err
    assert "gg.quantum" in err and "quantum" in err


def test_every_exported_document_names_its_own_study(journal, capsys) -> None:
    """`--validated --top 2` labelled the quantum config "of study gaussgan.classical"."""
    status, out, err = _export(capsys, journal, "gg", "--validated", "--top", "2")
    assert status == 0, err
    docs = _docs(out)
    assert [d["source"]["study"] for d in docs] == ["gg.classical", "gg.quantum"]
    chunks = out.split("\n---\n")
    assert len(chunks) == len(docs)
    for chunk, doc in zip(chunks, docs, strict=True):
        comments = " ".join(line for line in chunk.splitlines() if line.startswith("#"))
        own = doc["source"]["study"]
        other = "gg.quantum" if own == "gg.classical" else "gg.classical"
        assert own in comments and other not in comments, chunk[:300]


def test_status_headlines_the_validated_winner(journal, capsys) -> None:
    """`hpo status gaussgan.validation` showed one seed of a demoted configuration as best."""
    assert main(["status", "gg.validation", "--storage", journal]) == 0
    out = capsys.readouterr().out
    classical = next(line for line in out.splitlines() if line.startswith("classical "))
    assert "validated: mean of 5 seeds" in classical, out
    assert classical.split()[classical.split().index("gg.classical") + 5] == "2", classical
    assert "0.6000" in classical and "0.5000" not in classical, classical
    assert "gg.validation is the seed validation of study group gg" in out, out

    assert main(["status", "gg", "--json", "--storage", journal]) == 0
    data = json.loads(capsys.readouterr().out)
    best = data["kinds"]["classical"]["best"]
    assert (best["trial"], best["n_seeds"], best["ranked_by"]) == (2, 5, "validated")
    assert best["value"] == pytest.approx(0.6)
    assert data["kinds"]["classical"]["search_best"]["trial"] == 1
    assert data["kinds"]["quantum"]["best"]["trial"] == 1


def test_dashboard_note_names_the_validated_winners_by_seed_mean(journal) -> None:
    from hpo.group import load_group
    from hpo.publish import note_markdown
    from hpo.report_content import build_report

    report = build_report(load_group(open_storage(journal), "gg"))
    note = note_markdown(report, {})
    assert "gg.classical #2" in note and "gg.classical #1 |" not in note, note
    assert "validated: mean of 5 seeds" in note, note
    assert "Best Trial" in note and "one seed" in note, note  # why the dashboard's differs


def test_the_study_file_is_a_short_attribute_and_every_reader_still_has_it(tmp_path) -> None:
    from hpo.group import ensure_group, load_group
    from hpo.report import status_data
    from hpo.report_content import study_sigma
    from hpo.space import load_spec

    spec = load_spec("studies/gaussgan.yaml")
    storage = open_storage(str(tmp_path / "hpo.journal"))
    studies = ensure_group(storage, spec)
    full = spec.model_dump(mode="json")
    for study in studies.values():
        for key, value in optuna.load_study(study_name=study.study_name,
                                            storage=storage).user_attrs.items():
            assert len(json.dumps(value)) <= 160, (study.study_name, key, str(value)[:80])
    from hpo.stored_study_file import study_file_of  # the one reader of both forms

    for study in studies.values():
        assert study_file_of(storage, study.study_name) == full
    group = load_group(storage, spec.name)
    assert group.study_file == full
    assert study_sigma(group)[0] is not None  # the target's default s, from the study file
    assert status_data(group)["budget"] == full["budget"]["trials"]


def test_a_journal_with_the_long_attribute_still_reads_and_is_moved_on_init(tmp_path) -> None:
    """Journals written before (the first published gaussgan runs) hold the whole file as the
    attribute."""
    from hpo.group import ensure_group, load_group
    from hpo.space import load_spec

    # searched once, as the file that wrote those journals was (one study per arm, no .s<r>)
    spec = load_spec("studies/gaussgan.yaml").model_copy(update={"searches": 1})
    storage = open_storage(str(tmp_path / "hpo.journal"))
    full = spec.model_dump(mode="json")
    for name in ("gaussgan.classical", "gaussgan.quantum", "gaussgan.validation"):
        optuna.create_study(study_name=name, storage=storage).set_user_attr("study_file", full)
    assert load_group(storage, "gaussgan").study_file == full  # read as it is
    ensure_group(storage, spec)  # hpo init, a worker: moved, the attribute made short
    group = load_group(storage, "gaussgan")
    assert group.study_file == full
    assert all(isinstance(optuna.load_study(study_name=n, storage=storage)
                          .user_attrs["study_file"], str) for n in group.study_names)


def _repeated_searches(path: Path) -> str:
    """Group ``rr``: each arm searched twice (``rr.<arm>.s1``, ``.s2``); each search's trial 0
    validated on 3 seeds. Search 2 of quantum has the best validated winner."""
    from optuna.trial import create_trial

    from tests._verdict_fixtures import DISTS, STUDY_FILE, _attrs, _params

    storage = open_storage(str(path))
    vstudy = optuna.create_study(study_name="rr.validation", storage=storage)
    vstudy.set_user_attr("study_file", {**STUDY_FILE, "name": "rr", "searches": 2})
    for arm in ("classical", "quantum"):
        for r in (1, 2):
            study = optuna.create_study(study_name=f"rr.{arm}.s{r}", storage=storage)
            study.set_user_attr("study_file", {**STUDY_FILE, "name": "rr", "searches": 2})
            for i, value in enumerate((0.5 + 0.1 * r, 0.9)):
                study.add_trial(create_trial(value=value, params=_params(arm, i),
                                             distributions=DISTS[arm],
                                             user_attrs=_attrs(arm, i, value, 10.0)))
            winner = 0.3 if (arm, r) == ("quantum", 2) else 0.6 + 0.1 * r
            for seed in range(3):
                attrs = _attrs(arm, 1000 + seed, winner + 0.01 * seed, 12.0)
                attrs["validates"] = {"study": f"rr.{arm}.s{r}", "trial": 0, "rank": 1,
                                      "search_value": 0.5 + 0.1 * r, "arm": arm, "search": r}
                vstudy.add_trial(create_trial(value=winner + 0.01 * seed, params=_params(arm, 0),
                                              distributions=DISTS[arm], user_attrs=attrs))
    return str(path)


def test_a_search_study_name_exports_that_search_alone(tmp_path: Path, capsys) -> None:
    """`hpo export NAME.<arm>.s<r>` exported every search of the arm, and `--kind <arm>` beside
    it was refused as a contradiction."""
    journal = _repeated_searches(tmp_path / "hpo.journal")
    status, out, err = _export(capsys, journal, "rr.classical.s1", "--top", "5")
    assert status == 0, err
    assert [(d["source"]["study"], d["source"]["ranking"]) for d in _docs(out)] == [
        ("rr.classical.s1", "validated")]
    status, out, err = _export(capsys, journal, "rr.classical.s1", "--search", "--top", "5")
    assert status == 0, err
    assert [(d["source"]["study"], d["source"]["trial"]) for d in _docs(out)] == [
        ("rr.classical.s1", 0), ("rr.classical.s1", 1)]
    status, out, err = _export(capsys, journal, "rr.quantum.s1", "--kind", "quantum")
    assert status == 0, err
    assert [d["source"]["study"] for d in _docs(out)] == ["rr.quantum.s1"]
    # NAME.<arm> (no study of its own when searched several times): the arm, both searches
    status, out, err = _export(capsys, journal, "rr.quantum", "--top", "5")
    assert status == 0, err
    assert [d["source"]["study"] for d in _docs(out)] == ["rr.quantum.s2", "rr.quantum.s1"]
    status, out, err = _export(capsys, journal, "rr")  # the group: the best validated winner
    assert status == 0 and _docs(out)[0]["source"]["study"] == "rr.quantum.s2", err


def test_an_arm_searched_once_and_repeatedly_under_one_name_is_refused(tmp_path: Path,
                                                                       capsys) -> None:
    """`rr.quantum` beside `rr.quantum.s1`, both kept by hpo for study file rr: both read as
    search 1 of quantum; refused in one line, status 2, the stored trials untouched."""
    from tests._verdict_fixtures import STUDY_FILE

    journal = _repeated_searches(tmp_path / "hpo.journal")
    optuna.create_study(study_name="rr.quantum", storage=open_storage(journal)).set_user_attr(
        "study_file", {**STUDY_FILE, "name": "rr"})
    before = (tmp_path / "hpo.journal").read_bytes()
    for command in (["export", "rr"], ["status", "rr"], ["export", "rr.quantum.s2"]):
        status = main([*command, "--storage", journal])
        err = capsys.readouterr().err
        assert status == 2 and len(err.strip().splitlines()) == 1, (command, err)
        assert "rr.quantum" in err and "rr.quantum.s1" in err, err
    assert (tmp_path / "hpo.journal").read_bytes() == before


def test_a_plain_optuna_study_named_like_an_arm_is_not_one(tmp_path: Path, capsys) -> None:
    """A study `rr.control` that hpo did not make (no study file named rr) beside group rr was
    read as a third arm of it: in status, export and the group's reading. It is not."""
    from optuna.trial import create_trial

    from hpo.group import load_group, member_of

    journal = _repeated_searches(tmp_path / "hpo.journal")
    storage = open_storage(journal)
    stray = optuna.create_study(study_name="rr.control", storage=storage)
    stray.add_trial(create_trial(value=0.01))  # better than anything in the group
    assert load_group(storage, "rr").kinds == ["classical", "quantum"]
    assert member_of(storage, "rr.control") is None
    optuna.create_study(study_name="other.validation", storage=storage)  # no group other
    assert member_of(storage, "other.validation") is None
    assert member_of(storage, "rr.quantum.s2") == ("rr", "quantum.s2")
    assert member_of(storage, "rr.validation") == ("rr", "validation")
    status, out, err = _export(capsys, journal, "rr")
    assert status == 0 and _docs(out)[0]["source"]["study"] == "rr.quantum.s2", err
    assert main(["status", "rr", "--storage", journal]) == 0
    assert "control" not in capsys.readouterr().out
