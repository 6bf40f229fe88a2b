"""`python -m analysis --experiment-id` against MLE-bench's own `experiments/aggregate_grading_reports.py`,
run (from a temporary copy of the reference snapshot's experiments/ folder, its runs/ rebuilt from the real
run_group_experiments.csv and the Famou-Agent reports) on every split: the same per-seed lines and the same
means, SEMs and 95% intervals, to the last digit, with and without --num-seeds and --pad-missing."""

from __future__ import annotations

import ast
import io
import json
import re
import shutil
import subprocess
import sys
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest
from helpers import SHARED, require

from analysis.__main__ import main

REFERENCE = SHARED / "reference" / "mle-bench"


@pytest.fixture(scope="module")
def project(mlebench_data, tmp_path_factory) -> Path:
    """A folder laid out as the MLE-bench repository's root for the aggregator: experiments/ (copied from the
    snapshot) and runs/ as at commit 3a721be (fmagent_group{1,2,3}/ and the experiment CSV)."""
    script = REFERENCE / "experiments" / "aggregate_grading_reports.py"
    require(script.is_file(), f"the MLE-bench reference snapshot is not at {REFERENCE}")
    root = tmp_path_factory.mktemp("mle-bench")
    shutil.copytree(REFERENCE / "experiments", root / "experiments")
    runs = root / "runs"
    runs.mkdir()
    shutil.copy(mlebench_data / "run_group_experiments.csv", runs / "run_group_experiments.csv")
    for i in (1, 2, 3):
        (runs / f"fmagent_group{i}").mkdir()
        shutil.copy(mlebench_data / "grading_reports" / f"famou-agent_group{i}" / f"grading_report_group_{i}.json",
                    runs / f"fmagent_group{i}")
    return root


def theirs(project: Path, *args: str) -> tuple[list, dict]:
    done = subprocess.run([sys.executable, str(project / "experiments" / "aggregate_grading_reports.py"),
                           "--experiment-id", "FM Agent", *args], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    seeds = [dict((k, ast.literal_eval(v)) for k, v in re.findall(r"(\w+)=([0-9.e+-]+)", line))
             for line in done.stdout.splitlines() if line.startswith("Seed ")]
    average = json.loads(done.stdout.split("Average metrics across seeds:", 1)[1])
    return seeds, average


def ours(project: Path, *args: str) -> dict:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main(["--experiment-id", "FM Agent", "--runs-dir", str(project / "runs"), "--json", *args])
    assert code == 0, err.getvalue()
    return json.loads(out.getvalue())["experiment"]


@pytest.mark.parametrize("args", [("--split", "split75"), ("--split", "low"), ("--split", "medium"),
                                  ("--split", "high"), ("--split", "split75", "--num-seeds", "2"),
                                  ("--split", "low", "--pad-missing")])
def test_same_seeds_and_averages_as_mlebenchs_aggregator(project, args):
    their_seeds, their_average = theirs(project, *args)
    mine = ours(project, *args)
    assert mine["seeds"] == their_seeds  # every percentage, to the last digit
    assert mine["average"] == their_average
    assert len(their_seeds) == (2 if "--num-seeds" in args else 3)
