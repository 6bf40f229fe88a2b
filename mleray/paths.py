"""Where mleray finds its data: the shipped `configs/` and `competitions/`, the user's own folders, caches.

The shipped folders are the source tree's in a checkout (an editable install) and `mleray/_data/` inside
an installed wheel (read with importlib.resources). Users keep their own agents, suites and competitions
outside the package; each kind is looked up along a search path, first match wins:

1. folders named on the command line (`--agents-dir`, `--suites-dir`, `--competitions-dir`),
2. `$MLERAY_AGENTS_DIR`, `$MLERAY_SUITES_DIR`, `$MLERAY_COMPETITIONS_DIR` (several joined by `os.pathsep`),
3. the working directory's `configs/agents`, `configs/suites`, `competitions`,
4. the shipped folder.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.resources
import os
from pathlib import Path
from typing import Dict, Iterator, List, Tuple

_SOURCE_ROOT = Path(__file__).resolve().parents[1]

# kind -> (folder relative to a project root, environment variable)
KINDS: Dict[str, Tuple[str, str]] = {
    "agents": ("configs/agents", "MLERAY_AGENTS_DIR"),
    "suites": ("configs/suites", "MLERAY_SUITES_DIR"),
    "competitions": ("competitions", "MLERAY_COMPETITIONS_DIR"),
}


def project_root() -> Path:
    """The folder holding the shipped `competitions/` and `configs/`: the source tree, or the package's data."""
    if (_SOURCE_ROOT / "pyproject.toml").is_file() and (_SOURCE_ROOT / "competitions").is_dir():
        return _SOURCE_ROOT
    return Path(str(importlib.resources.files("mleray") / "_data"))


def shipped_dir(kind: str) -> Path:
    """The shipped folder of one kind ("agents", "suites" or "competitions")."""
    return project_root() / KINDS[kind][0]


def search_path(kind: str) -> List[Path]:
    """The folders searched for one kind, first match wins (see the module docstring); no duplicates."""
    relative, variable = KINDS[kind]
    candidates = [Path(p) for p in os.environ.get(variable, "").split(os.pathsep) if p]
    candidates += [Path.cwd() / relative, shipped_dir(kind)]
    seen, found = set(), []
    for folder in candidates:
        key = folder.resolve() if folder.exists() else folder.absolute()
        if key not in seen:
            seen.add(key)
            found.append(folder)
    return found


def add_search_dirs(kind: str, folders: List[str]) -> None:
    """Puts folders named on the command line first on a kind's search path. They go into the
    environment (as absolute paths, with the working directory's folder after them) so that the trial
    actors a local Ray starts find the same agents and competitions as the driver."""
    relative, variable = KINDS[kind]
    cwd_folder = Path.cwd() / relative
    pinned = [str(Path(f).absolute()) for f in folders] + ([str(cwd_folder)] if cwd_folder.is_dir() else [])
    rest = [p for p in os.environ.get(variable, "").split(os.pathsep) if p]
    os.environ[variable] = os.pathsep.join(pinned + rest)


def find(kind: str, name: str) -> Path | None:
    """The first `<folder>/<name>` on a kind's search path that exists, or None."""
    for folder in search_path(kind):
        if (folder / name).exists():
            return folder / name
    return None


def names(kind: str, pattern: str) -> Dict[str, Path]:
    """Every entry matching `pattern` along a kind's search path, by stem; earlier folders win."""
    found: Dict[str, Path] = {}
    for folder in search_path(kind):
        for path in sorted(folder.glob(pattern)) if folder.is_dir() else []:
            stem = path.parent.name if path.name == "config.yaml" else path.stem
            found.setdefault(stem, path)
    return dict(sorted(found.items()))


def where_to_add(kind: str, name: str) -> str:
    """Tells a user where their own file goes (never into the installed package)."""
    relative, variable = KINDS[kind]
    flag = f"--{kind}-dir"
    return f"add ./{relative}/{name}, or name your folder with {flag} or ${variable}"


def searched(kind: str) -> str:
    return ", ".join(str(p) for p in search_path(kind))


def configs_dir() -> Path:
    """The shipped `configs/` (the default sweep, ablations)."""
    return project_root() / "configs"


def cache_dir() -> Path:
    """Node-local cache for prepared competition data (override with MLERAY_CACHE_DIR)."""
    default = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "mleray"
    return Path(os.environ.get("MLERAY_CACHE_DIR", default))


@contextlib.contextmanager
def node_lock(path: Path) -> Iterator[None]:
    """Holds an exclusive flock on `path` (its folder made) for one job on this node at a time, across
    processes: the others wait, then usually find the work done."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def scratch_dir() -> Path:
    """Node-local folder where trials of object-store sweeps work before upload (MLERAY_SCRATCH_DIR)."""
    return Path(os.environ.get("MLERAY_SCRATCH_DIR", cache_dir() / "scratch"))


def add_search_flags(parser) -> None:
    """`--agents-dir`, `--suites-dir`, `--competitions-dir` (each repeatable) on an argparse parser."""
    for kind, (relative, variable) in KINDS.items():
        parser.add_argument(f"--{kind}-dir", action="append", default=[], metavar="DIR",
                            help=f"a folder of your own {kind}, searched before ${variable}, ./{relative} "
                                 f"and the shipped ones")


def apply_search_flags(args) -> None:
    """Puts the folders given with add_search_flags' options first on their search paths."""
    for kind in KINDS:
        folders = getattr(args, f"{kind}_dir")
        if folders:
            add_search_dirs(kind, folders)
