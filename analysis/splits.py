"""Which competitions a split holds, and what is known to be wrong with a competition.

A split name is resolved, in order, as:

1. `low`, `medium`, `high` (complexity) and `all` / `split75` — from the MLE-bench catalog
   (`competitions/mlebench/catalog.csv`) when it exists, else from MLE-bench's split files
   (`<shared>/data/mlebench/splits/<name>.txt`);
2. a suite, `configs/suites/<name>.yaml` (`competitions: [...]`);
3. any other MLE-bench split file (`dev`, `systemcard`, ...);
4. a path to a `.txt` (one id a line) or `.yaml` (suite) file.

`split_ids` is the one function the rest of the package calls; switch sources here.
"""

from __future__ import annotations

import csv
import functools
import os
from pathlib import Path
from typing import Dict, List, Optional

import yaml

from mleray import paths

COMPLEXITY_SPLITS = ("low", "medium", "high")
ALL_ALIASES = ("all", "split75")
DEFAULT_SPLITS = ("low", "medium", "high", "all")
# Catalog columns that may hold a competition's complexity split, first match wins.
_SPLIT_COLUMNS = ("complexity_split", "complexity", "split")
# Catalog columns that flag a known issue (leakage, crowded leaderboard, ...): any column whose
# lower-cased name contains one of these.
_ISSUE_MARKERS = ("known_issue", "leak", "crowded", "issue")
_FALSE = {"", "false", "no", "0", "none", "nan", "n/a", "-"}


def catalog_path() -> Path:
    return paths.shipped_dir("competitions") / "mlebench" / "catalog.csv"


def shared_splits_dir() -> Path:
    shared = Path(os.environ.get("MLERAY_SHARED_DIR", paths.project_root().parent / "shared"))
    return shared / "data" / "mlebench" / "splits"


@functools.lru_cache(maxsize=8)
def _read_catalog(path: str, mtime: float) -> List[Dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def catalog() -> List[Dict[str, str]]:
    """The catalog's rows (empty when it does not exist yet)."""
    path = catalog_path()
    if not path.is_file():
        return []
    return _read_catalog(str(path), path.stat().st_mtime)


def _split_column(rows: List[Dict[str, str]]) -> Optional[str]:
    if not rows:
        return None
    for name in _SPLIT_COLUMNS:
        if name in rows[0]:
            return name
    return None


def _read_txt(path: Path) -> List[str]:
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


def _read_suite(path: Path) -> List[str]:
    data = yaml.safe_load(path.read_text()) or {}
    ids = data.get("competitions") if isinstance(data, dict) else None
    if not isinstance(ids, list):
        raise ValueError(f"{path} has no `competitions: [...]` list; a suite file needs one")
    return [str(c) for c in ids]


def split_ids(name: str) -> List[str]:
    """The competition ids of split `name`, in the split's own order."""
    rows = catalog()
    column = _split_column(rows)
    if name in COMPLEXITY_SPLITS and column:
        return [r["competition_id"] for r in rows if (r.get(column) or "").strip() == name]
    if name in ALL_ALIASES and column:
        if rows and "in_split75" in rows[0]:
            return [r["competition_id"] for r in rows
                    if (r["in_split75"] or "").strip().lower() in ("true", "1", "yes")]
        return [r["competition_id"] for r in rows if (r.get(column) or "").strip() in COMPLEXITY_SPLITS]
    suite = paths.find("suites", f"{name}.yaml")
    if suite is not None and suite.is_file():
        return _read_suite(suite)
    txt = shared_splits_dir() / f"{'split75' if name in ALL_ALIASES else name}.txt"
    if txt.is_file():
        return _read_txt(txt)
    path = Path(name)
    if path.is_file():
        return _read_suite(path) if path.suffix in (".yaml", ".yml") else _read_txt(path)
    raise ValueError(
        f"unknown split {name!r}: not low/medium/high/all, not a suite in {paths.searched('suites')}, "
        f"not a split file in {shared_splits_dir()}, not a path; known: {', '.join(known_splits())}"
    )


def known_splits() -> List[str]:
    names = list(DEFAULT_SPLITS)
    names += list(paths.names("suites", "*.yaml"))
    if shared_splits_dir().is_dir():
        names += sorted(p.stem for p in shared_splits_dir().glob("*.txt") if p.stem != "split75")
    return list(dict.fromkeys(names))


@functools.lru_cache(maxsize=1)
def _fallback_complexity() -> Dict[str, str]:
    out: Dict[str, str] = {}
    for name in COMPLEXITY_SPLITS:
        path = shared_splits_dir() / f"{name}.txt"
        if path.is_file():
            out.update({cid: name for cid in _read_txt(path)})
    return out


def complexity(competition_id: str) -> Optional[str]:
    """low / medium / high, or None for a competition outside MLE-bench's split75."""
    rows = catalog()
    column = _split_column(rows)
    if column:
        for r in rows:
            if r["competition_id"] == competition_id:
                value = (r.get(column) or "").strip()
                return value if value in COMPLEXITY_SPLITS else None
        return None
    return _fallback_complexity().get(competition_id)


def _truthy(value: str) -> bool:
    return value.strip().lower() not in _FALSE


def known_issues() -> Dict[str, str]:
    """competition_id → a short note ("leakage: the public test files leak ..."), for each catalog
    row flagged with a known issue. Issue columns are those whose name says so; boolean ones are
    flags (a row counts only if one is set), the others give the note's text."""
    rows = catalog()
    if not rows:
        return {}
    columns = [c for c in rows[0] if any(m in c.lower() for m in _ISSUE_MARKERS)]
    booleans = {"true", "false", "yes", "no", "0", "1", ""}
    flags = [c for c in columns if all((r.get(c) or "").strip().lower() in booleans for r in rows)]
    texts = [c for c in columns if c not in flags]
    out: Dict[str, str] = {}
    for r in rows:
        set_flags = [c for c in flags if _truthy(r.get(c) or "")]
        parts = [(r.get(c) or "").strip() for c in texts if _truthy(r.get(c) or "")]
        if flags and not set_flags and not parts:
            continue
        if parts or set_flags:
            out[r["competition_id"]] = ": ".join(parts) if parts else ", ".join(c.replace("_", " ") for c in set_flags)
    return out
