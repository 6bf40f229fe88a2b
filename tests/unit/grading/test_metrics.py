"""mleray.grading.metrics: values of each metric and how score() aligns and rejects submissions."""

import math

import numpy as np
import pandas as pd
import pytest

from mleray.grading.metrics import METRICS, InvalidSubmission, is_lower_better, score


def frames(pred, truth, ids=None):
    ids = list(range(1, len(truth) + 1)) if ids is None else ids
    answers = pd.DataFrame({"id": range(1, len(truth) + 1), "y": truth})
    return pd.DataFrame({"id": ids, "y": pred}), answers


def test_required_names_exist():
    for name in ("accuracy", "rmse", "rmsle", "mae", "auc", "log_loss", "macro_f1", "psnr", "rmse_log"):
        assert name in METRICS
    assert is_lower_better("rmse") and not is_lower_better("accuracy")


def test_accuracy_aligns_rows_by_id():
    sub, ans = frames([1, 0, 1], [1, 1, 0], ids=[3, 1, 2])  # id 3 -> 1, id 1 -> 0, id 2 -> 1
    # aligned predictions for ids 1,2,3 are 0,1,1 against truth 1,1,0
    assert score("accuracy", sub, ans, "id", ["y"]) == pytest.approx(1 / 3)


def test_accuracy_compares_labels_across_dtypes():
    sub = pd.DataFrame({"id": ["1", "2"], "y": ["cat", "dog"]})
    ans = pd.DataFrame({"id": [1, 2], "y": ["cat", "cat"]})
    assert score("accuracy", sub, ans, "id", ["y"]) == 0.5
    sub = pd.DataFrame({"id": [1.0, 2.0], "y": [1.0, 0.0]})
    ans = pd.DataFrame({"id": [1, 2], "y": [1, 0]})
    assert score("accuracy", sub, ans, "id", ["y"]) == 1.0


def test_regression_metrics():
    sub, ans = frames([2.0, 4.0], [1.0, 3.0])
    assert score("rmse", sub, ans, "id", ["y"]) == pytest.approx(1.0)
    assert score("mae", sub, ans, "id", ["y"]) == pytest.approx(1.0)
    expected = math.sqrt(((math.log(3) - math.log(2)) ** 2 + (math.log(5) - math.log(4)) ** 2) / 2)
    assert score("rmsle", sub, ans, "id", ["y"]) == pytest.approx(expected)
    expected = math.sqrt(((math.log(2) - math.log(1)) ** 2 + (math.log(4) - math.log(3)) ** 2) / 2)
    assert score("rmse_log", sub, ans, "id", ["y"]) == pytest.approx(expected)


def test_auc_and_binary_log_loss():
    sub, ans = frames([0.9, 0.2, 0.7, 0.1], [1, 0, 1, 0])
    assert score("auc", sub, ans, "id", ["y"]) == 1.0
    expected = -np.mean(np.log([0.9, 0.8, 0.7, 0.9]))
    assert score("log_loss", sub, ans, "id", ["y"]) == pytest.approx(expected)


def test_multiclass_log_loss_normalises_rows():
    ans = pd.DataFrame({"id": [1, 2], "a": [1, 0], "b": [0, 1]})
    sub = pd.DataFrame({"id": [1, 2], "a": [2 * 0.8, 0.3], "b": [2 * 0.2, 0.7]})
    sub[["a", "b"]] = sub[["a", "b"]].clip(upper=1.0)  # row 1 becomes (1.0, 0.4): normalised to (0.714, 0.286)
    got = score("log_loss", sub, ans, "id", ["a", "b"])
    assert got == pytest.approx(-(np.log(1.0 / 1.4) + np.log(0.7)) / 2)


def test_macro_f1_and_psnr():
    sub, ans = frames(["a", "b", "b"], ["a", "b", "a"])
    assert score("macro_f1", sub, ans, "id", ["y"]) == pytest.approx((2 / 3 + 2 / 3) / 2)
    sub, ans = frames([0.5, 0.5], [0.6, 0.4])
    assert score("psnr", sub, ans, "id", ["y"]) == pytest.approx(20.0)


@pytest.mark.parametrize("sub, why", [
    (pd.DataFrame({"id": [1, 2]}), "lacks column"),
    (pd.DataFrame({"id": [1], "y": [1.0]}), "rows"),
    (pd.DataFrame({"id": [1, 1], "y": [1.0, 2.0]}), "repeats id"),
    (pd.DataFrame({"id": [1, 5], "y": [1.0, 2.0]}), "not in the test set"),
    (pd.DataFrame({"id": [1, 2], "y": [1.0, None]}), "empty"),
    (pd.DataFrame({"id": [1, 2], "y": ["x", "2"]}), "non-numeric"),
    (pd.DataFrame({"id": [1, 2], "y": [-1.0, 2.0]}), "negative"),
])
def test_invalid_submissions_say_why(sub, why):
    ans = pd.DataFrame({"id": [1, 2], "y": [1.0, 2.0]})
    with pytest.raises(InvalidSubmission, match=why):
        score("rmsle", sub, ans, "id", ["y"])


def test_unknown_metric():
    sub, ans = frames([1], [1])
    with pytest.raises(KeyError, match="unknown metric"):
        score("nope", sub, ans, "id", ["y"])
