"""Trial expansion: every combination once, stable ids, seed-major order."""

from mleray.config import load_sweep
from mleray.sweep.trials import expand, trial_id


def test_expand_covers_the_grid_once_with_stable_ids():
    cfg = load_sweep(overrides=["seeds=3", "tiers.gpu.gpus=0.5"])
    trials = expand(cfg, ["a", "b", "a"])
    assert len(trials) == 3 * 2 * 2 * 2  # seeds x tiers x agents x competitions (duplicates dropped)
    ids = [t.trial_id for t in trials]
    assert len(set(ids)) == len(ids)
    assert ids == [t.trial_id for t in expand(cfg, ["a", "b"])]  # a rerun computes the same ids
    assert trials[0].trial_id == trial_id("dummy", "a", "cpu", 0) == "dummy__a__cpu__s0"
    assert [t.seed for t in trials] == sorted(t.seed for t in trials)
    assert {t.resources.gpus for t in trials if t.tier == "gpu"} == {0.5}
