"""Medal rates per split, aggregated exactly as MLE-bench's `experiments/aggregate_grading_reports.py`.

For each group (an agent, or agent × tier) and split: seed i of a competition is the group's i-th
entry of that competition in reading order (the frame's `order`); a seed's percentage is over all
the split's competitions; the table gives the mean over seeds and the SEM (ddof=1, 0 for one seed).
The number of seeds is the smallest entry count across the split's competitions; with
`pad_missing` it is the largest, and missing entries count as failing (no submission, no medal).
A group with a competition of the split missing gets no numbers unless `pad_missing` (MLE-bench
raises there); every row says in words what its numbers leave out or pad.
"""

from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import pandas as pd

from . import splits

METRICS: Tuple[Tuple[str, str], ...] = (
    ("submission_exists", "Made submission"),
    ("valid_submission", "Valid"),
    ("above_median", "Above median"),
    ("bronze_medal", "Bronze"),
    ("silver_medal", "Silver"),
    ("gold_medal", "Gold"),
    ("any_medal", "Any medal"),
)
METRIC_NAMES = tuple(name for name, _ in METRICS)
SUMMARY_METRICS = ("submission_exists", "valid_submission", "above_median", "any_medal")
PRESENT = "present"  # pseudo-split: the competitions the data holds


def group_keys(df: pd.DataFrame) -> List[str]:
    """agent, plus tier when the frame holds more than one tier."""
    return ["agent", "tier"] if df["tier"].nunique() > 1 else ["agent"]


class Split(str):
    """A split given by its competitions rather than looked up by name: what a sweep's config.yaml
    runs ("titanic (1 of offline-lite's 3)"). A str, so it names tables like any split."""

    ids: List[str]

    def __new__(cls, name: str, ids: Sequence[str]):
        split = super().__new__(cls, name)
        split.ids = list(ids)
        return split


def competitions_of(split: str, df: pd.DataFrame) -> List[str]:
    if isinstance(split, Split):
        return list(split.ids)
    if split == PRESENT:
        return sorted(df["competition_id"].astype(str).unique())
    return splits.split_ids(split)


def listed(ids: Sequence[str], limit: int = 5) -> str:
    return ", ".join(ids[:limit]) + (", ..." if len(ids) > limit else "")


def _count(n: int, word: str, plural: str = "") -> str:
    return f"{n} {word if n == 1 else plural or word + 's'}"


def coverage(counts: Dict[str, int], split: str, pad_missing: bool = False) -> Tuple[int, str, str]:
    """(seeds, error, note) for a group with `counts[cid]` entries of each competition of the
    split, as MLE-bench builds seeds: `error` says why there are no numbers, `note` what the
    numbers leave out (entries past the complete seeds) or pad (missing entries, as failures)."""
    n = len(counts)
    missing = [cid for cid, k in counts.items() if k == 0]
    if len(missing) == n:
        return 0, (f"none of the {n} competitions of split {split} has records" if n
                   else f"split {split} holds no competitions"), ""
    have = f"{n - len(missing)} of {n} competitions of split {split} have records"
    if missing and not pad_missing:
        return 0, (f"{have}; {len(missing)} missing ({listed(missing)}) — "
                   "pass --pad-missing to count them as failures"), ""
    seeds = max(counts.values()) if pad_missing else min(counts.values())
    gaps = sum(abs(seeds - k) for k in counts.values())
    if not gaps:
        return seeds, "", ""
    entries = _count(gaps, "entry", "entries")
    if pad_missing:
        absent = f"; {len(missing)} missing ({listed(missing)})" if missing else ""
        return seeds, "", (f"{have}{absent}; {entries} missing from {_count(seeds, 'seed')} "
                           "counted as failures (--pad-missing)")
    return seeds, "", (f"{entries} past the {_count(seeds, 'complete seed')} left out — "
                       "pass --pad-missing to keep incomplete seeds, their missing entries as failures")


def seed_matrix(group: pd.DataFrame, competition_ids: Sequence[str], num_seeds: int,
                columns: Sequence[str] = METRIC_NAMES) -> np.ndarray:
    """Boolean array (seeds, competitions, columns): entry i of each competition in reading order
    is seed i; a competition with fewer than `num_seeds` entries is padded with failing ones."""
    group = group.sort_values("order", kind="stable")
    per_comp = {cid: g[list(columns)].to_numpy(dtype=bool) for cid, g in group.groupby("competition_id", sort=False)}
    out = np.zeros((num_seeds, len(competition_ids), len(columns)), dtype=bool)
    for j, cid in enumerate(competition_ids):
        rows = per_comp.get(cid, np.zeros((0, len(columns)), dtype=bool))[:num_seeds]
        out[: len(rows), j, :] = rows
    return out


def mean_sem(values: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Mean and SEM (ddof=1; 0 for one seed) over axis 0."""
    values = np.asarray(values, dtype=float)
    mean = values.mean(axis=0)
    if len(values) < 2:
        return mean, np.zeros_like(mean)
    return mean, values.std(axis=0, ddof=1) / np.sqrt(len(values))


def medal_rows(df: pd.DataFrame, split: str, pad_missing: bool = False,
               by: Optional[List[str]] = None) -> pd.DataFrame:
    """One row per group: n_seeds, n_competitions, `error` (why a group has no numbers), `note`
    (what its numbers leave out or pad), `<metric>_mean`, `<metric>_sem` (percent; NaN without numbers)."""
    by = by or group_keys(df)
    ids = competitions_of(split, df)
    columns = [m for m, _ in METRICS]
    rows = []
    for key, group in df.groupby(by, sort=True):
        key = key if isinstance(key, tuple) else (key,)
        counts = group["competition_id"].value_counts()
        num_seeds, error, note = coverage({cid: int(counts.get(cid, 0)) for cid in ids}, split, pad_missing)
        row: Dict[str, object] = dict(zip(by, key), split=split, n_competitions=len(ids), n_seeds=num_seeds,
                                      error=error, note=note)
        if num_seeds:
            mean, sem = mean_sem(seed_matrix(group, ids, num_seeds, columns).mean(axis=1) * 100)
            for i, m in enumerate(columns):
                row[f"{m}_mean"], row[f"{m}_sem"] = float(mean[i]), float(sem[i])
        rows.append(row)
    return pd.DataFrame(rows, columns=by + ["split", "n_competitions", "n_seeds", "error", "note"]
                        + [f"{m}_{s}" for m in columns for s in ("mean", "sem")])


def split_note(rows: pd.DataFrame, by: Sequence[str]) -> str:
    """The medal rows' errors and notes in one line: once when every group shares it, else per group."""
    texts = {" / ".join(str(r[k]) for k in by): r["error"] or r["note"] for r in rows.to_dict("records")}
    if len(set(texts.values())) == 1:
        return next(iter(texts.values()))
    return "; ".join(f"{group}: {text}" for group, text in texts.items() if text)


def cell(mean: float, sem: float) -> str:
    """MLE-bench README style: 62.12±1.52."""
    if mean is None or pd.isna(mean):
        return "—"
    return f"{mean:.2f}±{sem:.2f}"


def medal_table(df: pd.DataFrame, split: str, pad_missing: bool = False,
                by: Optional[List[str]] = None, metrics: Sequence[str] = METRIC_NAMES) -> pd.DataFrame:
    """The printable medal table of one split: a column per metric, cells `mean±sem`."""
    rows = medal_rows(df, split, pad_missing, by)
    by = by or group_keys(df)
    labels = dict(METRICS)
    out = rows[by + ["n_seeds", "n_competitions"]].copy()
    for m in metrics:
        out[f"{labels[m]} (%)"] = [cell(r.get(f"{m}_mean"), r.get(f"{m}_sem")) for r in rows.to_dict("records")]
    notes = [e or n for e, n in zip(rows["error"], rows["note"])]
    if any(notes):
        out["note"] = notes
    return out


def leaderboard(df: pd.DataFrame, split_names: Sequence[str] = splits.DEFAULT_SPLITS,
                pad_missing: bool = False, by: Optional[List[str]] = None) -> pd.DataFrame:
    """MLE-bench README's leaderboard: any-medal % mean±SEM per split, a row per group."""
    by = by or group_keys(df)
    out = None
    for name in split_names:
        rows = medal_rows(df, name, pad_missing, by)
        col = pd.DataFrame({**{k: rows[k] for k in by},
                            f"{name.capitalize()} (%)": [cell(r.get("any_medal_mean"), r.get("any_medal_sem"))
                                                         for r in rows.to_dict("records")]})
        out = col if out is None else out.merge(col, on=by, how="outer")
    return out


def markdown(table: pd.DataFrame) -> str:
    """A pipe table (no dependency on tabulate)."""
    if table is None or table.empty:
        return "(no rows)"
    cols = [str(c) for c in table.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for row in table.itertuples(index=False):
        lines.append("| " + " | ".join(_fmt(v) for v in row) + " |")
    return "\n".join(lines)


def _fmt(v) -> str:
    if isinstance(v, float):
        return "—" if np.isnan(v) else f"{v:.2f}"
    return str(v).replace("|", "\\|")


def sweep_summary(df: pd.DataFrame, pad_missing: bool = True) -> str:
    """The end-of-sweep table: per agent and tier, over the sweep's competitions, made submission %,
    valid %, above median %, any medal % (mean±SEM over seeds)."""
    if df.empty:
        return "(no finished trials)"
    by = ["agent", "tier"]
    table = medal_table(df, PRESENT, pad_missing, by, SUMMARY_METRICS)
    failed = df.groupby(by)["status"].apply(lambda s: int((s == "failed").sum())).reset_index(name="failed")
    table = table.merge(failed, on=by, how="left")
    if "note" in table:
        table["note"] = table.pop("note")  # last, after `failed`
    return markdown(table)


def per_competition(df: pd.DataFrame, split: str, by: Optional[List[str]] = None,
                    notes: Optional[Dict[str, str]] = None) -> pd.DataFrame:
    """A row per group and competition of the split that the data holds: entries, valid %,
    above median %, any medal % over its entries, mean score; a competition with a known issue
    gets a footnote marker `[^<id>]` after its id."""
    by = by or group_keys(df)
    notes = notes or {}
    ids = competitions_of(split, df)
    d = df[df["competition_id"].isin(ids)].copy()
    d["score"] = pd.to_numeric(d["score"], errors="coerce")
    out = d.groupby(by + ["competition_id"], sort=True).agg(
        entries=("order", "size"), valid=("valid_submission", "mean"), above_median=("above_median", "mean"),
        any_medal=("any_medal", "mean"), mean_score=("score", "mean")).reset_index()
    for col in ("valid", "above_median", "any_medal"):
        out[col] = out[col] * 100
    out["mean_score"] = [f"{v:.4g}" if pd.notna(v) else "—" for v in out["mean_score"]]
    out["competition_id"] = [f"{c}[^{c}]" if c in notes else c for c in out["competition_id"]]
    return out.rename(columns={"valid": "Valid (%)", "above_median": "Above median (%)",
                               "any_medal": "Any medal (%)", "mean_score": "Mean score"})


# MLE-bench's `experiments/aggregate_grading_reports.py` output: its per-seed lines and the mean, SEM
# and 95% interval of each percentage, for one group and split, with its field names.
SEED_FIELDS: Tuple[Tuple[str, str], ...] = (
    ("submission_exists_percentage", "submission_exists"),
    ("valid_submissions_percentage", "valid_submission"),
    ("above_median_percentage", "above_median"),
    ("gold_medal_percentage", "gold_medal"),
    ("silver_medal_percentage", "silver_medal"),
    ("bronze_medal_percentage", "bronze_medal"),
    ("any_medal_percentage", "any_medal"),
)


def seed_metrics(group: pd.DataFrame, split: str, num_seeds: int = -1, pad_missing: bool = False) -> List[Dict]:
    """One dict per seed as MLE-bench's `calculate_metrics_for_a_seed` (total_competitions, then each
    `<metric>_percentage` = count / total * 100), seeds built as its `build_complete_seeds` builds them
    (`num_seeds` -1: every complete seed; with `pad_missing`, every seed, missing entries failing).
    ValueError, with MLE-bench's reason, when no seed can be built."""
    ids = competitions_of(split, group)
    if not ids:
        raise ValueError(f"split {split} holds no competitions")
    counts = group["competition_id"].value_counts()
    have = {cid: int(counts.get(cid, 0)) for cid in ids}
    missing = [cid for cid, k in have.items() if k == 0]
    if missing and not pad_missing:
        raise ValueError(f"missing reports for competitions: {', '.join(missing)}; cannot build complete seeds "
                         "(pass --pad-missing to count them as failures)")
    available = max(have.values()) if pad_missing else min(have.values())
    if available == 0:
        raise ValueError("no reports available to form any seed")
    seeds = available if num_seeds == -1 else min(num_seeds, available)
    if seeds <= 0:
        raise ValueError("no seeds requested or available after evaluating competition coverage")
    flags = seed_matrix(group, ids, seeds, [column for _, column in SEED_FIELDS])
    out = []
    for matrix in flags:
        total = len(ids)
        row: Dict = {"total_competitions": total}
        for j, (name, _) in enumerate(SEED_FIELDS):
            row[name] = int(matrix[:, j].sum()) / total * 100
        out.append(row)
    return out


def average_seed_metrics(seeds: List[Dict], num_competitions: int) -> Dict:
    """MLE-bench's `average_metrics_across_seeds`: per field, the mean over seeds, the SEM (ddof=1, 0 for one
    seed) and mean ∓ 1.96 SEM; `num_seeds_averaged`, `num_competitions_per_seed`."""
    if not seeds:
        raise ValueError("no complete seeds found; each seed must have the expected number of competitions")
    metrics: Dict[str, Dict[str, float]] = {}
    for key in seeds[0]:
        values = [float(s[key]) for s in seeds]
        mean = float(np.mean(values))
        sem = float(np.std(values, ddof=1) / len(values) ** 0.5) if len(values) > 1 else 0.0
        metrics[key] = {"mean": mean, "ci_lower": mean - 1.96 * sem, "ci_upper": mean + 1.96 * sem,
                        "standard_error": sem}
    return {"num_seeds_averaged": len(seeds), "num_competitions_per_seed": num_competitions, "metrics": metrics}


def seed_lines(seeds: List[Dict], average: Dict) -> str:
    """The per-seed lines and the averages, as text: `Seed 1: total_competitions=75, ...`, then a table
    of mean, 95% CI and SEM per field."""
    lines = [f"Seed {i}: " + ", ".join(f"{k}={v}" for k, v in s.items()) for i, s in enumerate(seeds, 1)]
    lines.append(f"Average over {average['num_seeds_averaged']} seed(s) of "
                 f"{average['num_competitions_per_seed']} competitions:")
    rows = [{"metric": k, "mean": m["mean"], "95% CI": f"[{m['ci_lower']:.2f}, {m['ci_upper']:.2f}]",
             "SEM": m["standard_error"]} for k, m in average["metrics"].items()]
    return "\n".join(lines) + "\n\n" + markdown(pd.DataFrame(rows))
