"""`mleray COMMAND ...`: one entry point for the sub-commands, each implemented in its own module."""

from __future__ import annotations

import importlib
import sys
from typing import Optional, Sequence

COMMANDS = {
    "sweep": ("mleray.sweep.driver", "run or resume a sweep"),
    "grade": ("mleray.cli.grade", "grade a submission, or MLE-bench submission JSONL, into a grading report"),
    "grade-sample": ("mleray.cli.grade", "grade one submission CSV (MLE-bench's `grade-sample PATH ID`)"),
    "logs": ("mleray.cli.logs", "show or follow one trial's agent log"),
    "images": ("mleray.sandbox.images", "build the offline base image and the built-in agents' images"),
    "report": ("analysis.__main__", "tables and figures for sweeps or grading reports"),
    "list": ("mleray.cli.listing", "list the suites, agents or competitions a sweep can name"),
    "data": ("mleray.cli.data", "upload prepared MLE-bench competitions to an object store (data push)"),
    "setup": ("mleray.cli.setup", "install the offline competitions' raw-data packages (setup offline)"),
}


def version() -> str:
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed

    try:
        return installed("mleray")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown (not installed)"


def usage() -> str:
    lines = ["usage: mleray [--version] COMMAND [ARGS...]", "", "commands:"]
    lines += [f"  {name:<8} {help_}" for name, (_, help_) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0 if argv else 2
    if argv[0] == "--version":
        print(f"mleray {version()}")
        return 0
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        print(f"mleray: unknown command {command!r}\n\n{usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[command][0])
    return int(module.main(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
