"""The MLE-bench catalog, its leaderboards and the mlebench-* suites agree with MLE-bench's own data."""

from __future__ import annotations

import csv
import hashlib
from pathlib import Path

import pandas as pd
import pytest

from mleray.competitions import Competition, suite
from mleray.grading.rank import Leaderboard
from mleray.mlebench import catalog

LEADERBOARDS = catalog.catalog_dir() / "leaderboards"


def _split(data: Path, name: str):
    return [line.strip() for line in (data / "splits" / f"{name}.txt").read_text().splitlines() if line.strip()]


def test_catalog_has_every_mlebench_competition(mlebench_data):
    rows = catalog.rows()
    upstream = pd.read_csv(mlebench_data / "competitions.csv")
    assert set(rows) == set(upstream["competition_id"]) and len(rows) == 82
    for r in upstream.itertuples():
        row = rows[r.competition_id]
        assert row["name"] == r.name
        assert row["grader"] == r.grader_metric
        assert row["in_split75"] == str(bool(r.in_split75))
        assert row["competition_type"] == r.competition_type


@pytest.mark.parametrize("split, count", [("low", 22), ("medium", 38), ("high", 15), ("dev", 7), ("split75", 75)])
def test_splits_match_mlebench(mlebench_data, split, count):
    assert catalog.ids(split) and sorted(catalog.ids(split)) == sorted(_split(mlebench_data, split))
    assert len(catalog.ids(split)) == count


@pytest.mark.parametrize("suite_name, split", [("mlebench-lite", "low"), ("mlebench-medium", "medium"),
                                                ("mlebench-high", "high"), ("mlebench-all", "split75"),
                                                ("mlebench-dev", "dev")])
def test_suites_are_mlebench_splits_in_order(mlebench_data, suite_name, split):
    assert suite(suite_name) == _split(mlebench_data, split)


def test_leaderboards_are_byte_identical_to_mlebench(mlebench_data):
    with open(mlebench_data / "openai_mlebench_lfs_manifest.csv", newline="") as f:
        manifest = {row["path"]: row["sha256"] for row in csv.DictReader(f)}
    checked = 0
    for cid, row in catalog.rows().items():
        path = LEADERBOARDS / row["leaderboard"]
        assert path.is_file(), cid
        if catalog.is_stand_in(cid):
            continue
        expected = manifest[f"mlebench/competitions/{cid}/leaderboard.csv"]
        assert hashlib.sha256(path.read_bytes()).hexdigest() == expected, cid
        checked += 1
    assert checked == 81


def test_the_stand_in_is_labelled_everywhere(mlebench_data):
    stand_ins = [cid for cid in catalog.rows() if catalog.is_stand_in(cid)]
    assert stand_ins == ["ventilator-pressure-prediction"]
    row = catalog.rows()["ventilator-pressure-prediction"]
    assert "STAND-IN" in row["leaderboard"] and "stand-in" in row["notes"]
    readme = (catalog.catalog_dir() / "README.md").read_text()
    assert "ventilator-pressure-prediction.STAND-IN" in readme


def test_catalog_columns_agree_with_the_leaderboards(mlebench_data):
    expected = pd.read_csv(mlebench_data / "medal_thresholds.csv").set_index("competition_id")
    for cid, row in catalog.rows().items():
        board = Leaderboard.from_csv(catalog.leaderboard_path(cid))
        assert (row["is_lower_better"] == str(board.is_lower_better)
                == str(bool(expected.loc[cid, "is_lower_better"]))), cid
        assert int(row["num_teams"]) == board.num_teams == expected.loc[cid, "num_teams"], cid
        for key, value in board.thresholds().items():  # the shipped copies, stand-in included
            assert value == expected.loc[cid, key], (cid, key)


def test_known_issues_from_the_mlebench_readme():
    rows = catalog.rows()
    flagged = {cid: r["known_issue_kind"] for cid, r in rows.items() if r["known_issue"] == "True"}
    crowded = {"tabular-playground-series-dec-2021", "tabular-playground-series-may-2022",
               "jigsaw-toxic-comment-classification-challenge"}
    leakage = {"multi-modal-gesture-recognition", "smartphone-decimeter-2022", "hubmap-kidney-segmentation",
               "random-acts-of-pizza"}
    assert {c for c, k in flagged.items() if k == "crowded-leaderboard"} == crowded
    assert {c for c, k in flagged.items() if k == "leakage"} == leakage
    assert all(rows[c]["known_issue_text"] for c in flagged)
    assert rows["spaceship-titanic"]["known_issue"] == "False"


def test_lite_categories_and_sizes_are_given():
    for cid in catalog.ids("low"):
        row = catalog.rows()[cid]
        assert row["category"] and float(row["dataset_size_gb"]) > 0, cid


def test_get_builds_a_competition():
    comp = catalog.get("aerial-cactus-identification")
    assert isinstance(comp, Competition)
    assert comp.source == "mlebench" and comp.metric == "auc-roc"
    assert comp.answers == "test.csv" and comp.sample_submission == "sample_submission.csv"
    assert comp.leaderboard == LEADERBOARDS / "aerial-cactus-identification.csv"
    assert "low split" in comp.notes
    assert catalog.get("random-acts-of-pizza").notes.count("leakage") == 1
    assert catalog.get("statoil-iceberg-classifier-challenge").sample_submission == "../private/sample_submission.csv"
    assert catalog.get("no-such-competition") is None


def test_registry_falls_back_to_the_catalog():
    from mleray import competitions

    comp = competitions.get("spaceship-titanic")
    assert comp.source == "mlebench" and comp.id == "spaceship-titanic"
