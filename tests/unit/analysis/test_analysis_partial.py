"""Partial data never crashes the analysis: any split, a subset of a suite, a sweep in progress or
with no records yet, only invalid submissions, a split disjoint from the data. Each table says
what is missing; `--pad-missing` pads as MLE-bench's `aggregate_grading_reports.py` does."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_analysis_report import run_cli
from test_analysis_tables import famou_reports, write_report

from analysis import load, report, scaling, splits, tables
from mleray.records import TrialResult

OFFLINE_LITE = "suite: offline-lite\nagents: [dummy]\ncompetitions: {}\n"


def trial(cid, seed, tier="cpu", valid=True, medal=False, **kw):
    snaps = [{"elapsed_s": 5.0, "valid_submission": valid, "above_median": medal, "gold_medal": medal,
              "silver_medal": False, "bronze_medal": False, "any_medal": medal}]
    return TrialResult(competition_id=cid, agent="dummy", tier=tier, seed=seed, trial_id=f"{cid}-{tier}-{seed}",
                       submission_exists=valid, valid_submission=valid, gold_medal=medal, above_median=medal,
                       agent_s=10.0, cpus=1, gpus=float(tier == "gpu"), snapshots=snaps, **kw).to_dict()


def sweep(path: Path, records, competitions="null") -> Path:
    path.mkdir(parents=True)
    (path / "trials.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    (path / "config.yaml").write_text(OFFLINE_LITE.format(competitions))
    return path


def in_progress(path: Path) -> Path:
    """offline-lite, two seeds and two tiers planned; three trials of the cpu tier and one of gpu done."""
    return sweep(path, [trial("titanic", 0), trial("house-prices", 0), trial("titanic", 1), trial("titanic", 0, "gpu")])


def test_readme_example_split_low_on_an_offline_sweep(tmp_path):
    s = in_progress(tmp_path / "s")
    n_low = len(splits.split_ids("low"))
    for pad in ([], ["--pad-missing"]):
        out = run_cli(s, "--split", "low", *pad)
        assert out.returncode == 0 and "Traceback" not in out.stderr, out.stderr
        assert f"none of the {n_low} competitions of split low has records" in out.stdout
        assert "## Medal rate vs elapsed time" in out.stdout and "## Ablation by `tier`" in out.stdout


def test_in_progress_sweep_notes_and_padding(tmp_path):
    s = in_progress(tmp_path / "s")
    out = run_cli(s)
    assert out.returncode == 0, out.stderr
    assert ("| dummy | cpu | 0 | 3 | — |" in out.stdout and "2 of 3 competitions of split offline-lite have records; "
            "1 missing (bike-sharing-demand) — pass --pad-missing to count them as failures" in out.stdout)
    a = report.analyze(load.load([s]), sweep_split=load.sweep_split([s]))
    assert set(a.notes) == {"per_competition", "pass_at_k", "time_scaling", "by_tier"}
    assert all("cpu: 2 of 3" in n and "gpu: 1 of 3" in n for n in a.notes.values())
    # padded: cpu seed 0 made 2 of 3 submissions, seed 1 made 1 of 3 → 50.00±16.67
    padded = report.analyze(load.load([s]), pad_missing=True, sweep_split=load.sweep_split([s]))
    cpu = padded.tables["medals_offline-lite"].set_index("tier").loc["cpu"]
    assert (cpu["n_seeds"], cpu["Made submission (%)"], cpu["Any medal (%)"]) == (2, "50.00±16.67", "0.00±0.00")
    assert "3 entries missing from 2 seeds counted as failures (--pad-missing)" in cpu["note"]
    # a finished competition with an unfinished seed: the complete seed only, and a note saying so
    rows = tables.medal_rows(load.load([s]), tables.PRESENT, by=["agent"])
    assert rows.iloc[0]["n_seeds"] == 1 and "past the 1 complete seed left out" in rows.iloc[0]["note"]


def test_subset_of_a_suite_reports_the_split_it_covers(tmp_path):
    s = sweep(tmp_path / "s", [trial("titanic", 0)], "[titanic]")
    own = load.sweep_split([s])
    assert own == "titanic (1 of offline-lite's 3)" and tables.competitions_of(own, None) == ["titanic"]
    text = report.write_report(s).read_text()
    assert "splits: titanic (1 of offline-lite's 3)." in text
    assert "| dummy | 1 | 1 | 100.00±0.00 | 100.00±0.00 | 0.00±0.00 |" in text and "33.33" not in text
    full = sweep(tmp_path / "full", [trial("titanic", 0)], "[bike-sharing-demand, house-prices, titanic]")
    assert load.sweep_split([full]) == "offline-lite"


@pytest.mark.parametrize("trials", [None, []])
def test_sweep_with_no_records_yet(tmp_path, trials):
    s = tmp_path / "s"
    s.mkdir()
    (s / "config.yaml").write_text(OFFLINE_LITE.format("null"))
    if trials is not None:
        (s / "trials.jsonl").write_text("")
    out = run_cli(s)
    assert out.returncode == 0, out.stderr
    assert "## Medal table, split `offline-lite`" in out.stdout and "Note: no records yet." in out.stdout
    assert report.write_report(s).is_file()
    assert tables.sweep_summary(load.load_paths([s])) == "(no finished trials)"


@pytest.mark.filterwarnings("error")  # no empty figure (matplotlib warns of a legend without artists)
def test_only_invalid_submissions_and_failures(tmp_path):
    recs = [trial(c, 0, valid=False) for c in ("titanic", "house-prices")]
    recs.append(TrialResult(competition_id="bike-sharing-demand", agent="dummy", tier="cpu", trial_id="b",
                            status="failed", reason="node died").to_dict())
    s = sweep(tmp_path / "s", recs)
    a = report.analyze(load.load([s]), sweep_split=load.sweep_split([s]))
    assert a.tables["medals_offline-lite"]["Valid (%)"].tolist() == ["0.00±0.00"]
    for split, pad in (("low", False), ("low", True), ("offline-lite", True), (tables.PRESENT, False)):
        report.build_report(load.load([s]), tmp_path / f"r-{split}-{pad}", split, pad)
    report.write_report(s)


def test_time_scaling_and_ablation_without_numbers(tmp_path):
    df = load.load([in_progress(tmp_path / "s")])
    ts = scaling.time_scaling(df, "offline-lite")
    assert ts["any_medal_mean"].isna().all() and (ts["n_seeds"] == 0).all()
    ab = report.analyze(df, "offline-lite").tables["by_tier"]
    assert ab["Δ Any medal"].tolist() == ["—", "—"]


def famou_subset(mlebench_data: Path, tmp_path: Path, keep: dict):
    """Copies of the Famou-Agent reports, report i holding only the competitions keep[i] (all if
    absent): (paths, each report's entries)."""
    out = []
    for i, path in enumerate(famou_reports(mlebench_data)):
        entries = json.loads(path.read_text())["competition_reports"]
        entries = [e for e in entries if i not in keep or e["competition_id"] in keep[i]]
        out.append(write_report(tmp_path / path.parent.name / path.name, entries))
    return out, [json.loads(p.read_text())["competition_reports"] for p in out]


def medal_pct(entries, ids) -> float:
    return sum(bool(e["gold_medal"] or e["silver_medal"] or e["bronze_medal"]) for e in entries
               if e["competition_id"] in ids) / len(ids) * 100


def test_pad_missing_as_mlebench_on_famou_reports(mlebench_data, tmp_path):
    low = splits.split_ids("low")
    # one report holding 3 low competitions: no numbers without padding; padded, the 19 others fail
    paths, reports = famou_subset(mlebench_data, tmp_path / "one", {0: low[:3]})
    df = load.load(paths[:1])
    row = tables.medal_rows(df, "low").iloc[0]
    assert row["n_seeds"] == 0 and row["error"].startswith(
        "3 of 22 competitions of split low have records; 19 missing (") and "--pad-missing" in row["error"]
    padded = tables.medal_rows(df, "low", pad_missing=True).iloc[0]
    assert padded["n_seeds"] == 1 and padded["any_medal_mean"] == pytest.approx(medal_pct(reports[0], low))
    assert "19 missing" in padded["note"] and "19 entries missing from 1 seed counted as failures" in padded["note"]
    out = run_cli(*paths[:1], "--split", "low")
    assert out.returncode == 0 and "3 of 22 competitions of split low have records; 19 missing" in out.stdout
    # all three reports, the third without 5 low competitions: 2 complete seeds, or 3 with padding
    paths, reports = famou_subset(mlebench_data, tmp_path / "three", {2: [c for c in splits.split_ids("all")
                                                                          if c not in low[:5]]})
    df = load.load(paths)
    plain, padded = (tables.medal_rows(df, "low", pad_missing=p).iloc[0] for p in (False, True))
    per_seed = [medal_pct(r, low) for r in reports]
    assert plain["n_seeds"] == 2 and plain["any_medal_mean"] == pytest.approx(sum(per_seed[:2]) / 2)
    assert "17 entries past the 2 complete seeds left out" in plain["note"]
    mean = sum(per_seed) / 3
    sem = (sum((x - mean) ** 2 for x in per_seed) / 2) ** 0.5 / 3 ** 0.5
    assert padded["n_seeds"] == 3 and padded[["any_medal_mean", "any_medal_sem"]].tolist() == pytest.approx([mean, sem])
    assert "5 entries missing from 3 seeds counted as failures" in padded["note"]


def test_split_disjoint_from_the_data_and_unknown_split(mlebench_data, tmp_path):
    out = run_cli(*famou_reports(mlebench_data), "--split", "offline-lite")
    assert out.returncode == 0 and "none of the 3 competitions of split offline-lite has records" in out.stdout
    bad = run_cli(in_progress(tmp_path / "s"), "--split", "nope", "--pad-missing")
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1
    assert "unknown split 'nope'" in bad.stderr and "known: low, medium, high, all" in bad.stderr
