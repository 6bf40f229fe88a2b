"""Medal tables: MLE-bench's README numbers from the real Famou-Agent reports, seed pairing,
padding, and the same table from a sweep directory as from grading reports."""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path

import pytest

from analysis import load, splits, tables
from mleray.records import TrialResult

SPLITS = {"low": "low", "medium": "medium", "high": "high", "all": "all"}


def famou_reports(mlebench_data: Path):
    return sorted((mlebench_data / "grading_reports").glob("famou-agent_group*/*.json"))


def readme_row(mlebench_data: Path, agent: str) -> dict:
    with open(mlebench_data / "readme_leaderboard_table.csv", newline="") as f:
        return next(r for r in csv.DictReader(f) if r["agent"] == agent)


def expected_cells(row: dict) -> dict:
    return {s: f"{float(row[f'{s}_mean']):.2f}±{float(row[f'{s}_sem']):.2f}" for s in SPLITS}


@pytest.mark.parametrize("source", ["as-configured", "split-files"])
def test_famou_agent_matches_readme(mlebench_data, monkeypatch, tmp_path, source):
    if source == "split-files":  # force the fallback: no catalog, MLE-bench's split files
        monkeypatch.setattr(splits, "catalog_path", lambda: tmp_path / "absent.csv")
        monkeypatch.setattr(splits, "shared_splits_dir", lambda: mlebench_data / "splits")
    reports = famou_reports(mlebench_data)
    assert len(reports) == 3
    df = load.load(reports)
    assert set(df["agent"]) == {"famou-agent"} and len(df) == 225
    board = tables.leaderboard(df, list(SPLITS))
    got = {s: board.iloc[0][f"{s.capitalize()} (%)"] for s in SPLITS}
    assert got == expected_cells(readme_row(mlebench_data, "Famou-Agent"))


def test_famou_agent_from_folder_and_seed_count(mlebench_data):
    df = load.load([mlebench_data / "grading_reports"])
    rows = tables.medal_rows(df, "all")
    assert rows.iloc[0]["n_seeds"] == 3 and rows.iloc[0]["n_competitions"] == 75
    # the reports' own totals, seed by seed, give the same means and SEMs for every metric
    totals = {"any_medal": "total_medals", "gold_medal": "total_gold_medals", "silver_medal": "total_silver_medals",
              "bronze_medal": "total_bronze_medals", "above_median": "total_above_median",
              "valid_submission": "total_valid_submissions"}
    # (not submission_exists: a report's total_runs_with_submissions counts submission paths, which
    # is 75 in each report although 2 and 1 entries say submission_exists=false)
    reports = [json.loads(p.read_text()) for p in famou_reports(mlebench_data)]
    for metric, key in totals.items():
        per_seed = [r[key] / 75 * 100 for r in reports]
        mean = sum(per_seed) / 3
        sem = (sum((x - mean) ** 2 for x in per_seed) / 2) ** 0.5 / 3 ** 0.5
        assert rows.iloc[0][f"{metric}_mean"] == pytest.approx(mean), metric
        assert rows.iloc[0][f"{metric}_sem"] == pytest.approx(sem), metric


def entry(cid, medal=False, valid=True):
    return {"competition_id": cid, "gold_medal": medal, "silver_medal": False, "bronze_medal": False,
            "any_medal": medal, "above_median": medal, "submission_exists": True, "valid_submission": valid}


def write_report(path: Path, entries) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"competition_reports": entries}))
    return path


def write_split(tmp_path: Path, ids) -> str:
    path = tmp_path / "split.txt"
    path.write_text("\n".join(ids) + "\n")
    return str(path)


def test_seed_i_is_the_ith_entry_in_report_path_order(tmp_path):
    # r1: A medal, B none; r2: A none, B medal. Kept in reading order each seed is 50% → SEM 0;
    # any per-competition re-sorting would pair them into 100% and 0% (SEM 50).
    b = write_report(tmp_path / "x_group2" / "grading_report.json", [entry("B", True), entry("A", False)])
    a = write_report(tmp_path / "x_group1" / "grading_report.json", [entry("B", False), entry("A", True)])
    df = load.load([b, a])  # argument order does not matter: reports are read sorted by path
    split = write_split(tmp_path, ["A", "B"])
    row = tables.medal_rows(df, split).iloc[0]
    assert (row["agent"], row["n_seeds"], row["any_medal_mean"], row["any_medal_sem"]) == ("x", 2, 50.0, 0.0)
    assert tables.medal_table(df, split)["Any medal (%)"].iloc[0] == "50.00±0.00"


def test_incomplete_seeds_dropped_or_padded(tmp_path):
    # r1 (read first) holds A and B, r2 only A: seed 1 = r1's entries, seed 2 = r2's A + a pad for B
    r1 = write_report(tmp_path / "y" / "r1_grading_report.json", [entry("A", False), entry("B", True)])
    r2 = write_report(tmp_path / "y" / "r2_grading_report.json", [entry("A", True)])
    df = load.load([r2, r1])
    split = write_split(tmp_path, ["A", "B"])
    plain = tables.medal_rows(df, split).iloc[0]
    assert (plain["n_seeds"], plain["any_medal_mean"], plain["any_medal_sem"]) == (1, 50.0, 0.0)
    padded = tables.medal_rows(df, split, pad_missing=True).iloc[0]
    assert padded["n_seeds"] == 2
    assert padded["any_medal_mean"] == pytest.approx(50.0) and padded["any_medal_sem"] == pytest.approx(0.0)
    assert padded["submission_exists_mean"] == pytest.approx(75.0)  # the pad made no submission
    # a competition with no entry at all: an error naming it, unless padded
    split3 = write_split(tmp_path, ["A", "B", "C"])
    err = tables.medal_rows(df, split3).iloc[0]
    assert err["n_seeds"] == 0 and "C" in err["error"] and "--pad-missing" in err["error"]
    padded3 = tables.medal_rows(df, split3, pad_missing=True).iloc[0]
    assert padded3["any_medal_mean"] == pytest.approx(100 / 3)


def test_entries_of_one_report_keep_their_order_per_competition(tmp_path):
    # one report holding two seeds: a stable sort by competition id keeps A(T) before A(F)
    path = write_report(tmp_path / "z" / "grading_report.json",
                        [entry("A", True), entry("B", False), entry("A", False), entry("B", True)])
    row = tables.medal_rows(load.load([path]), write_split(tmp_path, ["A", "B"])).iloc[0]
    assert (row["n_seeds"], row["any_medal_mean"], row["any_medal_sem"]) == (2, 50.0, 0.0)


def famou_as_sweep(mlebench_data: Path, sweep_dir: Path) -> Path:
    records = []
    for seed, path in enumerate(famou_reports(mlebench_data)):
        for e in json.loads(path.read_text())["competition_reports"]:
            records.append(TrialResult(**e, sweep="famou", agent="famou-agent", seed=seed,
                                       trial_id=f"{e['competition_id']}-s{seed}", agent_s=3600.0,
                                       cpus=2, gpus=1).to_dict())
    # retried trials: an earlier failed attempt of the same trial is superseded
    records.append(TrialResult(competition_id=records[0]["competition_id"], agent="famou-agent", seed=0,
                               trial_id=records[0]["trial_id"], status="failed", attempt=0).to_dict())
    records[0]["attempt"] = 1
    random.Random(0).shuffle(records)  # finish order is arbitrary
    sweep_dir.mkdir(parents=True)
    (sweep_dir / "trials.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return sweep_dir


def test_sweep_dir_and_reports_give_the_same_tables(mlebench_data, tmp_path):
    from_reports = load.load(famou_reports(mlebench_data))
    from_sweep = load.load([famou_as_sweep(mlebench_data, tmp_path / "sweep")])
    assert len(from_sweep) == len(from_reports) == 225
    for split in SPLITS:
        assert tables.medal_table(from_sweep, split).equals(tables.medal_table(from_reports, split)), split
    assert tables.leaderboard(from_sweep).equals(tables.leaderboard(from_reports))


def test_failed_trials_count_as_failing_entries(tmp_path):
    recs = [TrialResult(competition_id="A", agent="a", seed=0, trial_id="A0", gold_medal=True,
                        submission_exists=True, valid_submission=True).to_dict(),
            TrialResult(competition_id="A", agent="a", seed=1, trial_id="A1", status="failed",
                        reason="node died").to_dict()]
    df = load.frame(recs)
    row = tables.medal_rows(df, tables.PRESENT).iloc[0]
    assert (row["n_seeds"], row["any_medal_mean"], row["any_medal_sem"]) == (2, 50.0, 50.0)


def test_sweep_summary_text(tmp_path):
    recs = [TrialResult(competition_id=c, agent=ag, tier="cpu", seed=s, trial_id=f"{ag}{c}{s}",
                        submission_exists=True, valid_submission=True, bronze_medal=(ag == "good"),
                        above_median=(ag == "good")).to_dict()
            for ag in ("good", "dummy") for c in ("titanic", "house-prices") for s in (0, 1)]
    text = tables.sweep_summary(load.frame(recs))
    lines = {line.split("|")[1].strip(): line for line in text.splitlines()[2:]}
    assert "| cpu | 2 | 2 | 100.00±0.00 | 100.00±0.00 | 100.00±0.00 | 100.00±0.00 | 0 |" in lines["good"]
    assert "100.00±0.00 | 100.00±0.00 | 0.00±0.00 | 0.00±0.00 | 0 |" in lines["dummy"]
    assert "Any medal (%)" in text.splitlines()[0]


def test_truncated_last_line_is_ignored_and_bad_line_named(tmp_path, capsys):
    good = json.dumps(TrialResult(competition_id="A", trial_id="t").to_dict())
    (tmp_path / "trials.jsonl").write_text(good + "\n" + '{"competition_id": "B", "sco')
    assert len(load.load([tmp_path])) == 1
    (tmp_path / "trials.jsonl").write_text('{oops\n' + good + "\n")
    assert len(load.load([tmp_path])) == 1  # a bad line is skipped with a warning naming it (issue 13)
    assert "trials.jsonl:1: not JSON" in capsys.readouterr().err


def test_storage_folder_of_sweeps(tmp_path):
    for name, agent in (("s1", "a"), ("s2", "b")):
        (tmp_path / name).mkdir()
        rec = TrialResult(competition_id="A", agent=agent, trial_id=f"{name}-t", gold_medal=agent == "a").to_dict()
        (tmp_path / name / "trials.jsonl").write_text(json.dumps(rec) + "\n")
    df = load.load([tmp_path])
    rows = tables.medal_rows(df, tables.PRESENT).set_index("agent")
    assert rows.loc["a", "any_medal_mean"] == 100 and rows.loc["b", "any_medal_mean"] == 0
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="neither"):
        load.load([tmp_path / "empty"])
