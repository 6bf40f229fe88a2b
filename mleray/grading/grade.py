"""Grades one submission file, outside the sandbox, into one MLE-bench grading-report entry.

`grade_submission(prepared, path)` returns exactly MLE-bench's report keys (MLEBENCH_REPORT_KEYS, in
order) plus `reason` (empty when the submission is valid). It never raises for a bad submission:
a missing, malformed or unscorable file is `valid_submission: False, score: None` with the reason.

How a score is made, by the competition's source:
- local (`competitions/<id>/`): the file is parsed once and checked against the sample submission and the
  answers' ids (`validate.check`), then scored on that same parse by `metrics.score_aligned(...)` (the
  predictions put in the answers' row order by the ids), or by the competition's own `grade.py`
  (`grade(submission, answers) -> float`, handed the file as pandas reads it) when its metric is "custom".
  The answers, the sample's summary and the expected ids (normalised once) are held per process
  (`reference`, keyed by the prepared files' path, size and modification time), never copied: a grader
  gets a shallow copy, which copy-on-write (pandas 3) keeps from writing into the cache.
- mlebench: the official package's grader for the competition (`mlebench.registry`), run as
  MLE-bench's `Grader.__call__` runs it: any exception means invalid (its message is our reason).
  The validity verdict is the official grader's alone, so results match MLE-bench's.

Then, as MLE-bench does: the score is rounded with `round(score, 5)` on the grader's own type (a numpy
scalar rounds as numpy does, 0.968235 -> 0.96824, a Python float as Python does, -> 0.96823), then stored
as a plain float; an official grader's NaN stays NaN (MLE-bench reports it valid and unranked);
`submission_exists` means "is a file ending in .csv", and the score is ranked against the competition's
leaderboard (`rank.py`).
`created_at` is `records.now()`, UTC with its offset, as in every record (MLE-bench writes naive local
time; it reads both, and its aggregation does not read `created_at`). `grade_submission(..., memo=)`
reuses the grade of a content already graded in the same trial (by the SHA-256 of the bytes graded).

The host side survives any submission: a file over `max_submission_mb` is invalid with a reason naming
its size and the cap; an agent's file (`follow_links=False`) is graded from a private copy, never from
its path (mleray.trial.agent_files); `validate.precheck` refuses an over-long header or line, a header
that is not UTF-8 or far more columns than the sample's before pandas parses anything; and every reason
is one line of at most `validate.REASON` characters, quoting only short excerpts of the submission.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.util
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterator, Optional, Tuple, Union

import pandas as pd

from mleray.errors import one_line
from mleray.grading.rank import Leaderboard, LeaderboardError, rank
from mleray.grading.validate import (
    CSV_FLOATS,
    Expected,
    Parsed,
    bounded,
    check,
    check_score,
    err_text,
    expected,
    precheck,
)
from mleray.grading.validate import pandas_at_least as _pandas_at_least
from mleray.records import MLEBENCH_REPORT_KEYS, now
from mleray.sandbox.validation import VALID_MESSAGE
from mleray.trial.agent_files import MAX_SUBMISSION_MB, AgentFileError, excerpt, max_bytes, private_copy, refusal

log = logging.getLogger(__name__)


# ----------------------------------------------------------------------------------- helpers


def read_csv(path: Path) -> pd.DataFrame:
    """MLE-bench's CSV reading: pandas with round-trip float parsing (pandas' default from 3.1: CSV_FLOATS)."""
    return pd.read_csv(path, **CSV_FLOATS)


@functools.lru_cache(maxsize=256)
def _leaderboard_cached(path: str, mtime: float) -> Leaderboard:
    return Leaderboard.from_csv(path)


def load_leaderboard(competition) -> Optional[Leaderboard]:
    """The competition's leaderboard (cached per file and mtime), or None when it has none."""
    path = getattr(competition, "leaderboard", None)
    if not path:
        return None
    path = Path(path)
    if not path.is_file():
        raise LeaderboardError(f"leaderboard for '{competition.id}' not found at {path}")
    return _leaderboard_cached(str(path), path.stat().st_mtime)


# Copy-on-write (always on from pandas 3): a shallow copy shares the data and copies only what its holder
# modifies, so a grader may do what it likes with it and the cached answers stay as read.
_COW = _pandas_at_least(3, 0)


def _shared(frame: Any) -> Any:
    """What a grader is handed: the cached answers without copying them under copy-on-write, else a copy."""
    if not hasattr(frame, "copy"):
        return frame
    return frame.copy(deep=False) if _COW and isinstance(frame, pd.DataFrame) else frame.copy()


@dataclass(frozen=True, eq=False)
class Reference:
    """A local competition's prepared content as grading holds it: the answers as read (never copied), and
    the sample's summary with the expected ids, normalised once (`validate.Expected`)."""

    answers: pd.DataFrame
    expected: Union[Expected, str]  # a str: why the sample cannot be read (every submission gets it)


def _content_key(path: Path) -> Tuple[str, int, int]:
    info = path.stat()
    return str(path), info.st_size, info.st_mtime_ns


@functools.lru_cache(maxsize=4)
def _reference_cached(answers: Tuple[str, int, int], sample: Tuple[str, int, int], id_column: str) -> Reference:
    frame = read_csv(Path(answers[0]))
    return Reference(frame, expected(Path(sample[0]), id_column, frame))


def reference(prepared) -> Reference:
    """The competition's Reference, from a small per-process cache keyed by the prepared content (each file's
    path, size and modification time): the snapshots of a trial, its final submission and its /validate
    requests read the answers and the sample once."""
    sample = Path(prepared.sample_submission_path)
    sample_key = _content_key(sample) if sample.is_file() else (str(sample), -1, -1)
    return _reference_cached(_content_key(Path(prepared.answers_path)), sample_key,
                             prepared.competition.id_column or "")


def _custom_grader(root: Path):
    path = Path(root) / "grade.py"
    if not path.is_file():
        raise FileNotFoundError(f"metric is 'custom' but {path} does not exist")
    spec = importlib.util.spec_from_file_location(f"mleray_competition_grade_{abs(hash(str(path)))}", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path} as a Python module")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if not callable(getattr(module, "grade", None)):
        raise AttributeError(f"{path} has no function grade(submission, answers) -> float")
    return module.grade


def _round(score: Any) -> float:
    """MLE-bench's rounding, `round(score, 5)` on the grader's own type, then stored as a plain float. A numpy
    scalar rounds as numpy does (scale, round half to even, unscale: 0.968235 -> 0.96824) where Python's float
    rounds the exact binary value (-> 0.96823); about eighteen official graders return numpy reductions. NaN
    stays NaN, as MLE-bench reports it."""
    return float(round(score, 5))


# ---------------------------------------------------------------------------------- scorers


def _score_local(prepared, path: Path) -> Tuple[Optional[float], str]:
    comp = prepared.competition
    try:
        ref = reference(prepared)
    except Exception as err:
        return None, f"cannot grade: answers {prepared.answers_path} unreadable ({one_line(err)})"  # host-side
    ok, why, parsed = check(path, lambda: ref.expected)
    if not ok or parsed is None:
        return None, why
    try:
        if comp.metric == "custom":  # its grade(submission, answers) gets the file as pandas reads it
            raw = _custom_grader(comp.root)(read_csv(path), _shared(ref.answers))
        else:
            from mleray.grading import metrics

            raw = _metric(metrics, comp, parsed, ref)
    except Exception as err:  # InvalidSubmission or any failure of the metric on this file
        return None, f"cannot score the submission: {err_text(err)}"
    ok, why = check_score(raw)
    if not ok:
        return None, why
    return _round(raw), ""


def _metric(metrics, comp, parsed: Parsed, ref: Reference) -> float:
    """A built-in metric on the parse `check` made: the predictions put in the answers' row order by the ids
    (checked to be the answers' own, once each), no second parse and no copy of the answers."""
    targets = list(comp.target_columns)
    missing = [c for c in targets if c not in parsed.values.columns]
    if missing or not isinstance(ref.expected, Expected) or parsed.positions is None:
        raise metrics.InvalidSubmission(f"submission lacks column(s) {missing} (needs {[comp.id_column, *targets]})")
    pred = parsed.values[targets].take(parsed.positions).reset_index(drop=True)
    if pred.isna().any().any():
        col = pred.columns[pred.isna().any()][0]
        raise metrics.InvalidSubmission(f"submission has empty values in column '{col}'")
    return metrics.score_aligned(comp.metric, pred, ref.answers[targets].reset_index(drop=True), targets)


HOST_SIDE = ("cannot grade:", "grading failed:")  # reasons about the host (answers, packages, a bug)

MLEBENCH_MISSING = ("the official mlebench package is not importable: install the official mlebench package "
                    "from its public repository (openai/mle-bench, with Git LFS) into this Python")


@functools.lru_cache(maxsize=128)
def _official_competition(registry, data_dir: str, competition_id: str):
    """The official package's Competition (its registry imports the preparer; done once per id)."""
    return registry.set_data_dir(Path(data_dir)).get_competition(competition_id)


@functools.lru_cache(maxsize=16)
def _official_answers(load_answers, path: str, mtime: float):
    return load_answers(Path(path))


def _score_mlebench(prepared, path: Path) -> Tuple[Optional[float], str]:
    try:
        from mlebench.grade_helpers import InvalidSubmissionError
        from mlebench.registry import registry as default_registry
        from mlebench.utils import load_answers
    except Exception as err:
        return None, f"cannot grade: {MLEBENCH_MISSING} ({one_line(err)})"
    comp = prepared.competition
    data_dir = Path(prepared.private_dir).parents[2]  # <data_dir>/<id>/prepared/private
    try:
        official = _official_competition(default_registry, str(data_dir), comp.id)
        answers = _official_answers(load_answers, str(official.answers), Path(official.answers).stat().st_mtime)
    except Exception as err:
        return None, f"cannot grade: the mlebench package cannot load '{comp.id}' ({one_line(err)})"
    try:
        submission = read_csv(path)
    except pd.errors.EmptyDataError:
        submission = pd.DataFrame()  # MLE-bench's read_csv gives an empty frame; its grader rejects it
    except Exception as err:
        return None, f"submission is not parseable as CSV: {err_text(err)}"
    try:
        raw = official.grader.grade_fn(submission, _shared(answers))
    except InvalidSubmissionError as err:
        return None, f"invalid submission: {err_text(err)}"
    except Exception as err:
        return None, f"the official grader failed on this submission: {type(err).__name__}: {err_text(err)}"
    if raw is None:
        return None, "the official grader returned no score"
    try:
        return _round(raw), ""
    except (TypeError, ValueError) as err:
        return None, f"the official grader returned {excerpt(repr(raw), 60)}: {err_text(err)}"


# ------------------------------------------------------------------------------------ public


def _score_file(prepared, path: Path) -> Tuple[Optional[float], str]:
    """(score, "") or (None, reason) for a file the host may read: pre-checks, then the scorer."""
    comp = prepared.competition
    try:
        refused = precheck(path, prepared.sample_submission_path)
        if refused:
            return None, refused
        if getattr(comp, "source", "local") == "mlebench":
            return _score_mlebench(prepared, path)
        return _score_local(prepared, path)
    except Exception as err:  # a bug or an unreadable file must not crash the trial
        log.exception("grading %s for %s failed", path, comp.id)
        return None, f"grading failed: {type(err).__name__}: {err_text(err)}"


def grade_submission(prepared, submission_path: Path, follow_links: bool = True,
                     max_submission_mb: float = MAX_SUBMISSION_MB, memo: Optional[Dict] = None) -> dict:
    """One MLE-bench report entry (MLEBENCH_REPORT_KEYS, in order) plus `reason`. Never raises.

    follow_links=False is for files an agent wrote: a link or a non-regular file is "no submission"
    with the reason and is never opened, and the grade reads a private copy of the regular file
    (mleray.trial.agent_files). With follow_links=True (`mleray grade`: the host owner's own files) a
    link is followed and the path is read directly; the size cap, the pre-checks and the bounded
    reason hold either way.

    `memo`, a dict the caller keeps across the files of one trial (its snapshots and final submission),
    holds each graded content's (score, reason) by the SHA-256 of the bytes graded (hashed as the private
    copy is made): a file whose content was already graded reuses that grade instead of grading again."""
    path = Path(submission_path)
    comp = prepared.competition
    cap = max_bytes(max_submission_mb)
    refused = refusal(path, cap, follow_links)
    oversized = refused is not None and "max_submission_mb" in refused
    regular = refused is None and path.is_file()
    submission_exists = (regular or oversized) and path.suffix.lower() == ".csv"
    score: Optional[float] = None
    if oversized:
        reason = f"invalid submission: {refused}"
    elif refused is not None:
        reason = f"no submission: {refused}"
    elif not path.exists():
        reason = f"no submission: {path} does not exist"
    elif not path.is_file():
        reason = f"no submission: {path} is not a file"
    elif not submission_exists:
        reason = f"submission must be a .csv file: {path}"
    else:
        try:
            with _readable(path, cap, follow_links, memo is not None) as (readable, digest):
                key = (comp.id, digest)
                if memo is not None and key in memo:
                    score, reason = memo[key]
                else:
                    score, reason = _score_file(prepared, readable)
                    if memo is not None:
                        memo[key] = (score, reason)
        except FileNotFoundError:
            submission_exists, reason = False, f"no submission: {path} does not exist"
        except (AgentFileError, OSError) as err:  # swapped after the check, or unreadable
            submission_exists, reason = False, f"no submission: {err_text(err)}"
    try:
        ranking = rank(score, load_leaderboard(comp))
    except LeaderboardError as err:
        ranking = rank(None, None)
        reason = "; ".join(r for r in (reason, f"not ranked: {err}") if r)
    entry = {
        "competition_id": comp.id,
        "score": score,
        **{k: ranking[k] for k in ("gold_threshold", "silver_threshold", "bronze_threshold", "median_threshold",
                                   "any_medal", "gold_medal", "silver_medal", "bronze_medal", "above_median")},
        "submission_exists": bool(submission_exists),
        "valid_submission": score is not None,
        "is_lower_better": ranking["is_lower_better"],
        "created_at": now(),
        "submission_path": str(path),
    }
    out = {key: entry[key] for key in MLEBENCH_REPORT_KEYS}
    out["reason"] = bounded(reason)
    return out


@contextlib.contextmanager
def _readable(path: Path, cap: int, follow_links: bool, digest: bool) -> Iterator[Tuple[Path, str]]:
    """(what the scorer reads, its SHA-256 when asked, else ""): a private copy of an agent's file, hashed as
    it is copied; the path itself for the owner's."""
    hasher = hashlib.sha256() if digest else None
    if follow_links:
        if hasher is not None:
            with open(path, "rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    hasher.update(chunk)
        yield path, hasher.hexdigest() if hasher is not None else ""
        return
    with private_copy(path, cap, hasher=hasher) as copy:
        yield copy, hasher.hexdigest() if hasher is not None else ""


def validate_only(prepared, submission_path: Path) -> Tuple[bool, str]:
    """(valid, reason) for the validation server; it scores internally but never returns a score.

    As MLE-bench's `validate_submission`, validity means "the grader would score it". The reason is
    "Submission is valid." when valid. `submission_path` is the server's own private file; the
    reason is bounded as a record's is, and a host-side failure (answers unreadable, the official
    package missing, a grading bug) is named as such without its paths or message, which the agent
    reading the answer must not see.
    """
    path = Path(submission_path)
    if not path.is_file():
        return False, f"Submission file {path} does not exist."
    if path.suffix.lower() != ".csv":
        return False, "Submission file must be a CSV file."
    score, reason = _score_file(prepared, path)
    if score is None:
        if reason.startswith(HOST_SIDE):  # the host's problem: its paths and errors stay on the host
            log.warning("validation for %s: %s", prepared.competition.id, reason)
            return False, ("the validation server cannot grade this competition (a problem on the host, "
                           "not in the submission; it is in the host's log)")
        return False, bounded(reason or "the submission could not be scored")
    return True, VALID_MESSAGE


__all__ = ["grade_submission", "validate_only", "load_leaderboard", "read_csv", "VALID_MESSAGE"]
