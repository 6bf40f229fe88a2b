"""MLE-bench grading reports: build them from entries, write them, export a sweep as them.

A report is MLE-bench's JSON (`mlebench/grade.py`, `aggregate_reports`): the summary counts
`total_runs, total_runs_with_submissions, total_valid_submissions, total_medals, total_gold_medals,
total_silver_medals, total_bronze_medals, total_above_median`, then `competition_reports`, a list of
entries with exactly MLEBENCH_REPORT_KEYS in MLE-bench's order. It is written with `indent=2` as
`<timestamp>_grading_report.json`, the timestamp `YYYY-MM-DDTHH-MM-SS-<zone>` in UTC.

`export_sweep(sweep_dir)` turns a sweep's `trials.jsonl` into one report per (agent, tier) — an
MLE-bench report describes one agent configuration — with the entries ordered seed by seed, so
MLE-bench's `experiments/aggregate_grading_reports.py` (and `python -m analysis`) read seed k of
every competition as run k. Records are read by `records.read_records` (one per trial: a retry
supersedes the attempt before it). A trial that failed for infrastructure reasons is kept as a run
without a submission, as MLE-bench counts a run that produced nothing; pass `include_failed=False`
to leave such trials out.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any, Dict, Iterable, List, Mapping, Optional, Tuple

from mleray.records import MLEBENCH_REPORT_KEYS, Status
from mleray.records import read_file as read_records

SUMMARY_KEYS = (
    "total_runs", "total_runs_with_submissions", "total_valid_submissions", "total_medals",
    "total_gold_medals", "total_silver_medals", "total_bronze_medals", "total_above_median",
)
_FLOAT_KEYS = ("gold_threshold", "silver_threshold", "bronze_threshold", "median_threshold")
_BOOL_KEYS = ("any_medal", "gold_medal", "silver_medal", "bronze_medal", "above_median",
              "submission_exists", "valid_submission", "is_lower_better")


def _float(value: Any) -> Optional[float]:
    if value is None:
        return None
    value = float(value)
    return None if math.isnan(value) else value


def entry(record: Mapping[str, Any]) -> Dict[str, Any]:
    """One report entry from a grade dict or a TrialResult dict: exactly MLEBENCH_REPORT_KEYS, typed
    as MLE-bench's `CompetitionReport.to_dict` (floats, bools, ISO strings; a NaN score stays NaN, as an
    official grader's NaN is reported valid and unranked there). Thresholds stay None for a
    competition without a leaderboard, and `is_lower_better` stays None when unknown."""
    out: Dict[str, Any] = {}
    for key in MLEBENCH_REPORT_KEYS:
        value = record.get(key)
        if key == "score":  # MLE-bench's to_dict: float(score), a NaN score (a grader's nan) stays NaN
            value = None if value is None else float(value)
        elif key in _FLOAT_KEYS:
            value = _float(value)
        elif key in _BOOL_KEYS:
            value = None if (value is None and key == "is_lower_better") else bool(value)
        elif key == "created_at":
            value = value.isoformat() if value is not None and hasattr(value, "isoformat") else (value or "")
        elif key == "submission_path":
            value = None if value is None else str(value)
        out[key] = value
    return out


def aggregate(entries: Iterable[Mapping[str, Any]]) -> Dict[str, Any]:
    """MLE-bench's summary report (its `aggregate_reports`) over these entries, in their order."""
    reports = [entry(e) for e in entries]
    gold = sum(r["gold_medal"] for r in reports)
    silver = sum(r["silver_medal"] for r in reports)
    bronze = sum(r["bronze_medal"] for r in reports)
    return {
        "total_runs": int(len(reports)),
        "total_runs_with_submissions": int(sum(r["submission_exists"] for r in reports)),
        "total_valid_submissions": int(sum(r["valid_submission"] for r in reports)),
        "total_medals": int(gold + silver + bronze),
        "total_gold_medals": int(gold),
        "total_silver_medals": int(silver),
        "total_bronze_medals": int(bronze),
        "total_above_median": int(sum(r["above_median"] for r in reports)),
        "competition_reports": reports,
    }


def timestamp() -> str:
    """MLE-bench's report timestamp: `YYYY-MM-DDTHH-MM-SS-<zone>`, UTC."""
    return time.strftime("%Y-%m-%dT%H-%M-%S-%Z", time.gmtime())


def write_report(report: Mapping[str, Any], out_dir: Path, name: Optional[str] = None) -> Path:
    """Writes `report` as `<out_dir>/<name or timestamp>_grading_report.json` (indent=2); returns the path."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name or timestamp()}_grading_report.json"
    path.write_text(json.dumps(report, indent=2))
    return path


def sweep_reports(sweep_dir: Path, include_failed: bool = True) -> Dict[Tuple[str, str], Dict[str, Any]]:
    """{(agent, tier): grading report} for a sweep's `trials.jsonl`; entries ordered seed by seed."""
    sweep_dir = Path(sweep_dir)
    path = sweep_dir / "trials.jsonl" if sweep_dir.is_dir() else sweep_dir
    if not path.is_file():
        raise FileNotFoundError(f"no trials.jsonl at {path}; give a sweep directory (runs/<sweep>/)")
    records = read_records(path)
    if not include_failed:
        records = [r for r in records if r.get("status", Status.GRADED) != Status.FAILED]
    order: Dict[str, int] = {}
    for r in records:
        order.setdefault(r.get("competition_id", ""), len(order))
    groups: Dict[Tuple[str, str], List[Dict[str, Any]]] = {}
    for r in records:
        groups.setdefault((str(r.get("agent", "")), str(r.get("tier", ""))), []).append(r)
    out = {}
    for key, rows in groups.items():
        rows.sort(key=lambda r: (int(r.get("seed") or 0), order[r.get("competition_id", "")]))
        out[key] = aggregate(_with_thresholds(r) for r in rows)
    return out


def _with_thresholds(record: Mapping[str, Any]) -> Mapping[str, Any]:
    """A record without thresholds (a failed trial) gets its competition's, as MLE-bench's entries
    always carry them; left as is when the competition or its leaderboard cannot be found."""
    if record.get("gold_threshold") is not None:
        return record
    try:
        from mleray import competitions
        from mleray.grading.grade import load_leaderboard
        from mleray.grading.rank import rank

        leaderboard = load_leaderboard(competitions.get(record["competition_id"]))
    except Exception:
        return record
    if leaderboard is None:
        return record
    ranking = rank(None, leaderboard)
    return {**record, **{k: ranking[k] for k in ("gold_threshold", "silver_threshold", "bronze_threshold",
                                                 "median_threshold", "is_lower_better")}}


def export_sweep(sweep_dir: Path, out_dir: Optional[Path] = None, include_failed: bool = True) -> Path:
    """Writes one MLE-bench grading report per (agent, tier) of a sweep and returns the folder holding them:
    `<out_dir or sweep_dir/report/grading_reports>/<agent>__<tier>_grading_report.json`."""
    sweep_dir = Path(sweep_dir)
    out_dir = Path(out_dir) if out_dir else sweep_dir / "report" / "grading_reports"
    reports = sweep_reports(sweep_dir, include_failed=include_failed)
    if not reports:
        raise ValueError(f"{sweep_dir / 'trials.jsonl'} holds no trial records")
    for (agent, tier), report in reports.items():
        write_report(report, out_dir, name=f"{agent}__{tier}")
    return out_dir


__all__ = ["SUMMARY_KEYS", "entry", "aggregate", "timestamp", "write_report", "read_records",
           "sweep_reports", "export_sweep"]
