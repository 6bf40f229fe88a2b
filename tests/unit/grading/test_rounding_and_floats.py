"""Scores rounded as MLE-bench rounds them (its `round(score, 5)` on the grader's own type, numpy's rounding
for numpy scalars), NaN kept where MLE-bench keeps it, and CSV floats parsed as MLE-bench's
`float_precision="round_trip"` parses them without passing the argument pandas 3.1 deprecates."""

from __future__ import annotations

import json
import textwrap
import warnings

import numpy as np
import pandas as pd
import pytest
from test_grade import FAKE_MLEBENCH, N, make_competition, make_mlebench_layout, submit  # noqa: F401

from mleray.grading import grade_submission, report
from mleray.grading.grade import _round, read_csv
from mleray.grading.validate import CSV_FLOATS, pandas_at_least, parse


def test_a_numpy_tie_rounds_as_numpy_does():
    # 0.968235 is stored as 0.96823499999...: Python's round on the float gives 0.96823, numpy's (scale by
    # 1e5, round half to even, unscale) gives 0.96824, which is what MLE-bench reports for a numpy score
    assert round(0.968235, 5) == 0.96823 and float(round(np.float64(0.968235), 5)) == 0.96824
    assert _round(np.float64(0.968235)) == 0.96824 and type(_round(np.float64(0.968235))) is float
    assert _round(0.968235) == 0.96823  # a Python float keeps Python's rounding
    assert _round(np.float32(0.5)) == 0.5 and _round(3) == 3.0 and type(_round(3)) is float
    assert np.isnan(_round(np.float64("nan")))


def test_a_custom_grader_returning_numpy_is_rounded_as_numpy(tmp_path):
    grade_py = """
        import numpy as np
        def grade(submission, answers):
            return np.float64(0.968235)
    """
    prepared = make_competition(tmp_path, metric="custom", grade_py=grade_py)
    grade = grade_submission(prepared, submit(tmp_path, prepared, [0] * N))
    assert grade["score"] == 0.96824 and type(grade["score"]) is float
    json.dumps(grade)  # a plain float in the record


@pytest.fixture
def numpy_mlebench(tmp_path, monkeypatch):
    """The stand-in official package (test_grade.FAKE_MLEBENCH) whose grader returns what SCORE holds."""
    pkg = tmp_path / "fakepkg" / "mlebench"
    pkg.mkdir(parents=True)
    files = dict(FAKE_MLEBENCH)
    files["registry.py"] = files["registry.py"].replace(
        "return (merged[\"y\"] == merged[\"y_pred\"]).mean() * 1.000001234",
        "import numpy as np\n            return eval(open(Path(__file__).with_name('SCORE')).read())")
    for name, text in files.items():
        (pkg / name).write_text(textwrap.dedent(text))
    import sys

    for mod in [m for m in sys.modules if m == "mlebench" or m.startswith("mlebench.")]:
        monkeypatch.delitem(sys.modules, mod)
    monkeypatch.syspath_prepend(str(pkg.parent))
    yield pkg / "SCORE"
    for mod in [m for m in sys.modules if m == "mlebench" or m.startswith("mlebench.")]:
        del sys.modules[mod]


def test_official_graders_numpy_scores_round_as_mlebench_and_nan_stays(tmp_path, numpy_mlebench):
    prepared = make_mlebench_layout(tmp_path)
    path = submit(tmp_path, prepared, [i % 2 for i in range(N)])
    numpy_mlebench.write_text("np.float64(0.968235)")
    grade = grade_submission(prepared, path)
    assert grade["score"] == 0.96824 and grade["valid_submission"] and type(grade["score"]) is float
    numpy_mlebench.write_text("0.968235")  # a Python float: Python's rounding, as MLE-bench's round gives
    assert grade_submission(prepared, path)["score"] == 0.96823
    numpy_mlebench.write_text("np.float64('nan')")  # MLE-bench: round(nan, 5) is nan, "valid", no medal
    grade = grade_submission(prepared, path)
    assert np.isnan(grade["score"]) and grade["valid_submission"] and not grade["any_medal"]
    entry = report.entry(grade)
    assert np.isnan(entry["score"]) and entry["valid_submission"]
    assert '"score": NaN' in json.dumps(entry)  # what MLE-bench's report holds (float(nan), json.dumps)


HARD_FLOATS = [
    "0.1", "0.3", "2.2250738585072014e-308", "2.2250738585072011e-308", "4.9e-324", "1.7976931348623157e308",
    "0.30000000000000004", "9007199254740993", "1.00000000000000011102230246251565404236316680908203125",
    "0.96823499999999999", "0.968235", "123456789012345678901234567890", "7.038531e-26",
    "1.448997445238699", "2.4703282292062327e-324", "2.4703282292062328e-324", "8.41e21", "5e-320",
]


def test_pandas_default_float_parsing_is_round_trip(tmp_path):
    """pandas 3.1's default converter gives every value Python's float() gives (the round-trip converter
    MLE-bench asks for), on values where a fast converter goes wrong in the last bit, and on random 17- to
    25-digit values: so from 3.1 the deprecated argument is not passed."""
    rng = np.random.default_rng(7)
    values = list(HARD_FLOATS)
    values += [repr(float(x)) for x in rng.standard_normal(3000) * 10.0 ** rng.integers(-300, 300, 3000)]
    values += [f"0.{''.join(map(str, rng.integers(0, 10, int(k))))}" for k in rng.integers(17, 26, 3000)]
    values += [f"{a}.{b:020d}e{e}" for a, b, e in zip(rng.integers(1, 10, 2000), rng.integers(0, 10**18, 2000),
                                                          rng.integers(-30, 30, 2000))]
    path = tmp_path / "floats.csv"
    path.write_text("v\n" + "\n".join(values) + "\n")
    expected = np.array([float(v) for v in values])
    parsed = read_csv(path)["v"].to_numpy()
    assert parsed.dtype == np.float64
    assert (parsed.view(np.int64) == expected.view(np.int64)).all(), [
        v for v, a, b in zip(values, parsed, expected) if a != b][:5]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        round_trip = pd.read_csv(path, float_precision="round_trip")["v"].to_numpy()
    assert (round_trip.view(np.int64) == parsed.view(np.int64)).all()
    with_ids = tmp_path / "with_ids.csv"  # the grader's one Arrow parse reads its numbers as pandas does
    with_ids.write_text("id,v\n" + "".join(f"{i},{v}\n" for i, v in enumerate(values)))
    parsed_once = parse(with_ids, "id")
    assert not isinstance(parsed_once, str) and parsed_once.keys is not None  # the fast parse was taken
    fast = parsed_once.values["v"].to_numpy()
    assert (fast.view(np.int64) == expected.view(np.int64)).all()
    if pandas_at_least(3, 1):
        assert CSV_FLOATS == {}  # nothing deprecated is passed
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # a Pandas4Warning from our own reading would fail here
            read_csv(path)
