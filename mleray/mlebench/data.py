"""Finding the data `mlebench prepare` made, and saying exactly what is missing when it is not there.

MLE-bench prepares a competition into `<data_dir>/<id>/prepared/public` (what the agent sees, with
`description.md`) and `<data_dir>/<id>/prepared/private` (the answers). `data_dir` is, first found:
`$MLERAY_MLEBENCH_DATA_DIR`, else MLE-bench's default, `<user cache dir>/mle-bench/data`
(`$XDG_CACHE_HOME` or `~/.cache`). On a cluster every node needs the prepared data at that path
(a shared filesystem, or `mlebench prepare` run on each node).

`locate(comp)` returns the `PreparedCompetition` (nothing is copied: MLE-bench's folders are used as
they are) or raises `CompetitionError` naming the command to run. `descriptions(comp)` gives both
descriptions MLE-bench ships: `description.md` and `description_obfuscated.md` (the latter only from
the installed package's competition folder). `preflight(ids)` lists every missing piece at once.
"""

from __future__ import annotations

import functools
import importlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, List, Optional

from mleray.mlebench import catalog

ENV_DATA_DIR = "MLERAY_MLEBENCH_DATA_DIR"
INSTALL_HINT = ("install the official mlebench package from its public repository (openai/mle-bench; "
                "clone it with Git LFS, then `pip install -e .`)")


def data_dir() -> Path:
    """Where `mlebench prepare` put (or will put) the data."""
    env = os.environ.get(ENV_DATA_DIR)
    if env:
        return Path(env).expanduser().resolve()
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return (Path(cache) / "mle-bench" / "data").resolve()


def _default_data_dir() -> bool:
    return not os.environ.get(ENV_DATA_DIR)


def prepare_command(competition_id: str) -> str:
    extra = "" if _default_data_dir() else f" --data-dir {data_dir()}"
    return f"mlebench prepare -c {competition_id}{extra}"


@functools.lru_cache(maxsize=1)
def _package_problem() -> Optional[str]:
    try:
        importlib.import_module("mlebench.registry")
        importlib.import_module("mlebench.grade_helpers")
    except Exception as err:  # absent, or present but broken (missing dependency)
        return f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}".rstrip(": ")
    return None


def package_problem() -> Optional[str]:
    """None when the official package imports; else why it does not."""
    return _package_problem()


def folders(comp) -> tuple[Path, Path]:
    """(public, private) where MLE-bench prepares this competition."""
    root = data_dir() / comp.id / "prepared"
    return root / "public", root / "private"


def _empty(folder: Path) -> bool:
    return not any(folder.iterdir())


def missing_data(comp) -> List[str]:
    """What is missing of the prepared data (as MLE-bench's `is_dataset_prepared` checks); empty when ready."""
    public, private = folders(comp)
    missing = []
    for label, folder in (("public", public), ("private", private)):
        if not folder.is_dir():
            missing.append(f"no {label} folder {folder}")
        elif _empty(folder):
            missing.append(f"{label} folder {folder} is empty")
    if missing:
        return missing
    if not (private / comp.answers).is_file():
        missing.append(f"no answers file {private / comp.answers}")
    if not (public / comp.sample_submission).is_file():
        missing.append(f"no sample submission {(public / comp.sample_submission).resolve()}")
    return missing


def not_prepared_message(comp, missing: List[str]) -> str:
    return (f"MLE-bench competition {comp.id!r} is not prepared in {data_dir()} ({'; '.join(missing)}): "
            f"{INSTALL_HINT} and run `{prepare_command(comp.id)}` (it needs Kaggle API credentials and the "
            f"competition's rules accepted on Kaggle), or set {ENV_DATA_DIR} to the folder it was prepared in")


def locate(comp):
    """The prepared folders of an MLE-bench competition; CompetitionError naming the fix when absent."""
    from mleray.competitions import CompetitionError, PreparedCompetition

    missing = missing_data(comp)
    if missing:
        raise CompetitionError(not_prepared_message(comp, missing))
    public, private = folders(comp)
    return PreparedCompetition(competition=comp, public_dir=public, private_dir=private)


@dataclass(frozen=True)
class Descriptions:
    """The two task descriptions MLE-bench ships; None where absent."""

    original: Optional[Path]
    obfuscated: Optional[Path]

    def get(self, kind: str) -> Optional[Path]:
        if kind not in ("original", "obfuscated"):
            raise ValueError(f"description kind must be original or obfuscated, not {kind!r}")
        return self.original if kind == "original" else self.obfuscated


def descriptions(comp) -> Descriptions:
    """`description.md` (the prepared public copy, else the package's) and `description_obfuscated.md`
    (the package's competition folder; MLE-bench's prepare does not copy it into public/)."""
    public, _ = folders(comp)
    folder = Path(comp.root) if getattr(comp, "root", None) else catalog.package_competition_dir(comp.id)
    original: Optional[Path] = public / "description.md"
    if not (public / "description.md").is_file():
        original = folder / "description.md" if folder and (folder / "description.md").is_file() else None
    obfuscated = folder / "description_obfuscated.md" if folder else None
    if obfuscated is not None and not obfuscated.is_file():
        obfuscated = None
    return Descriptions(original=original, obfuscated=obfuscated)


def preflight(ids: Iterable[str]) -> List[str]:
    """One message per missing piece for these MLE-bench competitions; empty when all can run.

    Ids not in the MLE-bench catalog are ignored (local competitions are the registry's business).
    Missing pieces: the official package (once, naming the fix) and each competition's prepared data.
    """
    comps = [c for c in (catalog.get(cid) for cid in dict.fromkeys(ids)) if c is not None]
    if not comps:
        return []
    problems: List[str] = []
    why = package_problem()
    if why is not None:
        names = ", ".join(c.id for c in comps[:5]) + (f", ... ({len(comps)} in all)" if len(comps) > 5 else "")
        problems.append(f"the official mlebench package is not importable ({why}); it grades the MLE-bench "
                        f"competitions {names}: {INSTALL_HINT}")
    for comp in comps:
        missing = missing_data(comp)
        if missing:
            problems.append(f"MLE-bench competition {comp.id!r} is not prepared in {data_dir()} "
                            f"({missing[0]}): run `{prepare_command(comp.id)}`")
    return problems


__all__ = ["ENV_DATA_DIR", "INSTALL_HINT", "data_dir", "prepare_command", "package_problem",
           "folders", "missing_data", "locate", "Descriptions", "descriptions", "preflight"]
