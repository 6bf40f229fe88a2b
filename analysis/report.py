"""Every table for a set of trials, rendered as text or markdown with figures.

`analyze` picks the splits (those the data covers among low/medium/high/all, else the sweep's own
competitions), computes the leaderboard, a medal table per split, pass@k, time scaling (when
there are graded snapshots), ablations per varying factor (tier, ...) and cost, each table with a
note on what its split's records miss or pad. `render` prints them; `write_report` writes
`<sweep_dir>/report/report.md` with PNG/SVG figures.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional

import pandas as pd

from . import cost, figures, llm_scaling, load, passk, scaling, splits, tables
from .tables import PRESENT


@dataclass
class Analysis:
    splits: List[str]
    main_split: str
    keys: List[str]
    tables: Dict[str, pd.DataFrame] = field(default_factory=dict)  # printable, in print order
    titles: Dict[str, str] = field(default_factory=dict)
    data: Dict[str, pd.DataFrame] = field(default_factory=dict)  # numeric, for figures and --json
    footnotes: Dict[str, str] = field(default_factory=dict)  # competition_id → known issue
    notes: Dict[str, str] = field(default_factory=dict)  # table name → what its data miss or pad


def default_splits(df: pd.DataFrame, pad_missing: bool = False, sweep_split: Optional[str] = None) -> List[str]:
    """The standard splits the data covers (every competition present; with `pad_missing`, any),
    else the sweeps' own split (`load.sweep_split`: what they run, recorded yet or not), else the
    competitions present."""
    present = set(df["competition_id"].astype(str))
    out = []
    for name in splits.DEFAULT_SPLITS:
        try:
            ids = set(splits.split_ids(name))
        except ValueError:
            continue
        if ids and (ids <= present or (pad_missing and ids & present)):
            out.append(name)
    if out:
        return out
    if sweep_split:
        try:
            tables.competitions_of(sweep_split, df)
            return [sweep_split]
        except ValueError:  # a suite file gone since the sweep ran
            pass
    return [PRESENT]


def analyze(df: pd.DataFrame, split: Optional[str] = None, pad_missing: bool = False,
            sweep_split: Optional[str] = None) -> Analysis:
    names = [split] if split else default_splits(df, pad_missing, sweep_split)
    main = names[-1]
    keys = tables.group_keys(df)
    a = Analysis(splits=names, main_split=main, keys=keys)

    def add(name: str, title: str, table: pd.DataFrame, data: Optional[pd.DataFrame] = None):
        a.tables[name], a.titles[name] = table, title
        a.data[name] = table if data is None else data

    rows = [tables.medal_rows(df, name, pad_missing, keys) for name in names]
    notes = {name: tables.split_note(r, keys) if len(r) else "no records yet" for name, r in zip(names, rows)}
    if len(names) > 1:
        add("leaderboard", "Any medal (%) by split, mean ± SEM over seeds",
            tables.leaderboard(df, names, pad_missing, keys))
        a.notes["leaderboard"] = "; ".join(f"`{name}`: {note}" for name, note in notes.items() if note)
    for name, r in zip(names, rows):
        add(f"medals_{name}", f"Medal table, split `{name}` (mean ± SEM over seeds, %)",
            tables.medal_table(df, name, pad_missing, keys), r)
        if not len(r):  # else each row's note is in the table
            a.notes[f"medals_{name}"] = notes[name]
    a.data["medal_rows"] = pd.concat(rows, ignore_index=True)

    issues = splits.known_issues()
    covered = set(df["competition_id"].astype(str))
    for name in names:
        ids = set(tables.competitions_of(name, df))
        a.footnotes.update({cid: issues[cid] for cid in sorted(ids & covered) if cid in issues})
    a.footnotes = dict(sorted(a.footnotes.items()))
    add("per_competition", f"Per competition, split `{main}` (over all entries)",
        tables.per_competition(df, main, keys, a.footnotes))

    pk = passk.pass_at_k_table(df, main, pad_missing=pad_missing, by=keys)
    shown = pk.pivot_table(index=keys, columns="k", values="pass_at_k").reset_index() if len(pk) else pk[keys]
    shown.columns = [c if isinstance(c, str) else f"pass@{c} (%)" for c in shown.columns]
    add("pass_at_k", f"pass@k (any medal), split `{main}`", shown, pk)

    if any(scaling.graded_snapshots(s) for s in df["snapshots"]):
        ts = scaling.time_scaling(df, main, pad_missing=pad_missing, by=keys)
        shown = ts[keys + ["time_s", "n_seeds"]].copy()
        for m, label in (("valid_submission", "Valid"), ("above_median", "Above median"), ("any_medal", "Any medal")):
            shown[f"{label} (%)"] = [tables.cell(x, s) for x, s in zip(ts[f"{m}_mean"], ts[f"{m}_sem"])]
        add("time_scaling", f"Medal rate vs elapsed time (latest graded snapshot), split `{main}`", shown, ts)

    if cost.has_llm(df) and any(scaling.graded_snapshots(s) for s in df["snapshots"]):
        for axis, label in (("tokens", "tokens"), ("usd", "dollars")):
            ls = llm_scaling.spend_scaling(df, main, axis, pad_missing=pad_missing, by=keys)
            if ls.empty:
                continue
            column = llm_scaling.AXES[axis]
            shown = ls[keys + [column, "n_seeds"]].copy()
            shown["Any medal (%)"] = [tables.cell(x, s) for x, s in zip(ls["any_medal_mean"], ls["any_medal_sem"])]
            add(f"llm_{axis}", f"Medal rate vs cumulative LLM {label} (latest graded snapshot), split `{main}`",
                shown, ls)

    for factor in scaling.varying_factors(df):
        ft = scaling.factor_table(df, main, factor, pad_missing=pad_missing,
                                  by=[k for k in keys if k != factor] or ["agent"])
        if ft.empty:
            continue
        shown = ft[["agent", factor, "n_seeds"]].copy()
        for m, label in (("valid_submission", "Valid"), ("above_median", "Above median"), ("any_medal", "Any medal")):
            shown[f"{label} (%)"] = [tables.cell(x, s) for x, s in zip(ft[f"{m}_mean"], ft[f"{m}_sem"])]
            shown[f"Δ {label}"] = [tables.cell(x, s) for x, s in zip(ft[f"{m}_diff"], ft[f"{m}_diff_se"])]
        reference = ft["reference"].iloc[0]
        add(f"by_{factor}", f"Ablation by `{factor}` (Δ vs `{reference}` ± SE), split `{main}`", shown, ft)

    for name in a.tables:
        if name in ("per_competition", "pass_at_k", "time_scaling", "llm_tokens", "llm_usd") or name.startswith("by_"):
            a.notes[name] = notes[main]

    failed = df[df["status"] == "failed"]
    if not failed.empty:
        shown = failed[keys + ["competition_id", "seed", "attempt", "reason"]].copy()
        shown["reason"] = [r if len(r) <= 160 else r[:157] + "..." for r in shown["reason"].astype(str)]
        add("failed", f"Failed trials ({len(failed)}; each counts as a failing entry)",
            shown.sort_values(keys + ["competition_id", "seed"], ignore_index=True))

    if (df["agent_s"] > 0).any():
        ct = cost.cost_table(df, keys)
        shown = ct.copy()
        for col in shown.columns[len(keys) + 2:]:
            shown[col] = [f"{v:.3g}" if pd.notna(v) else "—" for v in shown[col]]
        add("cost", "Cost in hours (requested CPUs/GPUs × agent time)", shown, ct)

    return a


def render(a: Analysis, figure_paths: Optional[Dict[str, Path]] = None, base: Optional[Path] = None) -> str:
    """Markdown: each table under its title and note, its figure (if any) below it, known issues last."""
    figure_paths = figure_paths or {}
    mark = " [^issues]" if a.footnotes else ""
    parts = []
    for name, table in a.tables.items():
        parts.append(f"## {a.titles[name]}{mark if name.startswith(('leaderboard', 'medals_')) else ''}\n")
        if a.notes.get(name):
            parts.append(f"Note: {a.notes[name]}.\n")
        parts.append(tables.markdown(table) + "\n")
        if name in figure_paths:
            rel = figure_paths[name].relative_to(base) if base else figure_paths[name]
            parts.append(f"![{a.titles[name]}]({rel})\n")
    if a.footnotes:
        ids = ", ".join(f"`{cid}`" for cid in a.footnotes)
        lines = [f"[^issues]: These results include competitions with known issues: {ids}."]
        lines += [f"[^{cid}]: Known issue — {note}." for cid, note in a.footnotes.items()]
        parts.append("\n".join(lines) + "\n")
    return "\n".join(parts)


def write_figures(a: Analysis, out_dir: Path) -> Dict[str, Path]:
    """PNG + SVG figures of the tables that have numbers; returns table name → PNG path of its figure."""
    out: Dict[str, Path] = {}
    rows = a.data["medal_rows"]
    if (rows["n_seeds"] > 0).any():
        out["medals_" + a.splits[-1] if len(a.splits) == 1 else "leaderboard"] = \
            figures.medal_rates(rows, a.keys, out_dir)[0]
    if len(a.data["pass_at_k"]):
        out["pass_at_k"] = figures.pass_at_k(a.data["pass_at_k"], a.keys, out_dir)[0]
    for name, data in a.data.items():
        if name == "time_scaling" and (data["n_seeds"] > 0).any():
            out[name] = figures.time_scaling(data, a.keys, out_dir)[0]
        if name in ("llm_tokens", "llm_usd") and (data["n_seeds"] > 0).any():
            out[name] = llm_scaling.spend_figure(data, a.keys, out_dir, axis=name[4:])[0]
        if name.startswith("by_") and (data["n_seeds"] > 0).any():
            out[name] = figures.factor_comparison(data, name[3:], out_dir, name)[0]
    return out


def build_report(df: pd.DataFrame, out_dir: Path, split: Optional[str] = None, pad_missing: bool = False,
                 sweep_split: Optional[str] = None, title: str = "mleray report") -> Path:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    a = analyze(df, split, pad_missing, sweep_split)
    figs = write_figures(a, out_dir / "figures")
    agents = ", ".join(sorted(df["agent"].astype(str).unique()))
    failed = int((df["status"] == "failed").sum())
    head = (f"# {title}\n\n{len(df)} trials ({len(df) - failed} graded, {failed} failed); agents: {agents}; "
            f"{df['competition_id'].nunique()} competitions; splits: {', '.join(a.splits)}.\n"
            "Aggregation as MLE-bench's experiments/aggregate_grading_reports.py.\n")
    path = out_dir / "report.md"
    path.write_text(head + "\n" + render(a, figs, out_dir))
    return path


def write_report(sweep_dir: Path) -> Path:
    """The sweep driver's hook: `<sweep_dir>/report/report.md` plus figures; returns the md path.
    Uses the competitions the sweep runs (from its config.yaml) when they are not an MLE-bench split;
    incomplete seeds are padded with failing entries so a partly finished sweep still reports."""
    sweep_dir = Path(sweep_dir)
    df = load.load([sweep_dir])
    return build_report(df, sweep_dir / "report", pad_missing=True, sweep_split=load.sweep_split([sweep_dir]),
                        title=f"Sweep `{sweep_dir.name}`")
