"""Tokens and dollars in the analysis: the cost table's llm columns (per trial, per medal) and the medal
rate against cumulative tokens and dollars, from each trial's llm.jsonl and its graded snapshots."""

from __future__ import annotations

import json
import math

import pytest

from analysis import cost, llm_scaling
from analysis.load import load
from analysis.tables import PRESENT


def _snap(t, medal):
    return {"elapsed_s": t, "path": "s", "score": 1.0, "valid_submission": True, "above_median": medal,
            "any_medal": medal, "gold_medal": medal, "silver_medal": False, "bronze_medal": False}


def _sweep(tmp_path):
    """Two seeds of one LLM agent on one competition: seed 0 medals at its second snapshot (after 3 calls),
    seed 1 never does; a baseline trial without accounting."""
    sweep = tmp_path / "sw"
    calls = {0: [(5, 100, 10, 0.01), (20, 200, 20, 0.02), (40, 300, 30, 0.03)], 1: [(10, 1000, 100, 0.5)]}
    records = []
    for seed, log in calls.items():
        tid = f"aide-titanic-cpu-s{seed}"
        folder = sweep / "trials" / tid
        folder.mkdir(parents=True)
        with open(folder / "llm.jsonl", "w") as f:
            for t, i, o, usd in log:
                f.write(json.dumps({"elapsed_s": t, "status": 200, "cost_usd": usd,
                                    "usage": {"input_tokens": i, "output_tokens": o, "cached_tokens": 0}}) + "\n")
            f.write("not json\n")
        medal = seed == 0
        records.append({"competition_id": "titanic", "trial_id": tid, "agent": "aide", "tier": "cpu", "seed": seed,
                        "sweep": "sw", "status": "graded", "any_medal": medal, "gold_medal": medal,
                        "valid_submission": True, "submission_exists": True, "agent_s": 60.0, "cpus": 1.0,
                        "snapshots": [_snap(15, False), _snap(45, medal)],
                        "llm_calls": len(log), "llm_input_tokens": sum(c[1] for c in log),
                        "llm_output_tokens": sum(c[2] for c in log), "llm_cached_tokens": 0,
                        "llm_cost_usd": sum(c[3] for c in log), "llm_budget_exhausted": "llm.max_calls=1 reached"
                        if seed == 1 else None})
    records.append({"competition_id": "titanic", "trial_id": "baseline-titanic-cpu-s0", "agent": "baseline",
                    "tier": "cpu", "seed": 0, "sweep": "sw", "status": "graded", "agent_s": 10.0, "cpus": 1.0})
    (sweep / "trials.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return sweep


def test_cost_table_has_tokens_and_dollars_per_trial_and_medal(tmp_path):
    df = load([_sweep(tmp_path)])
    assert cost.has_llm(df)
    table = cost.cost_table(df, ["agent"]).set_index("agent")
    aide = table.loc["aide"]
    assert aide["llm_calls"] == 4 and aide["llm_tokens"] == 600 + 60 + 1100
    assert aide["llm_cost_usd"] == pytest.approx(0.56)
    assert aide["llm_cost_usd_per_trial"] == pytest.approx(0.28)
    assert aide["llm_cost_usd_per_medal"] == pytest.approx(0.56)
    assert aide["llm_budget_hit"] == 1
    base = table.loc["baseline"]
    assert base["llm_tokens"] == 0 and math.isnan(base["llm_tokens_per_medal"])


def test_medal_rate_against_cumulative_tokens_and_dollars(tmp_path):
    df = load([_sweep(tmp_path)])
    df = df[df["agent"] == "aide"]
    spent = llm_scaling.with_spend(df)
    seed0 = spent[spent["seed"] == 0].iloc[0]["snapshots"]
    assert [s["llm_tokens"] for s in seed0] == [110, 660]  # one call before t=15, three before t=45
    rows = llm_scaling.spend_scaling(df, PRESENT, "tokens", budgets=[100, 110, 659, 660, 5000], by=["agent"])
    assert list(rows["llm_tokens"]) == [100, 110, 659, 660, 5000]
    assert list(rows["any_medal_mean"]) == [0.0, 0.0, 0.0, 50.0, 50.0]  # seed 0's medal once 660 tokens are spent
    usd = llm_scaling.spend_scaling(df, PRESENT, "usd", budgets=[0.05, 0.0601], by=["agent"])
    assert list(usd["any_medal_mean"]) == [0.0, 50.0]
    assert llm_scaling.per_trial_spend(df)["aide-titanic-cpu-s1"] == (1100.0, 0.5)
    with pytest.raises(ValueError, match="unknown axis"):
        llm_scaling.spend_scaling(df, PRESENT, "minutes")


def test_spend_figure_is_written(tmp_path):
    df = load([_sweep(tmp_path)])
    rows = llm_scaling.spend_scaling(df[df["agent"] == "aide"], PRESENT, "usd", by=["agent"])
    paths = llm_scaling.spend_figure(rows, ["agent"], tmp_path / "fig", axis="usd")
    assert paths and all(p.stat().st_size > 1000 for p in paths)


def test_the_report_draws_medal_rate_against_tokens_and_dollars(tmp_path):
    from analysis.report import build_report

    sweep = _sweep(tmp_path)
    path = build_report(load([sweep]), tmp_path / "report")
    text = path.read_text()
    assert "Medal rate vs cumulative LLM tokens" in text and "Medal rate vs cumulative LLM dollars" in text
    assert "llm_cost_usd_per_medal" in text or "llm_cost_usd" in text  # the cost table's LLM columns
    assert (tmp_path / "report" / "figures" / "llm_tokens_scaling.png").stat().st_size > 1000
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "trials.jsonl").write_text((sweep / "trials.jsonl").read_text().splitlines()[-1] + "\n")
    assert "LLM tokens" not in build_report(load([plain]), tmp_path / "report2").read_text()  # no LLM agent
