"""`mleray grade`: MLE-bench's grading commands, for local and MLE-bench competitions alike.

    mleray grade SUBMISSION.csv COMPETITION_ID       one entry, printed as JSON (MLE-bench's `grade-sample`)
    mleray grade --jsonl FILE [--out DIR]            a grading report (MLE-bench's `grade --submission`)
    mleray grade --sweep SWEEP_DIR [--out DIR]       a sweep's trials.jsonl as grading reports, one per
                                                     (agent, tier), in SWEEP_DIR/report/grading_reports/

MLE-bench's own command lines work with `mleray` in place of `mlebench`, with the same report:
`mleray grade --submission FILE.jsonl --output-dir DIR [--data-dir D]` (= --jsonl/--out) and
`mleray grade-sample SUBMISSION.csv COMPETITION_ID [--data-dir D]` (also `mleray grade grade-sample ...`).

The JSONL has one `{"competition_id": ..., "submission_path": ...}` per line (blank lines and lines
starting with # or // are skipped, as MLE-bench does). The report is written to
`DIR/<timestamp>_grading_report.json` (DIR defaults to the JSONL's folder) with exactly MLE-bench's
summary counts and entry fields; the summary is printed. A single entry is printed with MLE-bench's
fields plus `reason` (empty when the submission is valid).

A SUBMISSION.csv that does not exist is an error (in a JSONL it is an entry without a submission, as
in MLE-bench).

The files are the user's own (the host's owner runs this), so a symbolic link is followed; everything
else a trial's grader does holds: a file over `--max-submission-mb` (default 1024, the sweep's
`max_submission_mb`) or one that is not a regular file (a FIFO, a device) is an invalid entry with
the reason, the cheap pre-checks refuse a hostile file before it is parsed, and reasons are bounded.

Before grading anything, every competition named is checked (unknown ids, MLE-bench data
not prepared, official package missing); problems are printed one per line and the exit status is 2.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

from mleray.trial.agent_files import MAX_SUBMISSION_MB


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="mleray grade",
        description="Grade a submission CSV for one competition, or a JSONL of submissions into an "
                    "MLE-bench grading report.")
    p.add_argument("submission", nargs="?", help="path to the submission CSV")
    p.add_argument("competition_id", nargs="?", help="competition id (local or MLE-bench)")
    p.add_argument("--jsonl", "--submission", dest="jsonl", type=Path,
                   help="JSONL of {competition_id, submission_path} lines (MLE-bench's format; --submission as "
                        "in `mlebench grade`)")
    p.add_argument("--sweep", type=Path, help="a sweep folder (runs/<sweep>/): export its trials as grading reports")
    p.add_argument("--out", "--output-dir", dest="out", type=Path,
                   help="folder for the grading report(s) (default: the JSONL's folder; for --sweep, "
                        "SWEEP_DIR/report/grading_reports; --output-dir as in `mlebench grade`)")
    p.add_argument("--max-submission-mb", type=float, default=MAX_SUBMISSION_MB, metavar="MB",
                   help="a submission larger than this is invalid, not read (default %(default)g, as a sweep's "
                        "max_submission_mb)")
    p.add_argument("--data-dir", type=Path,
                   help="where `mlebench prepare` put MLE-bench data (sets MLERAY_MLEBENCH_DATA_DIR)")
    return p


def read_submissions(path: Path) -> List[dict]:
    """MLE-bench's submission JSONL, skipping blank and commented-out lines; ValueError naming a bad line."""
    out = []
    for number, line in enumerate(Path(path).read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#") or line.startswith("//"):
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}:{number}: not JSON ({err})") from None
        if not isinstance(item, dict) or "competition_id" not in item or "submission_path" not in item:
            raise ValueError(f"{path}:{number}: needs competition_id and submission_path")
        out.append(item)
    return out


def _prepare_all(ids: Sequence[str]) -> Tuple[dict, List[str]]:
    """{id: PreparedCompetition} for every id, or the problems that stop it."""
    from mleray import competitions

    problems: List[str] = []
    found = {}
    for cid in dict.fromkeys(ids):
        try:
            comp = competitions.get(cid)
        except competitions.CompetitionError as err:
            problems.append(str(err))
            continue
        if comp is None:
            problems.append(f"unknown competition {cid!r} (neither competitions/{cid}/ nor an MLE-bench id)")
            continue
        found[cid] = comp
    problems += list(competitions.preflight(list(found)))
    if problems:
        return {}, problems
    prepared = {}
    for cid, comp in found.items():
        try:
            prepared[cid] = competitions.prepare(comp)
        except competitions.CompetitionError as err:
            problems.append(str(err))
    return prepared, problems


def _fail(problems: Sequence[str]) -> int:
    for line in problems:
        print(f"error: {line}", file=sys.stderr)
    return 2


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] in (["grade"], ["grade-sample"]):  # `mlebench grade ...` / `mlebench grade-sample ...` spelled out
        argv = argv[1:]
    parser = _parser()
    args = parser.parse_args(argv)
    if not args.max_submission_mb > 0:
        parser.error("--max-submission-mb must be a positive number of MB")
    if args.data_dir:
        os.environ["MLERAY_MLEBENCH_DATA_DIR"] = str(args.data_dir.expanduser().resolve())

    from mleray.grading.grade import grade_submission
    from mleray.grading.report import aggregate, export_sweep, write_report

    if args.sweep:
        if args.jsonl or args.submission or args.competition_id:
            parser.error("--sweep takes no other input")
        try:
            out = export_sweep(args.sweep, args.out)
        except (OSError, ValueError) as err:
            return _fail([str(err)])
        for path in sorted(out.glob("*_grading_report.json")):
            print(path)
        return 0

    if args.jsonl:
        if args.submission or args.competition_id:
            parser.error("give either SUBMISSION COMPETITION_ID or --jsonl FILE, not both")
        if not args.jsonl.is_file():
            return _fail([f"submissions file not found: {args.jsonl}"])
        try:
            submissions = read_submissions(args.jsonl)
        except (ValueError, OSError) as err:
            return _fail([str(err)])
        prepared, problems = _prepare_all([str(s["competition_id"]) for s in submissions])
        if problems:
            return _fail(problems)
        entries = []
        for item in submissions:
            grade = grade_submission(prepared[str(item["competition_id"])], Path(str(item["submission_path"])),
                                     max_submission_mb=args.max_submission_mb)
            entries.append(grade)
        report = aggregate(entries)
        out_dir = args.out or args.jsonl.resolve().parent
        path = write_report(report, out_dir)
        print(json.dumps({k: v for k, v in report.items() if k != "competition_reports"}, indent=4))
        print(f"Saved grading report to {path}")
        return 0

    if not args.submission or not args.competition_id:
        parser.error("give SUBMISSION.csv COMPETITION_ID, or --jsonl FILE")
    if not Path(args.submission).exists():  # in a JSONL a missing file is an entry; here it is a typo
        return _fail([f"submission file not found: {args.submission} (give the path of the CSV to grade)"])
    prepared, problems = _prepare_all([args.competition_id])
    if problems:
        return _fail(problems)
    grade = grade_submission(prepared[args.competition_id], Path(args.submission),
                             max_submission_mb=args.max_submission_mb)
    print(json.dumps(grade, indent=4))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
