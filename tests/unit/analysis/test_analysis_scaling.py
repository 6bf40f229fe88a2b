"""Time scaling from graded snapshots, ablations per tier (or any varying field), and cost —
on synthetic records whose answers are worked out by hand."""

from __future__ import annotations

import pytest

from analysis import cost, load, scaling, tables
from mleray.records import TrialResult

T = tables.PRESENT


def snap(t, medal=False, valid=True, **extra):
    return {"elapsed_s": t, "path": f"snapshots/{t}.csv", "score": 0.5, "valid_submission": valid,
            "above_median": medal, "any_medal": medal, "gold_medal": medal, "silver_medal": False,
            "bronze_medal": False, "reason": "", **extra}


def rec(cid, seed, snapshots=(), **kw):
    return TrialResult(competition_id=cid, agent="x", seed=seed, trial_id=f"{cid}-{seed}-{kw.get('tier', '')}",
                       snapshots=list(snapshots), **kw).to_dict()


def test_time_scaling_latest_snapshot_at_or_before_t():
    df = load.frame([
        rec("A", 0, [snap(30, True), snap(10, False)]),  # unsorted on purpose
        rec("A", 1, [snap(20, True)]),
        rec("B", 0, [{"elapsed_s": 5, "path": "ungraded.csv"}, snap(50, True)]),  # ungraded: ignored
        rec("B", 1, []),
    ])
    ts = scaling.time_scaling(df, T, times=[0, 10, 20, 30, 50])
    got = {row["time_s"]: (row["any_medal_mean"], row["any_medal_sem"]) for row in ts.to_dict("records")}
    assert got == {0: (0, 0), 10: (0, 0), 20: (25, 25), 30: (50, 0), 50: (75, 25)}
    valid = dict(zip(ts["time_s"], ts["valid_submission_mean"]))
    assert valid[10] == 25 and valid[20] == 50 and valid[50] == 75
    assert scaling.time_points(df) == [10.0, 20.0, 30.0, 50.0]


def test_time_scaling_any_medal_only_snapshot():
    df = load.frame([rec("A", 0, [{"elapsed_s": 1, "any_medal": True, "valid_submission": True}])])
    assert scaling.time_scaling(df, T, times=[1])["any_medal_mean"].tolist() == [100.0]


TIERS = {"z-cpu": (0, [[1, 0], [0, 0]]), "a-gpu1": (1, [[1, 1], [1, 0]]), "m-gpu2": (2, [[1, 1], [1, 1]])}


def tier_frame(extra=None):
    recs = []
    for tier, (gpus, seeds) in TIERS.items():
        for seed, medals in enumerate(seeds):
            for cid, m in zip("AB", medals):
                recs.append(rec(cid, seed, tier=tier, gpus=gpus, cpus=4, gold_medal=bool(m),
                                valid_submission=True, submission_exists=True,
                                **(extra(tier, seed) if extra else {})))
    return load.frame(recs)


def test_tier_ablation_against_the_least_resourced_tier():
    df = tier_frame()
    assert scaling.varying_factors(df) == ["tier"]
    ft = scaling.factor_table(df, T, "tier").set_index("tier")
    assert list(ft.index) == ["z-cpu", "a-gpu1", "m-gpu2"]  # ordered by resources, not name
    assert set(ft["reference"]) == {"z-cpu"}
    assert ft.loc["z-cpu", ["any_medal_mean", "any_medal_sem", "any_medal_diff", "any_medal_diff_se"]].tolist() \
        == pytest.approx([25, 25, 0, 0])  # the reference itself
    assert ft.loc["a-gpu1", ["any_medal_mean", "any_medal_sem", "any_medal_diff", "any_medal_diff_se"]].tolist() \
        == pytest.approx([75, 25, 50, 25 * 2 ** 0.5])
    assert ft.loc["m-gpu2", ["any_medal_mean", "any_medal_sem", "any_medal_diff", "any_medal_diff_se"]].tolist() \
        == pytest.approx([100, 0, 75, 25])
    explicit = scaling.factor_table(df, T, "tier", reference="m-gpu2").set_index("tier")
    assert explicit.loc["z-cpu", "any_medal_diff"] == pytest.approx(-75)
    with pytest.raises(ValueError, match="not a level"):
        scaling.factor_table(df, T, "tier", reference="tpu")


def test_other_varying_fields_are_ablations():
    df = tier_frame(lambda tier, seed: {"description": "obfuscated" if seed else "original"})
    assert scaling.varying_factors(df) == ["tier", "description"]
    ft = scaling.factor_table(df, T, "description", by=["agent", "tier"])
    assert set(ft["reference"]) == {"original"}  # the record's default value is the reference
    cpu = ft[ft["tier"] == "z-cpu"].set_index("description")
    assert cpu.loc["original", "any_medal_mean"] == 50 and cpu.loc["obfuscated", "any_medal_mean"] == 0
    assert cpu.loc["obfuscated", "any_medal_diff"] == -50


def test_cost_per_trial_agent_and_medal():
    df = tier_frame(lambda tier, seed: {"agent_s": 1800.0, "staging_s": 60.0, "grading_s": 120.0})
    d = cost.with_cost(df)
    assert d["cpu_hours"].tolist() == [2.0] * 12
    assert sorted(set(d["gpu_hours"])) == [0.0, 0.5, 1.0]
    ct = cost.cost_table(df).set_index("tier")
    assert ct.loc["a-gpu1", "trials"] == 4 and ct.loc["a-gpu1", "medals"] == 3
    assert ct.loc["a-gpu1", "cpu_hours"] == 8.0 and ct.loc["a-gpu1", "gpu_hours"] == 2.0
    assert ct.loc["a-gpu1", "gpu_hours_per_medal"] == pytest.approx(2 / 3)
    assert ct.loc["m-gpu2", "cpu_hours_per_medal"] == pytest.approx(2.0)
    assert ct.loc["z-cpu", "wall_hours"] == pytest.approx(4 * 0.55)
