"""Grading against the pandas floor: time and peak memory of grading one submission, at 10k, 100k, 1M rows.

Two competitions, each a local one with a sample submission and private answers:
- accuracy: the narrowest file, `id,label` with integer ids and digit labels (MLE-bench's digit-recognizer
  shape, about 8.5 bytes a row at 1M rows);
- rmse: text ids (`img_0000001`) and full-precision float predictions.

For each, in one run and each measure in a fresh subprocess:
- the floor: pandas reading the answers and the submission, merging on the id and computing the metric,
  nothing else (no checks, no copy, no ranking);
- mleray: `grade_submission(prepared, path, follow_links=False)`, what the runner does with an agent's
  file (private copy, pre-checks, the format checks, the metric, ranking), the process's first grade;
- mleray, a snapshot: the same process grading a second file of the same competition (the answers
  already held in memory), and a third whose content equals one already graded (the grade reused).

Peak memory is the child's VmHWM (the kernel's high-water mark of its resident set), as the total and as
growth above the resident set once its imports are done. Times are wall seconds of the work alone. The
targets (issue 18): at 1M rows mleray within 2x the floor's time and 1.5x its peak memory.

    python bench/grading.py                 # 10k, 100k, 1M rows
    python bench/grading.py --rows 10000    # one size

Writes bench/results/grading.json and bench/results/grading.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import json, sys, time
from pathlib import Path

def status(field):
    with open("/proc/self/status") as f:
        return int(next(l.split()[1] for l in f if l.startswith(field + ":"))) / 1024

mode, metric, root, sub = sys.argv[1], sys.argv[2], Path(sys.argv[3]), Path(sys.argv[4])
if mode == "floor":
    import numpy as np
    import pandas as pd
else:
    from mleray.competitions import Competition, PreparedCompetition
    from mleray.grading import grade_submission
    target = "label" if metric == "accuracy" else "y"
    comp = Competition(id="bench-" + metric, name="bench", root=root, metric=metric, id_column="id",
                       target_columns=[target], sample_submission="sample_submission.csv",
                       answers="answers.csv", leaderboard=None, source="local", version="1")
    prepared = PreparedCompetition(comp, root / "public", root / "private")
base = status("VmRSS")
t0 = time.perf_counter()
if mode == "floor":
    answers = pd.read_csv(root / "private" / "answers.csv")
    submission = pd.read_csv(sub)
    merged = answers.merge(submission, on="id", suffixes=("_true", "_pred"))
    if metric == "accuracy":
        score = float((merged["label_true"] == merged["label_pred"]).mean())
    else:
        score = float(np.sqrt(np.mean((merged["y_true"] - merged["y_pred"]) ** 2)))
    valid = True
else:
    memo = {}  # what the runner keeps across a trial's files
    grade = grade_submission(prepared, sub, follow_links=False, memo=memo)
    score, valid = grade["score"], grade["valid_submission"]
    assert valid, grade["reason"]
seconds = time.perf_counter() - t0
out = {"seconds": seconds, "peak_mib": status("VmHWM"), "base_mib": base, "score": score}
if mode == "snapshots":  # the same process: a second file (answers held), then a repeat of the first
    t0 = time.perf_counter()
    second = grade_submission(prepared, Path(sys.argv[5]), follow_links=False, memo=memo)
    out["second_seconds"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    again = grade_submission(prepared, sub, follow_links=False, memo=memo)
    out["repeat_seconds"] = time.perf_counter() - t0
    out["second_score"], out["repeat_score"] = second["score"], again["score"]
    out["peak_after_mib"] = status("VmHWM")
print(json.dumps(out))
"""


def write_case(folder: Path, metric: str, rows: int, seed: int = 0) -> tuple[Path, Path, Path]:
    """A competition folder (public/sample_submission.csv, private/answers.csv) and two submissions."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    public, private = folder / "public", folder / "private"
    public.mkdir(parents=True, exist_ok=True)
    private.mkdir(parents=True, exist_ok=True)
    if metric == "accuracy":
        ids = pd.Series(np.arange(1, rows + 1))
        truth = rng.integers(0, 10, rows)
        pred = np.where(rng.random(rows) < 0.9, truth, rng.integers(0, 10, rows))
        pred2 = np.where(rng.random(rows) < 0.8, truth, rng.integers(0, 10, rows))
        column, fill = "label", 0
    else:
        ids = pd.Series([f"img_{i:07d}" for i in range(rows)])
        truth = rng.random(rows)
        pred, pred2 = truth + rng.normal(0, 0.1, rows), truth + rng.normal(0, 0.2, rows)
        column, fill = "y", 0.5
    pd.DataFrame({"id": ids, column: truth}).to_csv(private / "answers.csv", index=False)
    pd.DataFrame({"id": ids, column: fill}).to_csv(public / "sample_submission.csv", index=False)
    first, second = folder / "submission.csv", folder / "submission_2.csv"
    pd.DataFrame({"id": ids, column: pred}).to_csv(first, index=False)
    pd.DataFrame({"id": ids, column: pred2}).to_csv(second, index=False)
    return folder, first, second


def child(mode: str, metric: str, root: Path, *subs: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    out = subprocess.run([sys.executable, "-c", CHILD, mode, metric, str(root), *map(str, subs)],
                         capture_output=True, text=True, env=env, timeout=900)
    if out.returncode != 0:
        raise SystemExit(f"{mode} {metric} failed: {out.stderr[-2000:]}")
    return json.loads(out.stdout.splitlines()[-1])


def measure(metric: str, rows: int, folder: Path, repeats: int) -> dict:
    root, sub, sub2 = write_case(folder, metric, rows)
    size = sub.stat().st_size
    runs: dict = {"floor": [], "mleray": []}
    for _ in range(repeats):  # interleaved, so the machine's load falls on both alike
        runs["floor"].append(child("floor", metric, root, sub))
        runs["mleray"].append(child("mleray", metric, root, sub))
    snaps = child("snapshots", metric, root, sub, sub2)
    floor = min(runs["floor"], key=lambda r: r["seconds"])
    ours = min(runs["mleray"], key=lambda r: r["seconds"])
    floor_peak = min(r["peak_mib"] for r in runs["floor"])
    ours_peak = min(r["peak_mib"] for r in runs["mleray"])
    floor_growth = min(r["peak_mib"] - r["base_mib"] for r in runs["floor"])
    ours_growth = min(r["peak_mib"] - r["base_mib"] for r in runs["mleray"])
    assert abs(floor["score"] - ours["score"]) < 1e-5, (floor["score"], ours["score"])
    assert snaps["repeat_score"] == ours["score"]
    return {
        "metric": metric, "rows": rows, "file_mib": round(size / 2**20, 2), "score": ours["score"],
        "floor_s": round(floor["seconds"], 3), "mleray_s": round(ours["seconds"], 3),
        "time_ratio": round(ours["seconds"] / floor["seconds"], 2),
        "floor_peak_mib": round(floor_peak, 1), "mleray_peak_mib": round(ours_peak, 1),
        "peak_ratio": round(ours_peak / floor_peak, 2),
        "floor_growth_mib": round(floor_growth, 1), "mleray_growth_mib": round(ours_growth, 1),
        "growth_ratio": round(ours_growth / max(floor_growth, 1e-9), 2),
        "growth_per_file_size": round(ours_growth / (size / 2**20), 2),
        "snapshot_s": round(snaps["second_seconds"], 3), "repeat_s": round(snaps["repeat_seconds"], 4),
        "snapshot_vs_floor": round(snaps["second_seconds"] / floor["seconds"], 2),
        "all_runs": runs,
    }


def markdown(report: dict) -> str:
    lines = [
        "# Grading against the pandas floor",
        "",
        f"Measured {report['measured_at']} on {report['cpus']} cores (shared with other work), Python "
        f"{report['python']}, pandas {report['pandas']}, pyarrow {report['pyarrow']}. One run: "
        f"`{report['command']}`; each figure the best of {report['repeats']} fresh subprocesses, floor and "
        "mleray interleaved.",
        "The floor: pandas reads the answers and the submission, merges on the id, computes the metric. mleray: "
        "`grade_submission(..., follow_links=False)` as the runner calls it (private copy, pre-checks, format "
        "checks, metric, ranking), the first grade of a fresh process. Peak: the child's VmHWM; growth: the peak "
        "above the resident set once imports are done.",
        "",
        "| metric | rows | file | floor s | mleray s | **time x** | floor peak | mleray peak | **peak x** "
        "| growth floor / mleray | growth / file | next snapshot s | same-content snapshot s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in report["cases"]:
        lines.append(
            f"| {r['metric']} | {r['rows']:,} | {r['file_mib']} MiB | {r['floor_s']} | {r['mleray_s']} | "
            f"**{r['time_ratio']}** | {r['floor_peak_mib']} MiB | {r['mleray_peak_mib']} MiB | **{r['peak_ratio']}** | "
            f"{r['floor_growth_mib']} / {r['mleray_growth_mib']} MiB | {r['growth_per_file_size']}x | "
            f"{r['snapshot_s']} | {r['repeat_s']} |")
    lines += ["", "Targets at 1M rows: time x < 2, peak x < 1.5. "
              "`next snapshot`: a second file of the same competition graded in the same process (answers, sample "
              "and ids already held); `same-content snapshot`: a file whose content was already graded (the grade "
              "is reused).", ""]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="*", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--metrics", nargs="*", default=["accuracy", "rmse"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "grading"))
    args = parser.parse_args(argv)
    import pandas as pd
    import pyarrow as pa

    cases = []
    with tempfile.TemporaryDirectory(prefix="mleray-bench-grading-") as tmp:
        for metric in args.metrics:
            for rows in args.rows:
                result = measure(metric, rows, Path(tmp) / f"{metric}-{rows}", args.repeats)
                print(json.dumps({k: v for k, v in result.items() if k != "all_runs"}), flush=True)
                cases.append(result)
    report = {
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "cpus": os.cpu_count(),
        "python": platform.python_version(), "pandas": pd.__version__, "pyarrow": pa.__version__,
        "repeats": args.repeats, "command": "python bench/grading.py " + " ".join(argv or sys.argv[1:]),
        "cases": cases,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    out.with_suffix(".md").write_text(markdown(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
