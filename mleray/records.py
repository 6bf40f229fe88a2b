"""The trial record and its file: the schema (TrialResult), the record of a failed trial, and the one
reader of `trials.jsonl` that the store, grading reports, analysis and `mleray logs` share.

A record is MLE-bench's per-competition grading report fields plus the trial's identity, status,
timings, placement, resources and graded snapshots; one JSON object per line of `trials.jsonl`.
Times (`created_at`, `started_at`, `finished_at`) are `now()`: ISO 8601 in UTC with its offset
(`2026-11-22T10:00:00.123456+00:00`), one clock for every node of a cluster. MLE-bench writes naive
local time there; its `CompetitionReport.from_dict` (`datetime.fromisoformat`) reads both, and its
`experiments/aggregate_grading_reports.py` does not read `created_at` at all.
"""

from __future__ import annotations

import json
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
    GRADED = "graded"  # the agent ran and its submission (or its absence) was graded
    FAILED = "failed"  # infrastructure failure past all retries: no grade


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

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)


def now() -> str:
    """The time of a record: ISO 8601, UTC, with its offset."""
    return datetime.now(timezone.utc).isoformat()


def failed_record(spec: TrialSpec, attempt: int, reason: str) -> dict:
    """The record of a trial that could not be run or graded (infrastructure, past its retries)."""
    return TrialResult(
        competition_id=spec.competition, sweep=spec.sweep, trial_id=spec.trial_id, agent=spec.agent,
        tier=spec.tier, seed=spec.seed, attempt=attempt, status=Status.FAILED, reason=reason,
        created_at=now(), finished_at=now(), cpus=spec.resources.cpus, memory_gb=spec.resources.memory_gb,
        gpus=spec.resources.gpus, time_limit=spec.resources.time_limit).to_dict()


def _key(record: Dict[str, Any]) -> str:
    """The trial a record belongs to: its trial_id, else one built as `trials.trial_id` builds it."""
    return record.get("trial_id") or (f"{record.get('agent')}__{record.get('competition_id')}__"
                                      f"{record.get('tier')}__s{record.get('seed')}")


def read_records(lines: Iterable[str], where: str = "trials.jsonl", strict: bool = True) -> List[Dict[str, Any]]:
    """The records that count among the lines of a `trials.jsonl`: one per trial, in file order.

    Of the records of one trial, the one with the highest `attempt` wins, the later line on a tie: a
    retry supersedes the attempt before it whatever order the lines are in. (The store appends each
    trial once, so a sweep's own file holds no duplicates; older or merged files may.)
    Blank lines are skipped, and so is a last line that is not a JSON object (a driver killed
    mid-append). Any other such line is a ValueError naming `where:number`, or skipped when not
    `strict` (a live viewer that must keep going).
    """
    numbered = [(n, line) for n, line in enumerate(lines, 1) if line.strip()]
    kept: Dict[str, Dict[str, Any]] = {}
    for i, (number, line) in enumerate(numbered):
        try:
            record = json.loads(line)
            if not isinstance(record, dict):
                raise ValueError(f"a JSON {type(record).__name__}, not an object")
        except ValueError as err:  # json.JSONDecodeError is one
            if strict and i < len(numbered) - 1:
                raise ValueError(f"{where}:{number}: not a JSON record ({err}); fix or remove that line") from None
            continue
        key = _key(record)
        if key not in kept or int(record.get("attempt") or 0) >= int(kept[key].get("attempt") or 0):
            kept.pop(key, None)
            kept[key] = record  # placed where its line is
    return list(kept.values())


def read_file(path: Path | str) -> List[Dict[str, Any]]:
    """`read_records` of a `trials.jsonl` on this machine."""
    return read_records(Path(path).read_text().splitlines(), str(path))
