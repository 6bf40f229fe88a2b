"""Measuring what an agent wrote on the host, without following anything it planted."""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path
from typing import Dict, Optional


def tree_bytes(folder: Path, stop_at: Optional[int] = None) -> int:
    """Bytes under `folder`, links never followed (os.scandir + lstat): a file counts its size or its
    allocated blocks, whichever is larger (a sparse file counts what an upload would copy), a folder
    its own size. Stops early once past `stop_at`. Vanished or unreadable entries count nothing."""
    total, pending = 0, [str(folder)]
    while pending:
        try:
            with os.scandir(pending.pop()) as listing:
                for entry in listing:
                    try:
                        st = entry.stat(follow_symlinks=False)
                    except OSError:
                        continue
                    total += max(st.st_size, st.st_blocks * 512) if stat.S_ISREG(st.st_mode) else st.st_size
                    if stat.S_ISDIR(st.st_mode):
                        pending.append(entry.path)
        except OSError:
            continue
        if stop_at is not None and total > stop_at:
            break
    return total


def _tmpfs_mounts(mountinfo: str) -> Dict[str, str]:
    """{device "major:minor": mount point} of the tmpfs mounts in a /proc/<pid>/mountinfo text."""
    out: Dict[str, str] = {}
    for line in mountinfo.splitlines():
        left, _, right = line.partition(" - ")
        fields = left.split()
        if len(fields) >= 5 and right.split()[:1] == ["tmpfs"]:
            out.setdefault(fields[2], re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), fields[4]))
    return out


def tmpfs_bytes(pid: int) -> int:
    """Bytes in the tmpfs instances process `pid` has and this process does not (a sandbox's own root,
    /tmp, /dev, /dev/shm: RAM the agent can fill), from statvfs through /proc/<pid>/root. A tmpfs the
    host has too (a bind mount of a host folder) is not counted: walking the trial's folders covers
    those. 0 when the process is gone."""
    try:
        with open(f"/proc/{pid}/mountinfo") as theirs, open("/proc/self/mountinfo") as ours:
            own = {dev: point for dev, point in _tmpfs_mounts(theirs.read()).items()
                   if dev not in _tmpfs_mounts(ours.read())}
    except OSError:
        return 0
    total = 0
    for point in own.values():
        try:
            st = os.statvfs(f"/proc/{pid}/root{point}")
        except OSError:
            continue
        total += (st.f_blocks - st.f_bfree) * st.f_frsize
    return total
