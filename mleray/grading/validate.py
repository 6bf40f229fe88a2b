"""Checks a submission CSV against the competition's sample submission, with one clear reason.

`validate_submission` never raises on bad input: every problem (missing file, empty file, not a CSV,
wrong columns, missing / extra / duplicate ids, wrong row count, NaN or inf values, text where the
sample has numbers) comes back as `(False, reason)`, the reason naming what is wrong and showing a few
offending values. `(True, "")` means the file is well-formed for scoring.

Rules worth knowing:
- ids are compared as text, exactly as written (so `007` and `7` differ), with surrounding spaces
  ignored; the expected ids are the answers' ids when answers are given, else the sample's.
- a column may hold empty cells (NaN) only where the sample submission itself has empty cells
  (e.g. run-length masks that are empty for some images).
- a column where the sample has numbers must hold numbers (no text, no inf).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import numpy as np
import pandas as pd

from mleray.errors import one_line

SHOW = 5  # how many offending values a reason shows


def _few(values: Sequence, total: Optional[int] = None) -> str:
    values = list(values)
    total = len(values) if total is None else total
    shown = ", ".join(repr(v) if isinstance(v, str) else str(v) for v in values[:SHOW])
    more = f", ... ({total} in all)" if total > SHOW else ""
    return f"{shown}{more}"


def _read(path: Path, id_column: Optional[str]) -> pd.DataFrame:
    dtype = {id_column: str} if id_column else None
    return pd.read_csv(path, dtype=dtype, float_precision="round_trip", keep_default_na=True)


def _ids(frame: pd.DataFrame, column: str) -> pd.Series:
    """Ids as text. Answers read with type inference may hold integral floats (892.0): written as 892."""
    col = frame[column]
    if pd.api.types.is_float_dtype(col) and col.notna().all() and np.isfinite(col).all() and (col == col.round()).all():
        col = col.astype("int64")
    return col.astype(str).str.strip()


def validate_submission(submission_path: Path, sample_path: Path, id_column: str = "",
                        answers: Optional[pd.DataFrame] = None) -> Tuple[bool, str]:
    """(True, "") when `submission_path` is a well-formed submission, else (False, reason).

    `id_column` empty means the sample's first column. `answers`, when given, supplies the expected ids
    (and must then hold `id_column`); otherwise the sample's ids are expected.
    """
    try:
        return _validate(Path(submission_path), Path(sample_path), id_column, answers)
    except Exception as err:  # never raise on bad input
        return False, f"submission could not be checked: {type(err).__name__}: {one_line(err)}"


def _validate(sub_path: Path, sample_path: Path, id_column: str,
              answers: Optional[pd.DataFrame]) -> Tuple[bool, str]:
    # -- the file ------------------------------------------------------------------------------
    if not sub_path.exists():
        return False, f"submission file not found: {sub_path}"
    if not sub_path.is_file():
        return False, f"submission path is not a file: {sub_path}"
    if sub_path.suffix.lower() != ".csv":
        return False, f"submission must be a .csv file, got {sub_path.name}"
    if sub_path.stat().st_size == 0:
        return False, f"submission file is empty (0 bytes): {sub_path}"

    # -- the sample (not the agent's fault if unreadable, but still never raise) --------------
    if not sample_path.is_file():
        return False, f"cannot check the submission: sample submission not found at {sample_path}"
    try:
        sample_head = pd.read_csv(sample_path, nrows=0)
    except Exception as err:
        return False, f"cannot check the submission: sample submission {sample_path} unreadable ({one_line(err)})"
    sample_cols = [str(c) for c in sample_head.columns]
    id_column = id_column or (sample_cols[0] if sample_cols else "")
    if id_column not in sample_cols:
        return False, (f"cannot check the submission: id column {id_column!r} is not in the sample submission "
                       f"({', '.join(sample_cols)})")
    sample = _read(sample_path, id_column)

    # -- parse ---------------------------------------------------------------------------------
    try:
        sub = _read(sub_path, id_column)
    except UnicodeDecodeError as err:
        return False, f"submission is not a text CSV file (cannot decode: {one_line(err)})"
    except pd.errors.EmptyDataError:
        return False, "submission file has no content (no header, no rows)"
    except Exception as err:
        return False, f"submission is not parseable as CSV: {one_line(err)}"
    sub.columns = [str(c) for c in sub.columns]

    # -- columns -------------------------------------------------------------------------------
    missing_cols = [c for c in sample_cols if c not in sub.columns]
    extra_cols = [c for c in sub.columns if c not in sample_cols]
    dup_cols = sorted({c for c in sub.columns if list(sub.columns).count(c) > 1})
    if missing_cols or extra_cols or dup_cols:
        parts = []
        if missing_cols:
            parts.append(f"missing column(s) {_few(missing_cols)}")
        if extra_cols:
            parts.append(f"unexpected column(s) {_few(extra_cols)}")
        if dup_cols:
            parts.append(f"duplicated column(s) {_few(dup_cols)}")
        return False, f"wrong columns: {'; '.join(parts)} (expected: {', '.join(sample_cols)})"
    if len(sub) == 0:
        return False, f"submission has a header but no rows (expected {len(sample)} rows)"

    # -- ids -----------------------------------------------------------------------------------
    if answers is not None and id_column in answers.columns:
        expected_ids = _ids(answers, id_column)
    else:
        expected_ids = _ids(sample, id_column)
    sub_ids = _ids(sub, id_column)
    if sub[id_column].isna().any():
        rows = list(np.flatnonzero(sub[id_column].isna().to_numpy()) + 2)
        return False, f"empty id ({id_column!r}) on line(s) {_few(rows)}"
    dups = sub_ids[sub_ids.duplicated(keep="first")].unique().tolist()
    if dups:
        return False, f"duplicate id(s) in {id_column!r}: {_few(dups)}"
    expected_list, sub_list = expected_ids.tolist(), sub_ids.tolist()
    expected_set, sub_set = set(expected_list), set(sub_list)
    missing_ids = extra_ids = []
    if expected_set != sub_set:
        missing_ids = [i for i in expected_list if i not in sub_set]
        extra_ids = [i for i in sub_list if i not in expected_set]
    if missing_ids or extra_ids:
        parts = []
        if missing_ids:
            parts.append(f"{len(missing_ids)} missing id(s) in {id_column!r}: {_few(missing_ids)}")
        if extra_ids:
            parts.append(f"{len(extra_ids)} unexpected id(s) in {id_column!r}: {_few(extra_ids)}")
        return False, "; ".join(parts)
    if len(sub) != len(expected_ids):
        return False, f"wrong number of rows: {len(sub)} (expected {len(expected_ids)})"

    # -- values --------------------------------------------------------------------------------
    for col in sample_cols:
        if col == id_column:
            continue
        values = sub[col]
        sample_values = sample[col]
        numeric_expected = (pd.api.types.is_numeric_dtype(sample_values)
                            and not pd.api.types.is_bool_dtype(sample_values))
        if numeric_expected and not pd.api.types.is_numeric_dtype(values):
            as_num = pd.to_numeric(values, errors="coerce")
            bad = values[as_num.isna() & values.notna()]
            if len(bad):
                return False, (f"column {col!r} must be numeric (as in the sample submission) but has "
                               f"non-numeric value(s) {_few(bad.astype(str).unique().tolist(), int(bad.shape[0]))}")
            values = as_num
        nan = values.isna()
        if nan.any() and not sample_values.isna().any():
            ids = sub_ids[nan].tolist()
            return False, f"column {col!r} has {int(nan.sum())} empty/NaN value(s), for id(s) {_few(ids)}"
        if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
            inf = np.isinf(values.to_numpy(dtype=float, na_value=np.nan))
            if inf.any():
                ids = sub_ids[inf].tolist()
                return False, f"column {col!r} has {int(inf.sum())} infinite value(s), for id(s) {_few(ids)}"
    return True, ""


def check_score(score) -> Tuple[bool, str]:
    """A metric's result must be a finite real number."""
    if score is None or isinstance(score, bool):
        return False, f"the metric returned {score!r}, not a number"
    try:
        value = float(score)
    except (TypeError, ValueError):
        return False, f"the metric returned {score!r}, not a number"
    if math.isnan(value) or math.isinf(value):
        return False, f"the metric returned {value} for this submission"
    return True, ""


__all__: List[str] = ["validate_submission", "check_score"]
