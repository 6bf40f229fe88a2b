"""The trial record and its file: the schema (TrialResult), the record of a failed trial, and the one
reader of `trials.jsonl` that the store, grading reports, analysis and `mleray logs` share.

A record is MLE-bench's per-competition grading report fields plus the trial's identity, status,
timings, placement, resources and graded snapshots; one JSON object per line of `trials.jsonl`.
Times (`created_at`, `started_at`, `finished_at`) are `now()`: ISO 8601 in UTC with its offset
(`2026-11-22T10:00:00.123456+00:00`), one clock for every node of a cluster. MLE-bench writes naive
local time there; its `CompetitionReport.from_dict` (`datetime.fromisoformat`) reads both, and its
`experiments/aggregate_grading_reports.py` does not read `created_at` at all.

No line of the file can stop a reader: `parse_lines` sorts lines into the records that count (per
trial the highest attempt, the later line on a tie) and bad lines (not UTF-8, not JSON, not an
object, no trial_id, a duplicate), which readers skip with a warning naming `trials.jsonl:<n>`.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, Iterable, List, Optional

if TYPE_CHECKING:
    from mleray.sweep.trials import TrialSpec

# The keys of one entry of MLE-bench's grading report, in MLE-bench's order.
MLEBENCH_REPORT_KEYS = (
    "competition_id", "score", "gold_threshold", "silver_threshold", "bronze_threshold",
    "median_threshold", "any_medal", "gold_medal", "silver_medal", "bronze_medal",
    "above_median", "submission_exists", "valid_submission", "is_lower_better",
    "created_at", "submission_path",
)


class Status:
    GRADED = "graded"  # the agent ran and its submission (or its absence) was graded: final
    FAILED = "failed"  # no grade; `infra_failure` says whether the infrastructure is to blame (then not final)


@dataclass
class TrialResult:
    # MLE-bench grading report fields
    competition_id: str
    score: Optional[float] = None
    gold_threshold: Optional[float] = None
    silver_threshold: Optional[float] = None
    bronze_threshold: Optional[float] = None
    median_threshold: Optional[float] = None
    any_medal: bool = False
    gold_medal: bool = False
    silver_medal: bool = False
    bronze_medal: bool = False
    above_median: bool = False
    submission_exists: bool = False
    valid_submission: bool = False
    is_lower_better: Optional[bool] = None
    created_at: str = ""
    submission_path: Optional[str] = None
    # identity
    sweep: str = ""
    trial_id: str = ""
    agent: str = ""
    tier: str = ""
    seed: int = 0
    attempt: int = 0
    # outcome
    status: str = Status.GRADED
    # a failure that is not the agent's doing: its actor or node died past the retries, a storage
    # error, a full disk on the host, an error raised inside mleray. Not final (is_final): a resumed
    # sweep runs the trial again as the next attempt, whose record supersedes this one.
    infra_failure: bool = False
    reason: str = ""  # why invalid / failed / timed out; empty when all went well
    exit_code: Optional[int] = None
    timed_out: bool = False
    oom_killed: bool = False  # the agent's main process was killed for memory
    child_oom_killed: bool = False  # a process the agent started was killed for memory; the agent went on
    killed_externally: bool = False  # stopped from outside (not by mleray's time limit, not its own exit)
    disk_exceeded: bool = False  # stopped for writing more than the tier's disk_gb
    sandbox: str = ""  # docker | bwrap
    # which of the tier's limits and isolation measures held in this trial's sandbox, by name:
    # {"env": "clean", "pids": "cgroup pids.max=512", "network": "none", ...}; a value starting
    # "not enforced" says what did not hold and why (sandbox.Sandbox.isolation)
    isolation: Dict[str, str] = field(default_factory=dict)
    description: str = "original"  # original | obfuscated
    # timings (seconds) and placement
    started_at: str = ""
    finished_at: str = ""
    staging_s: float = 0.0
    agent_s: float = 0.0
    grading_s: float = 0.0
    node_id: str = ""
    node_ip: str = ""
    gpu_ids: List[str] = field(default_factory=list)
    # resources requested (the tier)
    cpus: float = 0.0
    memory_gb: float = 0.0
    gpus: float = 0.0
    time_limit: float = 0.0
    # graded snapshots: [{"elapsed_s", "path", "score", "valid_submission", "above_median",
    #                     "any_medal", "gold_medal", "silver_medal", "bronze_medal", "reason"}]
    snapshots: List[Dict[str, Any]] = field(default_factory=list)
    # LLM agents (mleray/llm; every call in trials/<id>/llm.jsonl): calls forwarded upstream, tokens
    # (input counts cached ones too), dollars from llm.prices, upstream errors, calls the gateway answered
    # itself (budget, bounds), total latency, the budget that ran out (None: none did), unpriced models,
    # and per model {calls, input_tokens, output_tokens, cached_tokens, cost_usd}. None: not an LLM agent.
    llm_calls: Optional[int] = None
    llm_input_tokens: Optional[int] = None
    llm_output_tokens: Optional[int] = None
    llm_cached_tokens: Optional[int] = None
    llm_cost_usd: Optional[float] = None
    llm_errors: Optional[int] = None
    llm_refused: Optional[int] = None
    llm_latency_s: Optional[float] = None
    llm_budget_exhausted: Optional[str] = None
    llm_unpriced_models: Optional[List[str]] = None
    llm_models: Optional[Dict[str, Dict[str, Any]]] = None

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)


def now() -> str:
    """The time of a record: ISO 8601, UTC, with its offset."""
    return datetime.now(timezone.utc).isoformat()


def failed_record(spec: TrialSpec, attempt: int, reason: str, infra: bool = True) -> dict:
    """The record of a trial that could not be run or graded: by default an infrastructure failure
    (past its retries), which a resumed sweep runs again; `infra=False` for a final one."""
    return TrialResult(
        competition_id=spec.competition, sweep=spec.sweep, trial_id=spec.trial_id, agent=spec.agent,
        tier=spec.tier, seed=spec.seed, attempt=attempt, status=Status.FAILED, reason=reason, infra_failure=infra,
        created_at=now(), finished_at=now(), cpus=spec.resources.cpus, memory_gb=spec.resources.memory_gb,
        gpus=spec.resources.gpus, time_limit=spec.resources.time_limit).to_dict()


def is_final(record: Dict[str, Any]) -> bool:
    """Whether a record settles its trial: graded (whatever the grade: invalid, timed out, OOM), or a
    failure that was not the infrastructure's. An infrastructure failure (`infra_failure`) is not final:
    a resumed sweep runs the trial again. A failed record from before the field existed was one."""
    return not record.get("infra_failure", record.get("status") == Status.FAILED)


@dataclass(frozen=True)
class BadLine:
    """A line of `trials.jsonl` that holds no record that counts: its number (from 1), its text
    (an undecodable byte shown as `\\xNN`) and why."""

    number: int
    text: str
    why: str

    def entry(self, source: str) -> str:
        """Its line in `trials.jsonl.rejected` (REJECTED): one JSON object, the line's text in `text`."""
        return json.dumps({"line": self.number, "why": self.why, "source": source, "rejected_at": now(),
                           "text": self.text})


REJECTED = ".rejected"  # trials.jsonl's bad lines are moved to trials.jsonl.rejected


@dataclass
class Parsed:
    """What the lines of a `trials.jsonl` hold: `records`, the records that count (one per trial, in
    the order of their lines); `keep`, the lines a clean file holds (those records, and the
    infrastructure failures a later attempt superseded, kept as history), in file order; `bad`, the rest."""

    records: List[Dict[str, Any]] = field(default_factory=list)
    keep: List[str] = field(default_factory=list)
    bad: List[BadLine] = field(default_factory=list)


_JSON_KINDS = {list: "array", str: "string", int: "number", float: "number", bool: "true/false", type(None): "null"}


def _attempt(value: Any) -> Optional[int]:
    """A record's attempt as an int (0 when absent), or None when it is not a whole number."""
    if value is None:
        return 0
    if isinstance(value, bool):
        return None
    if isinstance(value, float):
        return int(value) if value.is_integer() else None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _parse_line(raw: str | bytes) -> tuple[str, Optional[Dict[str, Any]], str]:
    """(the line's text, its record or None, why it is none)."""
    if isinstance(raw, bytes):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as err:
            return (raw.decode("utf-8", "backslashreplace"), None,
                    f"not UTF-8 text (byte 0x{raw[err.start]:02x} at column {err.start + 1})")
    else:
        text = raw
    text = text.rstrip("\r\n")
    try:
        record = json.loads(text)
    except json.JSONDecodeError as err:
        return text, None, f"not JSON, or cut short: {err.msg}, column {err.colno}"
    except (ValueError, RecursionError) as err:  # nested too deeply, numbers too long
        return text, None, f"not JSON ({type(err).__name__})"
    if not isinstance(record, dict):
        return text, None, f"a JSON {_JSON_KINDS.get(type(record), type(record).__name__)}, not an object"
    trial = record.get("trial_id")
    if not isinstance(trial, str) or not trial.strip():
        return text, None, "an object without a trial_id" if not trial else f"trial_id {trial!r:.60} is not a name"
    if _attempt(record.get("attempt")) is None:
        return text, None, f"attempt {record.get('attempt')!r:.60} is not a whole number"
    return text, record, ""


def parse_lines(lines: Iterable[str | bytes]) -> Parsed:
    """Sorts the lines of a `trials.jsonl` (text, or bytes decoded line by line) into records that count,
    history and bad lines. Blank lines are skipped. A bad line is one that is not UTF-8, not JSON (a
    line cut short by a killed writer), not a JSON object, has no trial_id or a non-integer attempt,
    or repeats a trial: of the records of one trial the one with the highest `attempt` wins, the later
    line on a tie, and the others are duplicates, except infrastructure failures (not `is_final`)
    of a lower attempt: those are the history of a trial that was run again."""
    good: List[tuple[int, str, Dict[str, Any]]] = []
    parsed = Parsed()
    for number, raw in enumerate(lines, 1):
        if not raw.strip():
            continue
        text, record, why = _parse_line(raw)
        if record is None:
            parsed.bad.append(BadLine(number, text, why))
        else:
            good.append((number, text, record))
    winner: Dict[str, tuple[int, int]] = {}  # trial -> (attempt, line number) of its record that counts
    for number, _, record in good:
        key = (_attempt(record.get("attempt")) or 0, number)
        winner[record["trial_id"]] = max(winner.get(record["trial_id"], key), key)
    for number, text, record in good:
        attempt, won = winner[record["trial_id"]]
        if won == number:
            parsed.records.append(record)
            parsed.keep.append(text)
        elif not is_final(record) and (_attempt(record.get("attempt")) or 0) < attempt:
            parsed.keep.append(text)
        else:
            parsed.bad.append(BadLine(number, text, f"a duplicate record of trial {record['trial_id']}: "
                                                    f"line {won} (attempt {attempt}) counts"))
    parsed.bad.sort(key=lambda bad: bad.number)
    return parsed


_warned: set = set()


def warn_bad_line(where: str, bad: BadLine, action: str) -> None:
    """One line on stderr, `mleray: warning: <where>:<n>: <why>; <action>`, once per line per process
    (a live view reads the same file again and again)."""
    key = (where, bad.number, bad.why)
    if key not in _warned:
        _warned.add(key)
        print(f"mleray: warning: {where}:{bad.number}: {bad.why}; {action}", file=sys.stderr, flush=True)


def read_records(lines: Iterable[str | bytes], where: str = "trials.jsonl", strict: bool = False,
                 warn: bool = True) -> List[Dict[str, Any]]:
    """The records that count among the lines of a `trials.jsonl`: one per trial, in file order
    (`parse_lines` says which). A read-only reader's view: each bad line is skipped with a warning
    naming `where:number` (`warn`), and the file is never rewritten (the sweep's store moves bad
    lines out: `storage.store.SweepStore`). `strict`: a ValueError at the first line that holds no
    record instead (a duplicate is no error: the rule resolves it)."""
    parsed = parse_lines(lines)
    for bad in parsed.bad:
        if strict and not bad.why.startswith("a duplicate"):
            raise ValueError(f"{where}:{bad.number}: {bad.why}; fix or remove that line")
    if warn:
        for bad in parsed.bad:
            warn_bad_line(where, bad, "skipped")
    return parsed.records


def file_lines(data: bytes) -> List[bytes]:
    """The lines of a file's bytes, numbered as in the file (blank ones too); a last line without its
    newline is one (cut short by a killed writer, or still being written)."""
    lines = data.split(b"\n")
    return lines[:-1] if lines and not lines[-1] else lines


def read_file(path: Path | str) -> List[Dict[str, Any]]:
    """`read_records` of a `trials.jsonl` on this machine, read as bytes (no line can stop it)."""
    return read_records(file_lines(Path(path).read_bytes()), str(path))
