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

Staged, never used in place (`stage(comp)`, what `competitions.prepare` and a trial's staging call): the
public folder is copied (hard-linked where it can be) into the node cache at
`<cache>/<id>/mlebench-<version>/public`, the answers into the cache's root-only answers area
(`<cache>/.answers/<keyed hash>/<id>/prepared/private`, 0700, see mleray.competitions.cache), so the
path an agent can read in /proc/self/mountinfo names the competition and its version, never a folder
beside which the answers sit. The version is a fingerprint of the prepared files (sizes, times) for
local data, the pushed checksum for data on an object store.

On a cluster no node runs `mlebench prepare`: `push(ids, uri)` (`mleray data push`) uploads the
prepared data once, `<uri>/public/<id>/<digest>/...` and `<uri>/private/<id>/<digest>/...` under
separate prefixes, each with a `manifest.json` listing every file's size and sha256 (written last:
the commit point). With `$MLERAY_MLEBENCH_DATA_URI` set (the sweep's `mlebench_data_uri`) nodes stage
from there: public files on first use (locked; every file checked against its sha256, a mismatch
refused), the answers only when the caller grades (`answers=True`; a warm-up stages public only).
`$MLERAY_MLEBENCH_DATA_DIR` stays the local prepared folder `push` reads.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import importlib
import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Optional, Tuple

from mleray.mlebench import catalog

ENV_DATA_DIR = "MLERAY_MLEBENCH_DATA_DIR"
ENV_DATA_URI = "MLERAY_MLEBENCH_DATA_URI"  # an object store `push` filled; nodes stage from it when set
PARTS = ("public", "private")
MANIFEST = "manifest.json"
ANSWERS_DONE = ".answers-ready"  # marker inside a staged answers folder (root-only like the rest)
CHUNK = 8 << 20
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
    uri = data_uri()
    for comp in comps:
        if uri:
            try:
                found = _RemoteSource.manifest(uri, "public", comp.id) is not None
            except Exception as err:  # unreachable store, bad URI: one line each
                problems.append(f"cannot read MLE-bench data for {comp.id!r} at {_shown(uri)}: {_one_line(err)}")
                continue
            if not found:
                problems.append(f"MLE-bench competition {comp.id!r} is not in {_shown(uri)}: run "
                                f"`mleray data push {comp.id} {_shown(uri)}` where it is prepared")
            continue
        missing = missing_data(comp)
        if missing:
            problems.append(f"MLE-bench competition {comp.id!r} is not prepared in {data_dir()} "
                            f"({missing[0]}): run `{prepare_command(comp.id)}`")
    return problems


# ------------------------------------------------------------------ staging into the node cache


def data_uri() -> Optional[str]:
    """The object store nodes stage MLE-bench data from, or None (then the local prepared folders)."""
    return os.environ.get(ENV_DATA_URI) or None


def _one_line(err: BaseException) -> str:
    from mleray.errors import one_line

    return one_line(err)


def _shown(uri: str) -> str:
    return uri.split("?", 1)[0]  # a URI as a user names it: without its query options (endpoints, keys)


def _files(folder: Path) -> Dict[str, Path]:
    """The regular files under `folder` by relative path ('/'-separated), sorted; links to files are
    followed (the data is MLE-bench's own, not an agent's), links to folders are not descended."""
    out: Dict[str, Path] = {}
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames.sort()
        for name in sorted(filenames):
            path = Path(dirpath) / name
            if path.is_file():
                out[path.relative_to(folder).as_posix()] = path
    return out


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _digest(listing: dict) -> str:
    return hashlib.sha256(json.dumps(listing, sort_keys=True).encode()).hexdigest()[:16]


class _LocalSource:
    """The prepared folders of `$MLERAY_MLEBENCH_DATA_DIR`; version: a fingerprint of names, sizes, times."""

    def __init__(self, comp):
        missing = missing_data(comp)
        if missing:
            from mleray.competitions import CompetitionError

            raise CompetitionError(not_prepared_message(comp, missing))
        self.folders = dict(zip(PARTS, folders(comp)))
        self.listing = {part: _files(folder) for part, folder in self.folders.items()}
        stamp = {part: {rel: [p.stat().st_size, p.stat().st_mtime_ns] for rel, p in files.items()}
                 for part, files in self.listing.items()}
        self.version = f"mlebench-local-{_digest(stamp)[:12]}"

    def names(self, part: str) -> List[str]:
        return list(self.listing[part])

    def fetch(self, part: str, rel: str, dest: Path) -> None:
        src = self.listing[part][rel]
        if part == "public" and src.stat().st_mode & 0o004:  # world-readable: a hard link costs nothing
            try:
                os.link(src, dest)
                return
            except OSError:  # another filesystem, or links not allowed: copy
                pass
        shutil.copyfile(src, dest)


class _RemoteSource:
    """What `push` uploaded to an object store; version: the pushed digest; every file checked."""

    def __init__(self, comp, uri: str):
        from mleray.competitions import CompetitionError

        self.uri, self.comp = uri, comp
        self.fs, self.base = _split(uri)
        public = self.manifest(uri, "public", comp.id, self.fs, self.base)
        if public is None:
            raise CompetitionError(f"MLE-bench competition {comp.id!r} is not in {_shown(uri)}: run "
                                   f"`mleray data push {comp.id} {_shown(uri)}` where it is prepared")
        self.digest = public["digest"]
        self.version = f"mlebench-{self.digest[:12]}"
        self.manifests: Dict[str, dict] = {"public": public}

    @staticmethod
    def manifest(uri: str, part: str, cid: str, fs=None, base: Optional[str] = None) -> Optional[dict]:
        if fs is None or base is None:
            fs, base = _split(uri)
        import pyarrow.fs as pafs

        path = f"{base}/{part}/{cid}/{MANIFEST}"
        if fs.get_file_info(path).type != pafs.FileType.File:
            return None
        with fs.open_input_stream(path) as fh:
            return json.loads(fh.read())

    def _manifest(self, part: str) -> dict:
        if part not in self.manifests:
            from mleray.competitions import CompetitionError

            found = self.manifest(self.uri, part, self.comp.id, self.fs, self.base)
            if found is None or found.get("digest") != self.digest:
                raise CompetitionError(f"MLE-bench competition {self.comp.id!r}: the {part} data in {_shown(self.uri)} "
                                       f"is missing or of another push than its public data; push it again")
            self.manifests[part] = found
        return self.manifests[part]

    def names(self, part: str) -> List[str]:
        return sorted(self._manifest(part)["files"])

    def fetch(self, part: str, rel: str, dest: Path) -> None:
        """Downloads one file, streaming, and refuses it unless its size and sha256 match the manifest."""
        from mleray.competitions import CompetitionError

        want = self._manifest(part)["files"][rel]
        digest, size = hashlib.sha256(), 0
        with self.fs.open_input_stream(f"{self.base}/{part}/{self.comp.id}/{self.digest}/{rel}") as src, \
                open(dest, "wb") as out:
            for chunk in iter(lambda: src.read(CHUNK), b""):
                digest.update(chunk)
                size += len(chunk)
                out.write(chunk)
        if size != want["size"] or digest.hexdigest() != want["sha256"]:
            raise CompetitionError(f"MLE-bench competition {self.comp.id!r}: {part}/{rel} in {_shown(self.uri)} "
                                   f"fails its checksum ({size} bytes, sha256 {digest.hexdigest()[:12]}..., the "
                                   f"manifest says {want['size']} bytes, {want['sha256'][:12]}...): refused; push it "
                                   f"again with `mleray data push {self.comp.id} {_shown(self.uri)}`")


def _split(uri: str):
    from mleray.storage.backends import split_uri

    return split_uri(uri)


def _source(comp):
    uri = data_uri()
    return _RemoteSource(comp, uri) if uri else _LocalSource(comp)


def _places(comp, entry: Path) -> Tuple[Path, Path]:
    """(answers folder, private folder in it): `<cache>/.answers/<keyed hash>` holding MLE-bench's own layout
    `<id>/prepared/private`, so the official grader's data dir is the answers folder itself."""
    from mleray.competitions import cache

    answers = cache.private_dir(entry)
    return answers, answers / comp.id / "prepared" / "private"


def _prepared(comp, entry: Path, private: Path):
    """The staged PreparedCompetition; a sample submission MLE-bench keeps in private/ is named by its
    absolute path in the answers area (host-side only: the agent never sees it)."""
    from mleray.competitions import PreparedCompetition

    if comp.sample_submission.startswith("../private/"):
        comp = dataclasses.replace(comp, sample_submission=str(private / comp.sample_submission[len("../private/"):]))
    return PreparedCompetition(competition=comp, public_dir=entry / "public", private_dir=private)


def _public_ready(entry: Path) -> bool:
    from mleray.competitions import cache

    return (entry / cache.DONE).is_file()


def staged(comp, cache_root: Optional[Path] = None, answers: bool = True):
    """The staged PreparedCompetition when this node already has it (the answers too if asked), else None."""
    from mleray.paths import cache_dir

    root = Path(cache_root) if cache_root is not None else cache_dir()
    entry = root / comp.id / _source(comp).version
    if not _public_ready(entry):
        return None
    answers_dir, private = _places(comp, entry)
    if answers and not (answers_dir / ANSWERS_DONE).is_file():
        return None
    return _prepared(comp, entry, private)


def _fill(source, part: str, folder: Path) -> None:
    for rel in source.names(part):
        dest = folder / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        source.fetch(part, rel, dest)


def stage(comp, cache_root: Optional[Path] = None, answers: bool = True):
    """Stages an MLE-bench competition into this node's cache (once per version) and returns
    `(PreparedCompetition, built)`; built is True when this call copied or downloaded anything.

    Raises CompetitionError when the data is not prepared (naming the command) or not pushed, or a
    file fails its checksum (nothing of it is kept). Concurrent callers serialise on a file lock.
    """
    from mleray.competitions import CompetitionError, cache
    from mleray.paths import cache_dir, node_lock

    root = Path(cache_root) if cache_root is not None else cache_dir()
    source = _source(comp)
    entry = root / comp.id / source.version
    entry.parent.mkdir(parents=True, exist_ok=True)
    answers_dir, private = _places(comp, entry)
    built = False
    with node_lock(entry.parent / f"{entry.name}.lock"):
        stale_tmps = [*entry.parent.glob(f".{entry.name}.tmp-*"),
                      *answers_dir.parent.glob(f".{answers_dir.name}.tmp-*")]
        for stale in stale_tmps:
            shutil.rmtree(stale, ignore_errors=True)  # left by a killed stager: we hold the lock
        try:
            if not _public_ready(entry):
                shutil.rmtree(entry, ignore_errors=True)
                tmp = entry.parent / f".{entry.name}.tmp-{os.getpid()}"
                started = time.monotonic()
                try:
                    (tmp / "public").mkdir(parents=True)
                    _fill(source, "public", tmp / "public")
                    (tmp / "stage_seconds.txt").write_text(f"{time.monotonic() - started:.2f}\n")
                    os.rename(tmp, entry)
                finally:
                    shutil.rmtree(tmp, ignore_errors=True)
                (entry / cache.DONE).write_text("ok\n")
                built = True
            if answers and not (answers_dir / ANSWERS_DONE).is_file():
                shutil.rmtree(answers_dir, ignore_errors=True)
                tmp = answers_dir.parent / f".{answers_dir.name}.tmp-{os.getpid()}"
                try:
                    tmp.mkdir(mode=0o700)
                    tmp_private = tmp / comp.id / "prepared" / "private"
                    tmp_private.mkdir(parents=True)
                    _fill(source, "private", tmp_private)
                    (tmp / ANSWERS_DONE).write_text("ok\n")
                    cache._seal(tmp)
                    os.rename(tmp, answers_dir)
                finally:
                    shutil.rmtree(tmp, ignore_errors=True)
                built = True
        except CompetitionError:
            raise
        except OSError as err:
            raise CompetitionError(f"cannot stage MLE-bench competition {comp.id!r} into {root}: "
                                   f"{_one_line(err)}") from None
    return _prepared(comp, entry, private), built


# ------------------------------------------------------------------ pushing to an object store


def _upload(fs, local: Path, dest: str, sha: str) -> None:
    digest = hashlib.sha256()
    with open(local, "rb") as src, fs.open_output_stream(dest) as out:
        for chunk in iter(lambda: src.read(CHUNK), b""):
            digest.update(chunk)
            out.write(chunk)
    if digest.hexdigest() != sha:
        from mleray.competitions import CompetitionError

        raise CompetitionError(f"{local} changed while it was uploaded; push again")


def push(ids: Iterable[str], uri: str, on_line: Callable[[str], None] = print) -> List[dict]:
    """Uploads the prepared MLE-bench competitions `ids` from the local data dir to `uri` (once: a
    competition whose pushed digest matches is skipped). Returns one dict per competition:
    competition_id, digest, files, bytes, seconds, skipped. Raises CompetitionError for an unknown or
    unprepared competition (before uploading anything) and StorageError for an unusable URI."""
    from mleray.competitions import CompetitionError

    comps = []
    for cid in dict.fromkeys(ids):
        comp = catalog.get(cid)
        if comp is None:
            raise CompetitionError(f"{cid!r} is not an MLE-bench competition (local competitions are prepared on "
                                   f"each node from their folder; nothing to push)")
        missing = missing_data(comp)
        if missing:
            raise CompetitionError(not_prepared_message(comp, missing))
        comps.append(comp)
    fs, base = _split(uri)
    local_fs = fs.type_name == "local"
    fs.create_dir(base, recursive=True)  # an object store's bucket too, where the URI allows creating it
    results = []
    for comp in comps:
        t0 = time.monotonic()
        files = {part: _files(folder) for part, folder in zip(PARTS, folders(comp))}
        listing: Dict[str, Dict[str, dict]] = {
            part: {rel: {"size": p.stat().st_size, "sha256": _sha256(p)} for rel, p in f.items()}
            for part, f in files.items()}
        digest = _digest(listing)
        pushed = [_RemoteSource.manifest(uri, part, comp.id, fs, base) for part in PARTS]
        count = sum(len(f) for f in files.values())
        size = sum(v["size"] for part in listing.values() for v in part.values())
        if all(m is not None and m.get("digest") == digest for m in pushed):
            on_line(f"{comp.id:<40} already at {_shown(uri)} ({digest})")
            results.append({"competition_id": comp.id, "digest": digest, "files": count, "bytes": size,
                            "seconds": round(time.monotonic() - t0, 3), "skipped": True})
            continue
        for part in PARTS:
            for rel, path in files[part].items():
                dest = f"{base}/{part}/{comp.id}/{digest}/{rel}"
                if local_fs:
                    fs.create_dir(dest.rsplit("/", 1)[0], recursive=True)
                _upload(fs, path, dest, listing[part][rel]["sha256"])
        for part in ("private", "public"):  # public last: it is what nodes look for first
            manifest = {"competition_id": comp.id, "part": part, "digest": digest, "files": listing[part],
                        "pushed_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
            with fs.open_output_stream(f"{base}/{part}/{comp.id}/{MANIFEST}") as out:
                out.write(json.dumps(manifest, indent=1, sort_keys=True).encode())
        seconds = round(time.monotonic() - t0, 3)
        on_line(f"{comp.id:<40} pushed {count} files, {size / 2**20:.1f} MiB in {seconds:.1f} s ({digest})")
        results.append({"competition_id": comp.id, "digest": digest, "files": count, "bytes": size,
                        "seconds": seconds, "skipped": False})
    return results


__all__ = ["ENV_DATA_DIR", "ENV_DATA_URI", "INSTALL_HINT", "data_dir", "data_uri", "prepare_command",
           "package_problem", "folders", "missing_data", "locate", "Descriptions", "descriptions", "preflight",
           "stage", "staged", "push"]
