"""MLE-bench's competitions inside mleray.

- `catalog.get(id)` -> a `Competition` (source "mlebench") from `competitions/mlebench/catalog.csv`
- `data.locate(comp)` -> the `PreparedCompetition` made by `mlebench prepare`, or a CompetitionError
  naming the command; `data.descriptions(comp)` -> description.md and description_obfuscated.md
- `preflight(ids)` -> one message per missing piece (the official package, each unprepared competition,
  each pip package an official grader imports that is not installed: `catalog.grader_dependency_problems`)

Grading of these competitions runs the official package's graders (`mleray.grading.grade`) and ranks
against the real Kaggle leaderboards in `competitions/mlebench/leaderboards/`.
"""

from typing import Iterable, List

from mleray.mlebench import catalog, data
from mleray.mlebench.data import descriptions, locate


def preflight(ids: Iterable[str]) -> List[str]:
    """Everything that stops these MLE-bench competitions from being graded, one line each (ids outside the
    catalog are ignored): the data's checks (`data.preflight`), then the graders' missing imports."""
    ids = list(ids)
    problems = data.preflight(ids)
    if data.package_problem() is None:  # without the package there is no grader to read
        problems += catalog.grader_dependency_problems(ids)
    return problems


__all__ = ["descriptions", "locate", "preflight"]
