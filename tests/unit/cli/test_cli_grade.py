"""`mleray grade`: one submission, or MLE-bench's submission JSONL into a grading report."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from helpers import write_toy_competition

from mleray.cli import grade as grade_cli
from mleray.grading.report import SUMMARY_KEYS
from mleray.records import MLEBENCH_REPORT_KEYS


@pytest.fixture
def toy(tmp_path, monkeypatch, cache_dir):
    root = tmp_path / "competitions"
    folder = write_toy_competition(root / "toy")
    pd.DataFrame({"teamId": range(10), "score": [1.0, 0.95, 0.9, 0.85, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3]}).to_csv(
        folder / "leaderboard.csv", index=False)
    monkeypatch.setenv("MLERAY_COMPETITIONS_DIR", str(root))
    return tmp_path


def _submission(path, right):
    ids = list(range(1, 11))
    pd.DataFrame({"id": ids, "y": [i % 2 if i <= right else 1 - i % 2 for i in ids]}).to_csv(path, index=False)
    return path


def test_grade_one_submission_prints_the_entry(toy, capsys):
    path = _submission(toy / "sub.csv", 10)
    assert grade_cli.main([str(path), "toy"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert list(printed) == list(MLEBENCH_REPORT_KEYS) + ["reason"]
    assert printed["score"] == 1.0 and printed["gold_medal"] and printed["competition_id"] == "toy"


def test_leading_grade_word_is_accepted(toy, capsys):
    path = _submission(toy / "sub.csv", 9)
    assert grade_cli.main(["grade", str(path), "toy"]) == 0
    assert json.loads(capsys.readouterr().out)["score"] == 0.9


def test_grade_jsonl_writes_an_mlebench_report(toy, capsys):
    lines = [
        "# a comment line, skipped as MLE-bench does",
        json.dumps({"competition_id": "toy", "submission_path": str(_submission(toy / "a.csv", 10))}),
        "",
        json.dumps({"competition_id": "toy", "submission_path": str(_submission(toy / "b.csv", 9))}),
        "// another comment",
        json.dumps({"competition_id": "toy", "submission_path": None}),
        json.dumps({"competition_id": "toy", "submission_path": str(toy / "bad.csv")}),
    ]
    (toy / "bad.csv").write_text("id,y\n1,0\n")
    jsonl = toy / "submissions.jsonl"
    jsonl.write_text("\n".join(lines) + "\n")
    out = toy / "out"
    assert grade_cli.main(["--jsonl", str(jsonl), "--out", str(out)]) == 0
    (report_path,) = out.glob("*_grading_report.json")
    report = json.loads(report_path.read_text())
    assert list(report) == list(SUMMARY_KEYS) + ["competition_reports"]
    assert {k: report[k] for k in SUMMARY_KEYS} == {
        "total_runs": 4, "total_runs_with_submissions": 3, "total_valid_submissions": 2, "total_medals": 2,
        "total_gold_medals": 1, "total_silver_medals": 0, "total_bronze_medals": 1, "total_above_median": 2}
    entries = report["competition_reports"]
    assert [e["score"] for e in entries] == [1.0, 0.9, None, None]
    assert entries[2]["submission_path"] == "None"  # MLE-bench's str(Path(None)) for a null path
    assert all(list(e) == list(MLEBENCH_REPORT_KEYS) for e in entries)
    printed = capsys.readouterr().out
    assert '"total_runs": 4' in printed and str(report_path) in printed


def test_jsonl_report_defaults_to_the_jsonl_folder(toy):
    jsonl = toy / "subs.jsonl"
    jsonl.write_text(json.dumps({"competition_id": "toy", "submission_path": str(toy / "none.csv")}) + "\n")
    assert grade_cli.main(["--jsonl", str(jsonl)]) == 0
    assert len(list(toy.glob("*_grading_report.json"))) == 1


def test_unknown_competition_stops_with_a_clear_error(toy, capsys):
    assert grade_cli.main([str(_submission(toy / "x.csv", 10)), "no-such-competition"]) == 2
    assert "no-such-competition" in capsys.readouterr().err


def test_missing_submission_file_is_an_error_not_an_empty_grade(toy, capsys):
    assert grade_cli.main([str(toy / "absent.csv"), "toy"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == (f"error: submission file not found: {toy / 'absent.csv'} "
                            "(give the path of the CSV to grade)\n")


def test_bad_jsonl_is_reported(toy, capsys):
    jsonl = toy / "subs.jsonl"
    jsonl.write_text('{"competition_id": "toy"}\n')
    assert grade_cli.main(["--jsonl", str(jsonl)]) == 2
    assert "subs.jsonl:1" in capsys.readouterr().err
    assert grade_cli.main(["--jsonl", str(toy / "absent.jsonl")]) == 2


def test_unprepared_mlebench_competition_names_the_fix(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MLERAY_MLEBENCH_DATA_DIR", str(tmp_path / "empty"))
    (tmp_path / "s.csv").write_text("id,species\n")
    assert grade_cli.main([str(tmp_path / "s.csv"), "leaf-classification", "--data-dir", str(tmp_path / "d")]) == 2
    err = capsys.readouterr().err
    assert "mlebench prepare -c leaf-classification" in err and str(tmp_path / "d") in err


def test_usage_errors():
    with pytest.raises(SystemExit):
        grade_cli.main([])
    with pytest.raises(SystemExit):
        grade_cli.main(["a.csv", "toy", "--jsonl", "x.jsonl"])


def test_sweep_export(tmp_path, capsys):
    from mleray.records import TrialResult

    sweep = tmp_path / "sweep"
    sweep.mkdir()
    record = TrialResult(competition_id="c", agent="dummy", tier="cpu", seed=0, trial_id="dummy__c__cpu__s0",
                         score=0.5, submission_exists=True, valid_submission=True)
    (sweep / "trials.jsonl").write_text(json.dumps(record.to_dict()) + "\n")
    assert grade_cli.main(["--sweep", str(sweep)]) == 0
    path = sweep / "report" / "grading_reports" / "dummy__cpu_grading_report.json"
    assert str(path) in capsys.readouterr().out
    assert json.loads(path.read_text())["total_valid_submissions"] == 1
    assert grade_cli.main(["--sweep", str(tmp_path / "nothing")]) == 2
