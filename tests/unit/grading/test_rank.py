"""MLE-bench's ranking: thresholds from real leaderboards, medal flags from real grading reports."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from mleray.grading.rank import Leaderboard, LeaderboardError, rank

VENTILATOR = "ventilator-pressure-prediction"
FALLBACK = "leaderboards_fallback/ventilator-pressure-prediction.mledojo_private_leaderboard.csv"


def _leaderboard_file(data: Path, cid: str) -> Path:
    path = data / "leaderboards" / f"{cid}.csv"
    return path if path.is_file() else data / FALLBACK


def test_thresholds_of_every_leaderboard_equal_medal_thresholds_csv(mlebench_data):
    expected = pd.read_csv(mlebench_data / "medal_thresholds.csv")
    files = sorted((mlebench_data / "leaderboards").glob("*.csv"))
    assert len(files) == 81
    assert set(p.stem for p in files) | {VENTILATOR} == set(expected["competition_id"])
    checked = 0
    for row in expected.itertuples():
        board = Leaderboard.from_csv(_leaderboard_file(mlebench_data, row.competition_id))
        got = board.thresholds()
        assert board.num_teams == row.num_teams, row.competition_id
        assert board.is_lower_better == bool(row.is_lower_better), row.competition_id
        for key in ("gold_threshold", "silver_threshold", "bronze_threshold", "median_threshold"):
            assert got[key] == getattr(row, key), (row.competition_id, key, got[key], getattr(row, key))
        checked += 1
    assert checked == 82


def _famou_entries(data: Path):
    reports = sorted((data / "grading_reports").glob("famou-agent_group*/*.json"))
    assert len(reports) == 3
    for path in reports:
        for entry in json.loads(path.read_text())["competition_reports"]:
            yield path.name, entry


def test_reranking_the_famou_agent_scores_reproduces_every_flag(mlebench_data):
    boards = {}
    n = medals = 0
    for name, entry in _famou_entries(mlebench_data):
        cid = entry["competition_id"]
        if cid not in boards:
            boards[cid] = Leaderboard.from_csv(_leaderboard_file(mlebench_data, cid))
        got = rank(entry["score"], boards[cid])
        for key in ("gold_threshold", "silver_threshold", "bronze_threshold", "median_threshold",
                    "gold_medal", "silver_medal", "bronze_medal", "above_median", "any_medal", "is_lower_better"):
            assert got[key] == entry[key], (name, cid, key, got[key], entry[key])
        n += 1
        medals += got["any_medal"]
    assert n == 225
    assert medals > 0  # the check covers medal-winning scores, not only misses


def _board(scores) -> Leaderboard:
    return Leaderboard.from_frame(pd.DataFrame({"score": scores}))


@pytest.mark.parametrize("n, gold_row, silver_row, bronze_row", [
    (9, 1, 1, 3),            # < 100: max(1, int(0.1 N)), 0.2 N, 0.4 N
    (50, 5, 10, 20),
    (100, 10, 20, 40),       # 100-249: 10, 0.2 N, 0.4 N
    (249, 10, 49, 99),
    (250, 10, 50, 100),      # 250-999: 10 + int(0.002 N), 50, 100
    (999, 11, 50, 100),
    (1000, 12, 50, 100),     # >= 1000: 10 + int(0.002 N), 0.05 N, 0.1 N
    (2605, 15, 130, 260),
])
def test_kaggle_medal_bands(n, gold_row, silver_row, bronze_row):
    scores = [float(1000 - i) for i in range(n)]  # row r (1-based) has 1001 - r
    t = _board(scores).thresholds()
    assert t["gold_threshold"] == 1001 - gold_row
    assert t["silver_threshold"] == 1001 - silver_row
    assert t["bronze_threshold"] == 1001 - bronze_row
    assert t["median_threshold"] == pd.Series(scores).median()


def test_medals_are_exclusive_and_inclusive_at_the_threshold():
    board = _board([float(100 - i) for i in range(50)])  # higher is better; gold row 5 = 96
    assert not board.is_lower_better
    at_gold = rank(96.0, board)
    assert at_gold["gold_medal"] and not at_gold["silver_medal"] and at_gold["any_medal"]
    silver = rank(91.0, board)  # silver row 10 = 91
    assert silver["silver_medal"] and not silver["gold_medal"] and not silver["bronze_medal"]
    bronze = rank(81.0, board)  # bronze row 20 = 81
    assert bronze["bronze_medal"] and not bronze["silver_medal"]
    below = rank(80.0, board)
    assert not below["any_medal"] and below["above_median"]  # median 75.5
    at_median = rank(75.5, board)
    assert not at_median["above_median"]  # strictly better than the median


def test_lower_is_better_is_inferred_and_applied():
    board = _board([0.1 * i for i in range(1, 21)])  # 20 teams, lower is better
    assert board.is_lower_better
    assert rank(0.1, board)["gold_medal"]  # gold row 2 = 0.2
    assert rank(0.2, board)["gold_medal"]
    assert not rank(0.25, board)["gold_medal"]
    assert rank(0.25, board)["silver_medal"]  # silver row 4 = 0.4
    assert rank(0.5, board)["bronze_medal"] and not rank(0.5, board)["silver_medal"]  # bronze row 8 = 0.8
    assert not rank(0.9, board)["any_medal"]
    assert rank(5.0, board)["above_median"] is False


def test_no_score_wins_nothing_but_thresholds_are_reported():
    board = _board([3.0, 2.0, 1.0])
    for missing in (None, float("nan")):
        got = rank(missing, board)
        assert not any(got[k] for k in ("gold_medal", "silver_medal", "bronze_medal", "above_median", "any_medal"))
        assert got["gold_threshold"] == 3.0
    assert rank(1.0, None)["gold_threshold"] is None


def test_rank_score_format_is_ordered_by_rank(tmp_path):
    path = tmp_path / "lb.csv"
    path.write_text("rank,score\n3,0.3\n1,0.1\n2,0.2\n4,0.4\n")
    board = Leaderboard.from_csv(path)
    assert board.is_lower_better
    assert list(board.scores) == [0.1, 0.2, 0.3, 0.4]


def test_bad_leaderboards_raise_a_clear_error(tmp_path):
    with pytest.raises(LeaderboardError, match="not found"):
        Leaderboard.from_csv(tmp_path / "absent.csv")
    (tmp_path / "noscore.csv").write_text("team,points\na,1\n")
    with pytest.raises(LeaderboardError, match="no `score` column"):
        Leaderboard.from_csv(tmp_path / "noscore.csv")
    (tmp_path / "empty.csv").write_text("score\n")
    with pytest.raises(LeaderboardError, match="no rows"):
        Leaderboard.from_csv(tmp_path / "empty.csv")
