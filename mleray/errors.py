"""One rule for turning an exception into the one line a record's reason or a command's error shows."""

from __future__ import annotations


def one_line(err: BaseException, *, last: bool = False, limit: int = 300) -> str:
    """`err` as one short line: its first non-blank line (`last=True`: its last one, where Ray puts the
    cause under a remote traceback), cut at `limit` characters; its type name when it has no message."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    if not lines:
        return type(err).__name__
    return (lines[-1] if last else lines[0])[:limit]
