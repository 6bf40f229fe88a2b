"""Reading a container's log as lines, bounded, with nothing lost or repeated.

The engine hands its log out as frames, one log entry each (a line, or a 16 KiB piece of a longer one),
each tagged stdout or stderr, and with `timestamps=True` the entry's RFC 3339 nanosecond timestamp and a
space first. Lines are put together per stream with at most LINE_CAP_BYTES kept per line (the rest
counted and noted, as bwrap's reader does), so an agent printing 50 MB without a newline costs the host
64 KiB, not 50 MB.

What the engine sends is not always the log once, in order. Measured on this engine (json-file capped at
10 MB x 3, 200,000 lines of 207 bytes written as fast as Python can): the follow stream, at a rotation,
went back 36,084 entries and sent them again, then ended before the log did (also seen without rotation
when a container exits under load: 15,260 of 20,000 lines). So every frame passes a per-stream filter
that drops what is older than what was already taken (one stream's timestamps only grow; the pieces of
one long line share the first piece's), and once the container has exited a plain read of the kept log,
through the same filter, yields what the follower missed.
"""

from __future__ import annotations

import calendar
import struct
import time
from typing import Any, Dict, Iterator, List, Optional, Tuple

from mleray.sandbox.base import LINE_CAP_BYTES, cut_line

STDOUT, STDERR = 1, 2


def frames(api: Any, container_id: str, follow: bool, since: Optional[int] = None) -> Iterator[Tuple[int, bytes]]:
    """(stream, frame) pairs of a container's log read with timestamps (docker-py's logs() drops which
    stream a frame came from, so the frames are read here over its session, the way it reads them)."""
    params: Dict[str, Any] = {"stdout": 1, "stderr": 1, "timestamps": 1, "follow": int(follow), "tail": "all"}
    if since:
        params["since"] = since
    response = api._get(api._url("/containers/{0}/logs", container_id), params=params, stream=True)
    api._raise_for_status(response)
    api._disable_socket_timeout(api._get_raw_response_socket(response))
    try:
        while True:
            header = response.raw.read(8)
            if len(header) < 8:
                return
            stream, length = struct.unpack(">BxxxL", header)
            data = response.raw.read(length) if length else b""
            if length and not data:
                return
            yield stream, data
    finally:
        response.close()


def split_frame(frame: bytes) -> Tuple[bytes, bytes]:
    """(timestamp, payload) of one frame read with timestamps."""
    stamp, _, payload = frame.partition(b" ")
    return stamp, payload


def since_for(stamp: bytes) -> Optional[int]:
    """An engine `since` (whole epoch seconds) a second before `stamp`, so the read surely holds it."""
    try:
        seconds = calendar.timegm(time.strptime(stamp[:19].decode("ascii"), "%Y-%m-%dT%H:%M:%S"))
    except (UnicodeDecodeError, ValueError):
        return None
    return max(seconds - 1, 1)


class LineAssembler:
    """Payloads in, whole lines out, each at most `cap` bytes (plus the note saying how much was cut)."""

    def __init__(self, cap: int = LINE_CAP_BYTES):
        self.cap = cap
        self._parts: List[bytes] = []
        self._held = 0
        self._dropped = 0

    def feed(self, payload: bytes) -> Iterator[str]:
        """The lines `payload` completes; a last piece without a newline is held for the next call."""
        while payload:
            newline = payload.find(b"\n")
            piece, payload = (payload, b"") if newline < 0 else (payload[:newline], payload[newline + 1:])
            room = self.cap - self._held
            if room > 0:
                self._parts.append(piece[:room])
                self._held += min(len(piece), room)
            self._dropped += max(len(piece) - max(room, 0), 0)
            if newline >= 0:
                yield self._take()

    @property
    def open(self) -> bool:
        """Whether part of a line is held, waiting for its newline."""
        return bool(self._parts or self._dropped)

    def rest(self) -> Optional[str]:
        """The held last line (one that never got its newline), or None."""
        return self._take() if self.open else None

    def _take(self) -> str:
        data, dropped = b"".join(self._parts), self._dropped
        self._parts, self._held, self._dropped = [], 0, 0
        return cut_line(data, dropped, cap=self.cap).rstrip("\r")


class StampFilter:
    """One stream's frames, each taken once: a frame stamped before the last one taken is one the engine
    sends again; among frames sharing the last stamp (a long line's pieces), a replay is counted and only
    those beyond the ones already taken pass, or the piece that ends a line still open (the engine's
    rotation may have dropped the first pieces of that line from what it replays, so the count alone
    would swallow the newline and glue the next line onto the long one)."""

    def __init__(self) -> None:
        self.stamp: Optional[bytes] = None
        self.same = 0  # frames taken with `stamp`
        self._replay: Optional[int] = None  # frames with `stamp` seen since the engine went back

    def replaying(self) -> None:
        """What follows is a second read of the log from an earlier point."""
        self._replay = 0

    def take(self, stamp: bytes, closes_open_line: bool = False) -> bool:
        if self.stamp is None or stamp > self.stamp:
            self.stamp, self.same, self._replay = stamp, 1, None
            return True
        if stamp < self.stamp:
            self._replay = 0
            return False
        if self._replay is None:
            self.same += 1
            return True
        self._replay += 1
        if self._replay > self.same:
            self.same, self._replay = self._replay, None
            return True
        return closes_open_line


class LogReader:
    """Frames of one container's log in, its lines out: per stream, filtered and capped."""

    def __init__(self, cap: int = LINE_CAP_BYTES):
        self._filters = {STDOUT: StampFilter(), STDERR: StampFilter()}
        self._lines = {STDOUT: LineAssembler(cap), STDERR: LineAssembler(cap)}

    def feed(self, stream: int, frame: bytes) -> Iterator[str]:
        stream = stream if stream in self._filters else STDOUT
        stamp, payload = split_frame(frame)
        lines = self._lines[stream]
        if self._filters[stream].take(stamp, closes_open_line=lines.open and b"\n" in payload):
            yield from lines.feed(payload)

    def since(self) -> Optional[int]:
        """Where a second read must start to hold everything not yet taken (None: from the start)."""
        stamps = [f.stamp for f in self._filters.values()]
        if any(stamp is None for stamp in stamps):
            return None
        return since_for(min(s for s in stamps if s is not None))

    def replaying(self) -> None:
        for f in self._filters.values():
            f.replaying()

    def rest(self) -> Iterator[str]:
        for lines in self._lines.values():
            last = lines.rest()
            if last is not None:
                yield last
