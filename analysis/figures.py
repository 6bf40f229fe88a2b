"""matplotlib figures (Agg backend), each written as PNG and SVG; every function returns the paths."""

from __future__ import annotations

from pathlib import Path
from typing import List, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

FORMATS = ("png", "svg")


def _label(row: dict, keys: Sequence[str]) -> str:
    return " / ".join(str(row[k]) for k in keys if str(row[k])) or "(all)"


def _save(fig, out_dir: Path, name: str) -> List[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for fmt in FORMATS:
        path = out_dir / f"{name}.{fmt}"
        fig.savefig(path, format=fmt, dpi=120, bbox_inches="tight")
        paths.append(path)
    plt.close(fig)
    return paths


def medal_rates(rows: pd.DataFrame, keys: Sequence[str], out_dir: Path, name: str = "medal_rates",
                metric: str = "any_medal") -> List[Path]:
    """Grouped bars: a group of bars per split, a bar per agent (×tier), SEM error bars.
    `rows` is `tables.medal_rows` of several splits concatenated."""
    rows = rows[rows["n_seeds"] > 0]
    split_names = list(dict.fromkeys(rows["split"]))
    groups = list(dict.fromkeys(_label(r, keys) for r in rows.to_dict("records")))
    fig, ax = plt.subplots(figsize=(max(4.0, 1.2 * len(split_names) * max(1, len(groups)) ** 0.5 + 2), 3.6))
    width = 0.8 / max(1, len(groups))
    x = np.arange(len(split_names))
    for i, g in enumerate(groups):
        sub = {r["split"]: r for r in rows.to_dict("records") if _label(r, keys) == g}
        means = [sub[s][f"{metric}_mean"] if s in sub else np.nan for s in split_names]
        sems = [sub[s][f"{metric}_sem"] if s in sub else 0.0 for s in split_names]
        bars = ax.bar(x + (i - (len(groups) - 1) / 2) * width, means, width, yerr=sems, capsize=3, label=g)
        ax.bar_label(bars, fmt="%.1f", fontsize=7, padding=2)
    ax.set_xticks(x, split_names)
    ax.set_ylabel(f"{metric.replace('_', ' ')} (%)")
    ax.set_ylim(-2, 108)
    ax.set_title("Medal rate by split (mean ± SEM over seeds)")
    _legend(ax)
    return _save(fig, out_dir, name)


def pass_at_k(rows: pd.DataFrame, keys: Sequence[str], out_dir: Path, name: str = "pass_at_k") -> List[Path]:
    fig, ax = plt.subplots(figsize=(5, 3.6))
    for label, g in _by_label(rows, keys):
        ax.plot(g["k"], g["pass_at_k"], marker="o", label=label)
    ax.set_xlabel("k (attempts)")
    ax.set_ylabel("pass@k (%)")
    ax.set_ylim(-2, 108)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_title("pass@k (any medal)")
    _legend(ax)
    return _save(fig, out_dir, name)


def time_scaling(rows: pd.DataFrame, keys: Sequence[str], out_dir: Path, name: str = "time_scaling",
                 metric: str = "any_medal") -> List[Path]:
    fig, ax = plt.subplots(figsize=(5, 3.6))
    unit, scale = _time_unit(float(rows["time_s"].max()) if len(rows) else 0.0)
    for label, g in _by_label(rows[rows["n_seeds"] > 0], keys):
        hours = g["time_s"] / scale
        mean, sem = g[f"{metric}_mean"].to_numpy(float), g[f"{metric}_sem"].to_numpy(float)
        ax.step(hours, mean, where="post", label=label)
        ax.fill_between(hours, mean - sem, mean + sem, step="post", alpha=0.25)
    ax.set_xlabel(f"elapsed time ({unit})")
    ax.set_ylabel(f"{metric.replace('_', ' ')} (%)")
    ax.set_ylim(-2, 108)
    ax.set_title("Medal rate vs time (mean ± SEM)")
    _legend(ax)
    return _save(fig, out_dir, name)


def factor_comparison(rows: pd.DataFrame, factor: str, out_dir: Path, name: str = "",
                      metric: str = "any_medal") -> List[Path]:
    """Bars per factor level (e.g. tier), a group per agent, SEM error bars."""
    levels = list(dict.fromkeys(rows[factor]))
    agents = list(dict.fromkeys(rows["agent"]))
    fig, ax = plt.subplots(figsize=(max(4.0, 1.0 * len(levels) * len(agents) ** 0.5 + 2), 3.6))
    width = 0.8 / max(1, len(levels))
    x = np.arange(len(agents))
    for i, level in enumerate(levels):
        sub = rows[rows[factor] == level].set_index("agent")
        means = [sub.at[a, f"{metric}_mean"] if a in sub.index else np.nan for a in agents]
        sems = [sub.at[a, f"{metric}_sem"] if a in sub.index else 0.0 for a in agents]
        bars = ax.bar(x + (i - (len(levels) - 1) / 2) * width, means, width, yerr=sems, capsize=3,
                      label=f"{factor}={level}")
        ax.bar_label(bars, fmt="%.1f", fontsize=7, padding=2)
    ax.set_xticks(x, agents)
    ax.set_ylabel(f"{metric.replace('_', ' ')} (%)")
    ax.set_ylim(-2, 108)
    ax.set_title(f"{metric.replace('_', ' ')} by {factor} (mean ± SEM)")
    _legend(ax)
    return _save(fig, out_dir, name or f"by_{factor}")


def _by_label(rows: pd.DataFrame, keys: Sequence[str]):
    labels = [_label(r, keys) for r in rows.to_dict("records")]
    for label in dict.fromkeys(labels):
        yield label, rows[[lab == label for lab in labels]]


def _legend(ax) -> None:
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)


def _time_unit(max_s: float):
    if max_s < 120:
        return "s", 1.0
    if max_s < 2 * 3600:
        return "min", 60.0
    return "h", 3600.0
