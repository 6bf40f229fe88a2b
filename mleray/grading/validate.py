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

Reasons quote only the submission itself, each value cut to a short one-line excerpt
(`mleray.trial.agent_files.excerpt`), so a hostile file cannot grow a record. `precheck` rejects what
no parse should be spent on (an over-long header or line, a header that is not UTF-8, far more columns
than the sample's) in one bounded pass, before pandas reads the file.
"""

from __future__ import annotations

import collections
import csv
import functools
import math
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import numpy as np
import pandas as pd

from mleray.errors import one_line
from mleray.trial.agent_files import excerpt

SHOW = 5  # how many offending values a reason shows
VALUE = 40  # the most characters of one offending value a reason shows
REASON = 500  # the most characters of a whole reason

HEADER_BYTES = 64 * 1024  # a header line longer than this (or 8x the sample's) is refused unparsed
LINE_BYTES = 16 * 2**20  # a line longer than this (or 4x the sample's longest) is refused unparsed
COLUMNS = 10_000  # without a sample: more header fields than this are refused unparsed
_SCAN = 8 * 2**20


def _few(values: Sequence, total: Optional[int] = None) -> str:
    values = list(values)
    total = len(values) if total is None else total
    shown = ", ".join(repr(excerpt(v, VALUE)) if isinstance(v, str) else excerpt(v, VALUE) for v in values[:SHOW])
    more = f", ... ({total} in all)" if total > SHOW else ""
    return f"{shown}{more}"


def err_text(err: BaseException) -> str:
    """An exception raised on a submission as a short cleaned line (parser and metric messages may
    quote the file's lines or values)."""
    return excerpt(one_line(err, limit=1000))


def bounded(reason: str, limit: int = REASON) -> str:
    """A whole reason, one line, at most `limit` characters."""
    return excerpt(reason or "", limit)


# ------------------------------------------------------------------------------ pre-checks


@functools.lru_cache(maxsize=64)
def _sample_shape(path: str, mtime: float) -> Tuple[int, int, int]:
    """(header line bytes, header fields, longest line bytes) of a sample submission."""
    with open(path, "rb") as f:
        header = f.readline()
        longest = len(header)
        for line in f:
            longest = max(longest, len(line))
    return len(header), _fields(header.decode("utf-8", "replace")), longest


def _fields(line: str) -> int:
    try:
        return len(next(csv.reader([line.rstrip("\r\n")]), []))
    except csv.Error:
        return line.count(",") + 1


def _long_line(path: Path, limit: int) -> Optional[Tuple[int, int]]:
    """(line number, length so far) of the first line over `limit` bytes, or None; one streamed pass."""
    line_no, start, pos = 1, 0, 0
    with open(path, "rb") as f:
        while True:
            buf = f.read(_SCAN)
            if not buf:
                return None
            ends = np.flatnonzero(np.frombuffer(buf, np.uint8) == 10) + pos
            if len(ends):
                lengths = np.diff(ends, prepend=start - 1) - 1
                over = np.flatnonzero(lengths > limit)
                if len(over):
                    return line_no + int(over[0]), int(lengths[over[0]])
                line_no, start = line_no + len(ends), int(ends[-1]) + 1
            pos += len(buf)
            if pos - start > limit:
                return line_no, pos - start


def precheck(submission_path: Path, sample_path: Optional[Path] = None) -> Optional[str]:
    """Why the file must be refused before any parse (an over-long header or line, a header that is not
    UTF-8 text, far more columns than the sample has), or None. Reads one bounded header and streams
    the rest once, so a hostile file costs well under a second and a few MB. Only files no grader
    would accept are refused: a valid submission has the sample's columns and lines of its kind."""
    path = Path(submission_path)
    sample = None
    if sample_path is not None and Path(sample_path).is_file():
        try:
            sample = _sample_shape(str(sample_path), Path(sample_path).stat().st_mtime)
        except OSError:
            sample = None
    header_cap = max(HEADER_BYTES, 8 * sample[0]) if sample else HEADER_BYTES
    line_cap = max(LINE_BYTES, 4 * sample[2]) if sample else LINE_BYTES
    column_cap = 4 * sample[1] + 100 if sample else COLUMNS
    with open(path, "rb") as f:
        head = f.read(header_cap + 1)
    end = head.find(b"\n")
    if end < 0 and len(head) > header_cap:
        known = f" (the sample submission's is {sample[0]} bytes)" if sample else ""
        return f"the header line is over {header_cap} bytes{known}; starts with {excerpt(head[:60], 60)!r}"
    header = head if end < 0 else head[:end]
    try:
        text = header.decode("utf-8")
    except UnicodeDecodeError as err:
        return (f"submission is not a text CSV file: the header is not UTF-8 (byte 0x{header[err.start]:02x} "
                f"at offset {err.start})")
    columns = _fields(text)
    if columns > column_cap:
        known = f"the sample submission has {sample[1]}" if sample else f"at most {column_cap} are read"
        return f"the header has {columns} columns; {known}"
    long = _long_line(path, line_cap)
    if long is not None:
        return f"line {long[0]} is over {line_cap} bytes ({long[1]} bytes or more); no submission line is that long"
    return None


def _read(path: Path, id_column: Optional[str], usecols: Optional[List[str]] = None) -> pd.DataFrame:
    dtype = {id_column: str} if id_column and (usecols is None or id_column in usecols) else None
    return pd.read_csv(path, dtype=dtype, float_precision="round_trip", keep_default_na=True, usecols=usecols)


def _ids(frame: pd.DataFrame, column: str) -> pd.Series:
    """Ids as text. Answers read with type inference may hold integral floats (892.0): written as 892."""
    col = frame[column]
    if pd.api.types.is_float_dtype(col) and col.notna().all() and np.isfinite(col).all() and (col == col.round()).all():
        col = col.astype("int64")
    return col.astype(str).str.strip()


def _not_in(values: pd.Series, others: pd.Series) -> np.ndarray:
    """Which `values` are not among `others`, as a mask, without turning every id into a Python string
    (pandas 3 holds text in Arrow buffers; `tolist` or sets of all ids cost ~50 bytes an id, and pandas'
    own `isin` on text is slow): Arrow's is_in, else a set."""
    try:
        import pyarrow as pa
        import pyarrow.compute as pc

        found = pc.is_in(pa.array(values, type=pa.string()), value_set=pa.array(others, type=pa.string()))
        return ~np.asarray(found.to_numpy(zero_copy_only=False), dtype=bool)
    except ImportError:
        pool = set(others.tolist())
        return np.fromiter((v not in pool for v in values.tolist()), dtype=bool, count=len(values))


def _duplicated(ids: pd.Series) -> list:
    """The repeated ids, in the order they repeat (pandas' duplicated(keep="first"), then unique). Found
    by sorting in Arrow (+8 MB for 1.5M ids), not by hashing: pandas' duplicated on text made a Python
    string of every id (+185 MB) and Arrow's hash tables cost as much; only the rows holding a repeated
    id are then looked at by pandas, for the order."""
    try:
        import pyarrow as pa
        import pyarrow.compute as pc

        arr = pa.array(ids, type=pa.string())
        if isinstance(arr, pa.ChunkedArray):
            arr = arr.combine_chunks()
        if len(arr) < 2:
            return []
        ordered = pc.take(arr, pc.sort_indices(arr))
        same = pc.equal(ordered.slice(1), ordered.slice(0, len(ordered) - 1))
        if not pc.any(same).as_py():
            return []
        repeated = pc.unique(pc.filter(ordered.slice(1), same))
        ids = ids[np.asarray(pc.is_in(arr, value_set=repeated).to_numpy(zero_copy_only=False), dtype=bool)]
    except ImportError:
        pass
    return ids[ids.duplicated(keep="first")].unique().tolist()


def validate_submission(submission_path: Path, sample_path: Path, id_column: str = "",
                        answers: Optional[pd.DataFrame] = None) -> Tuple[bool, str]:
    """(True, "") when `submission_path` is a well-formed submission, else (False, reason).

    `id_column` empty means the sample's first column. `answers`, when given, supplies the expected ids
    (and must then hold `id_column`); otherwise the sample's ids are expected.
    """
    try:
        ok, why = _validate(Path(submission_path), Path(sample_path), id_column, answers)
    except Exception as err:  # never raise on bad input
        ok, why = False, f"submission could not be checked: {type(err).__name__}: {err_text(err)}"
    return ok, bounded(why)


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
        return False, f"cannot check the submission: sample submission {sample_path} unreadable ({err_text(err)})"
    sample_cols = [str(c) for c in sample_head.columns]
    id_column = id_column or (sample_cols[0] if sample_cols else "")
    if id_column not in sample_cols:
        return False, (f"cannot check the submission: id column {id_column!r} is not in the sample submission "
                       f"({excerpt(', '.join(sample_cols))})")
    has_answer_ids = answers is not None and id_column in answers.columns
    others = [c for c in sample_cols if c != id_column]
    # the expected ids come from the answers when given: the sample's own ids are not held as well
    sample = _read(sample_path, id_column, usecols=others if has_answer_ids and others else None)

    # -- parse ---------------------------------------------------------------------------------
    try:
        sub = _read(sub_path, id_column)
    except UnicodeDecodeError as err:
        return False, f"submission is not a text CSV file (cannot decode: {err_text(err)})"
    except pd.errors.EmptyDataError:
        return False, "submission file has no content (no header, no rows)"
    except Exception as err:
        return False, f"submission is not parseable as CSV: {err_text(err)}"
    sub.columns = [str(c) for c in sub.columns]

    # -- columns -------------------------------------------------------------------------------
    sub_set, sample_set = set(sub.columns), set(sample_cols)
    missing_cols = [c for c in sample_cols if c not in sub_set]
    extra_cols = [c for c in sub.columns if c not in sample_set]
    counts = collections.Counter(sub.columns)
    dup_cols = sorted(c for c, n in counts.items() if n > 1)
    if missing_cols or extra_cols or dup_cols:
        parts = []
        if missing_cols:
            parts.append(f"missing column(s) {_few(missing_cols)}")
        if extra_cols:
            parts.append(f"unexpected column(s) {_few(extra_cols)}")
        if dup_cols:
            parts.append(f"duplicated column(s) {_few(dup_cols)}")
        return False, f"wrong columns: {'; '.join(parts)} (expected: {excerpt(', '.join(sample_cols))})"
    if len(sub) == 0:
        return False, f"submission has a header but no rows (expected {len(sample)} rows)"

    # -- ids -----------------------------------------------------------------------------------
    if has_answer_ids:
        expected_ids = _ids(answers, id_column)
    else:
        expected_ids = _ids(sample, id_column)
    sub_ids = _ids(sub, id_column)
    if sub[id_column].isna().any():
        rows = list(np.flatnonzero(sub[id_column].isna().to_numpy()) + 2)
        return False, f"empty id ({id_column!r}) on line(s) {_few(rows)}"
    dups = _duplicated(sub_ids)
    if dups:
        return False, f"duplicate id(s) in {id_column!r}: {_few(dups)}"
    missing_ids = expected_ids[_not_in(expected_ids, sub_ids)].tolist()
    extra_ids = sub_ids[_not_in(sub_ids, expected_ids)].tolist()
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
