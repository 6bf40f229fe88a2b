"""Contract tests against the real, official `mlebench` package. They run only where it is importable
(it is not on PyPI; install it from its public repository, openai/mle-bench, with Git LFS) and say so
plainly when skipped."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from mleray.grading.rank import Leaderboard, rank

try:
    import mlebench.grade as official_grade
    from mlebench.grade_helpers import Grader
    from mlebench.registry import registry as official_registry
except Exception as err:  # noqa: BLE001 - absent, or installed without its dependencies
    pytest.skip(f"SKIPPED: the official mlebench package is not importable here ({type(err).__name__}: {err}); "
                f"the contract tests against it did not run", allow_module_level=True)

from mleray.mlebench import catalog, data  # noqa: E402


def _bare_grader() -> Grader:
    """Grader.rank_score and is_lower_better use only the leaderboard, so no grade function is needed."""
    return object.__new__(Grader)


def test_ranking_equals_mlebench_rank_score_on_every_leaderboard(mlebench_data):
    grader = _bare_grader()
    scores_by_comp = {}
    for path in sorted((mlebench_data / "grading_reports").glob("*/*.json")):
        for entry in json.loads(path.read_text())["competition_reports"]:
            scores_by_comp.setdefault(entry["competition_id"], []).append(entry["score"])
    for cid in catalog.ids():
        path = catalog.leaderboard_path(cid)
        frame = pd.read_csv(path)
        if "teamId" not in frame.columns:  # the rank,score stand-in: MLE-bench reads Kaggle's export only
            frame = frame.sort_values("rank", kind="stable")
        board = Leaderboard.from_csv(path)
        first, last = frame["score"].iloc[0], frame["score"].iloc[-1]
        probes = scores_by_comp.get(cid, []) + [None, float(first), float(last), float(frame["score"].median())]
        assert board.is_lower_better == grader.is_lower_better(frame), cid
        for score in probes:
            theirs = grader.rank_score(score, frame)
            ours = rank(score, board)
            for key, value in theirs.items():
                assert ours[key] == value, (cid, score, key)


def test_grade_submission_equals_grade_csv_on_prepared_competitions(tmp_path):
    from mleray import competitions
    from mleray.grading import grade_submission

    ready = [cid for cid in catalog.ids() if not data.missing_data(catalog.get(cid))]
    if not ready:
        pytest.skip(f"SKIPPED: no MLE-bench competition is prepared in {data.data_dir()} (run `mlebench prepare -c <id>`)")
    reg = official_registry.set_data_dir(data.data_dir())
    for cid in ready[:5]:
        prepared = competitions.prepare(competitions.get(cid))
        official = reg.get_competition(cid)
        sample = prepared.public_dir / prepared.competition.sample_submission
        for path in (sample, tmp_path / "absent.csv"):
            theirs = official_grade.grade_csv(path, official).to_dict()
            ours = grade_submission(prepared, path)
            for key, value in theirs.items():
                if key != "created_at":
                    assert ours[key] == value, (cid, path, key, ours[key], value)


def _synthetic_layout(data_dir: Path, rng) -> dict:
    """Small made-up prepared folders for two competitions, in `mlebench prepare`'s layout."""
    subs = {}
    n = 200
    cid = "spaceship-titanic"
    pub, priv = data_dir / cid / "prepared" / "public", data_dir / cid / "prepared" / "private"
    pub.mkdir(parents=True), priv.mkdir(parents=True)
    ids = [f"{i:04d}_01" for i in range(n)]
    truth = rng.random(n) < 0.5
    pd.DataFrame({"PassengerId": ids, "Transported": truth}).to_csv(priv / "test.csv", index=False)
    pd.DataFrame({"PassengerId": ids, "Transported": False}).to_csv(pub / "sample_submission.csv", index=False)
    (pub / "description.md").write_text("synthetic\n")
    flip = rng.random(n) < 0.19
    subs[cid] = {"good": pd.DataFrame({"PassengerId": ids, "Transported": truth ^ flip}),
                 "wrong_column": pd.DataFrame({"PassengerId": ids, "Survived": truth})}
    cid = "new-york-city-taxi-fare-prediction"
    pub, priv = data_dir / cid / "prepared" / "public", data_dir / cid / "prepared" / "private"
    pub.mkdir(parents=True), priv.mkdir(parents=True)
    keys = [f"2015-01-27 13:08:24.{i:07d}" for i in range(n)]
    fare = rng.gamma(2.0, 6.0, n)
    pd.DataFrame({"key": keys, "fare_amount": fare}).to_csv(priv / "test.csv", index=False)
    pd.DataFrame({"key": keys, "fare_amount": 11.35}).to_csv(pub / "sample_submission.csv", index=False)
    (pub / "description.md").write_text("synthetic\n")
    subs[cid] = {"good": pd.DataFrame({"key": keys, "fare_amount": fare + rng.normal(0, 3.3, n)}),
                 "wrong_column": pd.DataFrame({"key": keys, "fare": fare})}
    return subs


def test_grade_submission_equals_grade_csv_on_synthetic_prepared_data(tmp_path, monkeypatch):
    import numpy as np

    from mleray import competitions
    from mleray.grading import grade_submission

    for cid in ("spaceship-titanic", "new-york-city-taxi-fare-prediction"):
        official_board = catalog.package_competition_dir(cid) / "leaderboard.csv"
        if catalog._is_lfs_pointer(official_board):
            pytest.skip(f"SKIPPED: the installed mlebench package has Git-LFS pointers for leaderboards "
                        f"({official_board}); install it from a clone with Git LFS to compare grade_csv")
    data_dir = tmp_path / "data"
    monkeypatch.setenv(data.ENV_DATA_DIR, str(data_dir))
    monkeypatch.setenv("MLERAY_CACHE_DIR", str(tmp_path / "cache"))  # prepare() stages into the node cache
    subs = _synthetic_layout(data_dir, np.random.default_rng(7))
    reg = official_registry.set_data_dir(data_dir)
    compared = 0
    for cid, files in subs.items():
        prepared = competitions.prepare(competitions.get(cid))
        official = reg.get_competition(cid)
        paths = [tmp_path / "absent.csv", prepared.public_dir / prepared.competition.sample_submission]
        for name, frame in files.items():
            paths.append(tmp_path / f"{cid}-{name}.csv")
            frame.to_csv(paths[-1], index=False)
        for path in paths:
            theirs = official_grade.grade_csv(path, official).to_dict()
            ours = grade_submission(prepared, path)
            for key, value in theirs.items():
                if key != "created_at":
                    assert ours[key] == value, (cid, path.name, key, ours[key], value)
            compared += 1
    assert compared == 8
