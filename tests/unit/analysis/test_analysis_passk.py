"""pass@k: the unbiased estimator equals brute-force enumeration over all k-subsets of attempts."""

from __future__ import annotations

from fractions import Fraction
from itertools import combinations

import pytest

from analysis import load, passk, tables
from mleray.records import TrialResult


def brute_force(outcomes, k) -> Fraction:
    subsets = list(combinations(range(len(outcomes)), k))
    return Fraction(sum(any(outcomes[i] for i in s) for s in subsets), len(subsets))


CASES = [(n, c) for n in range(1, 7) for c in range(0, n + 1)]  # includes c = 0 and c = n


@pytest.mark.parametrize("n,c", CASES)
def test_estimator_equals_enumeration(n, c):
    outcomes = [True] * c + [False] * (n - c)
    for k in range(1, n + 1):  # includes k = n
        assert passk.pass_at_k(n, c, k) == pytest.approx(float(brute_force(outcomes, k)), abs=1e-12)


def test_edges_and_bad_input():
    assert passk.pass_at_k(5, 0, 3) == 0.0
    assert passk.pass_at_k(5, 5, 1) == 1.0
    assert passk.pass_at_k(4, 1, 4) == 1.0
    for bad in [(3, 4, 1), (3, 1, 0), (3, 1, 4)]:
        with pytest.raises(ValueError):
            passk.pass_at_k(*bad)


def test_table_averages_over_competitions_for_k_up_to_n():
    medals = {"A": [True, False, False, True], "B": [False] * 4, "C": [True] * 4, "D": [False, True, False, False]}
    recs = [TrialResult(competition_id=cid, agent="a", seed=s, trial_id=f"{cid}{s}", gold_medal=m).to_dict()
            for cid, ms in medals.items() for s, m in enumerate(ms)]
    table = passk.pass_at_k_table(load.frame(recs), tables.PRESENT)
    assert list(table["k"]) == [1, 2, 3, 4]
    for k, got in zip(table["k"], table["pass_at_k"]):
        want = sum(float(brute_force(ms, k)) for ms in medals.values()) / len(medals) * 100
        assert got == pytest.approx(want)
    # pass@1 is the mean any-medal rate of the medal table
    rows = tables.medal_rows(load.frame(recs), tables.PRESENT)
    assert table["pass_at_k"].iloc[0] == pytest.approx(rows["any_medal_mean"].iloc[0])
