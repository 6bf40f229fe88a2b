"""Competition metrics: `METRICS[name](y_true, y_pred) -> float` and `score(...)` on submission tables.

`score` aligns the submission to the answers by the id column, checks it (ids, columns, values)
and raises `InvalidSubmission` (a ValueError) with a one-line reason when it cannot be scored.
Each metric takes two 2-D float arrays (answers, predictions), one column per target column,
rows in the same order. Adding one: write `def my_metric(y_true, y_pred) -> float`, register it
in METRICS, and, when lower is better, add its name to LOWER_IS_BETTER.
"""

from __future__ import annotations

from typing import Callable, Dict, List, Sequence

import numpy as np
import pandas as pd


class InvalidSubmission(ValueError):
    """The submission cannot be scored; the message says why in one line."""


# ----------------------------------------------------------------------------------- metrics


def _flat(a: np.ndarray) -> np.ndarray:
    return np.asarray(a).reshape(-1)


def accuracy(y_true, y_pred) -> float:
    """Share of exactly equal predictions over all target cells (labels compared as values)."""
    return float(np.mean(_flat(y_true) == _flat(y_pred)))


def rmse(y_true, y_pred) -> float:
    t, p = _flat(y_true).astype(float), _flat(y_pred).astype(float)
    return float(np.sqrt(np.mean((t - p) ** 2)))


def rmsle(y_true, y_pred) -> float:
    """Root mean squared logarithmic error, Kaggle's: sqrt(mean((log1p(p) - log1p(t))^2)).

    Predictions below 0 are invalid (log1p would be undefined at or below -1); `score` rejects them.
    """
    t, p = _flat(y_true).astype(float), _flat(y_pred).astype(float)
    return float(np.sqrt(np.mean((np.log1p(p) - np.log1p(t)) ** 2)))


def rmse_log(y_true, y_pred) -> float:
    """RMSE between the logarithms of answers and predictions (Kaggle's House Prices metric)."""
    t, p = _flat(y_true).astype(float), _flat(y_pred).astype(float)
    return float(np.sqrt(np.mean((np.log(p) - np.log(t)) ** 2)))


def mae(y_true, y_pred) -> float:
    t, p = _flat(y_true).astype(float), _flat(y_pred).astype(float)
    return float(np.mean(np.abs(t - p)))


def r2(y_true, y_pred) -> float:
    from sklearn.metrics import r2_score

    return float(r2_score(np.asarray(y_true, float), np.asarray(y_pred, float)))


def auc(y_true, y_pred) -> float:
    """Binary ROC AUC: answers are 0/1, predictions any scores (higher = more likely 1).
    With several target columns, the mean of the per-column AUCs."""
    from sklearn.metrics import roc_auc_score

    t, p = np.asarray(y_true, float), np.asarray(y_pred, float)
    if t.ndim == 1:
        t, p = t[:, None], p[:, None]
    return float(np.mean([roc_auc_score(t[:, j], p[:, j]) for j in range(t.shape[1])]))


def log_loss(y_true, y_pred, eps: float = 1e-15) -> float:
    """Kaggle's log loss. One column: binary (answers 0/1, predictions P(1)). Several columns:
    multi-class, answers one-hot, predictions probabilities per class, each row rescaled to sum
    to 1 after clipping to [eps, 1 - eps]."""
    t, p = np.asarray(y_true, float), np.asarray(y_pred, float)
    if t.ndim == 1 or t.shape[1] == 1:
        t, p = _flat(t), np.clip(_flat(p), eps, 1 - eps)
        return float(-np.mean(t * np.log(p) + (1 - t) * np.log(1 - p)))
    p = np.clip(p, eps, 1 - eps)
    p = p / p.sum(axis=1, keepdims=True)
    return float(-np.mean(np.sum(t * np.log(p), axis=1)))


def macro_f1(y_true, y_pred) -> float:
    from sklearn.metrics import f1_score

    return float(f1_score(_flat(y_true), _flat(y_pred), average="macro"))


def micro_f1(y_true, y_pred) -> float:
    from sklearn.metrics import f1_score

    return float(f1_score(_flat(y_true), _flat(y_pred), average="micro"))


def quadratic_weighted_kappa(y_true, y_pred) -> float:
    from sklearn.metrics import cohen_kappa_score

    return float(cohen_kappa_score(_flat(y_true), _flat(y_pred), weights="quadratic"))


def psnr(y_true, y_pred) -> float:
    """Peak signal-to-noise ratio in dB over all values: 10 * log10(peak^2 / MSE).

    The peak is 1.0 when every answer lies in [0, 1] (intensities scaled to [0, 1]), else 255.
    A perfect submission scores +inf (capped at 100 dB so averages stay finite).
    """
    t, p = _flat(y_true).astype(float), _flat(y_pred).astype(float)
    peak = 1.0 if (t.min() >= 0 and t.max() <= 1) else 255.0
    mse = float(np.mean((t - p) ** 2))
    if mse == 0:
        return 100.0
    return float(min(100.0, 10 * np.log10(peak**2 / mse)))


METRICS: Dict[str, Callable[..., float]] = {
    "accuracy": accuracy,
    "rmse": rmse,
    "rmsle": rmsle,
    "rmse_log": rmse_log,
    "mae": mae,
    "r2": r2,
    "auc": auc,
    "log_loss": log_loss,
    "macro_f1": macro_f1,
    "micro_f1": micro_f1,
    "qwk": quadratic_weighted_kappa,
    "psnr": psnr,
}

LOWER_IS_BETTER = {"rmse", "rmsle", "rmse_log", "mae", "log_loss"}

# Metrics whose predictions are labels compared as given (everything else must be numeric).
LABEL_METRICS = {"accuracy", "macro_f1", "micro_f1"}


def is_lower_better(metric: str) -> bool:
    if metric not in METRICS:
        raise KeyError(f"unknown metric {metric!r} (known: {', '.join(sorted(METRICS))})")
    return metric in LOWER_IS_BETTER


# ---------------------------------------------------------------------------- table scoring


def _id_key(col: pd.Series) -> pd.Series:
    """Ids compared as text, with integral floats written as integers (892.0 -> '892')."""
    if pd.api.types.is_float_dtype(col) and np.all(np.isfinite(col)) and np.all(col == np.round(col)):
        col = col.astype("int64")
    return col.astype(str).str.strip()


def _label_key(col: pd.Series) -> pd.Series:
    return _id_key(col) if pd.api.types.is_numeric_dtype(col) else col.astype(str).str.strip()


def _label_codes(truth: List[pd.Series], pred: List[pd.Series]):
    """Labels as 2-D arrays for the metric: integer codes of one joint, sorted factorisation (the same
    equalities and the same label order as the text, so the same score), which spares an object array
    of Python strings per cell; the text itself where a label is missing (NaN never equals NaN)."""
    n = len(truth[0]) if truth else 0
    keys = pd.concat([*truth, *pred], ignore_index=True)
    if keys.isna().any():
        return np.column_stack(truth), np.column_stack(pred)
    codes, _ = pd.factorize(keys, sort=True)
    k = len(truth)
    return codes[: n * k].reshape(k, n).T, codes[n * k:].reshape(k, n).T


def align(submission: pd.DataFrame, answers: pd.DataFrame, id_column: str,
          target_columns: Sequence[str]) -> pd.DataFrame:
    """The submission's target columns, reordered to the answers' row order.

    Raises InvalidSubmission when the id column or a target column is missing, ids repeat,
    ids are missing or unknown, or a prediction is empty.
    """
    missing = [c for c in [id_column, *target_columns] if c not in submission.columns]
    if missing:
        raise InvalidSubmission(f"submission lacks column(s) {missing} (needs {[id_column, *target_columns]})")
    if len(submission) != len(answers):
        raise InvalidSubmission(f"submission has {len(submission)} rows, expected {len(answers)}")
    sub_ids, ans_ids = _id_key(submission[id_column]), _id_key(answers[id_column])
    if sub_ids.duplicated().any():
        dup = sub_ids[sub_ids.duplicated()].iloc[0]
        raise InvalidSubmission(f"submission repeats id {dup!r} in column '{id_column}'")
    # positions, not a re-indexed copy of the table: memory stays near the submission's own
    sub_index = pd.Index(sub_ids)
    pos = sub_index.get_indexer(ans_ids)
    hit = np.zeros(len(sub_index), dtype=bool)
    hit[pos[pos >= 0]] = True
    if not hit.all() or (pos < 0).any():
        unknown = sub_index.difference(pd.Index(ans_ids))
        raise InvalidSubmission(f"submission has {len(unknown)} id(s) not in the test set, e.g. {unknown[0]!r}")
    aligned = submission[list(target_columns)].take(pos).reset_index(drop=True)
    if aligned.isna().any().any():
        col = aligned.columns[aligned.isna().any()][0]
        raise InvalidSubmission(f"submission has empty values in column '{col}'")
    return aligned


def score(metric: str, submission: pd.DataFrame, answers: pd.DataFrame, id_column: str,
          target_columns: Sequence[str]) -> float:
    """Scores a submission table against the answers table with a named metric.

    Rows are aligned by `id_column`. Raises InvalidSubmission for a submission that cannot be
    scored and KeyError for an unknown metric name.
    """
    if metric not in METRICS:
        raise KeyError(f"unknown metric {metric!r} (known: {', '.join(sorted(METRICS))})")
    targets: List[str] = list(target_columns)
    pred = align(submission, answers, id_column, targets)
    return score_aligned(metric, pred, answers[targets].reset_index(drop=True), targets)


def _integers(col: pd.Series) -> bool:
    return pd.api.types.is_integer_dtype(col) and not pd.api.types.is_bool_dtype(col)


def score_aligned(metric: str, pred: pd.DataFrame, truth: pd.DataFrame, target_columns: Sequence[str]) -> float:
    """`score` once the rows are aligned: `pred` and `truth` hold the target columns, row i of each for the
    same id, no prediction empty. The grader calls it on its one parse of the submission."""
    if metric not in METRICS:
        raise KeyError(f"unknown metric {metric!r} (known: {', '.join(sorted(METRICS))})")
    targets: List[str] = list(target_columns)
    if metric == "accuracy" and all(_integers(truth[c]) and _integers(pred[c]) for c in targets):
        # integers on both sides: equal as text exactly when equal as numbers, and accuracy counts only
        # equalities, so the labels are compared as they are (no text key of every cell)
        y_true, y_pred = truth[targets].to_numpy(), pred[targets].to_numpy()
    elif metric in LABEL_METRICS:
        y_true, y_pred = _label_codes([_label_key(truth[c]) for c in targets],
                                      [_label_key(pred[c]) for c in targets])
    else:
        try:
            y_pred = pred.apply(pd.to_numeric, errors="raise").to_numpy(float)
        except (ValueError, TypeError):
            raise InvalidSubmission(f"submission has non-numeric predictions in {targets}") from None
        y_true = truth.to_numpy(float)
        if not np.all(np.isfinite(y_pred)):
            raise InvalidSubmission("submission has infinite or NaN predictions")
        if metric == "rmsle" and (y_pred < 0).any():
            raise InvalidSubmission("submission has negative predictions (RMSLE needs values >= 0)")
        if metric == "rmse_log" and (y_pred <= 0).any():
            raise InvalidSubmission("submission has predictions <= 0 (RMSE of logs needs values > 0)")
        if metric in ("log_loss",) and ((y_pred < 0) | (y_pred > 1)).any():
            raise InvalidSubmission("submission has probabilities outside [0, 1]")
    if len(targets) == 1:
        y_true, y_pred = y_true[:, 0], y_pred[:, 0]
    try:
        return METRICS[metric](y_true, y_pred)
    except ValueError as err:
        raise InvalidSubmission(f"cannot compute {metric}: {err}") from None
