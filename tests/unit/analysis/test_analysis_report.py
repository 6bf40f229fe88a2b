"""Figures render (valid PNG and SVG), report.md embeds them with the tables, the sweep driver's
hooks work, and `python -m analysis` prints the same tables for a sweep dir and for reports."""

from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from helpers import ROOT

from analysis import figures, load, report, splits, tables
from mleray.records import TrialResult

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def synthetic_sweep(sweep_dir: Path) -> Path:
    recs = []
    for tier, gpus in (("cpu", 0), ("gpu1", 1)):
        for agent in ("baseline", "dummy"):
            for cid in ("titanic", "house-prices"):
                for seed in range(3):
                    good = agent == "baseline" and (gpus or seed != 2)
                    snaps = [{"elapsed_s": 10.0 * (i + 1), "valid_submission": True, "above_median": good and i > 0,
                              "gold_medal": good and i > 0, "silver_medal": False, "bronze_medal": False,
                              "any_medal": good and i > 0, "score": 0.1 * i} for i in range(3)]
                    recs.append(TrialResult(competition_id=cid, agent=agent, tier=tier, seed=seed, sweep="s",
                                            trial_id=f"{agent}-{cid}-{tier}-{seed}", gold_medal=good,
                                            above_median=good, submission_exists=True, valid_submission=True,
                                            agent_s=30.0, cpus=2, gpus=gpus, snapshots=snaps).to_dict())
    sweep_dir.mkdir(parents=True)
    (sweep_dir / "trials.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    (sweep_dir / "config.yaml").write_text("name: s\ncompetitions: [titanic, house-prices]\nsuite: null\n")
    return sweep_dir


def check_png(path: Path):
    data = path.read_bytes()
    assert data.startswith(PNG_MAGIC) and len(data) > 2000, path


def check_svg(path: Path):
    root = ET.parse(path).getroot()
    assert root.tag.endswith("svg") and len(list(root.iter())) > 20, path


def test_write_report_for_a_sweep(tmp_path):
    sweep = synthetic_sweep(tmp_path / "s")
    md = report.write_report(sweep)
    assert md == sweep / "report" / "report.md"
    text = md.read_text()
    for name in ("medal_rates", "pass_at_k", "time_scaling", "by_tier"):
        check_png(sweep / "report" / "figures" / f"{name}.png")
        check_svg(sweep / "report" / "figures" / f"{name}.svg")
        assert f"](figures/{name}.png)" in text
    for heading in ("Medal table", "pass@k", "Medal rate vs elapsed time", "Ablation by `tier`", "Cost"):
        assert heading in text
    # baseline on cpu: seeds 0 and 1 medal on both competitions, seed 2 on none → 66.67±33.33
    assert "| baseline | cpu | 3 | 2 |" in text and "66.67±33.33" in text


def test_figure_functions_directly(tmp_path):
    df = load.load([synthetic_sweep(tmp_path / "s")])
    rows = tables.medal_rows(df, tables.PRESENT, by=["agent", "tier"])
    paths = figures.medal_rates(rows, ["agent", "tier"], tmp_path / "f")
    assert [p.suffix for p in paths] == [".png", ".svg"]
    check_png(paths[0])
    check_svg(paths[1])


def test_sweep_driver_hooks(tmp_path):
    df = load.load_paths([synthetic_sweep(tmp_path / "s")])
    text = tables.sweep_summary(df)
    assert text.splitlines()[0].startswith("| agent | tier |") and len(text.splitlines()) == 6


def run_cli(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "analysis", *map(str, args)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)


def test_cli_same_tables_for_sweep_and_reports(mlebench_data, tmp_path):
    from test_analysis_tables import famou_as_sweep, famou_reports

    sweep = famou_as_sweep(mlebench_data, tmp_path / "sweep")
    a = run_cli(sweep, "--json")
    b = run_cli(*famou_reports(mlebench_data), "--json")
    assert a.returncode == 0 and b.returncode == 0, a.stderr + b.stderr
    ja, jb = json.loads(a.stdout), json.loads(b.stdout)
    for name in ("leaderboard", "medals_low", "medals_medium", "medals_high", "medals_all", "pass_at_k",
                 "per_competition"):
        assert ja["tables"][name] == jb["tables"][name], name
    assert jb["tables"]["leaderboard"][0]["All (%)"] == "43.56±0.89"
    text = run_cli(mlebench_data / "grading_reports", "--split", "high")
    assert text.returncode == 0 and "33.33±0.00" in text.stdout and "split `high`" in text.stdout
    out = run_cli(mlebench_data / "grading_reports", "--out", tmp_path / "rep")
    assert out.returncode == 0 and (tmp_path / "rep" / "report.md").is_file()
    check_png(tmp_path / "rep" / "figures" / "medal_rates.png")


def test_cli_errors_are_clear(tmp_path):
    missing = run_cli(tmp_path / "nope")
    assert missing.returncode == 2 and "does not exist" in missing.stderr
    bad = run_cli(synthetic_sweep(tmp_path / "s"), "--split", "no-such-split")
    assert bad.returncode == 2 and "unknown split 'no-such-split'" in bad.stderr


CATALOGS = {
    # free-text issue column
    "text": ("competition_id,name,complexity_split,known_issues\n"
             "titanic,Titanic,low,\n"
             "house-prices,House Prices,low,leakage: test labels public\n"
             "bike-sharing-demand,Bike,high,\n"),
    # a flag plus kind and text columns, as competitions/mlebench/catalog.csv has them
    "flag": ("competition_id,complexity_split,in_split75,known_issue,known_issue_kind,known_issue_text\n"
             "titanic,low,True,False,,\n"
             "house-prices,low,True,True,leakage,test labels public\n"
             "bike-sharing-demand,high,True,False,,\n"
             "spaceship,,False,False,,\n"),
}


@pytest.mark.parametrize("style", sorted(CATALOGS))
def test_catalog_splits_and_known_issue_footnotes(tmp_path, monkeypatch, style):
    catalog = tmp_path / "catalog.csv"
    catalog.write_text(CATALOGS[style])
    monkeypatch.setattr(splits, "catalog_path", lambda: catalog)
    assert splits.split_ids("low") == ["titanic", "house-prices"]
    assert splits.split_ids("all") == ["titanic", "house-prices", "bike-sharing-demand"]
    assert splits.complexity("bike-sharing-demand") == "high" and splits.complexity("spaceship") is None
    assert splits.known_issues() == {"house-prices": "leakage: test labels public"}
    df = load.load([synthetic_sweep(tmp_path / "s")])
    assert set(df["split"]) == {"low"}
    a = report.analyze(df)
    assert a.splits == ["low"]
    text = report.render(a)
    assert "## Medal table, split `low` (mean ± SEM over seeds, %) [^issues]" in text
    assert "| house-prices[^house-prices] |" in text and "| titanic |" in text
    assert "[^house-prices]: Known issue — leakage: test labels public." in text
    assert "[^issues]: These results include competitions with known issues: `house-prices`." in text


def test_no_footnote_without_issues(tmp_path, monkeypatch):
    monkeypatch.setattr(splits, "catalog_path", lambda: tmp_path / "absent.csv")
    text = report.render(report.analyze(load.load([synthetic_sweep(tmp_path / "s")])))
    assert "[^" not in text


def test_suite_and_split_file_as_split(tmp_path, monkeypatch):
    (tmp_path / "mine.yaml").write_text("competitions:\n  - b\n  - a\n")
    (tmp_path / "broken.yaml").write_text("name: x\n")
    monkeypatch.setenv("MLERAY_SUITES_DIR", str(tmp_path))  # a user's own suites folder
    assert splits.split_ids("mine") == ["b", "a"]
    assert splits.split_ids(str(tmp_path / "mine.yaml")) == ["b", "a"]
    with pytest.raises(ValueError, match="competitions"):
        splits.split_ids("broken")


def test_failed_trials_are_listed(tmp_path):
    recs = [TrialResult(competition_id="A", agent="a", seed=0, trial_id="t0", gold_medal=True).to_dict(),
            TrialResult(competition_id="A", agent="a", seed=1, trial_id="t1", status="failed",
                        reason="node died; no retries left").to_dict()]
    a = report.analyze(load.frame(recs))
    assert a.tables["failed"][["seed", "reason"]].values.tolist() == [[1, "node died; no retries left"]]
    assert "Failed trials (1; each counts as a failing entry)" in report.render(a)


def test_laptop_study_declares_the_three_studies():
    """configs/studies/laptop.yaml: one sweep holding a hardware ablation (tiers differing in CPUs or
    memory only), graded snapshots inside the time limit (time scaling) and several seeds (pass@k)."""
    from mleray import competitions
    from mleray.config import load_sweep
    from mleray.sweep.trials import expand

    cfg = load_sweep(ROOT / "configs" / "studies" / "laptop.yaml")
    tiers = cfg.tiers
    assert len(tiers) >= 3 and len({t.time_limit for t in tiers.values()}) == 1
    assert len({t.gpus for t in tiers.values()}) == 1
    assert len({t.cpus for t in tiers.values()}) > 1 and len({t.memory_gb for t in tiers.values()}) > 1
    limit = next(iter(tiers.values())).time_limit
    assert 0 < cfg.snapshot_interval <= limit / 3 and cfg.seeds >= 3
    specs = expand(cfg, competitions.suite(cfg.suite))
    assert len(specs) == len(tiers) * cfg.seeds * len(competitions.suite(cfg.suite)) * len(cfg.agents)
    # a laptop's 2 cores, every trial at its limit plus 15 s: under 30 minutes
    per_core_s = sum((limit + 15) * tiers[s.tier].cpus for s in specs) / 2
    assert per_core_s < 30 * 60, per_core_s
