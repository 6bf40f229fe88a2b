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


# ------------------------------------------------------------------------ grader dependencies

# Module names the official graders import -> the pip package that provides them (where they differ, or
# to say it outright). Found by reading every grade.py of the snapshot (and what they import from the package).
PIP_NAMES = {"Levenshtein": "levenshtein", "sklearn": "scikit-learn", "PIL": "pillow", "cv2": "opencv-python",
             "yaml": "pyyaml", "skimage": "scikit-image", "pycocotools": "pycocotools", "pyquaternion": "pyquaternion",
             "shapely": "shapely", "scipy": "scipy", "tqdm": "tqdm", "numpy": "numpy", "pandas": "pandas"}


def _grade_module(competition_id: str) -> Optional[str]:
    """The module of the competition's `grader.grade_fn` (its config.yaml), e.g. mlebench.competitions.x.grade."""
    folder = package_competition_dir(competition_id)
    config = folder / "config.yaml" if folder else None
    if config is None or not config.is_file():
        return None
    import yaml

    try:
        data = yaml.safe_load(config.read_text()) or {}
        target = str(data["grader"]["grade_fn"])
    except (OSError, yaml.YAMLError, KeyError, TypeError):
        return None
    return target.split(":")[0]


def _module_file(module: str) -> Optional[Path]:
    """The source file of a module of the installed mlebench package, found without importing it."""
    base = package_dir()
    if base is None or not module.startswith("mlebench"):
        return None
    parts = module.split(".")[1:]
    stem = base.joinpath(*parts) if parts else base
    for path in (stem.with_suffix(".py"), stem / "__init__.py"):
        if path.is_file():
            return path
    return None


def _imports(path: Path, module: str) -> List[str]:
    """Absolute names of every module `path` imports (relative imports resolved against `module`)."""
    import ast
    import warnings

    try:
        with warnings.catch_warnings():  # MLE-bench's own source (e.g. an invalid escape '\c'): not ours to warn about
            warnings.simplefilter("ignore", (SyntaxWarning, DeprecationWarning))
            tree = ast.parse(path.read_text(), filename=str(path))
    except (OSError, SyntaxError, ValueError):
        return []
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    out: List[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                name = ".".join(base + ([node.module] if node.module else []))
                out.append(name)
                out += [f"{name}.{alias.name}" for alias in node.names]  # `from . import classes`
            elif node.module:
                out.append(node.module)
    return out


def _in_a_competition(module: str) -> bool:
    """mlebench.competitions.<id>[.x]: a competition's own files (not mlebench.competitions.utils)."""
    parts = module.split(".")
    return len(parts) >= 3 and parts[1] == "competitions" and parts[2] != "utils"


@functools.lru_cache(maxsize=256)
def grader_modules(competition_id: str) -> tuple:
    """Top-level modules outside the standard library and mlebench that the competition's official grader
    imports, anywhere in its source: grade.py and the competition files it imports (its folder's, another
    competition's), read, never imported. The package's core (mlebench.utils, ...) imports with the package."""
    import sys

    start = _grade_module(competition_id)
    if start is None:
        return ()
    seen, todo, found = set(), [start], []
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        seen.add(module)
        path = _module_file(module)
        if path is None:
            continue
        for name in _imports(path, module):
            top = name.split(".")[0]
            if top == "mlebench":  # the package's core imports with it (package_problem); competitions' files not
                if _in_a_competition(name):
                    todo.append(name)
            elif top and top not in sys.stdlib_module_names and top not in found:
                found.append(top)
    return tuple(found)


def _requirement(pip_name: str) -> str:
    """The pin the official package asks for (`levenshtein>=0.25.1`), else the bare pip name."""
    from importlib import metadata

    try:
        wanted = metadata.requires("mlebench") or []
    except metadata.PackageNotFoundError:
        wanted = []
    for req in wanted:
        name = req.split(";")[0].strip()
        bare = name.split("[")[0]
        for op in ("==", ">=", "<=", "~=", "!=", ">", "<"):
            bare = bare.split(op)[0]
        if bare.strip().lower().replace("_", "-") == pip_name.lower():
            return name.replace(" ", "")
    return pip_name


def missing_grader_modules(competition_id: str) -> List[str]:
    """The modules of `grader_modules` not importable here (found by importlib.util.find_spec)."""
    out = []
    for top in grader_modules(competition_id):
        try:
            present = importlib.util.find_spec(top) is not None
        except (ImportError, ValueError):
            present = False
        if not present:
            out.append(top)
    return out


def grader_dependency_problems(competition_ids) -> List[str]:
    """One line per pip package that an official grader of these competitions needs and this Python lacks,
    naming the competitions and the install command; empty when every grader's imports are there."""
    needed: Dict[str, List[str]] = {}
    modules: Dict[str, str] = {}
    for cid in dict.fromkeys(competition_ids):
        if cid not in rows():
            continue
        for top in missing_grader_modules(cid):
            pip_name = PIP_NAMES.get(top, top)
            needed.setdefault(pip_name, []).append(cid)
            modules[pip_name] = top
    lines = []
    for pip_name, cids in needed.items():
        names = ", ".join(repr(c) for c in cids[:5]) + (f", ... ({len(cids)} in all)" if len(cids) > 5 else "")
        lines.append(f"the official grader of MLE-bench competition{'s' if len(cids) > 1 else ''} {names} imports "
                     f"{modules[pip_name]}, which is not installed (every trial would be graded invalid): "
                     f"pip install '{_requirement(pip_name)}'")
    return lines


__all__ = ["CATALOG_VERSION", "catalog_dir", "catalog_path", "rows", "ids", "get", "leaderboard_path",
           "is_stand_in", "package_dir", "package_competition_dir", "PIP_NAMES", "grader_modules",
           "missing_grader_modules", "grader_dependency_problems"]
