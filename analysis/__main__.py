"""`python -m analysis PATH... [--split NAME] [--pad-missing] [--json] [--out DIR] [--agent NAME]`

`python -m analysis --experiment-id ID [--runs-dir runs] [--run-groups CSV] [--num-seeds N] ...`: the
grading reports of an MLE-bench experiment, its run groups read from `runs/run_group_experiments.csv`
and their reports from `runs/<run group>/` as MLE-bench's `experiments/aggregate_grading_reports.py`
finds them, grouped under the experiment id whatever the folders are called (without it, a report's
agent is its folder's name less a `_groupN` suffix). Besides the usual tables it prints that script's
per-seed lines and each percentage's mean, 95% interval and SEM for `--split` (default split75).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from . import load, report, tables


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m analysis", description=(
        "Medal tables (mean ± SEM over seeds, as MLE-bench aggregates them), pass@k, time and "
        "hardware scaling and cost, for mleray sweep directories or MLE-bench grading report files."))
    p.add_argument("paths", nargs="*", type=Path,
                   help="sweep dirs, trials.jsonl files, grading report JSONs, or folders of them")
    p.add_argument("--experiment-id", help=(
        "an MLE-bench experiment id: its run groups' grading reports (runs/run_group_experiments.csv), "
        "instead of PATHs"))
    p.add_argument("--runs-dir", type=Path, default=Path("runs"), help=(
        "with --experiment-id: the folder of run-group folders (default: ./runs, as MLE-bench's runs/)"))
    p.add_argument("--run-groups", type=Path, help=(
        "with --experiment-id: the experiment -> run group CSV (default: RUNS_DIR/run_group_experiments.csv)"))
    p.add_argument("--num-seeds", type=int, default=-1, help=(
        "with --experiment-id: seeds to average in the per-seed summary; -1 (default) every complete seed"))
    p.add_argument("--split", help=(
        "low, medium, high, all (=split75), a suite name, a split file, or `present` "
        "(the competitions the data holds); default: every covered split"))
    p.add_argument("--pad-missing", action="store_true", help=(
        "count missing entries (competitions without records, incomplete seeds) as failures, "
        "as MLE-bench does"))
    p.add_argument("--json", action="store_true", help="print every table as JSON")
    p.add_argument("--out", type=Path, help="also write report.md and figures (PNG, SVG) here")
    p.add_argument("--agent", help="the agent name for every entry (default: records' agent, or a report's folder)")
    args = p.parse_args(argv)
    if bool(args.paths) == bool(args.experiment_id):
        p.error("give sweep or report PATHs, or --experiment-id ID (not both)")
    experiment = None
    try:
        paths = list(args.paths)
        if args.experiment_id:
            reports, skipped = load.experiment_reports(args.experiment_id, args.runs_dir, args.run_groups)
            for note in skipped:
                print(f"note: {note}", file=sys.stderr)
            paths = list(reports)
        df = load.load(paths, agent=args.agent or args.experiment_id)
        own = load.sweep_split(paths)
        a = report.analyze(df, args.split, args.pad_missing, own)
        if args.experiment_id:
            experiment = _experiment(args, df, paths, skipped)
        if args.out:
            path = report.build_report(df, args.out, args.split, args.pad_missing, own)
            print(f"wrote {path}", file=sys.stderr)
    except (ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    try:
        _print(a, args.json, experiment)
    except BrokenPipeError:  # `| head`
        sys.stdout = open(os.devnull, "w")
    return 0


def _experiment(args, df, reports, skipped) -> dict:
    """MLE-bench's aggregate of the experiment's reports for one split: per-seed metrics and their average."""
    split = args.split or "split75"
    seeds = tables.seed_metrics(df, split, args.num_seeds, args.pad_missing)
    average = tables.average_seed_metrics(seeds, seeds[0]["total_competitions"])
    return {"id": args.experiment_id, "split": split, "reports": [str(r) for r in reports], "skipped": skipped,
            "seeds": seeds, "average": average}


def _print(a, as_json: bool, experiment=None) -> None:
    if as_json:
        out = {"splits": a.splits,
               "tables": {name: json.loads(t.to_json(orient="records", force_ascii=False))
                          for name, t in a.tables.items()},
               "data": {name: json.loads(t.to_json(orient="records")) for name, t in a.data.items()},
               "notes": a.notes, "known_issues": a.footnotes}
        if experiment is not None:
            out["experiment"] = experiment
        print(json.dumps(out, indent=1, ensure_ascii=False))
        return
    print(report.render(a))
    if experiment is not None:
        print(f"## Experiment `{experiment['id']}`, split `{experiment['split']}`: per seed, as MLE-bench's "
              f"aggregate_grading_reports.py ({len(experiment['reports'])} grading reports)\n")
        print(tables.seed_lines(experiment["seeds"], experiment["average"]))


if __name__ == "__main__":
    sys.exit(main())
