"""Sweep directories and MLE-bench grading reports → one DataFrame, one row per trial.

Reading order matters (MLE-bench's seed i of a competition is its i-th entry in reading order):
grading reports are read sorted by path and their entries sorted by competition id, exactly as
MLE-bench's `experiments/aggregate_grading_reports.py`; a sweep's records are read by
(seed, competition id), so seed i of a sweep is its i-th seed. The `order` column keeps it.

A sweep's records are read by `mleray.records.read_records`: one per trial, a retry superseding
the attempt before it. A failed record stays in the frame with every flag false — in the tables
it counts as a failing entry, as a crashed run does in MLE-bench.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence

import pandas as pd
import yaml

from mleray.records import MLEBENCH_REPORT_KEYS, TrialResult, read_file

from . import splits
from .tables import Split, listed

FLAGS = ("submission_exists", "valid_submission", "above_median", "bronze_medal",
         "silver_medal", "gold_medal", "any_medal")
TIMINGS = ("staging_s", "agent_s", "grading_s")
RESOURCES = ("cpus", "memory_gb", "gpus", "time_limit")
_DEFAULTS = TrialResult(competition_id="").to_dict()
_RUN_GROUP_SUFFIX = re.compile(r"[_-]group[_-]?\d+$")


def agent_from_report_path(path: Path) -> str:
    """The agent of a report without agent info: its folder's name, less a run-group suffix
    (`famou-agent_group2` → `famou-agent`, so the seeds of one experiment group together)."""
    return _RUN_GROUP_SUFFIX.sub("", path.resolve().parent.name) or path.resolve().parent.name


def _config(sweep: Path) -> Dict[str, Any]:
    """A sweep's resolved config.yaml ({} without one)."""
    path = (sweep.parent if sweep.suffix == ".jsonl" else sweep) / "config.yaml"
    data = yaml.safe_load(path.read_text()) if path.is_file() else None
    return data if isinstance(data, dict) else {}


def _is_sweep_dir(path: Path) -> bool:
    """A folder with trials.jsonl, or a sweep's config.yaml before its first trial finished."""
    return path.is_dir() and ((path / "trials.jsonl").is_file() or "agents" in _config(path))


def sweep_records(sweep: Path) -> List[Dict[str, Any]]:
    """A sweep's records (a sweep directory or its trials.jsonl), retries resolved, by (seed, competition)."""
    path = sweep if sweep.suffix == ".jsonl" else sweep / "trials.jsonl"
    if not path.is_file() and _is_sweep_dir(sweep):
        return []  # started, no trial finished yet
    if not path.is_file():
        raise FileNotFoundError(f"{sweep} has no trials.jsonl: is it a sweep directory?")
    records = read_file(path)
    for r in records:
        r.setdefault("source", str(path))
    return sorted(records, key=lambda r: (int(r.get("seed", 0)), str(r["competition_id"]),
                                          str(r.get("tier", "")), str(r.get("agent", ""))))


def report_records(path: Path, agent: Optional[str] = None) -> List[Dict[str, Any]]:
    """The entries of one MLE-bench grading report, sorted by competition id, as records."""
    data = json.loads(Path(path).read_text())
    if not isinstance(data, dict) or "competition_reports" not in data:
        raise ValueError(f"{path} is not an MLE-bench grading report (no `competition_reports` list)")
    name = agent or data.get("agent") or agent_from_report_path(Path(path))
    out = []
    for entry in sorted(data["competition_reports"], key=lambda e: str(e["competition_id"])):
        record = {k: entry.get(k, _DEFAULTS[k]) for k in MLEBENCH_REPORT_KEYS}
        record.update({"competition_id": str(entry["competition_id"]), "agent": entry.get("agent", name),
                       "sweep": entry.get("sweep", ""), "source": str(path)})
        out.append(record)
    return out


def _expand(paths: Iterable[Path | str]) -> tuple[list[Path], list[Path]]:
    """(sweep dirs / jsonl files, report files) among paths; a folder without trials.jsonl is
    searched for sweeps (`*/trials.jsonl`) and for `*grading_report*.json`, as MLE-bench's runs/
    folders hold them."""
    sweeps: list[Path] = []
    reports: list[Path] = []
    for p in map(Path, paths):
        if _is_sweep_dir(p):
            sweeps.append(p)
        elif p.is_dir():  # a storage folder of sweeps, or a runs/ folder of reports
            found_sweeps = sorted(q.parent for q in p.rglob("trials.jsonl"))
            found = sorted(p.rglob("*grading_report*.json"))
            if not found and not found_sweeps:
                raise FileNotFoundError(f"{p} has neither trials.jsonl nor *grading_report*.json files")
            sweeps += found_sweeps
            reports += found
        elif p.suffix == ".jsonl":
            sweeps.append(p)
        elif p.is_file():
            reports.append(p)
        else:
            raise FileNotFoundError(f"{p} does not exist; give a sweep directory or grading report files")
    return sweeps, sorted(reports, key=str)


def load(paths: Sequence[Path | str], agent: Optional[str] = None) -> pd.DataFrame:
    """One row per trial from sweep directories, `trials.jsonl` files and grading reports."""
    sweeps, reports = _expand(paths)
    records: List[Dict[str, Any]] = []
    for s in sweeps:
        records += sweep_records(s)
    for report in reports:
        records += report_records(report, agent)
    if agent:
        for r in records:
            r["agent"] = agent
    return frame(records)


def frame(records: List[Dict[str, Any]]) -> pd.DataFrame:
    """Records (TrialResult dicts or report entries) → the analysis frame, in the given order."""
    rows = []
    for i, r in enumerate(records):
        row = {**_DEFAULTS, **r}
        row["order"] = i
        for flag in FLAGS:
            row[flag] = bool(row.get(flag) or False)
        # MLE-bench counts a medal as gold or silver or bronze, whatever `any_medal` says.
        row["any_medal"] = row["gold_medal"] or row["silver_medal"] or row["bronze_medal"]
        for col in TIMINGS + RESOURCES:
            row[col] = float(row.get(col) or 0.0)
        row["snapshots"] = list(row.get("snapshots") or [])
        row["gpu_ids"] = list(row.get("gpu_ids") or [])
        row["split"] = splits.complexity(str(row["competition_id"]))
        row.setdefault("source", "")
        rows.append(row)
    df = pd.DataFrame(rows, columns=list(_DEFAULTS) + ["source", "order", "split"])
    if df.empty:
        return df
    df["tier"] = df["tier"].fillna("").astype(str)
    df["agent"] = df["agent"].fillna("").astype(str)
    # A report's entries carry no seed: give each its occurrence index per (agent, tier, competition).
    from_report = df["trial_id"].fillna("") == ""
    occurrence = df.groupby(["agent", "tier", "competition_id"]).cumcount()
    df.loc[from_report, "seed"] = occurrence[from_report]
    df["seed"] = df["seed"].astype(int)
    return df


def sweep_split(paths: Sequence[Path | str]) -> Optional[str]:
    """The competitions the sweeps among paths run, from their config.yaml, when all run the same:
    their suite's name when they run all of it, else a `Split` of their `competitions:` list
    ("titanic (1 of offline-lite's 3)") — a subset is not scored against the whole suite."""
    runs = {(c.get("suite"), tuple(map(str, c.get("competitions") or ()))) for c in map(_config, _expand(paths)[0])}
    if len(runs) != 1:
        return None
    suite, ids = runs.pop()
    if not ids:
        return suite
    try:
        whole = splits.split_ids(suite) if suite else []
    except ValueError:
        whole = []
    if set(ids) == set(whole):
        return suite
    of = f" ({len(ids)} of {suite}'s {len(whole)})" if set(ids) < set(whole) else ""
    return Split(listed(ids, 4) + of, ids)


# MLE-bench's experiments: `runs/run_group_experiments.csv` maps an experiment id to its run groups,
# `runs/<run group>/` holds one grading report each (as `experiments/aggregate_grading_reports.py` reads them).
RUN_GROUPS_CSV = "run_group_experiments.csv"


def run_groups(experiment_id: str, csv_path: Path) -> List[str]:
    """The run groups of an experiment in the CSV's order (`experiment_id,run_group` lines; blank lines
    and the header skipped); ValueError naming the known ids when it has none."""
    path = Path(csv_path)
    if not path.is_file():
        raise FileNotFoundError(f"no run-group file at {path} (MLE-bench's runs/{RUN_GROUPS_CSV}; "
                                "give --runs-dir or --run-groups)")
    found: List[str] = []
    known: List[str] = []
    for line in path.read_text().splitlines():
        if not line.strip() or line.startswith("experiment_id"):
            continue
        if "," not in line:
            raise ValueError(f"{path}: not an `experiment_id,run_group` line: {line[:80]!r}")
        exp, group = (part.strip() for part in line.strip().split(",", 1))
        known.append(exp)
        if exp == experiment_id:
            found.append(group)
    if not found:
        names = ", ".join(repr(k) for k in dict.fromkeys(known))
        raise ValueError(f"experiment id {experiment_id!r} is not in {path} (known: {names})")
    return found


def experiment_reports(experiment_id: str, runs_dir: Path, csv_path: Optional[Path] = None
                       ) -> tuple[List[Path], List[str]]:
    """(the grading reports of an experiment, notes on the run groups skipped), as MLE-bench resolves them:
    run groups sorted, each `runs_dir/<group>/` holding one top-level `*grading_report*.json`; a missing
    folder or one without a report is skipped with a note, one with several is an error."""
    runs_dir = Path(runs_dir)
    groups = sorted(run_groups(experiment_id, csv_path or runs_dir / RUN_GROUPS_CSV))
    reports: List[Path] = []
    notes: List[str] = []
    for group in groups:
        folder = runs_dir / group
        if not folder.is_dir():
            notes.append(f"run group directory missing, skipping: {group}")
            continue
        found = sorted(p for p in folder.glob("*grading_report*.json") if p.is_file())
        if not found:
            notes.append(f"no grading report found for run group {group}; skipping")
        elif len(found) > 1:
            raise ValueError(f"expected one grading report in {folder}, found {len(found)}: "
                             f"{', '.join(p.name for p in found)}")
        else:
            reports.append(found[0])
    if not reports:
        raise ValueError(f"no grading reports found for experiment id {experiment_id!r} under {runs_dir}")
    return reports, notes


load_paths = load  # the name the sweep driver imports
