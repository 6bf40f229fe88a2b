"""Medal rate against cumulative LLM tokens and dollars: the compute-scaling curve of an LLM agent.

Each trial's `llm.jsonl` (written by mleray's gateway: one line per call with `elapsed_s`, `usage` and
`cost_usd`, on the same clock as the submission snapshots) gives what it had spent by any moment; each
graded snapshot is placed at what had been spent when it was taken. For a budget B, a trial counts its
latest snapshot taken while its spend was at most B (none yet: no submission, no medal): the rate it
would have had if its budget had been B. Aggregated over seeds exactly as the medal table and the
time-scaling curve (`scaling.time_scaling`), of which this is the same computation on another axis.
"""

from __future__ import annotations

import json
from bisect import bisect_right
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import pandas as pd

from . import scaling
from .tables import group_keys

AXES = {"tokens": "llm_tokens", "usd": "llm_cost_usd"}


def spend_log(path: Path) -> Tuple[List[float], List[float], List[float]]:
    """(elapsed_s, cumulative tokens, cumulative dollars) after each call of one llm.jsonl, by time; a
    line that is not a call's JSON is skipped."""
    calls = []
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return [], [], []
    for line in lines:
        try:
            entry = json.loads(line)
            t = float(entry["elapsed_s"])
        except (ValueError, KeyError, TypeError):
            continue
        usage = entry.get("usage") or {}
        used = int(usage.get("input_tokens") or 0) + int(usage.get("output_tokens") or 0)
        calls.append((t, used, float(entry.get("cost_usd") or 0.0)))
    calls.sort()
    times = [c[0] for c in calls]
    tokens = [float(x) for x in np.cumsum([c[1] for c in calls], dtype=float)]
    dollars = [float(x) for x in np.cumsum([c[2] for c in calls], dtype=float)]
    return times, tokens, dollars


def _trial_log(row: pd.Series, sweep_dir: Optional[Path]) -> Optional[Path]:
    base = sweep_dir
    if base is None and str(row.get("source") or "").endswith("trials.jsonl"):
        base = Path(str(row["source"])).parent
    if base is None or not row.get("trial_id"):
        return None
    return base / "trials" / str(row["trial_id"]) / "llm.jsonl"


def with_spend(df: pd.DataFrame, sweep_dir: Optional[Path] = None) -> pd.DataFrame:
    """The frame with each graded snapshot carrying `llm_tokens` and `llm_cost_usd`: what the trial had spent
    when it was taken (from its llm.jsonl, found beside the record's trials.jsonl or under `sweep_dir`)."""
    out = df.copy()
    snapshots = []
    for _, row in out.iterrows():
        path = _trial_log(row, sweep_dir)
        times, tokens, dollars = spend_log(path) if path is not None and path.is_file() else ([], [], [])
        snaps = []
        for snap in scaling.graded_snapshots(row["snapshots"]):
            i = bisect_right(times, float(snap["elapsed_s"]))
            snaps.append({**snap, "llm_tokens": tokens[i - 1] if i else 0.0,
                          "llm_cost_usd": dollars[i - 1] if i else 0.0})
        snapshots.append(snaps)
    out["snapshots"] = snapshots
    return out


def budget_points(df: pd.DataFrame, axis: str = "tokens", max_points: int = 24) -> List[float]:
    """The spends at which snapshots were taken (few), else `max_points` evenly spaced up to the largest."""
    key = AXES[axis]
    values = sorted({float(s[key]) for snaps in df["snapshots"] for s in snaps if key in s})
    if len(values) <= max_points:
        return values
    return [float(v) for v in np.linspace(values[-1] / max_points, values[-1], max_points)]


def spend_scaling(df: pd.DataFrame, split: str, axis: str = "tokens", budgets: Optional[Sequence[float]] = None,
                  pad_missing: bool = False, by: Optional[List[str]] = None,
                  sweep_dir: Optional[Path] = None) -> pd.DataFrame:
    """Rows (group…, `llm_tokens` or `llm_cost_usd` (the budget), n_seeds, `<metric>_mean`, `<metric>_sem`)
    for each budget: the medal rates had every trial stopped at that spend."""
    if axis not in AXES:
        raise ValueError(f"unknown axis {axis!r} (allowed: {', '.join(AXES)})")
    key = AXES[axis]
    spent = df if any(key in s for snaps in df["snapshots"] for s in snaps) else with_spend(df, sweep_dir)
    on_axis = spent.copy()
    on_axis["snapshots"] = [[{**s, "elapsed_s": s[key]} for s in snaps if key in s] for snaps in spent["snapshots"]]
    points = list(budgets) if budgets is not None else budget_points(spent, axis)
    out = scaling.time_scaling(on_axis, split, points, pad_missing, by or group_keys(df))
    return out.rename(columns={"time_s": key})


def spend_figure(rows: pd.DataFrame, keys: Sequence[str], out_dir: Path, axis: str = "tokens",
                 metric: str = "any_medal", name: Optional[str] = None) -> List[Path]:
    """The curve as PNG (and whatever figures._save writes): a step per group, mean ± SEM."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .figures import _by_label, _legend, _save

    key = AXES[axis]
    fig, ax = plt.subplots(figsize=(5, 3.6))
    for label, g in _by_label(rows[rows["n_seeds"] > 0], keys):
        x = g[key].to_numpy(float)
        mean, sem = g[f"{metric}_mean"].to_numpy(float), g[f"{metric}_sem"].to_numpy(float)
        ax.step(x, mean, where="post", label=label)
        ax.fill_between(x, mean - sem, mean + sem, step="post", alpha=0.25)
    ax.set_xlabel("cumulative LLM tokens (input + output)" if axis == "tokens" else "cumulative LLM cost (USD)")
    ax.set_ylabel(f"{metric.replace('_', ' ')} (%)")
    ax.set_ylim(-2, 108)
    ax.set_title(f"Medal rate vs LLM {'tokens' if axis == 'tokens' else 'dollars'} (mean ± SEM)")
    _legend(ax)
    return _save(fig, out_dir, name or f"llm_{axis}_scaling")


def per_trial_spend(df: pd.DataFrame, sweep_dir: Optional[Path] = None) -> Dict[str, Tuple[float, float]]:
    """trial_id -> (tokens, dollars) from its llm.jsonl: a check against the record's llm_* totals."""
    out = {}
    for _, row in df.iterrows():
        path = _trial_log(row, sweep_dir)
        if path is not None and path.is_file():
            _, tokens, dollars = spend_log(path)
            out[str(row["trial_id"])] = (tokens[-1] if tokens else 0.0, dollars[-1] if dollars else 0.0)
    return out
