"""Preparing a competition's public and private data into a node-local cache, once.

`prepare(comp)` runs the folder's prepare.py into
`<cache>/<id>/<version>-<hash>/{public,private}`, where the hash covers config.yaml, prepare.py
and description.md, so editing any of them prepares afresh. A second call is a cheap check of a
marker file. Concurrent callers (threads, processes, Ray actors on one node) serialise on an
fcntl lock; the data are built in a temporary folder and renamed into place, so a reader never
sees a half-written folder; a preparer killed midway leaves a temporary folder that the next
preparer removes.
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib.util
import os
import shutil
import time
from pathlib import Path
from typing import Optional

from mleray.competitions.registry import (
    Competition,
    CompetitionError,
    PreparedCompetition,
    _mlebench_module,
    missing_requirements,
)
from mleray.paths import cache_dir

DONE = ".prepared"  # marker written last inside the cache entry
HASHED_FILES = ("config.yaml", "prepare.py", "description.md")


def content_hash(comp: Competition) -> str:
    """12 hex digits over the files that determine the prepared data."""
    assert comp.root is not None  # only local competitions (a folder) are prepared here
    digest = hashlib.sha256()
    for name in HASHED_FILES:
        path = comp.root / name
        digest.update(name.encode() + b"\0")
        digest.update(path.read_bytes() if path.is_file() else b"<absent>")
        digest.update(b"\0")
    return digest.hexdigest()[:12]


def cache_entry(comp: Competition, cache_root: Optional[Path] = None) -> Path:
    root = Path(cache_root) if cache_root is not None else cache_dir()
    return root / comp.id / f"{comp.version}-{content_hash(comp)}"


def _prepared(comp: Competition, entry: Path) -> PreparedCompetition:
    return PreparedCompetition(comp, entry / "public", entry / "private")


def _run_prepare_script(comp: Competition, public: Path, private: Path) -> None:
    script = comp.root / "prepare.py" if comp.root else None
    if script is None or not script.is_file():
        raise CompetitionError(f"competition {comp.id!r} has no prepare.py in {comp.root}")
    spec = importlib.util.spec_from_file_location(f"mleray_prepare_{comp.id.replace('-', '_')}", script)
    if spec is None or spec.loader is None:
        raise CompetitionError(f"competition {comp.id!r}: cannot load {script}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if not hasattr(module, "prepare"):
        raise CompetitionError(f"{script} defines no prepare(public, private)")
    module.prepare(public, private)


def _check_output(comp: Competition, public: Path, private: Path) -> None:
    if not (public / comp.sample_submission).is_file():
        raise CompetitionError(f"prepare.py of {comp.id!r} wrote no public/{comp.sample_submission}")
    if not (private / comp.answers).is_file():
        raise CompetitionError(f"prepare.py of {comp.id!r} wrote no private/{comp.answers}")
    if (public / comp.answers).exists() and comp.answers != comp.sample_submission:
        raise CompetitionError(f"prepare.py of {comp.id!r} put the answers file {comp.answers} in public/")


def prepare(comp: Competition, cache_root: Optional[Path] = None) -> PreparedCompetition:
    """Prepares (once) and returns the competition's public and private folders.

    Raises CompetitionError when a required package is missing (naming the install command) or
    prepare.py fails; the error names the competition and the step.
    """
    if comp.source != "local":
        data = _mlebench_module("data")
        if data is None:
            raise CompetitionError(f"competition {comp.id!r} is an MLE-bench competition but mleray.mlebench.data "
                                   f"is not available")
        return data.locate(comp)
    entry = cache_entry(comp, cache_root)
    if (entry / DONE).is_file():
        return _prepared(comp, entry)
    problems = missing_requirements(comp)
    if problems:
        raise CompetitionError("; ".join(problems))
    entry.parent.mkdir(parents=True, exist_ok=True)
    with open(entry.parent / f"{entry.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (entry / DONE).is_file():  # another process finished while we waited
            return _prepared(comp, entry)
        if entry.exists():  # an unfinished entry (a crash between rename and marker): rebuild
            shutil.rmtree(entry)
        for stale in entry.parent.glob(f".{entry.name}.tmp-*"):  # left by a killed preparer: we hold the lock
            shutil.rmtree(stale, ignore_errors=True)
        tmp = entry.parent / f".{entry.name}.tmp-{os.getpid()}"
        public, private = tmp / "public", tmp / "private"
        public.mkdir(parents=True)
        private.mkdir(parents=True)
        started = time.monotonic()
        try:
            _run_prepare_script(comp, public, private)
            if comp.description_path is not None and comp.description_path.is_file():
                shutil.copyfile(comp.description_path, public / "description.md")
            _check_output(comp, public, private)
        except CompetitionError:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        except Exception as err:
            shutil.rmtree(tmp, ignore_errors=True)
            raise CompetitionError(f"prepare.py of {comp.id!r} failed: {type(err).__name__}: {err}") from err
        (tmp / "prepare_seconds.txt").write_text(f"{time.monotonic() - started:.2f}\n")
        os.rename(tmp, entry)
        (entry / DONE).write_text("ok\n")
    return _prepared(comp, entry)
