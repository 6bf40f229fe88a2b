"""The host reading what an agent wrote: regular files only, no symbolic link followed, size bounded.

The agent is untrusted (DESIGN.md, the trust boundary). A `submission.csv` that is a link to the private
answers (their host path is readable from /proc/self/mountinfo), to a root-only host file, a FIFO that
blocks the reader for ever, or a file that fills the host's memory must give the trial a reason, never
the answers, the host file or a hung grader.

The size cap is the sweep's `max_submission_mb` (`max_bytes(mb)`). Graders never read the agent's path:
`private_copy` copies the regular file it opened (one descriptor, checked with fstat) into a host-only
temp file (folder 0700, file 0600), so an agent swapping the file after the check redirects nothing.
`excerpt` is the one way a reason quotes what an agent wrote: short, one line, control characters out.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import tempfile
from pathlib import Path
from typing import Any, Iterator, Optional

MAX_SUBMISSION_MB = 1024.0  # SweepConfig.max_submission_mb's default
MAX_BYTES = int(MAX_SUBMISSION_MB * 2**20)  # a submission or snapshot larger than this is refused, not read
EXCERPT = 200  # the most characters of an agent's file a reason quotes
_CHUNK = 1 << 20


class AgentFileError(ValueError):
    """An agent's file the host will not read; the message says why, in one line."""


def max_bytes(max_submission_mb: float) -> int:
    """The byte cap for a `max_submission_mb` setting (MiB)."""
    return int(float(max_submission_mb) * 2**20)


def _size(n: int) -> str:
    return f"{n / 2**20:.1f} MB ({n} bytes)" if n >= 2**20 else f"{n} bytes"


def too_large(name: str, size: int, limit: int) -> Optional[str]:
    """The reason a file of `size` bytes is refused under a `limit`-byte cap, or None."""
    if size <= limit:
        return None
    return f"{name} is {_size(size)}, over the submission size limit (max_submission_mb) of {_size(limit)}"


def refusal(path: Path, max_bytes: int = MAX_BYTES, follow_links: bool = False) -> Optional[str]:
    """Why the host must not read `path` (a link, not a regular file, too large), or None when it may
    (or when it does not exist: that is the caller's "no submission"). `follow_links=True` is for the
    host owner's own files (`mleray grade`): a link is followed, the rest still holds."""
    path = Path(path)
    try:
        info = os.stat(path) if follow_links else os.lstat(path)
    except FileNotFoundError:
        return None
    except OSError as err:
        return f"{path.name} cannot be inspected ({err.strerror})"
    if stat.S_ISLNK(info.st_mode):
        return f"{path.name} is a symbolic link (not followed); only regular files are graded"
    if not stat.S_ISREG(info.st_mode):
        return f"{path.name} is not a regular file ({_kind(info.st_mode)}); only regular files are graded"
    return too_large(path.name, info.st_size, max_bytes)


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device")):
        if test(mode):
            return name
    return "not a file"


def open_regular(path: Path, max_bytes: int = MAX_BYTES, follow_links: bool = False) -> int:
    """A read-only descriptor on a regular file under the cap, opened without following a link
    (unless `follow_links`) and without blocking on a FIFO. Raises FileNotFoundError when absent and
    AgentFileError for anything the host must not read."""
    path = Path(path)
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | (0 if follow_links else os.O_NOFOLLOW)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise
    except OSError as err:  # ELOOP: the last component is a symbolic link
        raise AgentFileError(refusal(path, max_bytes, follow_links) or f"{path.name}: {err.strerror}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise AgentFileError(f"{path.name} is not a regular file ({_kind(info.st_mode)}); "
                                 "only regular files are graded")
        why = too_large(path.name, info.st_size, max_bytes)
        if why:
            raise AgentFileError(why)
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def copy_fd(fd: int, out: Any, max_bytes: int, name: str, hasher: Any = None) -> int:
    """Copies an open file into the binary file object `out` in chunks (memory stays one chunk), at most
    `max_bytes` (a file that grows past the cap while copied is refused); returns the size."""
    total = 0
    while True:
        chunk = os.read(fd, _CHUNK)
        if not chunk:
            return total
        total += len(chunk)
        if total > max_bytes:
            raise AgentFileError(f"{name} grew over the submission size limit (max_submission_mb) of "
                                 f"{_size(max_bytes)} while it was read")
        out.write(chunk)
        if hasher is not None:
            hasher.update(chunk)


def read_regular(path: Path, max_bytes: int = MAX_BYTES) -> bytes:
    """The bytes of a regular file, opened without following a link and without blocking on a FIFO;
    raises FileNotFoundError when absent and AgentFileError for anything the host must not read."""
    fd = open_regular(path, max_bytes)
    with os.fdopen(fd, "rb") as f:
        data = f.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise AgentFileError(too_large(Path(path).name, len(data), max_bytes) or "over the limit")
    return data


@contextlib.contextmanager
def private_copy(path: Path, max_bytes: int = MAX_BYTES, follow_links: bool = False,
                 folder: Optional[Path] = None, hasher: Any = None) -> Iterator[Path]:
    """Yields a host-only copy of the regular file `path` (same file name, in a fresh 0700 folder,
    mode 0600), removed on exit. Whatever the agent does to `path` afterwards, the copy stays what
    was opened. `hasher` (a hashlib object), when given, is fed the bytes copied. Raises
    FileNotFoundError / AgentFileError as `open_regular` does."""
    path = Path(path)
    fd = open_regular(path, max_bytes, follow_links)
    tmp = Path(tempfile.mkdtemp(prefix="mleray-submission-", dir=folder))  # mode 0700
    try:
        target = tmp / (path.name if path.name not in ("", ".", "..") else "submission.csv")
        out_fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        with os.fdopen(out_fd, "wb") as out:
            copy_fd(fd, out, max_bytes, path.name, hasher)
        os.close(fd)
        fd = -1
        yield target
    finally:
        if fd >= 0:
            os.close(fd)
        shutil.rmtree(tmp, ignore_errors=True)


def excerpt(text: Any, limit: int = EXCERPT) -> str:
    """At most `limit` characters of `text` (str or bytes) on one line: newlines and tabs become spaces,
    other control or unprintable characters `?`; a cut is marked with `...`."""
    if isinstance(text, (bytes, bytearray)):
        text = bytes(text[: limit * 4]).decode("utf-8", "replace")
    text = str(text)
    cut = len(text) > limit
    head = text[: limit + 1]
    clean = "".join(ch if ch.isprintable() else (" " if ch in "\n\r\t" else "?") for ch in head)
    if cut or len(clean) > limit:
        return clean[: max(0, limit - 3)] + "..."
    return clean
