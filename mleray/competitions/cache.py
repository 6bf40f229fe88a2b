"""Preparing a competition's public and private data into a node-local cache, once.

`prepare(comp)` runs the folder's prepare.py into `<cache>/<id>/<version>-<hash>/public` (what the
sandbox mounts) and `<cache>/.answers/<token>/` (the private answers), where the hash covers
config.yaml, prepare.py and description.md, so editing any of them prepares afresh. A second call is
a cheap check of a marker file.

The answers are unreachable by construction: `.answers/` and each answers folder are mode 0700 and
their files 0600 (owned by whoever prepares: root on a node), and `<token>` is an HMAC of the entry's
name under a random key kept in `.answers/.key` (0600). The public folder's path, which an agent can
read in /proc/self/mountinfo, names the competition and its version and nothing that leads to the
answers: no `..` from it reaches them, and their folder's name cannot be computed without the key.

MLE-bench competitions are staged into the same cache by `mleray.mlebench.data.stage` (public data
at `<cache>/<id>/mlebench-<version>/public`, the answers in `.answers/`), never used beside each other
where `mlebench prepare` left them.

Concurrent callers (threads, processes, Ray actors on one node) serialise on an
fcntl lock; the data are built in a temporary folder and renamed into place, so a reader never
sees a half-written folder; a preparer killed midway leaves a temporary folder that the next
preparer removes.
"""

from __future__ import annotations

import hashlib
import hmac
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
from mleray.paths import cache_dir, node_lock

DONE = ".prepared-v2"  # marker written last inside the cache entry (v2: the answers live under .answers/)
ANSWERS = ".answers"  # <cache>/.answers/: root-only, one folder per entry, named by a keyed hash
KEY = ".key"  # <cache>/.answers/.key: the random key of that hash (0600)
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


def _answers_root(entry: Path) -> Path:
    """`<cache>/.answers`, made (mode 0700) if missing; the cache root is the entry's grandparent."""
    root = entry.parent.parent / ANSWERS
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    if root.stat().st_mode & 0o777 != 0o700:
        os.chmod(root, 0o700)  # whatever the umask or an earlier mkdir left
    return root


def _key(answers_root: Path) -> bytes:
    """The cache's secret key, made once (32 random bytes, 0600); concurrent makers agree on one."""
    path = answers_root / KEY
    try:
        return path.read_bytes()
    except FileNotFoundError:
        pass
    tmp = answers_root / f".key.tmp-{os.getpid()}-{os.urandom(4).hex()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, os.urandom(32))
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(tmp, path)  # atomic, and refuses to replace a key another process made first
    except FileExistsError:
        pass
    finally:
        os.unlink(tmp)
    return path.read_bytes()


def private_dir(entry: Path) -> Path:
    """Where the answers of cache entry `entry` live: `<cache>/.answers/<HMAC(key, "<id>/<entry>")>`."""
    root = entry.parent.parent / ANSWERS
    try:
        key = _key(_answers_root(entry))
    except OSError as err:
        raise CompetitionError(f"cannot open the prepared answers in {root}: {err.strerror} (they are readable "
                               f"only by the user who prepared them: run as that user, or set MLERAY_CACHE_DIR "
                               f"to a cache of your own)") from None
    name = f"{entry.parent.name}/{entry.name}".encode()
    return root / hmac.new(key, name, hashlib.sha256).hexdigest()[:32]


def _seal(folder: Path) -> None:
    """Root-only: folders 0700, files 0600 (links are not followed, and prepare.py writes none)."""
    os.chmod(folder, 0o700)
    for dirpath, dirnames, filenames in os.walk(folder):
        for name in dirnames:
            os.chmod(os.path.join(dirpath, name), 0o700, follow_symlinks=False)
        for name in filenames:
            path = os.path.join(dirpath, name)
            if not os.path.islink(path):
                os.chmod(path, 0o600)


def _ready(entry: Path, private: Path) -> bool:
    return (entry / DONE).is_file() and private.is_dir()


def _prepared(comp: Competition, entry: Path, private: Path) -> PreparedCompetition:
    return PreparedCompetition(comp, entry / "public", private)


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
        return data.stage(comp, cache_root)[0]  # copied into this cache: the answers into .answers/ too
    entry = cache_entry(comp, cache_root)
    entry.parent.mkdir(parents=True, exist_ok=True)
    answers = private_dir(entry)
    if _ready(entry, answers):
        return _prepared(comp, entry, answers)
    problems = missing_requirements(comp)
    if problems:
        raise CompetitionError("; ".join(problems))
    with node_lock(entry.parent / f"{entry.name}.lock"):
        if _ready(entry, answers):  # another process finished while we waited
            return _prepared(comp, entry, answers)
        # An unfinished entry (a crash between the renames and the marker) or one of the old layout
        # (private/ beside public/): rebuild both halves.
        for old in (entry, answers):
            if old.exists():
                shutil.rmtree(old)
        for stale in [*entry.parent.glob(f".{entry.name}.tmp-*"),  # left by a killed preparer: we hold the lock
                      *answers.parent.glob(f".{answers.name}.tmp-*")]:
            shutil.rmtree(stale, ignore_errors=True)
        tmp = entry.parent / f".{entry.name}.tmp-{os.getpid()}"
        tmp_answers = answers.parent / f".{answers.name}.tmp-{os.getpid()}"
        public, private = tmp / "public", tmp_answers
        public.mkdir(parents=True)
        private.mkdir(mode=0o700)
        started = time.monotonic()
        try:
            _run_prepare_script(comp, public, private)
            if comp.description_path is not None and comp.description_path.is_file():
                shutil.copyfile(comp.description_path, public / "description.md")
            _check_output(comp, public, private)
        except CompetitionError:
            shutil.rmtree(tmp, ignore_errors=True)
            shutil.rmtree(tmp_answers, ignore_errors=True)
            raise
        except Exception as err:
            shutil.rmtree(tmp, ignore_errors=True)
            shutil.rmtree(tmp_answers, ignore_errors=True)
            raise CompetitionError(f"prepare.py of {comp.id!r} failed: {type(err).__name__}: {err}") from err
        _seal(private)
        (tmp / "prepare_seconds.txt").write_text(f"{time.monotonic() - started:.2f}\n")
        os.rename(tmp_answers, answers)
        os.rename(tmp, entry)
        (entry / DONE).write_text("ok\n")
    return _prepared(comp, entry, answers)
