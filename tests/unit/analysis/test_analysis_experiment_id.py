"""`python -m analysis --experiment-id ID`: MLE-bench's runs/run_group_experiments.csv (the real file) picks
an experiment's run groups, as its aggregate_grading_reports.py does, and the Famou-Agent row of MLE-bench's
README comes out of its three real grading reports."""

from __future__ import annotations

import csv
import io
import json
import shutil
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest

from analysis import load
from analysis.__main__ import main


def _runs(mlebench_data: Path, tmp_path: Path) -> Path:
    """MLE-bench's runs/ as at the commit of the Famou-Agent reports (3a721be): the experiment -> run group
    CSV and runs/fmagent_group{1,2,3}/grading_report_group_{1,2,3}.json (renamed famou-agent_group* later)."""
    runs = tmp_path / "runs"
    runs.mkdir()
    shutil.copy(mlebench_data / "run_group_experiments.csv", runs / load.RUN_GROUPS_CSV)
    for i in (1, 2, 3):
        (runs / f"fmagent_group{i}").mkdir()
        shutil.copy(mlebench_data / "grading_reports" / f"famou-agent_group{i}" / f"grading_report_group_{i}.json",
                    runs / f"fmagent_group{i}")
    return runs


def _run(argv) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


def _readme_row(mlebench_data: Path, agent: str) -> dict:
    with open(mlebench_data / "readme_leaderboard_table.csv", newline="") as f:
        return next(r for r in csv.DictReader(f) if r["agent"] == agent)


def test_famou_agent_readme_row_from_run_group_experiments(mlebench_data, tmp_path):
    runs = _runs(mlebench_data, tmp_path)
    assert load.run_groups("FM Agent", runs / load.RUN_GROUPS_CSV) == [f"fmagent_group{i}" for i in (1, 2, 3)]
    code, out, err = _run(["--experiment-id", "FM Agent", "--runs-dir", str(runs), "--json"])
    assert code == 0, err
    data = json.loads(out)
    (row,) = data["tables"]["leaderboard"]
    assert row["agent"] == "FM Agent"  # the three run groups are one experiment, whatever their folders are called
    readme = _readme_row(mlebench_data, "Famou-Agent")
    for split in ("low", "medium", "high", "all"):
        assert row[f"{split.capitalize()} (%)"] == f"{readme[f'{split}_mean']}±{readme[f'{split}_sem']}", split
    exp = data["experiment"]
    assert exp["split"] == "split75" and len(exp["seeds"]) == exp["average"]["num_seeds_averaged"] == 3
    any_medal = exp["average"]["metrics"]["any_medal_percentage"]
    assert f"{any_medal['mean']:.2f}±{any_medal['standard_error']:.2f}" == "43.56±0.89"
    assert any_medal["ci_lower"] == pytest.approx(any_medal["mean"] - 1.96 * any_medal["standard_error"])
    code, text, _ = _run(["--experiment-id", "FM Agent", "--runs-dir", str(runs)])
    assert code == 0 and "Seed 3: total_competitions=75" in text and "any_medal_percentage" in text


def test_experiment_id_resolution_as_mlebench(mlebench_data, tmp_path):
    runs = _runs(mlebench_data, tmp_path)
    shutil.rmtree(runs / "fmagent_group3")  # a missing run group is skipped, with a note
    code, out, err = _run(["--experiment-id", "FM Agent", "--runs-dir", str(runs), "--json"])
    assert code == 0 and "run group directory missing, skipping: fmagent_group3" in err
    assert json.loads(out)["experiment"]["average"]["num_seeds_averaged"] == 2
    group1 = runs / "fmagent_group1"
    shutil.copy(group1 / "grading_report_group_1.json", group1 / "x_grading_report.json")
    code, _, err = _run(["--experiment-id", "FM Agent", "--runs-dir", str(runs)])
    assert code == 2 and "expected one grading report" in err and "Traceback" not in err
    code, _, err = _run(["--experiment-id", "no-such-experiment", "--runs-dir", str(runs)])
    assert code == 2 and "'no-such-experiment' is not in" in err and "'FM Agent'" in err
    code, _, err = _run(["--experiment-id", "FM Agent", "--runs-dir", str(tmp_path / "nowhere")])
    assert code == 2 and "no run-group file" in err and len(err.strip().splitlines()) == 1
