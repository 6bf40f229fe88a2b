"""The runner's bounds on what a trial writes: agent.log capped whatever the agent prints (CappedLog,
fed by `stream`) and the tier's disk_gb over the trial's writable folders plus what the sandbox holds
outside them (DiskWatch, which stops the sandbox)."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Callable, Optional, Sequence

from mleray.sandbox.base import LINE_CAP_BYTES, cut_line
from mleray.sandbox.disk import tree_bytes

LOG_CAP_BYTES = 50 * 1024**2  # agent.log at most (about): the first half as it comes, the last half at the end


class CappedLog:
    """agent.log, capped whatever the agent prints: the first `cap`/2 bytes are written as they come;
    past that the last `cap`/2 are kept in a ring in memory (one buffer, at most `cap`/2 + SLACK bytes,
    however short the lines) and written when the log closes, after a line "[mleray: N bytes of agent
    output dropped here]", so the end of an over-long log is kept. A line over `line_cap` bytes keeps
    its start and says how much was cut."""

    SLACK = 4 * 1024**2  # the ring is trimmed to its size each time it grows this much past it

    def __init__(self, path: Path, cap: int = LOG_CAP_BYTES, line_cap: int = LINE_CAP_BYTES):
        self.path, self.line_cap = Path(path), line_cap
        self.head_left = cap // 2
        self.tail_cap = max(0, cap - cap // 2 - 512)  # room for the two notes: the log stays under `cap`
        self.ring = bytearray()
        self.held = False  # past the head: lines go to the ring
        self.dropped = 0
        self._out = open(self.path, "ab")

    def cut(self, line: str) -> str:
        """`line` as the log keeps it: at most `line_cap` bytes of it, and a note of what was cut."""
        data = line.encode("utf-8", "replace")
        return line if len(data) <= self.line_cap else cut_line(data, cap=self.line_cap)

    def write(self, line: str) -> None:
        data = (line + "\n").encode("utf-8", "replace")
        if not self.held:
            if len(data) <= self.head_left:
                self._out.write(data)
                self._out.flush()
                self.head_left -= len(data)
                return
            self.held = True
            self._out.write(f"[mleray: agent.log reached its cap's first half; the last {self.tail_cap} bytes "
                            f"of what follows are written when the agent ends]\n".encode())
            self._out.flush()
        self.ring += data
        if len(self.ring) > self.tail_cap + self.SLACK:
            self._trim()

    def _trim(self) -> None:
        """Drops the ring's oldest bytes down to `tail_cap`, cutting at a line's start."""
        excess = len(self.ring) - self.tail_cap
        if excess <= 0:
            return
        newline = self.ring.find(b"\n", excess - 1)
        cut = newline + 1 if 0 <= newline < len(self.ring) - 1 else excess
        del self.ring[:cut]
        self.dropped += cut

    def close(self) -> None:
        self._trim()
        if self.dropped:
            self._out.write(f"[mleray: {self.dropped} bytes of agent output dropped here]\n".encode())
        self._out.write(self.ring)
        self.ring = bytearray()
        self._out.close()


def stream(sandbox, log_path: Path, on_line: Optional[Callable[[str], None]],
            cap: int = LOG_CAP_BYTES) -> threading.Thread:
    """Copies the sandbox's output into agent.log line by line (a CappedLog), flushing each line."""

    def pump() -> None:
        log = CappedLog(log_path, cap)
        try:
            for line in sandbox.logs():
                line = log.cut(line)
                log.write(line)
                if on_line:
                    on_line(line)
        finally:
            log.close()

    thread = threading.Thread(target=pump, name="trial-log", daemon=True)
    thread.start()
    return thread


DISK_POLL_S = 2.0  # how often DiskWatch measures; a slow walk (many files) spaces the polls out further


class DiskWatch:
    """Bounds what a trial writes: a thread that measures the trial's writable folders (and the
    bytes `extra` reports, the sandbox's own tmpfs) every `every` seconds and, over `limit_gb` GiB, kills the
    sandbox and sets `exceeded`. Cheap: a walk with lstat only, stopped once past the bound."""

    def __init__(self, sandbox, folders: Sequence[Path], limit_gb: float, every: float = DISK_POLL_S,
                 extra: Callable[[], int] = lambda: 0):
        self.sandbox, self.folders, self.every, self.extra = sandbox, [Path(f) for f in folders], every, extra
        self.limit = int(limit_gb * 1024**3)
        self.limit_gb = limit_gb
        self.exceeded = False
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="disk-watch", daemon=True)

    def measure(self) -> int:
        total = self.extra()
        for folder in self.folders:
            if total > self.limit:
                break
            total += tree_bytes(folder, stop_at=self.limit - total)
        self.peak = max(self.peak, total)
        return total

    def check(self) -> bool:
        """Measures once; over the bound, kills the sandbox. True when over."""
        if self.measure() > self.limit:
            self.exceeded = True
            self.sandbox.kill()
        return self.exceeded

    def _loop(self) -> None:
        wait = self.every
        while not self._stop.wait(wait):
            t0 = time.monotonic()
            try:
                if self.check():
                    return
            except Exception:  # a measuring hiccup costs one round, never the trial
                pass
            wait = max(self.every, 4 * (time.monotonic() - t0))

    @property
    def reason(self) -> str:
        """The record's reason: stopped by this watch, or found over the bound when the agent ended."""
        done = "stopped: wrote" if self.exceeded else "wrote (found when the agent ended)"
        return f"{done} more than {self.limit_gb:g} GiB"

    @property
    def enforces(self) -> str:
        """What this watch enforced, for the record's isolation map."""
        return (f"{self.limit_gb:g} GiB over submission, code, logs and what the sandbox holds outside them, "
                f"polled every {self.every:g} s by the runner")

    def __enter__(self) -> "DiskWatch":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
