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

The submission is parsed once (`parse`): a plain file (no quote character, rows of the header's width) by
one Arrow read, its ids as Arrow text (no Python string per id) and its numeric columns as pandas would read
them, any other column by pandas; any other file by pandas as a whole. Ids in the answers' order are matched
by one compare, canonical integer ids as int64 by numpy, other text in Arrow; `check` hands the parse and the
row of each expected id to the scorer.

Reasons quote only the submission itself, each value cut to a short one-line excerpt
(`mleray.trial.agent_files.excerpt`), so a hostile file cannot grow a record. `precheck` rejects what
no parse should be spent on (an over-long header or line, a header that is not UTF-8, far more columns
than the sample's) in one bounded pass, before pandas reads the file.
"""

from __future__ import annotations

import collections
import csv
import dataclasses
import functools
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

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
    """(header line bytes, header fields, the line cap for its submissions: LINE_BYTES or 4x its longest line)
    of a sample submission; its lines are measured only when one may be over LINE_BYTES / 4."""
    with open(path, "rb") as f:
        header = f.readline()
    if _no_line_over(Path(path), LINE_BYTES // 4):
        return len(header), _fields(header.decode("utf-8", "replace")), LINE_BYTES
    longest, start, pos = 0, 0, 0
    with open(path, "rb") as f:
        while True:
            buf = f.read(_SCAN)
            if not buf:
                break
            ends = np.flatnonzero(np.frombuffer(buf, np.uint8) == 10) + pos
            if len(ends):
                longest = max(longest, int((np.diff(ends, prepend=start - 1)).max()))  # with its newline
                start = int(ends[-1]) + 1
            pos += len(buf)
    longest = max(longest, pos - start, len(header))
    return len(header), _fields(header.decode("utf-8", "replace")), max(LINE_BYTES, 4 * longest)


def _no_line_over(path: Path, limit: int) -> bool:
    """True when no line of the file can be over `limit` bytes: every aligned block of limit // 2 bytes holds
    a newline (a longer line would hold a whole block). A memchr per block, so a valid file costs a few ms;
    False means "measure the lines" (`_long_line`)."""
    block = max(1, limit // 2)
    with open(path, "rb") as f:
        while True:
            buf = f.read(block)
            if len(buf) < block:
                return True  # the last, partial block: a line over the limit would have filled a whole one
            if b"\n" not in buf:
                return False


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
    line_cap = sample[2] if sample else LINE_BYTES
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
    long = None if _no_line_over(path, line_cap) else _long_line(path, line_cap)
    if long is not None:
        return f"line {long[0]} is over {line_cap} bytes ({long[1]} bytes or more); no submission line is that long"
    return None


# ------------------------------------------------------------------------------- parsing

def pandas_at_least(major: int, minor: int) -> bool:
    try:
        return tuple(int(part) for part in pd.__version__.split(".")[:2]) >= (major, minor)
    except ValueError:
        return True


# MLE-bench reads CSVs with float_precision="round_trip". From pandas 3.1 every float_precision uses the same
# (correctly rounded) converter and the argument is deprecated (Pandas4Warning), so it is passed only to older
# pandas, where the default converter may differ from Python's float() in the last bit
# (tests/unit/grading/test_csv_floats.py holds the proof on values where that matters).
CSV_FLOATS: Dict[str, Any] = {} if pandas_at_least(3, 1) else {"float_precision": "round_trip"}

# pandas' default NA strings (what read_csv turns into NaN with keep_default_na=True)
try:
    from pandas._libs.parsers import STR_NA_VALUES as _NA_STRINGS
except ImportError:  # pragma: no cover - a pandas that moved them: the fast id path is then not taken
    _NA_STRINGS = None


def _read(path: Path, id_column: Optional[str], usecols: Optional[List[str]] = None) -> pd.DataFrame:
    dtype = {id_column: str} if id_column and (usecols is None or id_column in usecols) else None
    return pd.read_csv(path, dtype=dtype, keep_default_na=True, usecols=usecols, **CSV_FLOATS)


def _arrow(values: Any) -> pa.Array:
    """Text values as one Arrow string array (NaN as null), zero-copy for pandas 3's Arrow-backed text."""
    arr = values if isinstance(values, (pa.Array, pa.ChunkedArray)) else pa.array(values, type=pa.string(),
                                                                                   from_pandas=True)
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    return arr if arr.type == pa.string() else arr.cast(pa.string())


def _ids(frame: pd.DataFrame, column: str) -> pd.Series:
    """Ids as text. Answers read with type inference may hold integral floats (892.0): written as 892."""
    col = frame[column]
    if pd.api.types.is_float_dtype(col) and col.notna().all() and np.isfinite(col).all() and (col == col.round()).all():
        col = col.astype("int64")
    return col.astype(str).str.strip()


def _expected_ids(frame: pd.DataFrame, column: str) -> Tuple[Optional[pa.Array], Optional[np.ndarray]]:
    """`_ids` of the expected frame as Arrow text, and their int64 keys (see `_int_keys`). Integer ids (and
    integral floats, as `_ids` writes them) become text in Arrow, not through a Python string each."""
    col = frame[column]
    if pd.api.types.is_float_dtype(col) and col.notna().all() and np.isfinite(col).all() and (col == col.round()).all():
        col = col.astype("int64")
    if pd.api.types.is_integer_dtype(col) and not pd.api.types.is_bool_dtype(col) and col.notna().all():
        keys = np.asarray(col.to_numpy(), dtype=np.int64)
        if (keys >= 0).all() and (keys < 10**18).all():
            return None, keys  # their text (str(int), as astype(str) writes it) only if a reason needs it
        ids = pc.cast(pa.array(keys), pa.string())
        return ids, _int_keys(ids)
    ids = _arrow(_ids(frame, column))
    return ids, _int_keys(ids)


def _normalised(raw: pa.Array) -> Tuple[pa.Array, Optional[np.ndarray]]:
    """(ids without surrounding spaces, their int64 keys or None): pandas' str.strip on Arrow text is this trim;
    canonical integer ids, the common case, have no spaces and are not copied."""
    keys = _int_keys(raw)
    return (raw if keys is not None else pc.utf8_trim_whitespace(raw)), keys


def _has_quote(path: Path) -> bool:
    """Whether the file holds a double quote anywhere (read a MiB at a time)."""
    with open(path, "rb") as f:
        while True:
            chunk = f.read(1 << 20)
            if not chunk:
                return False
            if b'"' in chunk:
                return True


def _not_in(values: pa.Array, others: pa.Array) -> np.ndarray:
    """Which `values` are not among `others`, as a mask, in Arrow (no Python string per id)."""
    found = pc.is_in(values, value_set=others)
    return ~np.asarray(found.to_numpy(zero_copy_only=False), dtype=bool)


def _duplicated(ids: pa.Array) -> list:
    """The repeated ids, in the order they repeat (pandas' duplicated(keep="first"), then unique). Found
    by sorting in Arrow (+8 MB for 1.5M ids), not by hashing: pandas' duplicated on text made a Python
    string of every id (+185 MB) and Arrow's hash tables cost as much; only the rows holding a repeated
    id are then looked at by pandas, for the order."""
    if len(ids) < 2:
        return []
    ordered = pc.take(ids, pc.sort_indices(ids))
    same = pc.equal(ordered.slice(1), ordered.slice(0, len(ordered) - 1))
    if not pc.any(same).as_py():
        return []
    repeated = pc.unique(pc.filter(ordered.slice(1), same))
    held = pd.Series(pc.filter(ids, pc.is_in(ids, value_set=repeated)).to_pylist(), dtype=object)
    return held[held.duplicated(keep="first")].unique().tolist()


def _first(ids: pa.Array, mask: np.ndarray, count: int = SHOW) -> list:
    """The first `count` ids where `mask` holds, as Python values (a reason shows no more)."""
    return pc.filter(ids, pa.array(mask)).slice(0, count).to_pylist()


@dataclass(frozen=True, eq=False)
class Expected:
    """What a submission is checked against, read once: the sample's columns and, per value column,
    whether it is numeric and may hold empty cells, and the expected ids as normalised text (Arrow).
    Held across the snapshots of a trial by the grader's per-process cache (`grade.reference`). With the
    answers' ids, the sample's rows are read only when a submission needs them (a column that is not
    numeric or holds empty cells, no rows at all): a valid numeric submission never pays for them."""

    id_column: str
    columns: Tuple[str, ...]
    id_text: Optional[pa.Array]  # None when `keys` holds them: their text is made only if a reason needs it
    keys: Optional[np.ndarray] = None  # the ids as int64 when every one is a canonical integer, else None
    unique: bool = True  # no expected id repeats
    sample_path: Optional[Path] = None  # where the summary is read from, when it was not read yet
    sample_summary: Optional[Tuple[Dict[str, bool], Dict[str, bool], int]] = None

    @functools.cached_property
    def ids(self) -> pa.Array:
        """The expected ids as Arrow text (str(int) of each integer key)."""
        return self.id_text if self.id_text is not None else pc.cast(pa.array(self.keys), pa.string())

    @functools.cached_property
    def key_order(self) -> Tuple[np.ndarray, np.ndarray]:
        """(argsort of the integer keys, the keys sorted): made once, when a submission is not in their order."""
        assert self.keys is not None
        order = np.argsort(self.keys)
        return order, self.keys[order]

    @functools.cached_property
    def text_order(self) -> Tuple[np.ndarray, pa.Array]:
        """(sort order of the text ids, the ids sorted): made once, when a submission is not in their order."""
        order = pc.sort_indices(self.ids)
        return np.asarray(order.to_numpy(zero_copy_only=False), dtype=np.int64), pc.take(self.ids, order)

    @functools.cached_property
    def summary(self) -> Tuple[Dict[str, bool], Dict[str, bool], int]:
        """(numeric, may_be_empty, rows) of the sample's value columns."""
        if self.sample_summary is not None:
            return self.sample_summary
        others = [c for c in self.columns if c != self.id_column]
        assert self.sample_path is not None
        return _summary(_read(self.sample_path, self.id_column, usecols=others or None), others)

    @property
    def numeric(self) -> Dict[str, bool]:
        return self.summary[0]

    @property
    def may_be_empty(self) -> Dict[str, bool]:
        return self.summary[1]

    @property
    def rows(self) -> int:
        return self.summary[2]

    @property
    def rows_expected(self) -> int:
        return len(self.keys) if self.keys is not None else len(self.ids)


def _summary(sample: pd.DataFrame, others: List[str]) -> Tuple[Dict[str, bool], Dict[str, bool], int]:
    sample.columns = [str(c) for c in sample.columns]
    numeric = {c: bool(pd.api.types.is_numeric_dtype(sample[c]) and not pd.api.types.is_bool_dtype(sample[c]))
               for c in others}
    return numeric, {c: bool(sample[c].isna().any()) for c in others}, len(sample)


_POWERS = np.array([0] + [10**k for k in range(1, 19)], dtype=np.int64)  # |key| >= 10**k: k + 1 digits


def _int_keys(ids: pa.Array) -> Optional[np.ndarray]:
    """The ids as int64 when each is written exactly as its integer is (no sign but a minus, no space, no
    leading zero), so text equality is integer equality and numpy can sort and match them; else None. Any
    other way to write an integer that Arrow's cast accepts is longer than the canonical one, so the total
    length of the text equals the canonical total exactly when every id is canonical."""
    if ids.null_count or len(ids) == 0 or str(ids[0].as_py())[:1] not in set("-0123456789"):
        return None
    try:
        ints = pc.cast(ids, pa.int64())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    keys = np.asarray(ints.to_numpy(zero_copy_only=False), dtype=np.int64)
    if keys.min() == np.iinfo(np.int64).min:
        return None
    negative = int((keys < 0).sum())
    magnitude = np.abs(keys) if negative else keys
    digits = np.searchsorted(_POWERS, magnitude, side="right")  # digits of each |key|, exactly (0 has 1)
    canonical = int(digits.sum()) + negative
    return keys if canonical == int(pc.sum(pc.binary_length(ids)).as_py()) else None


def match(sub_ids: pa.Array, exp: "Expected",
          keys: Optional[np.ndarray] = None) -> Tuple[np.ndarray, np.ndarray, np.ndarray, Optional[np.ndarray]]:
    """(repeated, missing, extra, positions) for stripped submission ids against the expected ones: masks of
    the submission's rows holding a repeated id, of the expected ids absent from the submission and of the
    submission's ids not expected, and, when all three are empty, the submission's row for each expected
    id. The same order as the answers (the usual case) is one compare; integer ids are sorted and matched
    by numpy; other text in Arrow."""
    n, m = len(sub_ids), exp.rows_expected
    none_n, none_m = np.zeros(n, dtype=bool), np.zeros(m, dtype=bool)
    if exp.keys is not None and keys is not None:
        same_order = n == m and bool(np.array_equal(keys, exp.keys))
    else:
        keys = None  # text on one side: matched as text
        same_order = exp.keys is None and n == m and bool(pc.all(pc.equal(sub_ids, exp.ids)).as_py())
    if same_order and exp.unique:  # the answers' order: the usual case
        return none_n, none_m, none_n, np.arange(n, dtype=np.int64)
    if keys is not None and exp.keys is not None:
        order = np.argsort(keys)
        ordered = keys[order]
        same = ordered[1:] == ordered[:-1]
        if same.any():
            repeated = np.isin(keys, ordered[1:][same])
            return repeated, none_m, none_n, None
        exp_order, exp_ordered = exp.key_order
        if n == m and np.array_equal(ordered, exp_ordered):  # a permutation of the expected ids
            pos = np.empty(m, dtype=np.int64)
            pos[exp_order] = order
            return none_n, none_m, none_n, pos
        return none_n, ~_found(ordered, exp.keys), ~_found(exp_ordered, keys), None
    sub_order = pc.sort_indices(sub_ids)
    ordered_ids = pc.take(sub_ids, sub_order)
    if n >= 2:
        same_ids = pc.equal(ordered_ids.slice(1), ordered_ids.slice(0, n - 1))
        if pc.any(same_ids).as_py():
            repeated_ids = pc.unique(pc.filter(ordered_ids.slice(1), same_ids))
            return np.asarray(pc.is_in(sub_ids, value_set=repeated_ids).to_numpy(zero_copy_only=False), dtype=bool), \
                none_m, none_n, None
    exp_order_ids, exp_ordered_ids = exp.text_order
    if n == m and bool(pc.all(pc.equal(ordered_ids, exp_ordered_ids)).as_py()):  # a permutation: no hashing
        pos = np.empty(m, dtype=np.int64)
        pos[exp_order_ids] = np.asarray(sub_order.to_numpy(zero_copy_only=False), dtype=np.int64)
        return none_n, none_m, none_n, pos
    return none_n, _not_in(exp.ids, sub_ids), _not_in(sub_ids, exp.ids), None


def _found(ordered: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Which `values` are in the sorted array `ordered`."""
    if len(ordered) == 0:
        return np.zeros(len(values), dtype=bool)
    at = np.searchsorted(ordered, values).clip(0, len(ordered) - 1)
    return ordered[at] == values


def expected(sample_path: Path, id_column: str = "", answers: Optional[pd.DataFrame] = None) -> Union[Expected, str]:
    """The Expected of a sample (and answers, whose ids then are the expected ones), or the reason it cannot be
    read (a host-side problem, never the agent's)."""
    sample_path = Path(sample_path)
    if not sample_path.is_file():
        return f"cannot check the submission: sample submission not found at {sample_path}"
    try:
        sample_head = pd.read_csv(sample_path, nrows=0)
    except Exception as err:
        return f"cannot check the submission: sample submission {sample_path} unreadable ({err_text(err)})"
    columns = [str(c) for c in sample_head.columns]
    id_column = id_column or (columns[0] if columns else "")
    if id_column not in columns:
        return (f"cannot check the submission: id column {id_column!r} is not in the sample submission "
                f"({excerpt(', '.join(columns))})")
    has_answer_ids = answers is not None and id_column in answers.columns
    others = [c for c in columns if c != id_column]
    summary = None
    if answers is not None and has_answer_ids:  # the sample's rows are read when a submission needs them
        ids, keys = _expected_ids(answers, id_column)
    else:
        sample = _read(sample_path, id_column)
        summary = _summary(sample, others)
        ids, keys = _expected_ids(sample, id_column)
        del sample
    if keys is not None:
        ordered = np.sort(keys)  # numpy's unique hashes: 3.5 s for 1M ids where a sort takes 0.1 s
        unique = not bool((ordered[1:] == ordered[:-1]).any())
    else:
        unique = not _duplicated(ids) if ids is not None else True
    return Expected(id_column, tuple(columns), ids, keys, unique, sample_path, summary)


@dataclass(frozen=True, eq=False)
class Parsed:
    """A submission parsed once: its columns (as pandas names them), the value columns (pandas' parse), and
    its ids as written (Arrow text, null where empty) and normalised (stripped)."""

    columns: List[str]
    values: pd.DataFrame
    raw_ids: Optional[pa.Array]
    ids: Optional[pa.Array]
    keys: Optional[np.ndarray] = None  # the ids as int64 when each is a canonical integer (`_int_keys`)
    positions: Optional[np.ndarray] = None  # once checked: the submission's row for each expected id


def _fast_parse(path: Path, id_column: str) -> Optional[Parsed]:
    """One Arrow parse, when the file is plain enough that Arrow and pandas read it alike: no quote character,
    every row exactly the header's width (Arrow refuses any other), the header's names as pandas gives them.
    The ids are Arrow text (no Python string per id); a value column Arrow reads as int64 or float64 is taken
    as is (pandas' converter is correctly rounded from 3.1, as Arrow's is, and both read pandas' NA strings as
    missing); any other column (text, booleans, dates, padded numbers) is read by pandas, as before. None
    means "parse it as a whole with pandas". One thread: Arrow's threaded reader was slower on a loaded
    2-core node (1.0-2.0 s against 0.6-0.7 s at 1M rows, bench/grading.py) and grading shares the trial's CPUs.
    """
    if _NA_STRINGS is None or not pandas_at_least(3, 1):
        return None
    try:
        if _has_quote(path):
            return None
        header = pd.read_csv(path, nrows=0)
        columns = [str(c) for c in header.columns]
        if id_column not in columns or len(set(columns)) != len(columns) or len(columns) < 2:
            return None
        table = pacsv.read_csv(path, read_options=pacsv.ReadOptions(use_threads=False),
                               convert_options=pacsv.ConvertOptions(column_types={id_column: pa.string()},
                                                                    null_values=sorted(_NA_STRINGS),
                                                                    strings_can_be_null=True))
        if table.column_names != columns:
            return None
        raw = _arrow(table.column(id_column))
        types = {c: table.schema.field(c).type for c in columns}
        numeric = {c for c in columns
                   if c != id_column and (pa.types.is_int64(types[c]) or pa.types.is_float64(types[c]))}
        data = {c: pd.Series(table.column(c).to_numpy(), name=c) for c in columns if c in numeric}  # nulls: NaN
        del table
        others = [c for c in columns if c != id_column and c not in numeric]
        if others:
            read = pd.read_csv(path, usecols=others, keep_default_na=True, **CSV_FLOATS)
            read.columns = [str(c) for c in read.columns]
            data.update({c: read[c] for c in others})
        values = pd.DataFrame({c: data[c] for c in columns if c != id_column})
    except Exception:  # anything unusual: pandas reads the whole file, as it always did
        return None
    if len(values) != len(raw) or any(values[c].dtype not in (np.int64, np.float64) for c in numeric):
        return None
    return Parsed(columns, values, raw, *_normalised(raw))


def parse(path: Path, id_column: str) -> Union[Parsed, str]:
    """The submission parsed once (`Parsed`), or why it cannot be parsed."""
    fast = _fast_parse(path, id_column) if id_column else None
    if fast is not None:
        return fast
    try:
        sub = _read(path, id_column)
    except UnicodeDecodeError as err:
        return f"submission is not a text CSV file (cannot decode: {err_text(err)})"
    except pd.errors.EmptyDataError:
        return "submission file has no content (no header, no rows)"
    except Exception as err:
        return f"submission is not parseable as CSV: {err_text(err)}"
    sub.columns = [str(c) for c in sub.columns]
    columns = list(sub.columns)
    if id_column not in columns or columns.count(id_column) != 1:
        return Parsed(columns, sub, None, None)  # the column checks refuse it
    raw = _arrow(sub[id_column])
    return Parsed(columns, sub.drop(columns=[id_column]), raw, *_normalised(raw))


def validate_submission(submission_path: Path, sample_path: Path, id_column: str = "",
                        answers: Optional[pd.DataFrame] = None) -> Tuple[bool, str]:
    """(True, "") when `submission_path` is a well-formed submission, else (False, reason).

    `id_column` empty means the sample's first column. `answers`, when given, supplies the expected ids
    (and must then hold `id_column`); otherwise the sample's ids are expected.
    """
    ok, why, _ = check(submission_path, lambda: expected(sample_path, id_column, answers))
    return ok, why


def check(submission_path: Path, reference: Callable[[], Union[Expected, str]]) -> Tuple[bool, str, Optional[Parsed]]:
    """(True, "", parsed) for a well-formed submission, else (False, reason, None); never raises on bad input.
    `reference` gives the Expected (called only once the file itself looks like a submission)."""
    try:
        ok, why, parsed = _validate(Path(submission_path), reference)
    except Exception as err:  # never raise on bad input
        ok, why, parsed = False, f"submission could not be checked: {type(err).__name__}: {err_text(err)}", None
    return ok, bounded(why), parsed if ok else None


def _validate(sub_path: Path, reference: Callable[[], Union[Expected, str]]) -> Tuple[bool, str, Optional[Parsed]]:
    # -- the file ------------------------------------------------------------------------------
    if not sub_path.exists():
        return False, f"submission file not found: {sub_path}", None
    if not sub_path.is_file():
        return False, f"submission path is not a file: {sub_path}", None
    if sub_path.suffix.lower() != ".csv":
        return False, f"submission must be a .csv file, got {sub_path.name}", None
    if sub_path.stat().st_size == 0:
        return False, f"submission file is empty (0 bytes): {sub_path}", None

    # -- the sample (not the agent's fault if unreadable, but still never raise) --------------
    exp = reference()
    if isinstance(exp, str):
        return False, exp, None
    id_column, sample_cols = exp.id_column, list(exp.columns)

    # -- parse ---------------------------------------------------------------------------------
    parsed = parse(sub_path, id_column)
    if isinstance(parsed, str):
        return False, parsed, None

    # -- columns -------------------------------------------------------------------------------
    sub_set, sample_set = set(parsed.columns), set(sample_cols)
    missing_cols = [c for c in sample_cols if c not in sub_set]
    extra_cols = [c for c in parsed.columns if c not in sample_set]
    counts = collections.Counter(parsed.columns)
    dup_cols = sorted(c for c, n in counts.items() if n > 1)
    if missing_cols or extra_cols or dup_cols:
        parts = []
        if missing_cols:
            parts.append(f"missing column(s) {_few(missing_cols)}")
        if extra_cols:
            parts.append(f"unexpected column(s) {_few(extra_cols)}")
        if dup_cols:
            parts.append(f"duplicated column(s) {_few(dup_cols)}")
        return False, f"wrong columns: {'; '.join(parts)} (expected: {excerpt(', '.join(sample_cols))})", None
    assert parsed.raw_ids is not None and parsed.ids is not None  # the id column is there, once
    n = len(parsed.raw_ids)
    if n == 0:
        return False, f"submission has a header but no rows (expected {exp.rows} rows)", None

    # -- ids -----------------------------------------------------------------------------------
    sub_ids = parsed.ids
    if parsed.raw_ids.null_count:
        empty = np.asarray(parsed.raw_ids.is_null().to_numpy(zero_copy_only=False), dtype=bool)
        rows = list(np.flatnonzero(empty)[:SHOW] + 2)
        return False, f"empty id ({id_column!r}) on line(s) {_few(rows, int(empty.sum()))}", None
    repeated, missing, extra, pos = match(sub_ids, exp, parsed.keys)
    if repeated.any():
        held = pd.Series(pc.filter(sub_ids, pa.array(repeated)).to_pylist(), dtype=object)
        dups = held[held.duplicated(keep="first")].unique().tolist()
        return False, f"duplicate id(s) in {id_column!r}: {_few(dups)}", None
    n_missing, n_extra = int(missing.sum()), int(extra.sum())
    if n_missing or n_extra:
        parts = []
        if n_missing:
            shown = _few(_first(exp.ids, missing), n_missing)
            parts.append(f"{n_missing} missing id(s) in {id_column!r}: {shown}")
        if n_extra:
            parts.append(f"{n_extra} unexpected id(s) in {id_column!r}: {_few(_first(sub_ids, extra), n_extra)}")
        return False, "; ".join(parts), None
    if n != exp.rows_expected:
        return False, f"wrong number of rows: {n} (expected {exp.rows_expected})", None

    # -- values --------------------------------------------------------------------------------
    for col in sample_cols:
        if col == id_column:
            continue
        values = parsed.values[col]
        if not pd.api.types.is_numeric_dtype(values) and exp.numeric[col]:  # the sample is read only if needed
            as_num = pd.to_numeric(values, errors="coerce")
            bad = values[as_num.isna() & values.notna()]
            if len(bad):
                shown = _few(bad.astype(str).unique().tolist(), int(bad.shape[0]))
                return False, (f"column {col!r} must be numeric (as in the sample submission) but has "
                               f"non-numeric value(s) {shown}"), None
            values = as_num
        nan = values.isna().to_numpy()
        if nan.any() and not exp.may_be_empty[col]:
            return False, (f"column {col!r} has {int(nan.sum())} empty/NaN value(s), for id(s) "
                           f"{_few(_first(sub_ids, nan), int(nan.sum()))}"), None
        if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
            inf = np.isinf(values.to_numpy(dtype=float, na_value=np.nan))
            if inf.any():
                return False, (f"column {col!r} has {int(inf.sum())} infinite value(s), for id(s) "
                               f"{_few(_first(sub_ids, inf), int(inf.sum()))}"), None
    return True, "", dataclasses.replace(parsed, positions=pos)


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


__all__: List[str] = ["validate_submission", "check_score", "check", "expected", "parse", "Expected", "Parsed",
                      "CSV_FLOATS", "precheck"]
