"""MLE-bench's competitions as mleray `Competition`s, from `competitions/mlebench/catalog.csv`.

The catalog holds every competition of MLE-bench (82: the 75 of split75, low/medium/high, plus the
7 of its dev split) with its grader name, answers and sample-submission files, split, known issues
and the leaderboard shipped in `competitions/mlebench/leaderboards/`. See that folder's README.

A catalog `Competition` has `source="mlebench"`, `metric` = MLE-bench's grader name (informative:
grading runs the official package's grader, see `mleray.grading.grade`), no id/target columns
(the official grader knows them), `sample_submission` relative to `public/` (`../private/x.csv` for
the few competitions where MLE-bench keeps it private), `answers` under `private/`, and `root` = the
official package's folder for the competition when the package is installed (it holds
`description.md` and `description_obfuscated.md`), else None.
"""

from __future__ import annotations

import csv
import functools
import importlib.util
from pathlib import Path
from typing import Dict, List, Optional

from mleray.paths import shipped_dir

CATALOG_VERSION = "mle-bench@783b15a"  # the openai/mle-bench snapshot the catalog was read from


def catalog_dir() -> Path:
    return shipped_dir("competitions") / "mlebench"


def catalog_path() -> Path:
    return catalog_dir() / "catalog.csv"


@functools.lru_cache(maxsize=4)
def _rows(path: str, mtime: float) -> Dict[str, Dict[str, str]]:
    with open(path, newline="") as f:
        return {row["competition_id"]: row for row in csv.DictReader(f)}


def rows() -> Dict[str, Dict[str, str]]:
    """competition_id -> the catalog row (strings, as in the CSV); empty when there is no catalog."""
    path = catalog_path()
    if not path.is_file():
        return {}
    return _rows(str(path), path.stat().st_mtime)


def ids(split: Optional[str] = None) -> List[str]:
    """Catalog ids; `split` = low | medium | high | dev | split75 | lite (= low)."""
    table = rows()
    if split is None:
        return list(table)
    if split in ("split75", "all"):
        return [cid for cid, r in table.items() if r["in_split75"] == "True"]
    split = "low" if split == "lite" else split
    return [cid for cid, r in table.items() if r["complexity_split"] == split]


def package_dir() -> Optional[Path]:
    """The installed official `mlebench` package's folder, found without importing it; None if absent."""
    try:
        spec = importlib.util.find_spec("mlebench")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def package_competition_dir(competition_id: str) -> Optional[Path]:
    base = package_dir()
    folder = base / "competitions" / competition_id if base else None
    return folder if folder is not None and folder.is_dir() else None


def _is_lfs_pointer(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(40).startswith(b"version https://git-lfs")
    except OSError:
        return True


def leaderboard_path(competition_id: str) -> Optional[Path]:
    """The leaderboard to rank against: ours; for a stand-in, the official package's real file when installed."""
    row = rows().get(competition_id)
    if row is None:
        return None
    ours = catalog_dir() / "leaderboards" / row["leaderboard"]
    if is_stand_in(competition_id):
        folder = package_competition_dir(competition_id)
        official = folder / "leaderboard.csv" if folder else None
        if official is not None and official.is_file() and not _is_lfs_pointer(official):
            return official
    return ours


def is_stand_in(competition_id: str) -> bool:
    row = rows().get(competition_id) or {}
    return row.get("leaderboard_source", "").startswith("stand-in")


def get(competition_id: str):
    """The MLE-bench competition with this id as a `Competition`, or None when the catalog lacks it."""
    row = rows().get(competition_id)
    if row is None:
        return None
    from mleray.competitions import Competition

    notes = [f"MLE-bench {row['complexity_split']} split" + (" (split75)" if row["in_split75"] == "True" else "")]
    if row["known_issue"] == "True":
        notes.append(f"known issue ({row['known_issue_kind']}): {row['known_issue_text']}")
    if row["notes"]:
        notes.append(row["notes"])
    return Competition(
        id=competition_id,
        name=row["name"],
        root=package_competition_dir(competition_id),
        metric=row["grader"],
        id_column="",
        target_columns=[],
        sample_submission=row["sample_submission"],
        answers=row["answers"],
        leaderboard=leaderboard_path(competition_id),
        source="mlebench",
        version=CATALOG_VERSION,
        modality=row["category"],
        notes="; ".join(notes),
    )


__all__ = ["CATALOG_VERSION", "catalog_dir", "catalog_path", "rows", "ids", "get", "leaderboard_path",
           "is_stand_in", "package_dir", "package_competition_dir"]
