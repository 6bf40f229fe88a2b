"""Submission validation: each kind of bad file gets its own clear reason, and nothing raises."""

from __future__ import annotations

import pandas as pd
import pytest

from mleray.grading.validate import check_score, validate_submission


@pytest.fixture
def sample(tmp_path):
    path = tmp_path / "sample_submission.csv"
    path.write_text("id,label,prob\n" + "".join(f"{i},0,0.5\n" for i in range(1, 11)))
    return path


def _write(tmp_path, text, name="submission.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


def _good_rows(ids=range(1, 11)):
    return "".join(f"{i},1,0.25\n" for i in ids)


def check(path, sample, id_column="id", answers=None):
    ok, reason = validate_submission(path, sample, id_column, answers)
    assert isinstance(ok, bool) and isinstance(reason, str)
    return ok, reason


def test_a_good_submission_is_valid(tmp_path, sample):
    assert check(_write(tmp_path, "id,label,prob\n" + _good_rows()), sample) == (True, "")
    # column order and row order do not matter
    rows = "".join(f"0.25,{i},1\n" for i in reversed(range(1, 11)))
    assert check(_write(tmp_path, "prob,id,label\n" + rows, "b.csv"), sample) == (True, "")


def test_empty_id_column_means_the_samples_first_column(tmp_path, sample):
    assert check(_write(tmp_path, "id,label,prob\n" + _good_rows()), sample, id_column="")[0]


def test_missing_file(tmp_path, sample):
    ok, reason = check(tmp_path / "nope.csv", sample)
    assert not ok and "not found" in reason and "nope.csv" in reason


def test_not_a_csv_name_and_directory(tmp_path, sample):
    ok, reason = check(_write(tmp_path, "id,label,prob\n", "sub.txt"), sample)
    assert not ok and ".csv" in reason
    (tmp_path / "dir.csv").mkdir()
    ok, reason = check(tmp_path / "dir.csv", sample)
    assert not ok and "not a file" in reason


def test_empty_file(tmp_path, sample):
    ok, reason = check(_write(tmp_path, ""), sample)
    assert not ok and "empty" in reason


def test_header_only(tmp_path, sample):
    ok, reason = check(_write(tmp_path, "id,label,prob\n"), sample)
    assert not ok and "no rows" in reason


def test_unparseable_csv(tmp_path, sample):
    ok, reason = check(_write(tmp_path, "id,label,prob\n1,0,0.5\n2,0,0.5,9,9\n"), sample)
    assert not ok and "not parseable as CSV" in reason


def test_binary_garbage(tmp_path, sample):
    path = tmp_path / "submission.csv"
    path.write_bytes(b"\xff\xfe\x00\x81\x00garbage\x00\n\x93\x94")
    ok, reason = check(path, sample)
    assert not ok and reason


def test_wrong_columns_name_missing_and_extra(tmp_path, sample):
    ok, reason = check(_write(tmp_path, "id,label,score\n" + _good_rows()), sample)
    assert not ok
    assert "missing column(s) 'prob'" in reason and "unexpected column(s) 'score'" in reason


def test_missing_and_extra_ids_shown(tmp_path, sample):
    ok, reason = check(_write(tmp_path, "id,label,prob\n" + _good_rows(list(range(1, 9)) + [11, 12])), sample)
    assert not ok
    assert "2 missing id(s)" in reason and "'9'" in reason and "'10'" in reason
    assert "2 unexpected id(s)" in reason and "'11'" in reason


def test_many_missing_ids_are_abbreviated(tmp_path, sample):
    ok, reason = check(_write(tmp_path, "id,label,prob\n" + _good_rows([1, 2])), sample)
    assert not ok and "8 missing id(s)" in reason and "(8 in all)" in reason


def test_duplicate_ids(tmp_path, sample):
    ok, reason = check(_write(tmp_path, "id,label,prob\n" + _good_rows(list(range(1, 11)) + [3, 3, 4])), sample)
    assert not ok and "duplicate id(s)" in reason and "'3'" in reason and "'4'" in reason


def test_ids_are_compared_as_written(tmp_path, sample):
    ok, reason = check(_write(tmp_path, "id,label,prob\n" + "".join(f"{i}.0,1,0.2\n" for i in range(1, 11))), sample)
    assert not ok and "'1.0'" in reason


def test_integral_float_ids_in_the_answers_match_integer_ids(tmp_path, sample):
    answers = pd.DataFrame({"id": [float(i) for i in range(1, 11)], "label": [0] * 10})
    assert check(_write(tmp_path, "id,label,prob\n" + _good_rows()), sample, answers=answers) == (True, "")


def test_wrong_row_count_with_answers(tmp_path, sample):
    # answers that repeat an id expect one submission row per answer row
    answers = pd.DataFrame({"id": [str(i) for i in range(1, 11)] + ["10"], "label": [0] * 11})
    ok, reason = check(_write(tmp_path, "id,label,prob\n" + _good_rows()), sample, answers=answers)
    assert not ok and "wrong number of rows: 10 (expected 11)" in reason


def test_expected_ids_come_from_the_answers_when_given(tmp_path, sample):
    answers = pd.DataFrame({"id": list(range(1, 13)), "label": [0] * 12})
    ok, reason = check(_write(tmp_path, "id,label,prob\n" + _good_rows()), sample, answers=answers)
    assert not ok and "2 missing id(s)" in reason and "'11'" in reason


def test_nan_values(tmp_path, sample):
    rows = _good_rows(range(1, 10)) + "10,1,\n"
    ok, reason = check(_write(tmp_path, "id,label,prob\n" + rows), sample)
    assert not ok and "'prob'" in reason and "NaN" in reason and "'10'" in reason


def test_nan_allowed_where_the_sample_has_empty_cells(tmp_path):
    sample = _write(tmp_path, "id,mask\n1,1 3\n2,\n", "sample.csv")
    assert check(_write(tmp_path, "id,mask\n1,\n2,5 6\n"), sample) == (True, "")


def test_inf_values(tmp_path, sample):
    rows = _good_rows(range(1, 10)) + "10,1,inf\n"
    ok, reason = check(_write(tmp_path, "id,label,prob\n" + rows), sample)
    assert not ok and "infinite" in reason and "'prob'" in reason


def test_text_where_the_sample_has_numbers(tmp_path, sample):
    rows = _good_rows(range(1, 9)) + "9,cat,0.1\n10,dog,0.1\n"
    ok, reason = check(_write(tmp_path, "id,label,prob\n" + rows), sample)
    assert not ok and "'label' must be numeric" in reason and "'cat'" in reason


def test_text_columns_in_the_sample_accept_text(tmp_path):
    sample = _write(tmp_path, "id,breed\n1,x\n2,y\n", "sample.csv")
    assert check(_write(tmp_path, "id,breed\n1,poodle\n2,7\n"), sample) == (True, "")


def test_problems_with_the_sample_are_reported_not_raised(tmp_path):
    sub = _write(tmp_path, "id,label\n1,0\n")
    ok, reason = check(sub, tmp_path / "missing_sample.csv")
    assert not ok and "sample submission not found" in reason
    sample = _write(tmp_path, "id,label\n1,0\n", "sample.csv")
    ok, reason = check(sub, sample, id_column="PassengerId")
    assert not ok and "'PassengerId'" in reason


def test_check_score():
    assert check_score(0.5) == (True, "")
    for bad in (None, float("nan"), float("inf"), "x", True):
        ok, reason = check_score(bad)
        assert not ok and reason
