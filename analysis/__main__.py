"""`python -m analysis PATH... [--split NAME] [--pad-missing] [--json] [--out DIR] [--agent NAME]`"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from . import load, report


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m analysis", description=(
        "Medal tables (mean ± SEM over seeds, as MLE-bench aggregates them), pass@k, time and "
        "hardware scaling and cost, for mleray sweep directories or MLE-bench grading report files."))
    p.add_argument("paths", nargs="+", type=Path,
                   help="sweep dirs, trials.jsonl files, grading report JSONs, or folders of them")
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
    try:
        df = load.load(args.paths, agent=args.agent)
        own = load.sweep_split(args.paths)
        a = report.analyze(df, args.split, args.pad_missing, own)
        if args.out:
            path = report.build_report(df, args.out, args.split, args.pad_missing, own)
            print(f"wrote {path}", file=sys.stderr)
    except (ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    try:
        _print(a, args.json)
    except BrokenPipeError:  # `| head`
        sys.stdout = open(os.devnull, "w")
    return 0


def _print(a, as_json: bool) -> None:
    if as_json:
        out = {"splits": a.splits,
               "tables": {name: json.loads(t.to_json(orient="records", force_ascii=False))
                          for name, t in a.tables.items()},
               "data": {name: json.loads(t.to_json(orient="records")) for name, t in a.data.items()},
               "notes": a.notes, "known_issues": a.footnotes}
        print(json.dumps(out, indent=1, ensure_ascii=False))
    else:
        print(report.render(a))


if __name__ == "__main__":
    sys.exit(main())
