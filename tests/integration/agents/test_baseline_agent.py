"""The baseline agent, run as a subprocess the way a sandbox runs it (env vars for the folders)."""

import os
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest
from helpers import ROOT, require

import mleray.competitions as competitions
from mleray.grading.metrics import is_lower_better, score

AGENT = ROOT / "mleray" / "agents" / "baseline" / "agent.py"


def run_agent(data_dir, out, time_limit, seed=0, competition="toy"):
    env = {**os.environ, "MLERAY_DATA_DIR": str(data_dir), "MLERAY_SUBMISSION_DIR": str(out / "submission"),
           "MLERAY_CODE_DIR": str(out / "code"), "MLERAY_LOGS_DIR": str(out / "logs"),
           "MLERAY_TIME_LIMIT": str(time_limit), "MLERAY_SEED": str(seed), "COMPETITION_ID": competition}
    t0 = time.monotonic()
    result = subprocess.run([sys.executable, str(AGENT)], env=env, capture_output=True, text=True,
                            timeout=time_limit + 60)
    return result, time.monotonic() - t0


@pytest.mark.slow
def test_baseline_beats_dummy_on_titanic(tmp_path):
    comp = competitions.get("titanic")
    problems = competitions.missing_requirements(comp)
    require(not problems, "; ".join(problems))
    prepared = competitions.prepare(comp, tmp_path / "cache")
    result, seconds = run_agent(prepared.public_dir, tmp_path / "out", time_limit=30, competition="titanic")
    assert result.returncode == 0, result.stdout + result.stderr
    assert seconds < 30, f"the agent ran {seconds:.0f} s with a 30 s limit"
    assert "wrote submission.csv" in result.stdout
    submission = pd.read_csv(tmp_path / "out" / "submission" / "submission.csv")
    answers = pd.read_csv(prepared.answers_path)
    value = score(comp.metric, submission, answers, comp.id_column, comp.target_columns)
    dummy = score(comp.metric, pd.read_csv(prepared.sample_submission_path), answers, comp.id_column,
                  comp.target_columns)
    median = pd.read_csv(comp.leaderboard)["score"].median()
    assert value > dummy and value > median, (value, dummy, median)
    assert (tmp_path / "out" / "code" / "agent.py").is_file()
    assert "baseline" in (tmp_path / "out" / "logs" / "baseline.log").read_text()


def write_text_competition(folder, rng):
    """A small text-classification CSV competition scored by log loss over class-probability columns."""
    words = {"sport": "goal match team score win league", "tech": "software chip code data cloud device",
             "food": "recipe taste cook dinner flavour kitchen"}
    rows = []
    for i in range(300):
        label = list(words)[i % 3]
        vocab = words[label].split() + "the a of and to in is".split()
        rows.append((i, " ".join(rng.choice(vocab, size=12)), label))
    frame = pd.DataFrame(rows, columns=["id", "text", "label"])
    train, test = frame.iloc[:200], frame.iloc[200:]
    folder.mkdir(parents=True)
    train.to_csv(folder / "train.csv", index=False)
    test[["id", "text"]].to_csv(folder / "test.csv", index=False)
    sample = pd.DataFrame({"id": test["id"], "food": 1 / 3, "sport": 1 / 3, "tech": 1 / 3})
    sample.to_csv(folder / "sample_submission.csv", index=False)
    (folder / "description.md").write_text("Predict the topic. Submissions are scored by multi-class log loss.\n")
    answers = pd.DataFrame({"id": test["id"]})
    for c in ("food", "sport", "tech"):
        answers[c] = (test["label"] == c).astype(int).values
    return sample, answers


@pytest.mark.slow
def test_baseline_handles_text_and_class_probabilities(tmp_path):
    sample, answers = write_text_competition(tmp_path / "data", np.random.default_rng(0))
    result, _ = run_agent(tmp_path / "data", tmp_path / "out", time_limit=20)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "probabilities" in result.stdout and "log_loss" in result.stdout
    submission = pd.read_csv(tmp_path / "out" / "submission" / "submission.csv")
    assert list(submission.columns) == list(sample.columns)
    value = score("log_loss", submission, answers, "id", ["food", "sport", "tech"])
    floor = score("log_loss", sample, answers, "id", ["food", "sport", "tech"])
    assert is_lower_better("log_loss") and value < floor / 3


OFFLINE = ["titanic", "house-prices", "bike-sharing-demand", "fashion-mnist-lite", "fine-food-reviews",
           "elecdemand-forecast", "fashion-mnist-denoise", "hydrogen-drum-hits"]


@pytest.fixture(scope="module")
def offline_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("baseline-offline-cache")


@pytest.mark.slow
@pytest.mark.parametrize("cid", OFFLINE)
def test_baseline_submits_a_model_on_every_offline_competition(cid, offline_cache, tmp_path):
    """With the default tier (1 CPU, 60 s) the baseline ends within its limit with a graded-valid
    submission that is not the sample and beats it, having written better ones along the way."""
    from mleray.grading.grade import grade_submission

    comp = competitions.get(cid)
    problems = competitions.missing_requirements(comp)
    require(not problems, "; ".join(problems))
    assert cid in competitions.suite("offline")
    prepared = competitions.prepare(comp, offline_cache)
    os.environ["MLERAY_CPUS"] = "1"
    try:
        result, seconds = run_agent(prepared.public_dir, tmp_path / "out", time_limit=60, competition=cid)
    finally:
        del os.environ["MLERAY_CPUS"]
    assert result.returncode == 0, result.stdout + result.stderr
    assert seconds < 60, f"the agent ran {seconds:.0f} s with a 60 s limit"
    written = [line for line in result.stdout.splitlines() if "wrote submission.csv" in line]
    assert len(written) >= 3, result.stdout  # the sample, a first model, at least one better one
    path = tmp_path / "out" / "submission" / "submission.csv"
    assert path.read_bytes() != prepared.sample_submission_path.read_bytes()
    graded, sample = grade_submission(prepared, path), grade_submission(prepared, prepared.sample_submission_path)
    assert graded["valid_submission"], graded["reason"]
    lower = is_lower_better(comp.metric)
    assert (graded["score"] < sample["score"]) if lower else (graded["score"] > sample["score"]), \
        (graded["score"], sample["score"])
    assert "cannot model this data" not in result.stdout
