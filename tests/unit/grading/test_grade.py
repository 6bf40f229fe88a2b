"""grade_submission / validate_only on local competitions (metric, custom grade.py) and MLE-bench ones."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mleray.competitions import Competition, PreparedCompetition
from mleray.grading import grade_submission, validate_only
from mleray.records import MLEBENCH_REPORT_KEYS

N = 20


def make_competition(tmp_path: Path, metric="accuracy", leaderboard_scores=None, grade_py=None, source="local",
                     answers=None):
    root = tmp_path / "comp"
    public, private = tmp_path / "public", tmp_path / "private"
    for d in (root, public, private):
        d.mkdir(parents=True, exist_ok=True)
    ids = list(range(100, 100 + N))
    if answers is None:
        answers = pd.DataFrame({"id": ids, "y": [i % 2 for i in range(N)]})
    answers.to_csv(private / "answers.csv", index=False)
    pd.DataFrame({"id": ids, "y": 0}).to_csv(public / "sample_submission.csv", index=False)
    leaderboard = None
    if leaderboard_scores is not None:
        leaderboard = root / "leaderboard.csv"
        pd.DataFrame({"teamId": range(len(leaderboard_scores)), "score": leaderboard_scores}).to_csv(
            leaderboard, index=False)
    if grade_py:
        (root / "grade.py").write_text(textwrap.dedent(grade_py))
    comp = Competition(id="toy", name="Toy", root=root, metric=metric, id_column="id", target_columns=["y"],
                       sample_submission="sample_submission.csv", answers="answers.csv", leaderboard=leaderboard,
                       source=source, version="1")
    return PreparedCompetition(comp, public, private)


def submit(tmp_path, prepared, predictions, name="submission.csv"):
    answers = pd.read_csv(prepared.private_dir / "answers.csv")
    path = tmp_path / name
    pd.DataFrame({"id": answers["id"], "y": predictions}).to_csv(path, index=False)
    return path


# 10 teams, higher is better: gold row 1 (0.95), silver row 2 (0.9), bronze row 4 (0.8), median 0.725
BOARD = [0.95, 0.9, 0.85, 0.8, 0.75, 0.7, 0.65, 0.6, 0.55, 0.5]


def test_entry_has_exactly_mlebench_keys_then_reason(tmp_path):
    prepared = make_competition(tmp_path, leaderboard_scores=BOARD)
    grade = grade_submission(prepared, submit(tmp_path, prepared, [i % 2 for i in range(N)]))
    assert list(grade) == list(MLEBENCH_REPORT_KEYS) + ["reason"]
    json.dumps(grade)  # JSON-ready


def test_perfect_submission_wins_gold(tmp_path):
    prepared = make_competition(tmp_path, leaderboard_scores=BOARD)
    path = submit(tmp_path, prepared, [i % 2 for i in range(N)])
    grade = grade_submission(prepared, path)
    assert grade["score"] == 1.0 and grade["valid_submission"] and grade["submission_exists"]
    assert grade["gold_medal"] and grade["any_medal"] and grade["above_median"] and not grade["silver_medal"]
    assert grade["gold_threshold"] == 0.95 and grade["median_threshold"] == 0.725
    assert grade["is_lower_better"] is False and grade["reason"] == ""
    assert grade["submission_path"] == str(path) and grade["competition_id"] == "toy"


@pytest.mark.parametrize("right, medal", [(17, "bronze_medal"), (18, "silver_medal"), (14, None)])
def test_score_and_medal_follow_the_metric(tmp_path, right, medal):
    prepared = make_competition(tmp_path, leaderboard_scores=BOARD)
    truth = [i % 2 for i in range(N)]
    pred = [t if i < right else 1 - t for i, t in enumerate(truth)]
    grade = grade_submission(prepared, submit(tmp_path, prepared, pred))
    assert grade["score"] == right / N
    flags = {k: grade[k] for k in ("gold_medal", "silver_medal", "bronze_medal")}
    assert flags == {k: k == medal for k in flags}
    assert grade["above_median"] == (right / N > 0.725)


def test_score_is_rounded_to_5_decimals_as_mlebench(tmp_path):
    grade_py = """
        def grade(submission, answers):
            return 0.1234567891
    """
    prepared = make_competition(tmp_path, metric="custom", grade_py=grade_py)
    grade = grade_submission(prepared, submit(tmp_path, prepared, [0] * N))
    assert grade["score"] == 0.12346 and type(grade["score"]) is float


def test_rmse_lower_is_better(tmp_path):
    answers = pd.DataFrame({"id": range(100, 100 + N), "y": np.linspace(0, 1, N)})
    board = [0.1 * i for i in range(1, 11)]  # lower is better
    prepared = make_competition(tmp_path, metric="rmse", leaderboard_scores=board, answers=answers)
    grade = grade_submission(prepared, submit(tmp_path, prepared, answers["y"] + 0.15))
    assert grade["score"] == 0.15 and grade["is_lower_better"] is True
    assert grade["silver_medal"] and not grade["gold_medal"]  # gold row 1 = 0.1, silver row 2 = 0.2
    assert grade["above_median"]  # median 0.55


def test_custom_grade_py(tmp_path):
    grade_py = """
        def grade(submission, answers):
            merged = answers.merge(submission, on="id", suffixes=("", "_pred"))
            return float((merged["y"] == merged["y_pred"]).sum())
    """
    prepared = make_competition(tmp_path, metric="custom", grade_py=grade_py, leaderboard_scores=[20.0, 10.0, 5.0])
    grade = grade_submission(prepared, submit(tmp_path, prepared, [0] * N))
    assert grade["score"] == 10.0 and grade["valid_submission"]


def test_custom_grade_py_raising_makes_the_submission_invalid(tmp_path):
    grade_py = """
        def grade(submission, answers):
            raise ValueError("predictions must be sorted by id")
    """
    prepared = make_competition(tmp_path, metric="custom", grade_py=grade_py)
    grade = grade_submission(prepared, submit(tmp_path, prepared, [0] * N))
    assert grade["score"] is None and not grade["valid_submission"] and grade["submission_exists"]
    assert "predictions must be sorted by id" in grade["reason"]


def test_metric_returning_nan_is_invalid(tmp_path):
    grade_py = """
        def grade(submission, answers):
            return float("nan")
    """
    prepared = make_competition(tmp_path, metric="custom", grade_py=grade_py)
    grade = grade_submission(prepared, submit(tmp_path, prepared, [0] * N))
    assert grade["score"] is None and "nan" in grade["reason"].lower()


def test_missing_submission(tmp_path):
    prepared = make_competition(tmp_path, leaderboard_scores=BOARD)
    grade = grade_submission(prepared, tmp_path / "nothing" / "submission.csv")
    assert grade["submission_exists"] is False and grade["valid_submission"] is False and grade["score"] is None
    assert "does not exist" in grade["reason"]
    assert grade["gold_threshold"] == 0.95  # thresholds are reported even without a submission
    assert not grade["any_medal"]


def test_invalid_submissions_never_raise(tmp_path):
    prepared = make_competition(tmp_path, leaderboard_scores=BOARD)
    cases = {
        "empty.csv": "",
        "garbage.csv": "id,y\n1,2,3,4\n\x00\x01",
        "columns.csv": "id,label\n" + "".join(f"{100 + i},0\n" for i in range(N)),
        "short.csv": "id,y\n100,0\n",
        "text.csv": "id,y\n" + "".join(f"{100 + i},yes\n" for i in range(N)),
    }
    for name, text in cases.items():
        path = tmp_path / name
        path.write_text(text)
        grade = grade_submission(prepared, path)
        assert grade["submission_exists"] is True, name
        assert grade["valid_submission"] is False and grade["score"] is None, name
        assert grade["reason"], name
        assert not grade["any_medal"] and not grade["above_median"], name


def test_not_a_csv_does_not_count_as_a_submission(tmp_path):
    prepared = make_competition(tmp_path)
    path = tmp_path / "submission.parquet"
    path.write_text("x")
    grade = grade_submission(prepared, path)
    assert grade["submission_exists"] is False and ".csv" in grade["reason"]


def test_no_leaderboard_means_no_thresholds(tmp_path):
    prepared = make_competition(tmp_path, leaderboard_scores=None)
    grade = grade_submission(prepared, submit(tmp_path, prepared, [i % 2 for i in range(N)]))
    assert grade["score"] == 1.0 and grade["gold_threshold"] is None and grade["is_lower_better"] is None
    assert not grade["any_medal"]


def test_unreadable_leaderboard_is_a_reason_not_a_crash(tmp_path):
    prepared = make_competition(tmp_path, leaderboard_scores=BOARD)
    prepared.competition.leaderboard.write_text("nothing,useful\n1,2\n")
    grade = grade_submission(prepared, submit(tmp_path, prepared, [i % 2 for i in range(N)]))
    assert grade["score"] == 1.0 and grade["valid_submission"]
    assert "not ranked" in grade["reason"] and grade["gold_threshold"] is None


def test_validate_only_never_returns_a_score(tmp_path):
    prepared = make_competition(tmp_path, leaderboard_scores=BOARD)
    good = submit(tmp_path, prepared, [i % 2 for i in range(N)])
    assert validate_only(prepared, good) == (True, "Submission is valid.")
    bad = tmp_path / "bad.csv"
    bad.write_text("id,y\n100,0\n")
    ok, reason = validate_only(prepared, bad)
    assert ok is False and "missing id" in reason
    ok, reason = validate_only(prepared, tmp_path / "absent.csv")
    assert ok is False and "does not exist" in reason


def test_validate_only_runs_the_metric(tmp_path):
    grade_py = """
        def grade(submission, answers):
            raise RuntimeError("the metric rejects this")
    """
    prepared = make_competition(tmp_path, metric="custom", grade_py=grade_py)
    ok, reason = validate_only(prepared, submit(tmp_path, prepared, [0] * N))
    assert ok is False and "the metric rejects this" in reason


# ------------------------------------------------------------------------------- MLE-bench source


def test_mlebench_competition_without_the_package_is_invalid_with_the_fix(tmp_path, monkeypatch):
    for name in [m for m in sys.modules if m.startswith("mlebench.")] + ["mlebench"]:
        monkeypatch.setitem(sys.modules, name, None)  # not importable, even where it is installed
    prepared = make_competition(tmp_path, source="mlebench", leaderboard_scores=BOARD)
    grade = grade_submission(prepared, submit(tmp_path, prepared, [0] * N))
    assert grade["valid_submission"] is False and grade["submission_exists"] is True
    assert "openai/mle-bench" in grade["reason"] and "not importable" in grade["reason"]


FAKE_MLEBENCH = {
    # A stand-in for the official package's three modules that mleray calls (it cannot be installed here):
    # the registry hands out a competition whose grader is the competition's grade function.
    "__init__.py": "",
    "grade_helpers.py": """
        class InvalidSubmissionError(Exception):
            pass
    """,
    "utils.py": """
        import pandas as pd
        def load_answers(path):
            return pd.read_csv(path)
    """,
    "registry.py": """
        from pathlib import Path
        from types import SimpleNamespace
        from mlebench.grade_helpers import InvalidSubmissionError

        def grade_fn(submission, answers):
            if "y" not in submission.columns:
                raise InvalidSubmissionError("Submission must have a 'y' column")
            merged = answers.merge(submission, on="id", suffixes=("", "_pred"))
            if len(merged) != len(answers):
                raise InvalidSubmissionError("ids do not match")
            return (merged["y"] == merged["y_pred"]).mean() * 1.000001234

        class Registry:
            def __init__(self, data_dir=Path(".")):
                self.data_dir = Path(data_dir)
            def set_data_dir(self, d):
                return Registry(d)
            def get_competition(self, cid):
                private = self.data_dir / cid / "prepared" / "private"
                return SimpleNamespace(id=cid, answers=private / "answers.csv",
                                       grader=SimpleNamespace(grade_fn=grade_fn))

        registry = Registry()
    """,
}


@pytest.fixture
def fake_mlebench(tmp_path, monkeypatch):
    pkg = tmp_path / "fakepkg" / "mlebench"
    pkg.mkdir(parents=True)
    for name, text in FAKE_MLEBENCH.items():
        (pkg / name).write_text(textwrap.dedent(text))
    for mod in [m for m in sys.modules if m == "mlebench" or m.startswith("mlebench.")]:
        monkeypatch.delitem(sys.modules, mod)
    monkeypatch.syspath_prepend(str(pkg.parent))
    yield
    for mod in [m for m in sys.modules if m == "mlebench" or m.startswith("mlebench.")]:
        del sys.modules[mod]


def make_mlebench_layout(tmp_path):
    """<data>/toy/prepared/{public,private}, as `mlebench prepare` lays it out."""
    data = tmp_path / "data"
    prepared = make_competition(tmp_path / "x", source="mlebench", leaderboard_scores=BOARD)
    public, private = data / "toy" / "prepared" / "public", data / "toy" / "prepared" / "private"
    public.parent.mkdir(parents=True)
    prepared.public_dir.rename(public)
    prepared.private_dir.rename(private)
    return PreparedCompetition(prepared.competition, public, private)


def test_mlebench_grading_uses_the_official_grader_and_rounds(tmp_path, fake_mlebench):
    prepared = make_mlebench_layout(tmp_path)
    grade = grade_submission(prepared, submit(tmp_path, prepared, [i % 2 for i in range(N)]))
    assert grade["valid_submission"] and grade["score"] == round(1.000001234, 5) == 1.0
    assert grade["gold_medal"]
    grade = grade_submission(prepared, submit(tmp_path, prepared, [0] * N, "half.csv"))
    assert grade["score"] == round(0.5 * 1.000001234, 5) == 0.5


def test_mlebench_invalid_submission_carries_the_graders_message(tmp_path, fake_mlebench):
    prepared = make_mlebench_layout(tmp_path)
    path = tmp_path / "bad.csv"
    path.write_text("id,label\n100,1\n")
    grade = grade_submission(prepared, path)
    assert grade["valid_submission"] is False and grade["score"] is None
    assert "Submission must have a 'y' column" in grade["reason"]
    ok, reason = validate_only(prepared, path)
    assert ok is False and "'y' column" in reason
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    assert grade_submission(prepared, empty)["valid_submission"] is False


def test_mlebench_validity_is_the_graders_alone(tmp_path, fake_mlebench):
    """A file our own checks would reject (an extra column) is valid when the official grader scores it."""
    prepared = make_mlebench_layout(tmp_path)
    path = tmp_path / "extra.csv"
    answers = pd.read_csv(prepared.private_dir / "answers.csv")
    answers.assign(note="x").to_csv(path, index=False)
    grade = grade_submission(prepared, path)
    assert grade["valid_submission"] is True and grade["score"] == 1.0, grade["reason"]
