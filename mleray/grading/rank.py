"""Medal thresholds and ranking, by MLE-bench's rules (mlebench/grade_helpers.py, `Grader.rank_score`).

A leaderboard is Kaggle's private leaderboard, best first. From it:
- `is_lower_better`: the first row's score is below the last row's (MLE-bench infers it this way).
- Kaggle's medal bands (kaggle.com/progression), by the number of teams N:
    N < 100:        gold = row max(1, int(0.1 N)), silver = row max(1, int(0.2 N)), bronze = row max(1, int(0.4 N))
    100 <= N < 250: gold = row 10,                 silver = row max(1, int(0.2 N)), bronze = row max(1, int(0.4 N))
    250 <= N < 1000: gold = row 10 + int(0.002 N), silver = row 50,                  bronze = row 100
    N >= 1000:      gold = row 10 + int(0.002 N), silver = row max(1, int(0.05 N)), bronze = row max(1, int(0.1 N))
  (rows counted from 1); median = the median of all scores.
- A score wins gold when it is at least as good as the gold threshold; silver and bronze likewise,
  each only when the better medal was not won; above_median is strictly better than the median.

Two file formats are read: Kaggle's export (a `score` column, rows in leaderboard order, as MLE-bench
ships them) and a `rank,score` table (the stand-in ventilator leaderboard), which is put in rank order.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Optional, Union

import pandas as pd


class LeaderboardError(ValueError):
    """The leaderboard file is missing, unreadable, or has no usable `score` column."""


@dataclass(frozen=True, eq=False)
class Leaderboard:
    """A private leaderboard, best first, with its medal thresholds computed as MLE-bench does."""

    scores: pd.Series
    source: str = ""

    def __post_init__(self):
        if len(self.scores) == 0:
            raise LeaderboardError(f"leaderboard {self.source or '(in memory)'} has no rows")

    # -- construction -------------------------------------------------------------------------
    @classmethod
    def from_csv(cls, path: Union[str, Path]) -> "Leaderboard":
        path = Path(path)
        if not path.is_file():
            raise LeaderboardError(f"leaderboard not found: {path}")
        try:
            frame = pd.read_csv(path)
        except Exception as err:  # unreadable / not a CSV
            raise LeaderboardError(f"cannot read leaderboard {path}: {str(err).splitlines()[0]}") from None
        return cls.from_frame(frame, source=str(path))

    @classmethod
    def from_frame(cls, frame: pd.DataFrame, source: str = "") -> "Leaderboard":
        if "score" not in frame.columns:
            columns = ", ".join(map(str, frame.columns))
            raise LeaderboardError(
                f"leaderboard {source or '(in memory)'} has no `score` column (columns: {columns})"
            )
        if "rank" in frame.columns and "teamId" not in frame.columns:
            # `rank,score` format: order by rank (Kaggle's export is already in leaderboard order).
            frame = frame.sort_values("rank", kind="stable")
        scores = pd.to_numeric(frame["score"], errors="coerce").reset_index(drop=True)
        return cls(scores=scores, source=source)

    # -- MLE-bench's rules --------------------------------------------------------------------
    @property
    def num_teams(self) -> int:
        return int(len(self.scores))

    @property
    def is_lower_better(self) -> bool:
        return bool(self.scores.iloc[0] < self.scores.iloc[-1])

    def _at(self, position: int) -> float:
        if position < 1 or position - 1 >= len(self.scores):
            raise LeaderboardError(
                f"position {position} is outside leaderboard {self.source} ({len(self.scores)} rows)")
        return float(self.scores.iloc[position - 1])

    def thresholds(self) -> Dict[str, float]:
        """gold/silver/bronze/median thresholds (MLE-bench's keys)."""
        n = self.num_teams
        if n < 100:
            gold, silver, bronze = max(1, int(n * 0.1)), max(1, int(n * 0.2)), max(1, int(n * 0.4))
        elif n < 250:
            gold, silver, bronze = 10, max(1, int(n * 0.2)), max(1, int(n * 0.4))
        elif n < 1000:
            gold, silver, bronze = 10 + int(n * 0.002), 50, 100
        else:
            gold, silver, bronze = 10 + int(n * 0.002), max(1, int(n * 0.05)), max(1, int(n * 0.1))
        return {
            "gold_threshold": self._at(gold),
            "silver_threshold": self._at(silver),
            "bronze_threshold": self._at(bronze),
            "median_threshold": float(self.scores.median()),
        }


def _usable(score) -> bool:
    if score is None or isinstance(score, bool):
        return False
    try:
        return not math.isnan(float(score))
    except (TypeError, ValueError):
        return False


def rank(score: Optional[float], leaderboard: Optional[Leaderboard]) -> dict:
    """Thresholds, medal flags, above_median, any_medal and is_lower_better for one score.

    A missing score (None / NaN) wins nothing. Without a leaderboard, thresholds and
    is_lower_better are None and nothing is won.
    """
    if leaderboard is None:
        return {
            "gold_threshold": None, "silver_threshold": None, "bronze_threshold": None,
            "median_threshold": None, "any_medal": False, "gold_medal": False,
            "silver_medal": False, "bronze_medal": False, "above_median": False,
            "is_lower_better": None,
        }
    t = leaderboard.thresholds()
    lower = leaderboard.is_lower_better
    gold = silver = bronze = above = False
    if score is not None and _usable(score):
        s = float(score)

        def at_least(threshold: float) -> bool:
            return s <= threshold if lower else s >= threshold

        gold = at_least(t["gold_threshold"])
        silver = not gold and at_least(t["silver_threshold"])
        bronze = not gold and not silver and at_least(t["bronze_threshold"])
        above = s < t["median_threshold"] if lower else s > t["median_threshold"]
    return {
        **t,
        "any_medal": bool(gold or silver or bronze),
        "gold_medal": bool(gold),
        "silver_medal": bool(silver),
        "bronze_medal": bool(bronze),
        "above_median": bool(above),
        "is_lower_better": lower,
    }
