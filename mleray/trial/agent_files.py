"""The host reading what an agent wrote: regular files only, no symbolic link followed, size bounded.

The agent is untrusted (DESIGN.md, the trust boundary). A `submission.csv` that is a link to the private
answers (their host path is readable from /proc/self/mountinfo), to a root-only host file, a FIFO that
blocks the reader for ever, or a file that fills the host's memory must give the trial a reason, never
the answers, the host file or a hung grader.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Optional

MAX_BYTES = 4 * 2**30  # a submission or snapshot larger than this is refused, not read


class AgentFileError(ValueError):
    """An agent's file the host will not read; the message says why, in one line."""


def refusal(path: Path, max_bytes: int = MAX_BYTES) -> Optional[str]:
    """Why the host must not read `path` (a link, not a regular file, too large), or None when it may
    (or when it does not exist: that is the caller's "no submission")."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return None
    except OSError as err:
        return f"{path.name} cannot be inspected ({err.strerror})"
    if stat.S_ISLNK(info.st_mode):
        return f"{path.name} is a symbolic link (not followed)"
    if not stat.S_ISREG(info.st_mode):
        return f"{path.name} is not a regular file"
    if info.st_size > max_bytes:
        return f"{path.name} is {info.st_size} bytes, over the {max_bytes} byte limit"
    return None


def read_regular(path: Path, max_bytes: int = MAX_BYTES) -> bytes:
    """The bytes of a regular file, opened without following a link and without blocking on a FIFO;
    raises FileNotFoundError when absent and AgentFileError for anything the host must not read."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise
    except OSError as err:  # ELOOP: the last component is a symbolic link
        raise AgentFileError(refusal(Path(path), max_bytes) or f"{Path(path).name}: {err.strerror}") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise AgentFileError(f"{Path(path).name} is not a regular file")
    with os.fdopen(fd, "rb") as f:
        data = f.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise AgentFileError(f"{Path(path).name} is over the {max_bytes} byte limit")
    return data
