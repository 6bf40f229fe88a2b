"""Scaling and ablation tables.

- `time_scaling`: the medal rates an agent would have had if stopped at time t, from its graded
  snapshots: each trial counts its latest snapshot at or before t (none yet: no submission, no
  medal), aggregated over seeds exactly as the medal table.
- `factor_table`: the medal rates per level of a factor (the resource tier, or any record field
  that varies across the sweep), with each level's difference to a reference level and that
  difference's standard error, sqrt(SEM² + SEM_ref²) — as MLE-bench's hardware ablation
  (paper Table 3: CPU-only vs 1 GPU vs 2 GPUs).
"""

from __future__ import annotations

from typing import Dict, Iterable, List, Optional, Sequence

import numpy as np
import pandas as pd

from mleray.records import TrialResult

from .tables import METRIC_NAMES, group_keys, medal_rows

_DEFAULTS = TrialResult(competition_id="").to_dict()

SCALING_METRICS = ("valid_submission", "above_median", "any_medal")
FACTOR_CANDIDATES = ("tier", "gpus", "cpus", "memory_gb", "time_limit", "description", "sandbox")
_MEDALS = ("gold_medal", "silver_medal", "bronze_medal")


def graded_snapshots(record_snapshots: Iterable[dict]) -> List[dict]:
    """The snapshots that carry a grade, by elapsed time."""
    snaps = [s for s in record_snapshots or [] if "elapsed_s" in s and any(k in s for k in _MEDALS + ("any_medal",))]
    return sorted(snaps, key=lambda s: float(s["elapsed_s"]))


def _flags_at(snapshots: List[dict], t: float) -> Dict[str, bool]:
    latest = None
    for s in snapshots:
        if float(s["elapsed_s"]) <= t:
            latest = s
        else:
            break
    if latest is None:
        return dict.fromkeys(("submission_exists", "valid_submission", "above_median", "any_medal") + _MEDALS, False)
    flags = {k: bool(latest.get(k, False)) for k in ("valid_submission", "above_median") + _MEDALS}
    flags["submission_exists"] = True
    has_medal_kinds = any(k in latest for k in _MEDALS)
    flags["any_medal"] = any(flags[k] for k in _MEDALS) if has_medal_kinds else bool(latest.get("any_medal", False))
    return flags


def time_points(df: pd.DataFrame, max_points: int = 24) -> List[float]:
    """Every snapshot time when there are few, else `max_points` evenly spaced up to the last."""
    times = sorted({float(s["elapsed_s"]) for snaps in df["snapshots"] for s in graded_snapshots(snaps)})
    if len(times) <= max_points:
        return times
    return [float(t) for t in np.linspace(times[-1] / max_points, times[-1], max_points)]


def time_scaling(df: pd.DataFrame, split: str, times: Optional[Sequence[float]] = None,
                 pad_missing: bool = False, by: Optional[List[str]] = None,
                 metrics: Sequence[str] = SCALING_METRICS) -> pd.DataFrame:
    """Rows (group…, time_s, n_seeds, `<metric>_mean`, `<metric>_sem`; NaN for a group without
    numbers) for each time point."""
    by = by or group_keys(df)
    times = list(times) if times is not None else time_points(df)
    snaps = [graded_snapshots(s) for s in df["snapshots"]]
    parts = []
    for t in times:
        at_t = df.copy()
        flags = pd.DataFrame([_flags_at(s, t) for s in snaps], index=df.index)
        for col in flags.columns:
            at_t[col] = flags[col]
        rows = medal_rows(at_t, split, pad_missing, by)
        rows.insert(len(by), "time_s", float(t))
        parts.append(rows)
    cols = by + ["time_s", "n_seeds"] + [f"{m}_{s}" for m in metrics for s in ("mean", "sem")]
    if not parts:
        return pd.DataFrame(columns=cols)
    out = pd.concat(parts, ignore_index=True)
    return out.reindex(columns=cols).sort_values(by + ["time_s"], ignore_index=True)


def varying_factors(df: pd.DataFrame) -> List[str]:
    """`tier` if it varies, plus the candidate fields that vary within a tier (other ablations)."""
    out = []
    if df["tier"].nunique() > 1:
        out.append("tier")
    for col in FACTOR_CANDIDATES[1:]:
        if col in df and df[col].nunique() > 1 and (df.groupby("tier")[col].nunique() > 1).any():
            out.append(col)
    return out


def factor_levels(df: pd.DataFrame, factor: str) -> List:
    """Levels in reference-first order: tiers by (gpus, cpus, memory, name); other fields sorted,
    the record's default value first."""
    if factor == "tier":
        res = df.groupby("tier")[["gpus", "cpus", "memory_gb"]].mean()
        return sorted(res.index, key=lambda t: (res.at[t, "gpus"], res.at[t, "cpus"], res.at[t, "memory_gb"], t))
    default = _DEFAULTS.get(factor)  # the record's default (e.g. description=original) leads
    return sorted(df[factor].dropna().unique(), key=lambda v: (v != default, str(type(v)), v))


def factor_table(df: pd.DataFrame, split: str, factor: str = "tier", reference=None,
                 pad_missing: bool = False, by: Optional[List[str]] = None,
                 metrics: Sequence[str] = METRIC_NAMES) -> pd.DataFrame:
    """Rows (group…, factor level, n_seeds, per metric mean, sem, diff to reference, diff_se)."""
    by = [k for k in (by or ["agent"]) if k != factor]
    levels = factor_levels(df, factor)
    if reference is None and levels:
        reference = levels[0]
    if reference not in levels:
        raise ValueError(f"reference {reference!r} is not a level of {factor!r}: {levels}")
    rows = medal_rows(df, split, pad_missing, by + [factor])
    out = []
    for key, group in rows.groupby(by, sort=True):
        ref = group[group[factor] == reference]
        for level in levels:
            r = group[group[factor] == level]
            if r.empty:
                continue
            r = r.iloc[0]
            row = {**{k: r[k] for k in by}, factor: level, "reference": reference, "n_seeds": int(r["n_seeds"])}
            for m in metrics:
                mean, sem = r.get(f"{m}_mean", np.nan), r.get(f"{m}_sem", np.nan)
                rmean = ref.iloc[0].get(f"{m}_mean", np.nan) if not ref.empty else np.nan
                rsem = ref.iloc[0].get(f"{m}_sem", np.nan) if not ref.empty else np.nan
                is_ref = level == reference
                row.update({f"{m}_mean": mean, f"{m}_sem": sem, f"{m}_diff": mean - rmean,  # NaN without numbers
                            f"{m}_diff_se": 0.0 if is_ref else float(np.sqrt(sem ** 2 + rsem ** 2))})
            out.append(row)
    return pd.DataFrame(out)
