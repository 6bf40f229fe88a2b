"""Submission snapshots: every `interval` seconds the current submission is copied out if it
changed, stamped with the elapsed time, so one long run yields a time-scaling curve. The agent is
still running while this reads its file: links, FIFOs and oversized files are skipped, never followed."""

from __future__ import annotations

import hashlib
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional

from mleray.trial.agent_files import AgentFileError, read_regular


@dataclass(frozen=True)
class Snapshot:
    elapsed_s: float
    path: Path


class Snapshotter:
    """Context manager: a thread takes snapshots while the agent runs, and one last on exit."""

    def __init__(self, submission: Path, folder: Path, interval: float, t0: float):
        self.submission, self.folder, self.interval, self.t0 = Path(submission), Path(folder), interval, t0
        self._last: Optional[str] = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="snapshots", daemon=True)

    def take(self) -> Optional[Snapshot]:
        """Copies the submission out if it exists and changed since the last snapshot."""
        try:
            data = read_regular(self.submission)
        except (OSError, AgentFileError):  # absent, or something the host does not read
            return None
        digest = hashlib.sha256(data).hexdigest()
        if digest == self._last:
            return None
        elapsed = time.monotonic() - self.t0
        target = self.folder / f"{elapsed:010.1f}s.csv"
        target.write_bytes(data)
        self._last = digest
        return Snapshot(round(elapsed, 1), target)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.take()

    def __enter__(self) -> "Snapshotter":
        self.folder.mkdir(parents=True, exist_ok=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.take()

    @staticmethod
    def list(folder: Path) -> List[Snapshot]:
        """All snapshots in a folder, oldest first."""
        return [Snapshot(float(p.name[:-5]), p) for p in sorted(Path(folder).glob("*s.csv"))]
