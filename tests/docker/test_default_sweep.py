"""The README's first command: the default sweep, end to end, with whatever sandbox `auto` picks
(docker in CI, where the images are built). The baseline must be valid everywhere, beat the dummy,
and win at least one medal but not one on every trial; a second run re-runs nothing."""

import json
import subprocess
import sys

from mleray.competitions import suite
from mleray.config import load_sweep


def run_sweep(storage):
    return subprocess.run([sys.executable, "-m", "mleray.sweep", f"storage={storage}"],
                          capture_output=True, text=True, timeout=900)


def test_default_sweep_end_to_end(tmp_path):
    cfg = load_sweep()
    comps = suite(cfg.suite)
    total = len(comps) * len(cfg.agents) * cfg.seeds * len(cfg.tiers)
    first = run_sweep(tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    assert "| baseline | cpu |" in first.stdout and "| dummy | cpu |" in first.stdout  # the medal table
    records = [json.loads(line) for line in (tmp_path / "default" / "trials.jsonl").read_text().splitlines()]
    assert len(records) == total and len({r["trial_id"] for r in records}) == total
    assert all(r["status"] == "graded" for r in records), [r["reason"] for r in records]
    base = [r for r in records if r["agent"] == "baseline"]
    dummy = {(r["competition_id"], r["seed"]): r for r in records if r["agent"] == "dummy"}
    assert {r["competition_id"] for r in base} == set(comps)
    for r in base:
        assert r["valid_submission"], r["reason"]
        floor = dummy[(r["competition_id"], r["seed"])]["score"]
        assert (r["score"] < floor) if r["is_lower_better"] else (r["score"] > floor), (
            r["competition_id"], r["score"], floor)
    medals = [(r["competition_id"], r["seed"]) for r in base if r["any_medal"]]
    # at least one, and not every one: the fields leave headroom. (Fewer than half, the bar, held in every
    # run measured, 1 or 2 of 6; but house-prices' seed 1 sits 0.0002 inside bronze on a quiet machine and titanic's
    # seed 1 scored 0.766 in two runs and 0.789 in a third, so CI asserts only what no run-to-run change can flip.)
    assert 1 <= len(medals) < len(base), medals
    assert (tmp_path / "default" / "report" / "report.md").is_file()

    second = run_sweep(tmp_path)
    assert second.returncode == 0, second.stderr[-3000:]
    assert (tmp_path / "default" / "trials.jsonl").read_text().count("\n") == total
