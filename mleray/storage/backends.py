"""Where a sweep's results live: a local or shared path, or a pyarrow filesystem URI.

    storage = open_sweep_storage("runs", "my-sweep")                  # ./runs/my-sweep/
    storage = open_sweep_storage("/mnt/shared/runs", "my-sweep")      # an NFS/EFS mount
    storage = open_sweep_storage("s3://bucket/mleray", "my-sweep")    # S3 (or gs://, hdfs://, file://)

One interface whatever the backend:
- `append_line(line)` adds one record line to `trials.jsonl` and makes it durable before returning;
  `append_lines(lines)` adds several in one write (flush + fsync on a path; an append stream where the
  filesystem has one; otherwise one part object per call, folded into `trials.jsonl` by `compact()` —
  object stores cannot append). Parts are merged as they pile up (MERGE_FAN_IN parts of one level into
  one of the next), so however long a sweep runs, a reader or a resume GETs a few dozen of them at most;
  parts are read and deleted with parallel requests.
- `read_lines()` returns every complete line of `trials.jsonl` in order, as text (an undecodable byte
  is U+FFFD: no line stops a reader); `read_raw_lines()` every line as bytes, numbered as in the file.
  A torn last line left by a killed writer is not returned: opening the storage moves it to
  `trials.jsonl.rejected` (or ends it with its newline, when it is a whole record that only lacks one).
- `rewrite_records(lines)` replaces `trials.jsonl` whole (a temporary file renamed over it on a path;
  one object write on an object store); `append_rejected(lines)` adds to `trials.jsonl.rejected`.
- `write_file`, `read_file`, `read_from(path, offset)` (for following a growing log), `exists`,
  `size`, `list_dir`, `delete_dir`, and `upload_dir(local, dest)` to copy a trial's folder from the
  node that ran it.

Paths passed to these methods are relative to the sweep folder and use `/`. `storage.location` is
the sweep folder as one string (a path, or the URI with the sweep in its path) that
`open_location` opens again on another node: what the driver hands each trial.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import BinaryIO, Dict, List, Optional, Tuple
from urllib.parse import urlsplit, urlunsplit

from mleray.records import REJECTED as _REJECTED_SUFFIX
from mleray.records import BadLine, parse_lines, warn_bad_line

RECORDS = "trials.jsonl"
REJECTED = RECORDS + _REJECTED_SUFFIX  # bad lines moved out of trials.jsonl, one JSON object each
PARTS = "trials.parts"  # append parts on filesystems without append; compacted into trials.jsonl
MERGE_FAN_IN = 16  # this many parts of one level are merged into one part of the next
PARALLEL = 16  # object requests in flight at once when reading, merging or deleting parts


class StorageError(RuntimeError):
    """The storage URI cannot be opened or written; the message names the URI and what to do."""


def _is_uri(uri: str) -> bool:
    return "://" in uri and not uri.startswith("/")


def split_uri(uri: str):
    """(pyarrow FileSystem, path within it) for a URI; raises StorageError with the reason."""
    import pyarrow.fs as pafs

    try:
        fs, path = pafs.FileSystem.from_uri(uri)
    except Exception as err:  # unknown scheme, missing credentials, bad bucket name
        raise StorageError(f"cannot open storage {uri!r}: {str(err).splitlines()[0]} "
                           "(use a local path, or a URI pyarrow understands: s3://, gs://, hdfs://, file://)") from None
    return fs, path.rstrip("/")


class SweepStorage:
    """Base: the sweep folder `<storage>/<sweep>/` on some filesystem."""

    uri: str
    sweep: str

    @property
    def location(self) -> str:
        """The sweep folder as one string that `open_location` opens again (on any node)."""
        raise NotImplementedError

    # -- records ------------------------------------------------------------------------------
    def append_line(self, line: str) -> None:
        self.append_lines([line])

    def append_lines(self, lines: List[str]) -> None:
        """Appends several record lines in one write, durable before it returns (none has inner newlines)."""
        raise NotImplementedError

    @property
    def buffered(self) -> bool:
        """Whether each append costs a request (an object store): the store then batches records."""
        return False

    def read_lines(self) -> List[str]:
        return [line.decode("utf-8", "replace") for line in self.read_raw_lines() if line.strip()]

    def read_raw_lines(self) -> List[bytes]:
        raise NotImplementedError

    def rewrite_records(self, lines: List[str]) -> None:
        raise NotImplementedError

    def append_rejected(self, lines: List[str]) -> None:
        raise NotImplementedError

    def _torn_tail(self, data: bytes) -> Optional[bytes]:
        """What a repaired trials.jsonl holds instead of `data`, or None when it needs no repair: a last
        line without its newline is ended with one when it is a whole record, else cut off and moved
        to trials.jsonl.rejected with a warning."""
        if not data or data.endswith(b"\n"):
            return None
        cut = data.rfind(b"\n") + 1
        tail = parse_lines([data[cut:]])
        if tail.records:
            return data + b"\n"
        bad = BadLine(data[:cut].count(b"\n") + 1, tail.bad[0].text,
                      f"an unfinished last line (a writer stopped mid-line: {tail.bad[0].why})")
        self.append_rejected([bad.entry(RECORDS)])
        warn_bad_line(self.shown(RECORDS), bad, f"moved to {REJECTED}")
        return data[:cut]

    def shown(self, path: str) -> str:
        """A file of the sweep as a user names it (a URI without its query options)."""
        return f"{self.location.split('?', 1)[0]}/{path}"

    def repair(self) -> None:
        """Ends a torn last line of trials.jsonl (see `_torn_tail`); opening with repair=True does it."""

    def compact(self) -> None:
        """Folds pending append parts into trials.jsonl (a no-op where appends are native)."""

    # -- files --------------------------------------------------------------------------------
    def write_file(self, path: str, data: bytes | str) -> None:
        raise NotImplementedError

    def read_file(self, path: str) -> bytes:
        raise NotImplementedError

    def read_from(self, path: str, offset: int) -> bytes:
        """The bytes of `path` from `offset` to its current end (b"" when none, or no such file)."""
        raise NotImplementedError

    def size(self, path: str) -> Optional[int]:
        """Bytes in `path`, or None if it does not exist."""
        raise NotImplementedError

    def exists(self, path: str) -> bool:
        return self.size(path) is not None or self.is_dir(path)

    def is_dir(self, path: str) -> bool:
        raise NotImplementedError

    def list_dir(self, path: str) -> List[str]:
        """Names directly inside `path` (sorted; [] when it does not exist)."""
        raise NotImplementedError

    def upload_dir(self, local_dir: Path, dest: str) -> List[str]:
        """Copies a local folder (a trial's folder on the node that ran it) to `dest`, replacing files.

        Only regular files and folders are copied, never following a link: symbolic links, FIFOs,
        sockets and devices an agent planted are skipped (a FIFO is never opened). Returns one note per
        skipped entry, "submission/x (a symbolic link)", for the trial's log."""
        raise NotImplementedError

    def delete_dir(self, path: str) -> None:
        """Removes the folder `path` and everything in it (nothing when it does not exist)."""
        raise NotImplementedError

    @property
    def local_path(self) -> Optional[Path]:
        """The sweep folder as a local path when the storage is one (runner writes there directly)."""
        return None


def _complete_lines(data: bytes) -> List[bytes]:
    """The complete (newline-terminated) lines of `data`, blank ones too (so they number as in the file)."""
    end = data.rfind(b"\n")
    return data[:end].split(b"\n") if end >= 0 else []


def _joined(lines: List[str]) -> str:
    """The lines as one block to append, each ended by its newline; ValueError for an inner newline."""
    if any("\n" in line.rstrip("\n") for line in lines):
        raise ValueError("append_line: one line, without inner newlines")
    return "".join(line.rstrip("\n") + "\n" for line in lines)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class LocalSweepStorage(SweepStorage):
    """A path on this machine (or a shared mount every node sees at the same path)."""

    def __init__(self, root: str | Path, sweep: str, repair: bool = True):
        self.uri = str(root)
        self.sweep = sweep
        self.dir = Path(root).expanduser() / sweep
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise StorageError(f"cannot create {self.dir}: {err.strerror} (choose another 'storage')") from None
        if repair:
            self.repair()

    @property
    def location(self) -> str:
        return str(self.dir)

    @property
    def local_path(self) -> Path:
        return self.dir

    def _p(self, path: str) -> Path:
        return self.dir / path

    def repair(self) -> None:
        """Ends a torn last line of trials.jsonl (see `_torn_tail`); the store calls it before it appends."""
        path = self._p(RECORDS)
        if path.exists() and path.stat().st_size:
            with open(path, "rb") as f:  # a whole file ends with its newline: read its last byte only
                f.seek(-1, os.SEEK_END)
                if f.read(1) == b"\n":
                    return
            data = path.read_bytes()
            repaired = self._torn_tail(data)
            if repaired is not None:
                with open(path, "r+b") as f:
                    if len(repaired) > len(data):
                        f.seek(len(data))
                        f.write(repaired[len(data):])
                    else:
                        f.truncate(len(repaired))
                    f.flush()
                    os.fsync(f.fileno())

    def shown(self, path: str) -> str:
        return str(self._p(path))

    def append_lines(self, lines: List[str]) -> None:
        data = _joined(lines)
        if not data:
            return
        with open(self._p(RECORDS), "a", encoding="utf-8") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())

    def read_raw_lines(self) -> List[bytes]:
        path = self._p(RECORDS)
        return _complete_lines(path.read_bytes()) if path.exists() else []

    def rewrite_records(self, lines: List[str]) -> None:
        target = self._p(RECORDS)
        tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.tmp")
        try:
            with open(tmp, "w", encoding="utf-8") as f:
                f.write("".join(line + "\n" for line in lines))
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, target)  # a reader sees the old file or the new one, never half of one
        finally:
            tmp.unlink(missing_ok=True)
        _fsync_dir(self.dir)

    def append_rejected(self, lines: List[str]) -> None:
        with open(self._p(REJECTED), "a", encoding="utf-8") as f:
            f.write("".join(line + "\n" for line in lines))
            f.flush()
            os.fsync(f.fileno())

    def write_file(self, path: str, data: bytes | str) -> None:
        target = self._p(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.tmp")
        tmp.write_bytes(data.encode() if isinstance(data, str) else data)
        os.replace(tmp, target)  # readers never see half a file

    def read_file(self, path: str) -> bytes:
        return self._p(path).read_bytes()

    def read_from(self, path: str, offset: int) -> bytes:
        try:
            with open(self._p(path), "rb") as f:
                f.seek(offset)
                return f.read()
        except FileNotFoundError:
            return b""

    def size(self, path: str) -> Optional[int]:
        target = self._p(path)
        return target.stat().st_size if target.is_file() else None

    def is_dir(self, path: str) -> bool:
        return self._p(path).is_dir()

    def list_dir(self, path: str) -> List[str]:
        target = self._p(path)
        return sorted(p.name for p in target.iterdir()) if target.is_dir() else []

    def upload_dir(self, local_dir: Path, dest: str) -> List[str]:
        target = self._p(dest)
        if Path(local_dir).resolve() == target.resolve():
            return []  # the runner wrote in place
        folders, files, skipped = _upload_plan(Path(local_dir))
        for rel in folders:
            (target / rel).mkdir(parents=True, exist_ok=True)
        for rel in files:
            source = _open_regular(Path(local_dir) / rel)
            if source is None:
                skipped.append(f"{_shown(rel)} (no longer a regular file)")
                continue
            with source, open(target / rel, "wb") as out:
                shutil.copyfileobj(source, out, 1 << 20)
        return skipped

    def delete_dir(self, path: str) -> None:
        shutil.rmtree(self._p(path), ignore_errors=True)


class ArrowSweepStorage(SweepStorage):
    """Any pyarrow filesystem (S3, GCS, HDFS, or `file://` / LocalFileSystem)."""

    def __init__(self, uri: str, sweep: str, fs=None, base: Optional[str] = None, append: Optional[bool] = None,
                 repair: bool = True):
        import pyarrow.fs as pafs

        self.uri, self.sweep = uri, sweep
        if fs is None:
            fs, base = split_uri(uri)
        self.fs = fs
        self.base = f"{base.rstrip('/')}/{sweep}" if base else sweep
        try:
            self.fs.create_dir(self.base, recursive=True)
        except Exception as err:
            raise StorageError(f"cannot create {uri}/{sweep}: {str(err).splitlines()[0]}") from None
        # Object stores cannot append; LocalFileSystem and HDFS can.
        self.native_append = isinstance(fs, pafs.LocalFileSystem) if append is None else append
        self._pafs = pafs
        self._seq = 0
        self._writer = uuid.uuid4().hex[:8]
        self._levels: Dict[int, List[str]] = {}  # level -> the parts this writer wrote and has not merged
        self._executor: Optional[ThreadPoolExecutor] = None
        self._records_cache: Optional[bytes] = None  # trials.jsonl as repair() read it, for the next read
        self._made: set = {self.base}
        if repair:
            self.repair()

    @property
    def location(self) -> str:
        scheme, netloc, path, query, fragment = urlsplit(self.uri)
        return urlunsplit((scheme, netloc, f"{path.rstrip('/')}/{self.sweep}", query, fragment))

    def _p(self, path: str) -> str:
        return f"{self.base}/{path}".rstrip("/")

    def repair(self) -> None:
        """Ends a torn last line of trials.jsonl (see `_torn_tail`); the store calls it before it appends.
        The bytes read are kept for the next read of trials.jsonl (opening a store reads it right after)."""
        data = self._read_or_empty(RECORDS)
        repaired = self._torn_tail(data)
        if repaired is not None:
            self.write_file(RECORDS, repaired)
        self._records_cache = data if repaired is None else repaired

    def _whole(self, target) -> bytes:
        """An object's bytes: a HEAD (its size) and one GET of all of it (a stream reads in many ranges)."""
        with self.fs.open_input_file(target) as f:
            return f.read()

    def _read_or_empty(self, path: str) -> bytes:
        """The object's bytes, b"" when there is none (a HEAD and one GET)."""
        if path == RECORDS and self._records_cache is not None:
            data, self._records_cache = self._records_cache, None
            return data
        try:
            return self._whole(self._p(path))
        except FileNotFoundError:
            return b""
        except OSError:
            if self.size(path) is None:
                return b""
            raise

    @property
    def buffered(self) -> bool:
        return not self.native_append

    def append_lines(self, lines: List[str]) -> None:
        data = _joined(lines).encode("utf-8")
        if not data:
            return
        self._records_cache = None
        if self.native_append:
            with self.fs.open_append_stream(self._p(RECORDS)) as out:
                out.write(data)
                out.flush()
            return
        # One part object per call: durable at once, ordered by (time, writer, sequence) when read.
        name = self._part_name(time.time_ns(), 0)
        self.write_file(f"{PARTS}/{name}", data)
        self._levels.setdefault(0, []).append(name)
        self._merge_full_levels()

    def _part_name(self, stamp: int, level: int) -> str:
        self._seq += 1
        return f"{stamp:020d}-{self._writer}-{self._seq:08d}-L{level}.jsonl"

    def _merge_full_levels(self) -> None:
        """Merges the parts this writer wrote of a level into one part of the next once there are
        MERGE_FAN_IN of them (a level's parts are all older than the level below's, so the merged part,
        named by its oldest stamp, keeps the order). A merge that dies half-way leaves lines twice at
        worst, which readers drop (exact duplicates)."""
        level = 0
        while len(self._levels.get(level, [])) >= MERGE_FAN_IN:
            names = self._levels.pop(level)
            datas = self._read_parts(names)
            merged = self._part_name(int(names[0].split("-", 1)[0]), level + 1)
            self.write_file(f"{PARTS}/{merged}", b"".join(datas))
            self._delete_parts(names)
            self._levels.setdefault(level + 1, []).append(merged)
            level += 1

    def _pool(self) -> ThreadPoolExecutor:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(PARALLEL, thread_name_prefix="mleray-storage")
        return self._executor

    def _read_parts(self, names: List[str]) -> List[bytes]:
        """The parts' bytes, read in parallel."""
        return list(self._pool().map(lambda n: self._whole(self._p(f"{PARTS}/{n}")), names))

    def _delete_parts(self, names: List[str]) -> None:
        list(self._pool().map(lambda n: self.fs.delete_file(self._p(f"{PARTS}/{n}")), names))

    def _parts(self) -> List[Tuple[str, bytes]]:
        infos = self.fs.get_file_info(self._pafs.FileSelector(self._p(PARTS), recursive=False,
                                                              allow_not_found=True))
        names = sorted(info.base_name for info in infos if info.base_name.endswith(".jsonl"))
        return list(zip(names, self._read_parts(names)))

    def read_raw_lines(self) -> List[bytes]:
        lines = _complete_lines(self._read_or_empty(RECORDS))
        seen = set(lines)
        for _, data in self._parts():
            for line in _complete_lines(data):
                if line.strip() and line not in seen:  # a part already folded in by a compaction that died
                    seen.add(line)
                    lines.append(line)
        return lines

    def compact(self) -> None:
        parts = self._parts()
        if not parts:
            return
        lines = _complete_lines(self._read_or_empty(RECORDS))
        seen = set(lines)
        for _, data in parts:
            for line in _complete_lines(data):
                if line.strip() and line not in seen:
                    seen.add(line)
                    lines.append(line)
        self.write_file(RECORDS, b"".join(line + b"\n" for line in lines))
        names = [name for name, _ in parts]
        if sorted(self.list_dir(PARTS)) == names:  # nothing new since: one batched delete of them all
            self.fs.delete_dir_contents(self._p(PARTS), missing_dir_ok=True)
        else:
            self._delete_parts(names)
        self._levels.clear()

    def rewrite_records(self, lines: List[str]) -> None:
        self.write_file(RECORDS, "".join(line + "\n" for line in lines).encode("utf-8"))  # whole, never half

    def append_rejected(self, lines: List[str]) -> None:
        data = "".join(line + "\n" for line in lines).encode("utf-8")
        if self.native_append:
            with self.fs.open_append_stream(self._p(REJECTED)) as out:
                out.write(data)
            return
        self.write_file(REJECTED, self._read_or_empty(REJECTED) + data)  # rare: only a damaged file has any

    def write_file(self, path: str, data: bytes | str) -> None:
        target = self._p(path)
        if path == RECORDS or path == REJECTED:
            self._records_cache = None
        parent = target.rsplit("/", 1)[0]
        if parent not in self._made:  # each folder once per writer (three requests each on S3)
            self.fs.create_dir(parent, recursive=True)
            self._made.add(parent)
        payload = data.encode() if isinstance(data, str) else data
        if not isinstance(self.fs, self._pafs.LocalFileSystem):
            with self.fs.open_output_stream(target) as out:  # one object write: readers see the old or the new
                out.write(payload)
            return
        # A local path (file://) is truncated, then written: a reader (`mleray logs --follow`) could see it
        # short and take it for a restarted log. Written beside it, then renamed: readers never see half a file.
        tmp = f"{parent}/.{target.rsplit('/', 1)[-1]}.{uuid.uuid4().hex[:8]}.tmp"
        with self.fs.open_output_stream(tmp) as out:
            out.write(payload)
        self.fs.move(tmp, target)

    def read_file(self, path: str) -> bytes:
        with self.fs.open_input_stream(self._p(path)) as f:
            return f.read()

    def read_from(self, path: str, offset: int) -> bytes:
        size = self.size(path)
        if size is None or size <= offset:
            return b""
        with self.fs.open_input_file(self._p(path)) as f:
            f.seek(offset)
            return f.read()

    def size(self, path: str) -> Optional[int]:
        info = self.fs.get_file_info(self._p(path))
        return info.size if info.type == self._pafs.FileType.File else None

    def is_dir(self, path: str) -> bool:
        return self.fs.get_file_info(self._p(path)).type == self._pafs.FileType.Directory

    def list_dir(self, path: str) -> List[str]:
        if not self.is_dir(path):
            return []
        infos = self.fs.get_file_info(self._pafs.FileSelector(self._p(path), recursive=False))
        return sorted(info.base_name for info in infos)

    def upload_dir(self, local_dir: Path, dest: str) -> List[str]:
        self.fs.create_dir(self._p(dest), recursive=True)
        folders, files, skipped = _upload_plan(Path(local_dir))
        for rel in folders:
            self.fs.create_dir(self._p(f"{dest}/{rel}"), recursive=True)
        for rel in files:
            source = _open_regular(Path(local_dir) / rel)
            if source is None:
                skipped.append(f"{_shown(rel)} (no longer a regular file)")
                continue
            with source, self.fs.open_output_stream(self._p(f"{dest}/{rel}")) as out:
                while chunk := source.read(1 << 20):
                    out.write(chunk)
        return skipped

    def delete_dir(self, path: str) -> None:
        if self.is_dir(path):
            self.fs.delete_dir(self._p(path))

    @property
    def local_path(self) -> Optional[Path]:
        if isinstance(self.fs, self._pafs.LocalFileSystem):
            return Path(self.base)
        return None


def open_sweep_storage(uri: str | Path, sweep: str, repair: bool = True) -> SweepStorage:
    """The storage of sweep `sweep` under `uri`: a local/shared path, or a pyarrow filesystem URI.
    `repair=False` leaves trials.jsonl untouched (a torn last line stays): for read-only readers."""
    if not sweep or "/" in sweep:
        raise StorageError(f"bad sweep name {sweep!r} (a non-empty name without '/')")
    uri = str(uri)
    if _is_uri(uri):
        return ArrowSweepStorage(uri, sweep, repair=repair)
    return LocalSweepStorage(uri, sweep, repair=repair)


# pathlib folds the '//' of a URI ("s3://b/x" -> "s3:/b/x"); a location that went through Path() is restored.
_FOLDED = re.compile(r"^(s3|gs|gcs|hdfs|viewfs|abfs|abfss|file|mock):/(?!/)(.*)$", re.DOTALL)


def open_location(location: str | Path, repair: bool = True) -> SweepStorage:
    """Opens a sweep folder from its `storage.location` string (a path, or a URI with the sweep last in its
    path). `repair=False` leaves trials.jsonl untouched: for trials, which never write it."""
    location = str(location)
    folded = _FOLDED.match(location)
    if folded:
        scheme, rest = folded.groups()
        location = f"{scheme}:///{rest}" if scheme in ("file", "mock") else f"{scheme}://{rest}"
    if not _is_uri(location):
        path = Path(location).expanduser()
        return LocalSweepStorage(path.parent, path.name, repair=repair)
    scheme, netloc, uri_path, query, fragment = urlsplit(location)
    parent, _, sweep = uri_path.rstrip("/").rpartition("/")
    if not sweep:
        raise StorageError(f"cannot open sweep location {location!r}: it names no sweep folder")
    return ArrowSweepStorage(urlunsplit((scheme, netloc, parent, query, fragment)), sweep, repair=repair)


def is_local_location(location: str | Path) -> bool:
    """True when `location` is a path (written in place by the node that runs a trial)."""
    return not (_is_uri(str(location)) or _FOLDED.match(str(location)))


# -- upload_dir's walk: what an agent left in its folders is read as data, never followed ---------------
_KINDS = ((stat.S_ISLNK, "a symbolic link"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"),
          (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"))


def _shown(rel: str) -> str:
    """A relative path for a log line: control characters and odd bytes escaped."""
    return rel if rel.isprintable() else ascii(rel)[1:-1]


def _upload_plan(local_dir: Path) -> Tuple[List[str], List[str], List[str]]:
    """(folders, regular files, skip notes) under `local_dir`, relative with `/`, found with lstat only
    (os.scandir without following links): a link, FIFO, socket or device is a note, never an entry."""
    folders: List[str] = []
    files: List[str] = []
    skipped: List[str] = []
    pending = [""]
    while pending:
        rel = pending.pop()
        try:
            with os.scandir(local_dir / rel if rel else local_dir) as listing:
                entries = sorted(listing, key=lambda entry: entry.name)
        except OSError as err:
            skipped.append(f"{_shown(rel or '.')} (unreadable: {err.strerror})")
            continue
        for entry in entries:
            path = f"{rel}/{entry.name}" if rel else entry.name
            try:
                mode = entry.stat(follow_symlinks=False).st_mode
            except OSError as err:
                skipped.append(f"{_shown(path)} (unreadable: {err.strerror})")
                continue
            if stat.S_ISDIR(mode):
                folders.append(path)
                pending.append(path)
            elif stat.S_ISREG(mode):
                files.append(path)
            else:
                kind = next((name for test, name in _KINDS if test(mode)), "not a regular file")
                skipped.append(f"{_shown(path)} ({kind})")
    return folders, files, skipped


def _open_regular(path: Path) -> Optional[BinaryIO]:
    """`path` opened for reading if it is still a regular file (O_NOFOLLOW, O_NONBLOCK: a link or FIFO
    swapped in since the walk is neither followed nor waited on), else None."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        return None
    return os.fdopen(fd, "rb")
