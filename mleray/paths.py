"""Where mleray's shipped data lives (competitions/, configs/) and where it caches prepared data."""

from __future__ import annotations

import os
import sys
from pathlib import Path

_SOURCE_ROOT = Path(__file__).resolve().parents[1]


def project_root() -> Path:
    """The folder holding `competitions/` and `configs/`: the source tree, or the installed share dir."""
    if (_SOURCE_ROOT / "competitions").is_dir():
        return _SOURCE_ROOT
    return Path(sys.prefix) / "share" / "mleray"


def competitions_dir() -> Path:
    return Path(os.environ.get("MLERAY_COMPETITIONS_DIR", project_root() / "competitions"))


def configs_dir() -> Path:
    return project_root() / "configs"


def agent_configs_dir() -> Path:
    """Agent declarations (`<name>.yaml`); MLERAY_AGENTS_DIR points elsewhere (private agents, tests)."""
    return Path(os.environ.get("MLERAY_AGENTS_DIR", configs_dir() / "agents"))


def cache_dir() -> Path:
    """Node-local cache for prepared competition data (override with MLERAY_CACHE_DIR)."""
    default = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "mleray"
    return Path(os.environ.get("MLERAY_CACHE_DIR", default))


def scratch_dir() -> Path:
    """Node-local folder where trials of object-store sweeps work before upload (MLERAY_SCRATCH_DIR)."""
    return Path(os.environ.get("MLERAY_SCRATCH_DIR", cache_dir() / "scratch"))
